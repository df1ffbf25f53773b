"""Sentence ranking logic (qa.read.rank_sentences) with a flat embedding, so only the question's words decide."""

from __future__ import annotations

from qa.read import rank_sentences
from qa.types import Passage


def _flat(texts: list[str]) -> list[list[float]]:
    return [[1.0, 0.0] for _ in texts]


def _p(n: int, text: str, source: str = "a.txt") -> Passage:
    return Passage(n, f"c{n}", source, "T", 0, len(text), 1.0, text)


def test_a_question_word_in_the_sentence_before_supports_the_sentence():
    near = _p(1, "Hyderabad grew fast under the Nizams. The caliph renamed it in 1591.")
    apart = _p(2, "Trade grew fast under the Nizams. The caliph renamed the old fort.", "b.txt")
    ranked = rank_sentences("Which caliph renamed Hyderabad?", [apart, near], _flat)
    assert ranked[0].text == "The caliph renamed it in 1591." and ranked[0].passage.n == 1
    assert ranked[0].score > ranked[1].score


def test_a_neighbour_counts_less_than_the_sentence_itself_and_never_twice():
    own = _p(1, "Nothing here. Hyderabad was renamed by the caliph.")
    borrowed = _p(2, "Hyderabad is old. It was renamed by the caliph.", "b.txt")
    twice = _p(3, "Hyderabad is old. Hyderabad was renamed by the caliph.", "c.txt")
    ranked = {c.text: c.score for c in rank_sentences("Which caliph renamed Hyderabad?", [own, borrowed], _flat)}
    assert ranked["Hyderabad was renamed by the caliph."] > ranked["It was renamed by the caliph."]
    same = "Hyderabad was renamed by the caliph."
    again = {
        c.passage.n: c.score
        for c in rank_sentences("Which caliph renamed Hyderabad?", [own, twice], _flat)
        if c.text == same
    }
    assert again[1] == again[3]  # the word is the sentence's own: the neighbour adds nothing


def test_a_sentence_in_two_overlapping_chunks_is_one_candidate():
    a = _p(1, "Hyderabad is old. The caliph renamed it.")
    b = _p(2, "The caliph renamed it. It has lakes.")
    texts = [c.text for c in rank_sentences("Who renamed it?", [a, b], _flat)]
    assert texts.count("The caliph renamed it.") == 1
