"""Splitting: offsets point at the exact text, ids repeat for the same input, sentences stay whole."""

from __future__ import annotations

import hashlib
import random
import textwrap
from pathlib import Path

import pytest

from index.load import load_documents
from index.split import split_document
from index.types import Document


def _doc(text: str, source: str = "a.txt") -> Document:
    return Document(source, "t", "", text, hashlib.sha256(text.encode()).hexdigest())


@pytest.fixture
def seed_doc(seeds_dir: Path) -> Document:
    return load_documents(seeds_dir)[0][0]


@pytest.mark.parametrize("size,overlap", [(200, 40), (500, 100), (1000, 200)])
def test_offsets_are_exact_and_chunks_cover_the_document(seed_doc: Document, size: int, overlap: int):
    chunks = split_document(seed_doc, size, overlap)
    assert len(chunks) > 1
    for c in chunks:
        assert seed_doc.text[c.start : c.end] == c.text
        assert len(c.text) <= size
        assert c.source == seed_doc.source and c.title == seed_doc.title
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    # every non-space character of the document is in some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(seed_doc.text) if not ch.isspace())


def test_sentences_are_not_cut_when_they_fit(seed_doc: Document):
    chunks = split_document(seed_doc, 500, 100)
    # the short headline block is not a chunk of its own: it opens the chunk of the paragraph under it
    assert chunks[0].text.startswith(seed_doc.title + "\n" + seed_doc.subtitle + "\n\nPakistan and China on Monday")
    for c in chunks:
        assert c.text[0].isupper() and c.text.rstrip('"\u201d')[-1] in ".!?", c.text
        # whole paragraphs: each chunk starts where a paragraph starts
        assert c.start == 0 or seed_doc.text[c.start - 1] == "\n"


def test_hard_wrapped_lines_are_cut_at_sentence_ends():
    sentence = "The committee reviewed the water plan for the northern valley in detail."
    wrapped = textwrap.fill(" ".join([sentence] * 3), width=60)
    chunks = split_document(_doc(wrapped), 100, 0)
    assert len(chunks) == 3
    for c in chunks:
        assert c.text.replace("\n", " ") == sentence, c.text


def test_long_paragraphs_overlap(seed_doc: Document):
    chunks = split_document(seed_doc, 200, 80)
    assert any(b.start < a.end for a, b in zip(chunks, chunks[1:]))


def test_ids_are_deterministic_and_depend_on_source_and_text(seed_doc: Document):
    a = split_document(seed_doc, 500, 100)
    b = split_document(seed_doc, 500, 100)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a)
    moved = split_document(_doc(seed_doc.text, source="other/place.txt"), 500, 100)
    assert not {c.id for c in moved} & {c.id for c in a}


def test_random_texts_keep_exact_offsets():
    rng = random.Random(7)
    words = ["alpha", "beta.", "gamma,", "delta;", "Eps!", "zeta?", "\n", "\n\n", "eta", "theta\u2019s"]
    for _ in range(30):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 400))).strip() or "x"
        doc = _doc(text)
        for c in split_document(doc, rng.randint(20, 300), 10):
            assert text[c.start : c.end] == c.text and c.text.strip() == c.text


def test_bad_parameters_are_refused(seed_doc: Document):
    with pytest.raises(ValueError):
        split_document(seed_doc, 100, 100)
