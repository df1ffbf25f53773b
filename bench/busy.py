"""Question latency while the service is busy: idle, during a rebuild, and during a large PDF's extraction.

    python -m bench busy [--json] [--questions 12] [--pdf-pages 4000]

One QAService over the seed article (the extractive backend: the default answers a single question without a
model call, so the figures are retrieval, ranking and the checks). The same questions are asked three times:
with nothing else running, while `QAService.rebuild` indexes eight more SQuAD articles in a background thread,
and while a generated PDF of `--pdf-pages` pages (about 20 MB) is read by the loader's extraction worker.
Reported: answer time p50/p95 of each phase and the ratio to idle (target: p50 within 1.5x). On 2 cores a
rebuild's encoder and a question's ranking share the CPU; no lock makes a question wait for either.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ARTICLE, ROOT, columns_table, isolated, log
from index.settings import Settings
from qa.evaluate import percentile

EVAL = ROOT / "bench" / "data" / "article_eval.json"
SQUAD = ROOT / "bench" / "data" / "squad_eval.json"


def _ask_all(service, questions: list[str]) -> list[float]:
    times = []
    for q in questions:
        t0 = time.perf_counter()
        service.ask(q)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _while(work, service, questions: list[str]) -> tuple[list[float], float]:
    """Answer times while `work` runs in a thread (questions repeat until it ends), and how long it ran."""
    done = threading.Event()
    started = time.perf_counter()

    def run():
        try:
            work()
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    times: list[float] = []
    while not done.is_set():
        times += _ask_all(service, questions)
    return times, time.perf_counter() - started


def _summary(times: list[float], idle_p50: float | None = None) -> dict:
    out = {"n": len(times), "p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1)}
    if idle_p50:
        out["p50_vs_idle"] = round(out["p50_ms"] / idle_p50, 2)
    return out


def run(base: Settings, args) -> dict:
    from index.build import build_index
    from index.load import load_documents
    from qa.service import QAService
    from tests.documents import write_pdf  # the test suite's hand-written PDF maker: no PDF library needed

    questions = [i["question"] for i in json.loads(EVAL.read_text(encoding="utf-8"))["answerable"]][: args.questions]
    work = Path(tempfile.mkdtemp(prefix="qa-bench-busy-"))
    try:
        seeds = work / "seeds"
        seeds.mkdir()
        shutil.copy(ARTICLE, seeds / ARTICLE.name)
        settings = isolated(base, work, seeds, llm="extractive")
        build_index(settings, progress=False)
        service = QAService(settings)
        service.warm_up()
        _ask_all(service, questions)  # first-call costs excluded
        idle = _ask_all(service, questions)
        idle_p50 = percentile(idle, 50)
        log(f"busy: idle p50 {idle_p50:.0f} ms; now a rebuild")
        articles = json.loads(SQUAD.read_text(encoding="utf-8"))["articles"][:8]
        for i, art in enumerate(articles):
            (seeds / f"extra-{i}.txt").write_text("\n\n".join([art["title"], *art["paragraphs"]]), encoding="utf-8")
        rebuild, rebuild_s = _while(lambda: service.rebuild(force=False), service, questions)
        log(f"busy: rebuild took {rebuild_s:.1f} s; now a PDF extraction")
        pdf_dir = work / "pdf"
        pdf_dir.mkdir()
        line = "The survey measured the glacier every spring and the results were published in the annual report."
        write_pdf(pdf_dir / "big.pdf", [[line] * 48 for _ in range(args.pdf_pages)])
        pdf_mb = (pdf_dir / "big.pdf").stat().st_size / 1e6
        extract, extract_s = _while(lambda: load_documents(pdf_dir, max_seconds=600), service, questions)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "questions": len(questions),
        "idle": _summary(idle),
        "during_rebuild": {**_summary(rebuild, idle_p50), "rebuild_s": round(rebuild_s, 1)},
        "during_pdf_extraction": {
            **_summary(extract, idle_p50),
            "extraction_s": round(extract_s, 1),
            "pdf_mb": round(pdf_mb, 1),
        },
        "target_p50_vs_idle": 1.5,
    }


def render(result: dict, console) -> None:
    table = columns_table(
        "phase | answers | p50 ms | p95 ms | p50 / idle | busy for",
        left=("phase",),
        title=f"Answer time while busy ({result['questions']} article questions, extractive answers)",
    )
    i, r, x = result["idle"], result["during_rebuild"], result["during_pdf_extraction"]
    table.add_row("idle", str(i["n"]), f"{i['p50_ms']:.0f}", f"{i['p95_ms']:.0f}", "1.00", "")
    table.add_row(
        "during a rebuild",
        str(r["n"]),
        f"{r['p50_ms']:.0f}",
        f"{r['p95_ms']:.0f}",
        f"{r['p50_vs_idle']:.2f}",
        f"{r['rebuild_s']} s",
    )
    table.add_row(
        f"during a {x['pdf_mb']} MB PDF's extraction",
        str(x["n"]),
        f"{x['p50_ms']:.0f}",
        f"{x['p95_ms']:.0f}",
        f"{x['p50_vs_idle']:.2f}",
        f"{x['extraction_s']} s",
    )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--questions", type=int, default=12, help="first N answerable questions of article_eval.json")
        p.add_argument("--pdf-pages", type=int, default=4000, help="pages of the generated PDF (about 5 KB each)")

    return main_for("busy", __doc__, add_args, run, render, argv)


__all__ = ["main", "run", "render"]
