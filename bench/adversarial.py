"""`python -m bench adversarial [--mb 1] [--json]`: hostile text through load -> split -> BM25 -> reader prompt.

Each input is one file of about `--mb` MB made to hurt a text pipeline: one line of abbreviations (every dot
is a sentence-end candidate), one word with no spaces, only punctuation, only dots, an HTML page whose <title>
is the whole file, deeply nested HTML, control characters and escape sequences, and, as the baseline, ordinary
prose (the article repeated). Every stage is timed on the file at full size and at half size: seconds per MB
shows the cost, and the ratio full/half (about 2 when linear, 4 when quadratic) shows how it grows.

Stages: `load` (index.load.load_documents: decoding, HTML parsing, cleaning), `split` (index.split), `bm25`
(index.bm25.tokenize over every chunk). Target: at most 2 s per MB per stage. One more column, `reader`, is the
text work of the answer step (sentence spans, the filter for sentences addressed to the model, the prompt's
defusing of markup) run over every chunk as if each were retrieved: per question it reads only the top passages,
so it never grows with a document, and it is shown for information.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import ARTICLE, log, main_for
from index.settings import Settings

STAGES = ("load", "split", "bm25")  # what a document goes through, in proportion to its size
COLUMNS = (*STAGES, "reader")  # per question only the top passages (about 2 KB) go through this one
TARGET_S_PER_MB = 2.0


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def inputs(size: int) -> dict[str, tuple[str, str]]:
    """name -> (file name, content) of about `size` characters each."""
    depth = size // 12
    return {
        "prose": ("prose.txt", _repeat(ARTICLE.read_text(encoding="utf-8") + "\n\n", size)),
        "abbreviations": ("abbrev.txt", _repeat("Mr. No. 5, etc. e.g. U.S. Dr. vs. Jan. ", size)),
        "no_spaces": ("nospace.txt", _repeat("Lorem", size)),
        "punctuation": ("punct.txt", _repeat("?!.,;:'\")(][-", size)),
        "dots": ("dots.txt", "." * size),
        "newlines": ("newlines.txt", _repeat("a.\n\n\n", size)),
        "controls": ("controls.txt", _repeat("\x1b[2J\x1b]0;x\x07\x9b1m\x1b]", size)),
        "html_title": ("title.html", f"<title>{_repeat('Budget report ', size)}</title><p>The budget grew.</p>"),
        "deep_html": ("deep.html", "<div>" * depth + "Deep text. " + "</div>" * depth),
    }


def _time(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def run_one(name: str, filename: str, content: str, settings: Settings, workdir: Path) -> dict:
    from index.bm25 import tokenize
    from index.load import load_documents
    from index.split import split_document
    from qa.checks import addresses_model
    from qa.read import neutral
    from qa.text import sentence_spans

    seeds = workdir / name
    seeds.mkdir()
    (seeds / filename).write_text(content, encoding="utf-8")
    out: dict = {"bytes": len(content.encode("utf-8"))}
    (docs, warnings), out["load"] = _time(lambda: load_documents(seeds))
    if not docs:
        out.update(split=0.0, bm25=0.0, reader=0.0, chunks=0, note="; ".join(warnings))
        return out
    doc = docs[0]
    chunks, out["split"] = _time(lambda: split_document(doc, settings.chunk_size, settings.chunk_overlap))
    _, out["bm25"] = _time(lambda: [tokenize(c.text) for c in chunks])

    def reader():
        for c in chunks:
            kept = [c.text[s:e] for s, e in sentence_spans(c.text) if not addresses_model(c.text[s:e])]
            neutral(" ".join(kept))

    _, out["reader"] = _time(reader)
    out.update(chunks=len(chunks), text_chars=len(doc.text), title_chars=len(doc.title))
    return out


def run(settings: Settings, args) -> dict:
    size = int(args.mb * 1024 * 1024)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="qa-adversarial-") as tmp:
        for label, scale in (("half", 0.5), ("full", 1.0)):
            for name, (filename, content) in inputs(int(size * scale)).items():
                if args.only and name not in args.only.split(","):
                    continue
                log(f"{name} ({label} size)")
                root = Path(tmp) / label
                root.mkdir(exist_ok=True)
                rows.setdefault(name, {})[label] = run_one(name, filename, content, settings, root)
    table = {}
    worst = 0.0
    for name, sizes in rows.items():
        full, half = sizes["full"], sizes["half"]
        mb = full["bytes"] / 1048576
        entry = {
            "mb": round(mb, 3),
            "chunks": full.get("chunks", 0),
            "title_chars": full.get("title_chars"),
            "note": full.get("note"),
        }
        for stage in COLUMNS:
            per_mb = full[stage] / mb
            if stage in STAGES:
                worst = max(worst, per_mb)
            entry[f"{stage}_s_per_mb"] = round(per_mb, 3)
            entry[f"{stage}_growth"] = round(full[stage] / half[stage], 2) if half[stage] > 0.01 else None
        table[name] = entry
    return {
        "target_s_per_mb": TARGET_S_PER_MB,
        "chunk_size": settings.chunk_size,
        "inputs": table,
        "worst_s_per_mb": round(worst, 3),
        "meets_target": worst <= TARGET_S_PER_MB,
    }


def add_args(parser) -> None:
    parser.add_argument("--mb", type=float, default=1.0, help="size of each adversarial file in MB (default 1)")
    parser.add_argument("--only", default="", help="comma-separated input names to run (default: all)")


def render(result: dict, console) -> None:
    from rich.table import Table

    table = Table(
        title=f"Adversarial text, seconds per MB (target <= {result['target_s_per_mb']} s/MB; "
        "growth = time at full size / half size, ~2 linear, ~4 quadratic)"
    )
    table.add_column("input")
    table.add_column("MB", justify="right")
    table.add_column("chunks", justify="right")
    for stage in COLUMNS:
        table.add_column(f"{stage} s/MB (growth)", justify="right")
    for name, row in result["inputs"].items():
        cells = [
            f"{row[f'{s}_s_per_mb']:.3f} ({row[f'{s}_growth'] if row[f'{s}_growth'] is not None else '-'})"
            for s in COLUMNS
        ]
        table.add_row(name, f"{row['mb']:.2f}", str(row["chunks"]), *cells)
    console.print(table)
    verdict = "meets" if result["meets_target"] else "MISSES"
    console.print(f"Worst pipeline stage: {result['worst_s_per_mb']} s/MB — {verdict} the target.")


def main(argv: list[str] | None = None) -> int:
    return main_for("adversarial", __doc__, add_args, run, render, argv)


__all__ = ["inputs", "main", "run"]
