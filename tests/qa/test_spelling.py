"""A misspelled question word is read as the passages spell it; a word the index knows, or a short one, is not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qa.spelling import one_edit, respell
from qa.types import Passage

TEXT = "Lord Salisbury was Prime Minister until 1902. The monotremes lay eggs. Austria and Australia differ."


def _passages(text: str = TEXT) -> list[Passage]:
    return [Passage(1, "c1", "doc.txt", "Doc", 0, len(text), 1.0, text)]


def test_one_edit_counts_insertions_deletions_substitutions_and_swaps():
    assert one_edit("chaminar", "charminar") and one_edit("charminar", "chaminar")  # a letter dropped / added
    assert one_edit("momotremes", "monotremes")  # changed
    assert one_edit("sailsbury", "salisbury")  # two neighbours swapped
    assert not one_edit("austria", "australia")  # two letters apart
    assert not one_edit("salisbury", "salisbury")  # the same word is not an edit
    assert not one_edit("abcdef", "badcef")  # two swaps


@given(st.text(alphabet="abcdefgh", min_size=2, max_size=12), st.data())
def test_one_edit_is_symmetric_and_finds_every_single_edit(word, data):
    i = data.draw(st.integers(0, len(word) - 1))
    dropped = word[:i] + word[i + 1 :]
    changed = word[:i] + ("z" if word[i] != "z" else "y") + word[i + 1 :]
    assert one_edit(word, dropped) and one_edit(dropped, word)
    assert one_edit(word, changed) and one_edit(changed, word)
    other = data.draw(st.text(alphabet="abcdefgh", max_size=12))
    assert one_edit(word, other) == one_edit(other, word)


def test_a_misspelled_name_or_word_takes_the_passages_spelling_and_keeps_its_case():
    assert respell("How long was Lord Sailsbury Prime Minister?", _passages()) == (
        "How long was Lord Salisbury Prime Minister?"
    )
    assert respell("Do momotremes lay eggs?", _passages()) == "Do monotremes lay eggs?"


def test_words_that_are_spelled_right_known_to_the_index_or_short_stay():
    assert respell("Is Austria in Europe?", _passages()) == "Is Austria in Europe?"  # in the passages
    known = {"Salisburi"}
    assert respell("Who was Salisburi?", _passages(), known=lambda w: w in known) == "Who was Salisburi?"
    assert respell("Who was Salisburi?", _passages()) == "Who was Salisbury?"
    assert respell("Did Lird rule?", _passages()) == "Did Lird rule?"  # 4 letters: too many words are one edit off
    assert respell("Who was Sailsbury?", []) == "Who was Sailsbury?"  # nothing to compare with
    assert respell("Who was Zalisbury?", _passages()) == "Who was Zalisbury?"  # the first letter must agree


def test_a_possessive_or_hyphenated_word_is_respelled_by_its_letters():
    text = "Beyoncé was born in Houston. The Sino-Tibetan languages."
    assert respell("What race was Beyonce's father?", _passages(text)) == "What race was Beyoncé's father?"
    assert respell("Are Sino-Tibetain languages tonal?", _passages(text)) == "Are Sino-Tibetan languages tonal?"
