"""Reopening the index across a switch, and the page's example questions, on a real built index."""

from __future__ import annotations

import json
import shutil

import pytest

import qa.retrieve
from index import store
from index.types import IndexCorrupt
from qa.retrieve import Retriever


@pytest.fixture
def own_index(tmp_path, article_settings):
    """A private copy of the built article index (its pointer may be rewritten)."""
    data = tmp_path / "data"
    shutil.copytree(article_settings.data_dir, data)
    return article_settings.with_overrides(data_dir=data)


def test_open_retries_once_when_a_rebuild_switched_meanwhile(own_index, monkeypatch):
    """The pointer named a build that a rebuild switched away from and deleted while it was being opened:
    the next build is opened instead of failing with "run qa index rebuild"."""
    pointer = own_index.store_path / store.POINTER
    live = pointer.read_text()
    real_open = qa.retrieve.open_index
    calls = []

    def racing_open(settings, embedder=None):
        calls.append(1)
        if len(calls) == 1:  # the switch happens while the old build is read
            pointer.write_text(live)
            raise IndexCorrupt("the manifest of qa-old is missing; run `qa index rebuild`")
        return real_open(settings, embedder=embedder)

    pointer.write_text(json.dumps({**json.loads(live), "collection": "qa-old"}))
    monkeypatch.setattr(qa.retrieve, "open_index", racing_open)
    reader = Retriever(own_index).reader
    assert reader.collection == json.loads(live)["collection"] and len(calls) == 2


def test_a_damaged_index_is_still_reported_without_retrying(own_index, monkeypatch):
    calls = []

    def broken(settings, embedder=None):
        calls.append(1)
        raise IndexCorrupt("the BM25 index is damaged; run `qa index rebuild`")

    monkeypatch.setattr(qa.retrieve, "open_index", broken)
    with pytest.raises(IndexCorrupt, match="damaged"):
        Retriever(own_index).reader
    assert len(calls) == 1


def test_example_questions_are_computed_once_per_collection(article_settings):
    from qa.service import QAService

    service = QAService(article_settings)
    first = service.example_questions(4)
    assert first and all(q.startswith("What does the document say about ") for q in first)
    reader = service.retriever().reader
    saved = dict(reader.chunks)
    reader.chunks.clear()  # a page load must not scan the corpus again
    try:
        assert service.example_questions(4) == first
    finally:
        reader.chunks.update(saved)
