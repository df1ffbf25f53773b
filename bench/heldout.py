"""Answers on text the answer checks were not designed from: SQuAD v1.1 *train* articles, asked through QAService.

    python -m bench heldout [--json] [--articles 6] [--questions 40] [--seed 7] [--max-chars 7500]

`qa eval` measures the article the pipeline was tuned on. Here each of `--articles` seeded SQuAD articles is cut to
its first paragraphs within `--max-chars` (under `QA_DOCUMENTS_PROMPT_CHARS`, so documents mode applies, as for the
article), indexed alone, and asked up to `--questions` of its own questions (who/which questions first: they are
the ones the answer repairs look at). Every question is answerable, so each abstention is a false one. Reported:
the share of answers that contain SQuAD's answer span (a strict measure: "Philip II" misses "Phillip II"),
abstentions by reason, and how often each answer repair (`qa.chain._repaired`) changed an answer, with the
questions, so a wrong repair can be seen. Data: SQuAD v1.1 (Rajpurkar et al., 2016), CC BY-SA 4.0.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from bench.common import isolated, log
from bench.squad import SQUAD_CREDIT, load_squad_train
from index.settings import Settings

_WHO_WHICH = re.compile(r"^\W*(?:\w+\s+){0,3}?(?:who|which)\b", re.IGNORECASE)


def corpus(article: dict, max_chars: int) -> tuple[str, list[dict]]:
    """The article's first paragraphs within `max_chars` (title included) and their questions."""
    paragraphs, used = [], len(article["title"])
    for p in article["paragraphs"]:
        if used + len(p["context"]) + 2 > max_chars:
            break
        paragraphs.append(p)
        used += len(p["context"]) + 2
    text = "\n\n".join([article["title"]] + [p["context"] for p in paragraphs]) + "\n"
    return text, [q for p in paragraphs for q in p["qas"]]


def pick(qas: list[dict], n: int) -> list[dict]:
    """Who/which questions first (stable order otherwise), at most `n`."""
    return sorted(qas, key=lambda q: not _WHO_WHICH.match(q["question"]))[:n]


def run(base: Settings, n_articles: int, per_article: int, seed: int, max_chars: int) -> dict:
    from index.build import build_index
    from qa import chain
    from qa.evaluate import is_correct
    from qa.model_file import ensure_model_file
    from qa.service import QAService

    repairs: list[tuple[str, str, str]] = []
    original = chain._repaired

    def recorded(cited, asked):
        fixed = original(cited, asked)
        if fixed:
            repairs.append((asked, chain.cite.strip_markers(cited.text), fixed))
        return fixed

    articles = load_squad_train(n_articles=n_articles, seed=seed, cache_dir=base.data_dir / "cache")
    model_path = ensure_model_file(base)  # assembled once into the default data folder
    work = Path(tempfile.mkdtemp(prefix="qa-bench-heldout-"))
    rows: list[dict] = []
    chain._repaired = recorded
    try:
        for i, article in enumerate(articles):
            text, qas = corpus(article, max_chars)
            if not qas:
                continue
            seeds = work / str(i) / "seeds"
            seeds.mkdir(parents=True)
            (seeds / "article.txt").write_text(text, encoding="utf-8")
            settings = isolated(base, work / str(i), seeds, llm="local", llm_model_path=model_path)
            build_index(settings, progress=False)
            service = QAService(settings)
            service.warm_up()
            documents_mode = service._documents_prompt() is not None
            for q in pick(qas, per_article):
                before = len(repairs)
                answer = service.ask(q["question"])
                repair = repairs[-1] if len(repairs) > before else None
                rows.append({"article": article["title"], "question": q["question"], "gold": q["answer_text"],
                             "answer": answer.answer, "abstained": answer.abstained,
                             "reason": answer.abstain_reason, "correct": is_correct(answer, [q["answer_text"]]),
                             "documents_mode": documents_mode,
                             "repair": {"from": repair[1], "to": repair[2]} if repair else None})
            log(f"{article['title']}: {len(rows)} questions so far")
    finally:
        chain._repaired = original
        shutil.rmtree(work, ignore_errors=True)
    n = len(rows)
    reasons = Counter(re.sub(r":.*", "", r["reason"] or "") for r in rows if r["abstained"])
    repaired = [r for r in rows if r["repair"]]
    return {"data": SQUAD_CREDIT, "articles": len({r["article"] for r in rows}), "questions": n,
            "documents_mode_share": round(sum(r["documents_mode"] for r in rows) / n, 3) if n else None,
            "answer_span_in_answer": round(sum(r["correct"] for r in rows) / n, 3) if n else None,
            "abstained": round(sum(r["abstained"] for r in rows) / n, 3) if n else None,
            "abstained_by_reason": dict(reasons.most_common()),
            "repairs": len(repaired),
            "repairs_right": sum(r["correct"] for r in repaired),
            "rows": rows}


def render(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"Held-out answers: {result['questions']} SQuAD questions on {result['articles']} articles "
                        f"(documents mode for {result['documents_mode_share']:.0%})")
    for col in ("answer span in answer", "abstained (all answerable)", "answer repairs (span in repaired answer)"):
        table.add_column(col, justify="right")
    table.add_row(f"{result['answer_span_in_answer']:.3f}", f"{result['abstained']:.3f}",
                  f"{result['repairs']} ({result['repairs_right']})")
    console.print(table)
    for reason, count in result["abstained_by_reason"].items():
        console.print(f"  abstained {count}x: {reason}")
    for r in result["rows"]:
        if r["repair"]:
            console.print(f"  repaired: {r['question']} | {r['repair']['from']!r} -> {r['repair']['to']!r} "
                          f"| SQuAD: {r['gold']!r}", markup=False)


def main(argv: list[str] | None = None) -> int:
    from bench.common import main_for

    def add_args(p):
        p.add_argument("--articles", type=int, default=6)
        p.add_argument("--questions", type=int, default=40, help="per article")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--max-chars", type=int, default=7500, help="each article is cut to this many characters")

    return main_for("heldout", __doc__, add_args,
                    lambda s, a: run(s, a.articles, a.questions, a.seed, a.max_chars), render, argv)


__all__ = ["corpus", "main", "pick", "render", "run"]
