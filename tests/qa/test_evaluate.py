"""Every figure `qa eval` reports for the seed article, computed from known rows."""

from __future__ import annotations

from qa.evaluate import _report, citation_supports, citations_valid, is_correct, percentile
from qa.types import Answer, Citation, Passage

P1 = Passage(1, "c1", "doc.txt", "Doc", 0, 40, 1.0, "The dialogue was held in Beijing on Jan 4.")


def _answer(text: str, abstained: bool = False, cite_n: int = 1, start: int = 0, end: int = 40) -> Answer:
    cites = [] if abstained else [Citation(cite_n, "doc.txt", "c1", start, end, P1.text)]
    return Answer("q", text, abstained, cites, [P1])


def test_correct_means_answered_and_holding_an_alias():
    assert is_correct(_answer("It was in Beijing [1]."), ["Beijing"])
    assert not is_correct(_answer("It was in Beijing [1].", abstained=True), ["Beijing"])
    assert not is_correct(_answer("It was in Paris [1]."), ["Beijing"])


def test_a_citation_is_valid_only_when_it_points_at_a_shown_passage():
    assert citations_valid(_answer("Beijing [1]."))
    assert not citations_valid(_answer("Beijing [2]."))  # marker without a shown passage
    assert not citations_valid(_answer("Beijing [1].", cite_n=3))  # citation without a shown passage
    assert not citations_valid(_answer("Beijing."))  # an answer without any marker
    assert citations_valid(_answer("The documents don't say.", abstained=True))


def test_support_means_the_cited_sentence_overlaps_the_gold_support():
    doc = "Intro. The dialogue was held in Beijing on Jan 4. Outro."
    at = doc.index("The dialogue")
    assert citation_supports(_answer("x [1]", start=at, end=at + 40), "held in Beijing", doc)
    assert not citation_supports(_answer("x [1]", start=0, end=6), "held in Beijing", doc)


def _row(kind, correct=False, abstained=False, f1=0.0, valid=True, supported=False):
    return {"kind": kind, "correct": correct, "abstained": abstained, "f1": f1, "valid": valid, "supported": supported}


def test_the_report_counts_each_kind_of_question_apart():
    rows = [
        _row("answerable", correct=True, f1=1.0, supported=True),
        _row("answerable", abstained=True),
        _row("answerable", f1=0.5, valid=False),
        _row("unanswerable", abstained=True),
        _row("unanswerable"),
        _row("turn1", correct=True, supported=True),
        _row("followup", correct=True),
        _row("followup"),
        _row("multilingual", correct=True),
        _row("multilingual", abstained=True),
    ]
    latencies = [
        {"first_token": float(ms), "total": 2.0 * ms} for ms in (100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
    ]
    rep = _report(rows, latencies, "local", "m")
    assert rep["questions"] == 10
    assert rep["accuracy"] == 0.333 and rep["false_abstention"] == 0.333 and rep["token_f1"] == 0.5
    assert rep["abstention_unanswerable"] == 0.5
    assert rep["citation_validity"] == 0.9
    # support: of the 6 answered rows that have a gold support (answerable, turn1, follow-up, multilingual), 2
    assert rep["citation_support"] == round(2 / 6, 3)
    assert rep["multiturn_accuracy"] == 0.5 and rep["multiturn_all_turns"] == round(2 / 3, 3)
    assert rep["multilingual_accuracy"] == 0.5
    assert rep["latency_ms"]["first_token_p50"] == 550.0 and rep["latency_ms"]["total_p95"] == 1910.0
    assert len(rep["failures"]) == 5  # 2 answerable, the answered unanswerable one, a follow-up, a translation


def test_percentile_interpolates_between_ranks():
    assert percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
