"""`qa eval`: answer quality, honesty, citations and latency of one backend on a question set.

The set (bench/data/article_eval.json) has answerable questions with gold aliases and the supporting text,
plausible unanswerable ones, multi-turn conversations and questions in other languages.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

from index.settings import Settings
from qa.text import normalize, token_f1
from qa.types import Answer

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "bench" / "data" / "article_eval.json"
_MARKER = re.compile(r"\[(\d+)\]")


def is_correct(answer: Answer, aliases: list[str]) -> bool:
    text = normalize(answer.answer)
    return not answer.abstained and any(normalize(a) in text for a in aliases)


def citations_valid(answer: Answer) -> bool:
    """Every marker in the text and every citation points at a passage that is shown."""
    shown = {p.n for p in answer.passages}
    markers = {int(n) for n in _MARKER.findall(answer.answer)}
    return markers <= shown and all(c.n in shown for c in answer.citations) and (answer.abstained or bool(markers))


def citation_supports(answer: Answer, support: str, doc_text: str) -> bool:
    """Some citation's sentence overlaps where the gold supporting text stands in the document."""
    at = doc_text.find(support)
    if at < 0:
        return any(
            normalize(support)[:60] in normalize(c.quote) or normalize(c.quote) in normalize(support)
            for c in answer.citations
        )
    end = at + len(support)
    return any(c.start < end and at < c.end for c in answer.citations)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (q in 0-100) by linear interpolation between the closest ranks; 0.0 for no values.
    The one definition every reported latency uses (`qa eval` and the benchmarks)."""
    xs = sorted(values)
    if not xs:
        return 0.0
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_summary(ttft: list[float], totals: list[float]) -> dict[str, float]:
    """p50 and p95 of the time to first token and of the whole answer, in ms rounded to 0.1.

    >>> latency_summary([10.0, 20.0], [100.0])
    {'first_token_p50': 15.0, 'first_token_p95': 19.5, 'total_p50': 100.0, 'total_p95': 100.0}
    """
    return {
        "first_token_p50": round(percentile(ttft, 50), 1),
        "first_token_p95": round(percentile(ttft, 95), 1),
        "total_p50": round(percentile(totals, 50), 1),
        "total_p95": round(percentile(totals, 95), 1),
    }


def metrics_table(title: str, report: dict, keys: tuple[str, ...]):
    """A rich table of `keys` of `report` (3 decimals, — for None) followed by its `latency_ms`."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key in keys:
        t.add_row(key, "—" if report[key] is None else f"{report[key]:.3f}")
    for key, value in report["latency_ms"].items():
        t.add_row(f"{key} (ms)", f"{value:.0f}")
    return t


def run_eval(
    settings: Settings, data_path: Path | None = None, limit: int | None = None, progress: bool = True, service=None
) -> dict:
    from qa.service import QAService

    data = json.loads(Path(data_path or DEFAULT_DATA).read_text(encoding="utf-8"))
    svc = service or QAService(settings)
    svc.warm_up()
    cut = (lambda xs: xs[:limit]) if limit else (lambda xs: xs)
    answerable, unanswerable = cut(data["answerable"]), cut(data["unanswerable"])
    conversations = cut(data.get("conversations", []))
    multilingual = cut(data.get("multilingual", []))
    total = len(answerable) + len(unanswerable) + sum(len(_turns(c)) for c in conversations) + len(multilingual)

    rows: list[dict] = []
    latencies: list[dict] = []

    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {settings.llm}", total=total)

        def ask(question: str, history=None) -> Answer:
            answer = svc.ask(question, history)
            latencies.append(answer.timings_ms)
            bar.advance(task)
            return answer

        for item in answerable:
            a = ask(item["question"])
            rows.append(_row("answerable", item, a, svc))
        for item in unanswerable:
            a = ask(item["question"])
            rows.append(
                {
                    "kind": "unanswerable",
                    "question": item["question"],
                    "answer": a.answer,
                    "abstained": a.abstained,
                    "valid": citations_valid(a),
                    "reason": a.abstain_reason,
                }
            )
        for conv in conversations:
            history: list[dict] = []
            for i, turn in enumerate(_turns(conv)):
                a = ask(turn["question"], history)
                rows.append(_row("followup" if i else "turn1", turn, a, svc))
                history += [{"role": "user", "content": turn["question"]}, {"role": "assistant", "content": a.answer}]
        for item in multilingual:
            a = ask(item["question"])
            rows.append(_row("multilingual", item, a, svc))

    return _report(rows, latencies, settings.llm, svc.llm_name())


def _report(rows: list[dict], latencies: list[dict], backend: str, llm_name: str) -> dict:
    """The article figures from the rows of one run."""

    def of(*kinds):
        return [r for r in rows if r["kind"] in kinds]

    def mean(xs):
        return round(statistics.fmean(xs), 3) if xs else None

    ans = of("answerable")
    answered = [r for r in of("answerable", "turn1", "followup", "multilingual") if not r["abstained"]]
    ttft = [t.get("first_token", 0.0) for t in latencies]
    totals = [t.get("total", 0.0) for t in latencies]
    return {
        "backend": backend,
        "llm": llm_name,
        "questions": len(rows),
        "accuracy": mean([r["correct"] for r in ans]),
        "token_f1": mean([r["f1"] for r in ans]),
        "abstention_unanswerable": mean([r["abstained"] for r in of("unanswerable")]),
        "false_abstention": mean([r["abstained"] for r in ans]),
        "citation_validity": mean([r["valid"] for r in rows]),
        "citation_support": mean([r["supported"] for r in answered]),
        "multiturn_accuracy": mean([r["correct"] for r in of("followup")]),
        "multiturn_all_turns": mean([r["correct"] for r in of("turn1", "followup")]),
        "multilingual_accuracy": mean([r["correct"] for r in of("multilingual")]),
        "latency_ms": latency_summary(ttft, totals),
        "failures": [
            r
            for r in rows
            if (r["kind"] == "unanswerable") != r["abstained"] or (r["kind"] != "unanswerable" and not r["correct"])
        ],
    }


def _turns(conv) -> list[dict]:
    return conv["turns"] if isinstance(conv, dict) else conv


def _row(kind: str, item: dict, a: Answer, svc) -> dict:
    aliases = item["answers"] + item.get("answers_native", [])
    support = item.get("support", "")
    doc = ""
    if a.citations:
        try:
            doc = svc.document_text(a.citations[0].source)
        except Exception:
            doc = ""
    return {
        "kind": kind,
        "question": item["question"],
        "answer": a.answer,
        "abstained": a.abstained,
        "correct": is_correct(a, aliases),
        "f1": max((token_f1(a.answer, g) for g in aliases), default=0.0),
        "valid": citations_valid(a),
        "supported": bool(support) and citation_supports(a, support, doc),
        "rewritten": a.rewritten_question,
        "reason": a.abstain_reason,
        "gold": aliases,
    }


def print_report(report: dict, console) -> None:
    t = metrics_table(
        f"qa eval — {report['backend']} ({report['llm']}), {report['questions']} questions",
        report,
        (
            "accuracy",
            "token_f1",
            "abstention_unanswerable",
            "false_abstention",
            "citation_validity",
            "citation_support",
            "multiturn_accuracy",
            "multiturn_all_turns",
            "multilingual_accuracy",
        ),
    )
    console.print(t)
    if report["failures"]:
        console.print(f"[dim]{len(report['failures'])} misses:[/]", markup=True)
        for r in report["failures"][:40]:
            console.print(f"  [{r['kind']}] {r['question']} -> {r['answer'][:140]!r} ({r.get('reason')})", markup=False)
