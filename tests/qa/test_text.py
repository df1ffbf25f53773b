"""Matching helpers: what counts as the same word or number when answers are checked against passages."""

from __future__ import annotations

from qa.text import normalize


def test_a_number_range_is_the_same_with_any_dash():
    assert normalize("some 500–700 people") == normalize("some 500-700 people") == "some 500-700 people"
    assert normalize("2024 — 2029") == "2024-2029"
    # A dash between words is punctuation, not a range.
    assert normalize("oracles—principles") == "oracles—principles"
