"""`qa eval --split dev|test`: answers over 42 SQuAD articles indexed together, and questions they cannot answer.

The set (bench/data/squad_eval.json, made by `python -m bench.make_squad_eval`) is split by article: changes are
chosen on `dev`, and `test` only reports (its misses are not printed). The corpus is indexed into its own folder
under `<data_dir>/eval/squad`, so the person's own index is never touched; a rebuild there is incremental.

Measured per split: the share of answerable questions whose answer contains a SQuAD answer (after SQuAD's own
normalisation), false abstentions, answers that are given but wrong, abstention on out-of-corpus questions,
citation validity, the median answer length, latency, and how often each answer rule fired and was right; and,
apart, the same figures for questions in Chinese, Arabic and Urdu about these English articles, and for
follow-ups in conversations about them.
"""

from __future__ import annotations

import json
import re
import statistics
import string
from collections import Counter
from pathlib import Path

from index.settings import Settings
from qa.evaluate import citations_valid, latency_summary, metrics_table
from qa.types import Answer

DEFAULT_SQUAD = Path(__file__).resolve().parents[1] / "bench" / "data" / "squad_eval.json"
# The same split's questions translated into Chinese, Arabic and Urdu (one per article): English documents asked
# about in another language. Reported apart, so the English figures stay comparable.
DEFAULT_MULTILINGUAL = DEFAULT_SQUAD.with_name("squad_multilingual.json")
# Conversations over the same articles whose later turns name the subject only by a pronoun ("When did he die?"):
# follow-ups measured on documents the follow-up handling was not written for (python -m bench.make_squad_followups).
DEFAULT_FOLLOWUPS = DEFAULT_SQUAD.with_name("squad_followups.json")
# Questions about the indexed articles that their indexed text does not answer (bench/make_squad_unanswerable.py).
DEFAULT_UNANSWERABLE = DEFAULT_SQUAD.with_name("squad_unanswerable.json")
SPLITS = ("dev", "test")


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_gold(answer: Answer, golds: list[str]) -> bool:
    """The answer (not abstained) contains one of the gold answers, both SQuAD-normalised."""
    return not answer.abstained and _holds(answer.answer, golds)


def prepare(base: Settings, data: dict) -> Settings:
    """Settings whose seeds and store are the evaluation corpus under `<data_dir>/eval/squad`, index built."""
    from index.build import build_index

    root = base.data_dir / "eval" / "squad"
    seeds = root / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for i, art in enumerate(data["articles"]):
        slug = re.sub(r"[^A-Za-z0-9]+", "-", art["title"]).strip("-").lower()[:50]
        wanted[f"{i:02d}-{slug}.txt"] = "\n\n".join([art["title"], *art["paragraphs"]]) + "\n"
    for path in seeds.glob("*.txt"):
        if path.name not in wanted:
            path.unlink()
    for name, text in wanted.items():
        path = seeds / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    overrides: dict = {"seeds_dir": seeds, "data_dir": root / "data", "store_dir": root / "store", "chroma_host": None}
    from qa.model_file import ensure_model_file
    from qa.verify import Verifier

    if base.llm == "local" and base.llm_model_path is None:  # the models of the project's data dir, not copies
        overrides["llm_model_path"] = ensure_model_file(base)
    if base.llm != "extractive" and base.verify_model and base.verify_model_path is None:
        overrides["verify_model_path"] = Verifier(base).model_path()
    settings = base.model_copy(update=overrides)
    build_index(settings, force=False, progress=False)
    return settings


def run_squad_eval(
    base: Settings,
    split: str,
    data_path: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    service=None,
) -> dict:
    from rich.progress import Progress

    from qa.service import QAService

    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    data = json.loads(Path(data_path or DEFAULT_SQUAD).read_text(encoding="utf-8"))
    settings = prepare(base, data)
    svc = service or QAService(settings)
    svc.warm_up()
    answerable = [q for q in data["answerable"] if q["split"] == split][:limit]
    ooc = [q for q in data["out_of_corpus"] if q["split"] == split][:limit]
    multilingual = [q for q in _extra(data_path, DEFAULT_MULTILINGUAL.name, "questions") if q["split"] == split][:limit]
    conversations = [c for c in _extra(data_path, DEFAULT_FOLLOWUPS.name, "conversations") if c["split"] == split]
    conversations = conversations[:limit]
    unanswerable = [q for q in _extra(data_path, DEFAULT_UNANSWERABLE.name, "unanswerable") if q["split"] == split]
    unanswerable = unanswerable[:limit]
    rows: list[dict] = []
    total = (
        len(answerable) + len(ooc) + len(unanswerable) + len(multilingual) + sum(len(c["turns"]) for c in conversations)
    )
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {settings.llm} {split}", total=total)

        def ask(kind: str, item: dict, history: list[dict] | None = None) -> Answer:
            a = svc.ask(item["question"], history)
            rows.append(_row(kind, item, a))
            bar.advance(task)
            return a

        for kind, items in (
            ("answerable", answerable),
            ("out_of_corpus", ooc),
            ("unanswerable", unanswerable),
            ("multilingual", multilingual),
        ):
            for item in items:
                ask(kind, item)
        for conv in conversations:  # each turn sees the conversation as the product answered it
            history: list[dict] = []
            for i, turn in enumerate(conv["turns"]):
                a = ask("followup" if i else "turn1", {"id": f"{conv['id']}-{i}", **turn}, history)
                history += [{"role": "user", "content": turn["question"]}, {"role": "assistant", "content": a.answer}]
    return report(rows, split, settings, svc.llm_name())


def _row(kind: str, item: dict, a: Answer) -> dict:
    return {
        "kind": kind,
        "id": item["id"],
        "lang": item.get("lang", "en"),
        "question": item["question"],
        "answer": a.answer,
        "gold": item.get("answers", []),
        "abstained": a.abstained,
        "correct": "answers" in item and contains_gold(a, item["answers"]),
        "valid": citations_valid(a),
        "reason": a.abstain_reason,
        "rewritten": a.rewritten_question,
        "rules": list(getattr(a, "rules", []) or []),
        "timings": a.timings_ms,
    }


def _extra(data_path: Path | None, name: str, key: str) -> list[dict]:
    """The translated questions or the conversations that go with the set: the file `name` beside it, if any."""
    path = Path(data_path or DEFAULT_SQUAD).with_name(name)
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))[key]


def _mean(xs: list) -> float | None:
    return round(statistics.fmean(xs), 3) if xs else None


def rule_stats(rows: list[dict]) -> dict:
    """Per answer rule: how often it fired, and how often that was right. On an out-of-corpus question a rule is
    right when the answer is an abstention. On an answerable one, a rule that refuses is right when what would
    have been answered does not hold the gold answer; a rule that shapes the answer is right when the answer
    given holds it."""
    fired: Counter = Counter()
    right: Counter = Counter()
    for r in rows:
        for rule in r["rules"]:
            fired[rule["name"]] += 1
            if r["kind"] in _NO_ANSWER:
                ok = r["abstained"]
            elif "would_answer" in rule:
                ok = not _holds(rule["would_answer"], r["gold"])
            else:
                ok = r["correct"]
            right[rule["name"]] += bool(ok)
    return {name: {"fired": fired[name], "right": right[name]} for name in sorted(fired)}


_NO_ANSWER = ("out_of_corpus", "unanswerable")  # kinds whose right reply is an abstention


def _refusal(row: dict) -> str:
    """The rule that refused (its name only: a reason names the question's words, which `test` never shows)."""
    names = [rule["name"] for rule in row["rules"] if "would_answer" in rule]
    return names[-1] if names else "other"


def _holds(text: str, golds: list[str]) -> bool:
    return any(squad_normalize(g) and squad_normalize(g) in squad_normalize(text) for g in golds)


def _apart(rows: list[dict]) -> dict:
    """Gold in answer, abstention, wrong answers and latency of a group of rows reported apart."""
    return {
        "questions": len(rows),
        "gold_in_answer": _mean([r["correct"] for r in rows]),
        "abstention": _mean([r["abstained"] for r in rows]),
        "answered_wrong": _mean([not r["abstained"] and not r["correct"] for r in rows]),
        "latency_ms": _latency(rows),
    }


def _latency(rows: list[dict]) -> dict:
    """First-token and total latency of a group of rows."""
    return latency_summary(
        [r["timings"].get("first_token", 0.0) for r in rows], [r["timings"].get("total", 0.0) for r in rows]
    )


def report(rows: list[dict], split: str, settings: Settings, llm_name: str) -> dict:
    ml = [r for r in rows if r["kind"] == "multilingual"]
    turns = [r for r in rows if r["kind"] in ("turn1", "followup")]
    unanswerable = [r for r in rows if r["kind"] == "unanswerable"]
    rows = [r for r in rows if r["kind"] in ("answerable", "out_of_corpus")]
    ans = [r for r in rows if r["kind"] == "answerable"]
    ooc = [r for r in rows if r["kind"] == "out_of_corpus"]
    answered = [r for r in rows if not r["abstained"]]
    out = {
        "split": split,
        "backend": settings.llm,
        "llm": llm_name,
        "answerable": len(ans),
        "out_of_corpus": len(ooc),
        "gold_in_answer": _mean([r["correct"] for r in ans]),
        "false_abstention": _mean([r["abstained"] for r in ans]),
        "answered_wrong": _mean([not r["abstained"] and not r["correct"] for r in ans]),
        "abstention_out_of_corpus": _mean([r["abstained"] for r in ooc]),
        "citation_validity": _mean([r["valid"] for r in rows]),
        "median_answer_chars": statistics.median([len(r["answer"]) for r in answered]) if answered else None,
        "latency_ms": _latency(rows),
        "rules": rule_stats(rows),
        "abstained_by_reason": dict(Counter(_refusal(r) for r in ans if r["abstained"]).most_common()),
    }
    if ml:
        out["multilingual"] = _apart(ml)
        out["multilingual"]["by_language"] = {
            lang: _mean([r["correct"] for r in ml if r.get("lang") == lang])
            for lang in sorted({r.get("lang") for r in ml if r.get("lang")})
        }
    # What changes are chosen by on `dev`: a wrong answer with a citation counts twice a false abstention, and an
    # answer to a question the documents do not answer is a wrong answer.
    scored = rows + unanswerable
    wrong = sum(not r["abstained"] and not r["correct"] for r in scored)
    out["cost"] = round((2 * wrong + sum(r["abstained"] for r in ans)) / len(scored), 3) if scored else None
    if unanswerable:  # about an indexed article, not answered by its indexed text: abstention is right
        out["unanswerable"] = {
            "questions": len(unanswerable),
            "abstention": _mean([r["abstained"] for r in unanswerable]),
            "latency_ms": _latency(unanswerable),
            "rules": rule_stats(unanswerable),
        }
    if turns:  # the follow-ups, and apart the opening turns they follow
        followups = [r for r in turns if r["kind"] == "followup"]
        out["followups"] = _apart(followups)
        out["followups"]["first_turns_gold_in_answer"] = _mean([r["correct"] for r in turns if r["kind"] == "turn1"])
    if split == "dev":  # test misses are never shown: no rule may be written from them
        out["failures"] = [
            r
            for r in rows + unanswerable + ml + turns
            if (r["kind"] in _NO_ANSWER) != r["abstained"] or (r["kind"] not in _NO_ANSWER and not r["correct"])
        ]
    return out


def print_squad_report(rep: dict, console) -> None:
    t = metrics_table(
        f"qa eval --split {rep['split']} — {rep['backend']} ({rep['llm']}), "
        f"{rep['answerable']} answerable + {rep['out_of_corpus']} out-of-corpus questions",
        rep,
        (
            "gold_in_answer",
            "false_abstention",
            "answered_wrong",
            "abstention_out_of_corpus",
            "citation_validity",
            "median_answer_chars",
            "cost",
        ),
    )
    for name, s in rep["rules"].items():
        t.add_row(f"rule {name}: fired / right", f"{s['fired']} / {s['right']}")
    if ml := rep.get("multilingual"):
        t.add_row(
            f"other languages ({ml['questions']}): gold / abstained / wrong",
            f"{ml['gold_in_answer']} / {ml['abstention']} / {ml['answered_wrong']}",
        )
    if un := rep.get("unanswerable"):
        t.add_row(f"unanswerable about indexed articles ({un['questions']}): abstained", f"{un['abstention']}")
    if fu := rep.get("followups"):
        t.add_row(
            f"follow-ups ({fu['questions']}): gold / abstained / wrong",
            f"{fu['gold_in_answer']} / {fu['abstention']} / {fu['answered_wrong']}",
        )
    console.print(t)
    for r in rep.get("failures", [])[:60]:
        console.print(
            f"  [{r['kind']}] {r['question']} -> {r['answer'][:140]!r} | gold {r['gold'][:1]} ({r.get('reason')})",
            markup=False,
        )


__all__ = [
    "SPLITS",
    "contains_gold",
    "prepare",
    "print_squad_report",
    "rule_stats",
    "run_squad_eval",
    "squad_normalize",
]
