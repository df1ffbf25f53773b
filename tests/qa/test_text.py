"""Matching helpers: what counts as the same word or number when answers are checked against passages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qa.text import normalize, sentence_spans

ROOT = Path(__file__).resolve().parents[2]


def test_a_number_range_is_the_same_with_any_dash():
    assert normalize("some 500–700 people") == normalize("some 500-700 people") == "some 500-700 people"
    assert normalize("2024 — 2029") == "2024-2029"
    # A dash between words is punctuation, not a range.
    assert normalize("oracles—principles") == "oracles—principles"


ADVERSARIAL_LINES = {
    "abbreviations": "Mr. " * 50_000,  # 200 KB: every dot looks like a sentence end until the abbreviation check
    "numbered": "No. 5, " * 30_000,
    "dots": "." * 200_000 + "x",  # one run of end marks that is not followed by a space
    "marks and quotes": '?!."' * 50_000 + "x",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_LINES))
def test_sentence_splitting_does_not_freeze_on_adversarial_lines(name):
    """One long line of abbreviations or end marks is split in one pass (it used to take hours per MB and froze
    the service while building the documents prompt). Run in a child process so a regression fails instead of
    hanging the suite; the bound is generous, not a speed target (see `python -m bench adversarial`)."""
    code = (
        "import sys; from qa.text import sentence_spans; from tests.qa.test_text import ADVERSARIAL_LINES as L; "
        f"spans = sentence_spans(L[{name!r}]); print(len(spans))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 1


def test_sentence_splitting_keeps_abbreviations_inside_sentences():
    text = 'Mr. Smith met Dr. Who on Jan. 4 in the U.S. capital. Version 2.0 is out!!! Really?"  Yes.'
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Mr. Smith met Dr. Who on Jan. 4 in the U.S. capital.",
        "Version 2.0 is out!!!",
        'Really?"',
        "Yes.",
    ]
