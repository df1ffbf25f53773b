"""The question-terms gate: a number, ordinal or name the question asks about must be in the passages, however
the passages spell it."""

from __future__ import annotations

import pytest

from qa.checks import gate, missing_question_terms
from qa.types import Passage


def _p(text: str) -> list[Passage]:
    return [Passage(1, "c", "doc.txt", "Doc", 0, len(text), 1.0, text)]


@pytest.mark.parametrize(
    "question, text",
    [
        ("What is India's second biggest film industry?", "It is India's second-largest producer of films."),
        ("What share of the GDP comes from the city?", "The city gives 5% of the gross domestic product."),
        ("Who makes PCBs by hand?", "Printed circuit boards are made by hobbyists."),
        ("Which bands played in the 80s?", "In the 1980s several bands played there."),
        ("What was broadcast in the 1950s?", "Television returned in the 1950s."),
        ("If M was marked in the column, How were they classified?", "An M marked a person as mulatto."),
    ],
)
def test_a_term_the_passages_spell_another_way_is_not_missing(question, text):
    assert missing_question_terms(question, _p(text)) == []


@pytest.mark.parametrize(
    "question, text, missing",
    [
        ("Where was the eighth round held?", "The seventh round was held in Beijing.", ["eighth"]),
        ("Who attended in the 1970s?", "In the 1980s several bands played there.", ["1970s"]),
        ("What did the IMF say?", "The international fund said nothing.", ["IMF"]),
        ("What happened in 1939?", "In 1938 the talks failed.", ["1939"]),
        ("What did Gandhi say about Beijing?", "Beijing hosted the talks.", ["Gandhi"]),
    ],
)
def test_a_term_the_passages_do_not_have_is_missing_and_the_gate_refuses(question, text, missing):
    assert missing_question_terms(question, _p(text)) == missing
    refusal = gate(question, _p(text), [], 0.4)
    assert refusal is not None and refusal.rule == "question_terms_absent"
