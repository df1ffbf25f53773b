"""Answers from PDFs against the same documents as text: `qa eval`'s `test` articles printed to PDF.

    python -m bench pdf-answers [--json] [--split test]

Each article of the split is written twice into its own corpus: as plain text, and as a PDF whose lines are
broken at about 90 characters, 48 lines a page, with a running header and a page number on every page (what the
loader's reflow has to undo). Both corpora are indexed with the real loader and asked the split's answerable
questions through the default pipeline (extractive: a single question needs no model). Reported for each: the
share of answers holding SQuAD's answer, abstentions, wrong answers, and for the PDF the share of citations
that carry a page. Data: SQuAD v1.1 (Rajpurkar et al., 2016), CC BY-SA 4.0.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from pathlib import Path

from bench.common import ROOT, columns_table, isolated, log
from index.settings import Settings

SQUAD = ROOT / "bench" / "data" / "squad_eval.json"


def _latin(text: str) -> str:
    """The text in the PDF maker's character set (Latin-1); both corpora use it, so they hold the same words."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _pages(title: str, paragraphs: list[str]) -> list[list[str]]:
    lines: list[str] = []
    for para in [title, *paragraphs]:
        lines += textwrap.wrap(para, 90) + [""]
    body = [lines[i : i + 46] for i in range(0, len(lines), 46)]
    return [[f"{title[:60]} - survey notes", *page, str(n)] for n, page in enumerate(body, 1)]


def _ask(settings: Settings, questions: list[dict]) -> dict:
    from index.build import build_index
    from qa.eval_squad import contains_gold
    from qa.service import QAService

    build_index(settings, progress=False)
    service = QAService(settings)
    service.warm_up()
    right = abstained = paged = cited = 0
    for q in questions:
        a = service.ask(q["question"])
        right += contains_gold(a, q["answers"])
        abstained += a.abstained
        cited += bool(a.citations)
        paged += any(c.page is not None for c in a.citations)
    n = len(questions)
    return {
        "questions": n,
        "gold_in_answer": round(right / n, 3),
        "abstained": round(abstained / n, 3),
        "answered_wrong": round((n - right - abstained) / n, 3),
        "citations_with_page": round(paged / cited, 3) if cited else None,
    }


def run(base: Settings, args) -> dict:
    from tests.documents import write_pdf  # the test suite's hand-written PDF maker: no PDF library needed

    data = json.loads(SQUAD.read_text(encoding="utf-8"))
    articles = [a for a in data["articles"] if a["split"] == args.split]
    questions = [q for q in data["answerable"] if q["split"] == args.split]
    work = Path(tempfile.mkdtemp(prefix="qa-bench-pdf-"))
    out = {"split": args.split, "articles": len(articles)}
    try:
        for kind in ("txt", "pdf"):
            seeds = work / kind / "seeds"
            seeds.mkdir(parents=True)
            for i, art in enumerate(articles):
                art = {"title": _latin(art["title"]), "paragraphs": [_latin(p) for p in art["paragraphs"]]}
                if kind == "txt":
                    (seeds / f"{i:02d}.txt").write_text("\n\n".join([art["title"], *art["paragraphs"]]) + "\n")
                else:
                    write_pdf(seeds / f"{i:02d}.pdf", _pages(art["title"], art["paragraphs"]))
            log(f"pdf-answers: {kind}")
            out[kind] = _ask(isolated(base, work / kind, seeds, llm="extractive"), questions)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def render(result: dict, console) -> None:
    table = columns_table(
        "format | questions | gold in answer | abstained | answered wrong | citations with a page",
        left=("format",),
        title=f"The {result['split']} split's {result['articles']} articles as text and as PDF",
    )
    for kind in ("txt", "pdf"):
        r = result[kind]
        table.add_row(
            kind,
            str(r["questions"]),
            f"{r['gold_in_answer']:.3f}",
            f"{r['abstained']:.3f}",
            f"{r['answered_wrong']:.3f}",
            "–" if r["citations_with_page"] is None else f"{r['citations_with_page']:.3f}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--split", default="test", choices=("dev", "test"))

    return main_for("pdf-answers", __doc__, add_args, run, render, argv)


__all__ = ["main", "render", "run"]
