"""The metrics `qa eval --split dev|test` reports, on hand-made rows (the runner itself is exercised by the
benchmark, which needs the real index and model)."""

from __future__ import annotations

import json
from pathlib import Path

from index.settings import Settings
from qa.eval_squad import DEFAULT_SQUAD, contains_gold, report, rule_stats, squad_normalize
from qa.types import Answer


def test_squad_normalisation_and_gold_containment():
    assert squad_normalize("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"  # as SQuAD's own script
    assert contains_gold(Answer("q", "It stands in the city of Paris [1].", False), ["Paris"])
    assert not contains_gold(Answer("q", "It stands in Paris.", True), ["Paris"])  # an abstention holds nothing
    assert not contains_gold(Answer("q", "Philip II [1]", False), ["Phillip II"])


def _row(kind, correct=False, abstained=False, answer="a [1]", rules=(), gold=("x",), ms=100.0):
    return {
        "kind": kind,
        "id": "i",
        "question": "q",
        "answer": answer,
        "gold": list(gold),
        "abstained": abstained,
        "correct": correct,
        "valid": True,
        "reason": "low" if abstained else None,
        "rules": list(rules),
        "timings": {"first_token": ms, "total": 2 * ms},
    }


def test_report_counts_right_wrong_and_abstained_answers_separately():
    rows = [
        _row("answerable", correct=True, answer="x is it [1]", ms=100),
        _row("answerable", answer="y [2]", ms=300),
        _row("answerable", abstained=True, answer="The documents don't say.", ms=200),
        _row("answerable", correct=True, answer="x [1]", ms=400),
        _row("out_of_corpus", abstained=True, answer="The documents don't say.", ms=50),
        _row("out_of_corpus", answer="z [1]", ms=60),
    ]
    rep = report(rows, "test", Settings(_env_file=None), "m")
    assert (rep["gold_in_answer"], rep["false_abstention"], rep["answered_wrong"]) == (0.5, 0.25, 0.25)
    assert rep["abstention_out_of_corpus"] == 0.5 and rep["citation_validity"] == 1.0
    assert rep["median_answer_chars"] == 5  # of the four answers given: "x is it [1]", "y [2]", "x [1]", "z [1]"
    assert rep["latency_ms"]["first_token_p50"] == 150.0  # linear interpolation between 100 and 200
    assert "failures" not in rep  # test misses are never shown
    assert len(report(rows, "dev", Settings(_env_file=None), "m")["failures"]) == 3


def test_a_refusal_is_right_when_what_it_refused_was_wrong_or_out_of_corpus():
    refused_right = _row("answerable", abstained=True, rules=[{"name": "gate", "would_answer": "y is wrong"}])
    refused_wrong = _row("answerable", abstained=True, rules=[{"name": "gate", "would_answer": "x was right"}])
    ooc = _row("out_of_corpus", abstained=True, rules=[{"name": "gate", "would_answer": "anything"}])
    changed = _row("answerable", correct=True, rules=[{"name": "fix"}])
    answered_ooc = _row("out_of_corpus", rules=[{"name": "fix"}])  # answering out of corpus is never right
    assert rule_stats([refused_right, refused_wrong, ooc, changed, answered_ooc]) == {
        "fix": {"fired": 2, "right": 1},
        "gate": {"fired": 3, "right": 2},
    }


def test_the_committed_set_is_split_by_article_and_big_enough():
    data = json.loads(Path(DEFAULT_SQUAD).read_text(encoding="utf-8"))
    split_of = {a["title"]: a["split"] for a in data["articles"]}
    assert len(split_of) >= 40 and sum(s == "test" for s in split_of.values()) / len(split_of) >= 0.3
    assert len(data["answerable"]) >= 600 and len(data["out_of_corpus"]) >= 80
    assert all(q["split"] == split_of[q["article"]] for q in data["answerable"])
    assert not {q["article"] for q in data["out_of_corpus"]} & set(split_of)  # out-of-corpus: not indexed


def test_questions_in_other_languages_are_reported_apart_and_leave_the_english_figures_alone():
    english = [_row("answerable", correct=True), _row("out_of_corpus", abstained=True)]
    ml = [
        {**_row("multilingual", correct=True), "lang": "zh"},
        {**_row("multilingual", abstained=True), "lang": "ar"},
        {**_row("multilingual"), "lang": "ar"},
    ]
    settings = Settings(_env_file=None)
    alone, mixed = report(english, "dev", settings, "m"), report(english + ml, "dev", settings, "m")
    for key in ("gold_in_answer", "false_abstention", "answered_wrong", "abstention_out_of_corpus", "rules"):
        assert alone[key] == mixed[key]
    assert "multilingual" not in alone
    got = mixed["multilingual"]
    assert (got["questions"], got["gold_in_answer"], got["abstention"], got["answered_wrong"]) == (
        3,
        0.333,
        0.333,
        0.333,
    )
    assert got["by_language"] == {"ar": 0.0, "zh": 1.0}
    assert len(mixed["failures"]) == 2  # the abstained and the wrong one (dev only)


def test_the_translated_questions_keep_their_articles_split():
    from qa.eval_squad import DEFAULT_MULTILINGUAL

    data = json.loads(Path(DEFAULT_SQUAD).read_text(encoding="utf-8"))
    english = {q["id"]: q for q in data["answerable"]}
    items = json.loads(DEFAULT_MULTILINGUAL.read_text(encoding="utf-8"))["questions"]
    assert {q["lang"] for q in items} == {"zh", "ar", "ur"}
    assert {q["split"] for q in items} == {"dev", "test"}
    for q in items:
        source = english[q["id"].removeprefix("m-")]
        assert (q["split"], q["article"], q["answers"], q["question_en"]) == (
            source["split"],
            source["article"],
            source["answers"],
            source["question"],
        )


def test_abstentions_are_counted_by_rule_name_never_by_the_questions_words():
    row = _row("answerable", abstained=True, rules=[{"name": "question_terms_absent", "would_answer": "s"}])
    row["reason"] = "the passages never mention Zanzibar, clove"
    rep = report([row, _row("answerable", abstained=True)], "test", Settings(_env_file=None), "m")
    assert rep["abstained_by_reason"] == {"question_terms_absent": 1, "other": 1}
    assert "Zanzibar" not in json.dumps(rep)


def test_follow_ups_are_reported_apart_with_their_opening_turns():
    english = [_row("answerable", correct=True), _row("out_of_corpus", abstained=True)]
    turns = [
        _row("turn1", correct=True),
        _row("followup", correct=True, ms=1000),
        _row("followup", abstained=True, ms=3000),
        _row("turn1"),
        _row("followup"),
    ]
    settings = Settings(_env_file=None)
    alone, mixed = report(english, "dev", settings, "m"), report(english + turns, "dev", settings, "m")
    for key in ("gold_in_answer", "false_abstention", "answered_wrong", "abstention_out_of_corpus", "latency_ms"):
        assert alone[key] == mixed[key]
    got = mixed["followups"]
    assert (got["questions"], got["gold_in_answer"], got["abstention"], got["answered_wrong"]) == (
        3,
        0.333,
        0.333,
        0.333,
    )
    assert got["first_turns_gold_in_answer"] == 0.5 and got["latency_ms"]["first_token_p50"] == 1000.0
    assert "followups" not in alone and len(mixed["failures"]) == 3  # two follow-ups and one opening turn


def test_the_conversations_keep_their_articles_split_and_point_back():
    from bench.make_squad_followups import SUBJECTS
    from qa.eval_squad import DEFAULT_FOLLOWUPS
    from qa.question import is_self_contained

    split_of = {a["title"]: a["split"] for a in json.loads(Path(DEFAULT_SQUAD).read_text(encoding="utf-8"))["articles"]}
    conversations = json.loads(DEFAULT_FOLLOWUPS.read_text(encoding="utf-8"))["conversations"]
    followups = [(c, t) for c in conversations for t in c["turns"][1:]]
    assert (
        sum(c["split"] == "test" for c, _ in followups) >= 30 and sum(c["split"] == "dev" for c, _ in followups) >= 100
    )
    for c, turn in followups:
        assert c["split"] == split_of[c["article"]]
        names = SUBJECTS[c["article"]][0]
        assert any(n.lower() in c["turns"][0]["question"].lower() for n in names)  # the first turn names it
        assert not any(n.lower() in turn["question"].lower() for n in names), turn["question"]  # later ones don't
        assert not is_self_contained(turn["question"]), turn["question"]
        assert turn["answers"] and turn["question_named"] != turn["question"]


def test_unanswerable_questions_about_indexed_articles_are_reported_apart():
    english = [_row("answerable", correct=True), _row("out_of_corpus", abstained=True)]
    unanswerable = [
        _row("unanswerable", abstained=True, rules=[{"name": "low_relevance", "would_answer": "s"}], gold=()),
        _row("unanswerable", rules=[{"name": "tie"}], gold=()),
        _row("unanswerable", abstained=True, gold=()),
    ]
    settings = Settings(_env_file=None)
    alone, mixed = report(english, "dev", settings, "m"), report(english + unanswerable, "dev", settings, "m")
    for key in ("gold_in_answer", "false_abstention", "answered_wrong", "abstention_out_of_corpus", "rules"):
        assert alone[key] == mixed[key]
    got = mixed["unanswerable"]
    assert (got["questions"], got["abstention"]) == (3, 0.667)
    assert got["rules"] == {"low_relevance": {"fired": 1, "right": 1}, "tie": {"fired": 1, "right": 0}}
    assert [r["kind"] for r in mixed["failures"]] == ["unanswerable"]  # the one answered
    # 2 x (answers without the answer: the answered unanswerable one) + false abstentions (none), over 5 questions
    assert (alone["cost"], mixed["cost"]) == (0.0, 0.4)
    assert "unanswerable" not in alone


def test_the_unanswerable_questions_keep_their_articles_split_and_their_answers_are_not_indexed():
    from qa.eval_squad import DEFAULT_UNANSWERABLE

    source = json.loads(Path(DEFAULT_SQUAD).read_text(encoding="utf-8"))
    split_of = {a["title"]: a["split"] for a in source["articles"]}
    indexed = squad_normalize(" ".join(p for a in source["articles"] for p in [a["title"], *a["paragraphs"]]))
    questions = json.loads(DEFAULT_UNANSWERABLE.read_text(encoding="utf-8"))["unanswerable"]
    assert sum(q["split"] == "test" for q in questions) >= 50 and sum(q["split"] == "dev" for q in questions) >= 100
    asked = {q["question"] for q in source["answerable"]}
    for q in questions:
        assert q["split"] == split_of[q["article"]] and q["question"] not in asked
        assert q["squad_answers"] and not any(a in indexed for a in q["squad_answers"]), q["question"]
        assert "answers" not in q  # nothing to find: the right reply is an abstention


def test_the_runner_asks_each_follow_up_with_the_conversation_as_answered_and_the_unanswerable_ones(tmp_path):
    """The real runner, index and extractive pipeline on a one-article set with its conversations beside it."""
    from qa.eval_squad import prepare, run_squad_eval
    from qa.service import QAService

    article = (
        "Ada Lovelace was born in London in 1815. She wrote the first published program for the Analytical "
        "Engine in 1843. She died in 1852 at the age of 36."
    )
    data = {
        "articles": [{"title": "Ada Lovelace", "split": "dev", "paragraphs": [article]}],
        "answerable": [
            {
                "id": "a",
                "split": "dev",
                "article": "Ada Lovelace",
                "question": "Where was Lovelace born?",
                "answers": ["London"],
            }
        ],
        "out_of_corpus": [{"id": "o", "split": "dev", "article": "Zebra", "question": "How fast can a zebra run?"}],
    }
    turns = [
        {"question": "When was Ada Lovelace born?", "answers": ["1815"]},
        {"question": "When did she die?", "question_named": "When did Ada Lovelace die?", "answers": ["1852"]},
    ]
    conversations = {"conversations": [{"id": "f-0", "split": "dev", "article": "Ada Lovelace", "turns": turns}]}
    (tmp_path / "set").mkdir()
    data_path = tmp_path / "set" / "squad_eval.json"
    data_path.write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "set" / "squad_followups.json").write_text(json.dumps(conversations), encoding="utf-8")
    unanswerable = [{"id": "u", "split": "dev", "article": "Ada Lovelace", "question": "Who was Lovelace's tutor?"}]
    (tmp_path / "set" / "squad_unanswerable.json").write_text(
        json.dumps({"unanswerable": unanswerable}), encoding="utf-8"
    )
    base = Settings(_env_file=None, llm="extractive", data_dir=tmp_path / "data")

    class Recording(QAService):
        asked: list = []

        def ask(self, question, history=None):
            self.asked.append((question, list(history or [])))
            return super().ask(question, history)

    svc = Recording(prepare(base, data))
    rep = run_squad_eval(base, "dev", data_path=data_path, progress=False, service=svc)
    first, followup = svc.asked[-2], svc.asked[-1]
    assert first == ("When was Ada Lovelace born?", [])
    assert followup[0] == "When did she die?" and [m["role"] for m in followup[1]] == ["user", "assistant"]
    assert followup[1][0]["content"] == "When was Ada Lovelace born?" and "1815" in followup[1][1]["content"]
    assert rep["followups"]["questions"] == 1 and rep["answerable"] == 1 and rep["out_of_corpus"] == 1
    assert rep["followups"]["first_turns_gold_in_answer"] == 1.0
    assert ("Who was Lovelace's tutor?", []) in svc.asked and rep["unanswerable"]["questions"] == 1
