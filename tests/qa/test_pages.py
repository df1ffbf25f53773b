"""PDF pages from the build to the public JSON: real index (real Chroma in a temp dir, real embedding model)."""

from __future__ import annotations

import json
from pathlib import Path

from index.build import build_index
from index.embed import get_embedder
from index.settings import Settings
from qa.pipeline import Parts, answer
from qa.retrieve import Retriever
from qa.types import Passage
from tests.documents import write_pdf
from tests.index.test_formats import spec_pages
from tests.qa.fakes import bow_embed


def test_pdf_passages_and_citations_carry_their_page(settings: Settings):
    write_pdf(Path(settings.seeds_dir) / "spec.pdf", spec_pages())
    settings = settings.with_overrides(chunk_size=200, chunk_overlap=40)
    embedder = get_embedder(settings)
    build_index(settings, progress=False, embedder=embedder)
    retriever = Retriever(settings, embedder=embedder)

    [top] = retriever.retrieve("Which file takes precedence over all other files in the packages directory?", k=1)
    assert top.source == "spec.pdf" and "Override.xml" in top.text
    assert top.page == 2 and top.to_json()["page"] == 2
    passages = retriever.retrieve("update-mime-database", k=10)
    assert {p.page for p in passages if p.source == "spec.pdf"} >= {1, 2}
    article = [p for p in passages if p.source != "spec.pdf"]
    assert article and all(p.page is None and p.to_json()["page"] is None for p in article)
    # The vectors' metadata in Chroma carries the page too.
    chroma = retriever.reader._chroma.get(ids=[top.chunk_id], include=["metadatas"])
    assert chroma["metadatas"][0]["page"] == 2

    [c] = _cite("Which file takes precedence over all other files in the packages directory?", [top])
    assert c.page == 2 and json.loads(json.dumps(c.to_json()))["page"] == 2


def test_a_citation_gets_the_page_of_its_sentence_not_of_the_passage_start():
    text = "First page ends here. Second page sentence about Gwadar Port."
    second = text.index("Second")
    p = Passage(1, "c", "r.pdf", "R", 1000, 1000 + len(text), 1.0, text, page=4, page_starts=(1000 + second,))
    [c] = _cite("What is the second page sentence about?", [p])
    assert c.start == 1000 + second and c.page == 5
    assert p.page_at(1000) == 4


def _cite(question: str, passages: list[Passage]):
    """The citations of the answer the pipeline gives from these passages alone (no model: the best sentence)."""
    parts = Parts(retrieve=lambda q, k: passages, embed=bow_embed, llm=None, min_relevance=0.0)
    *_, last = answer(parts, question)
    return last.answer.citations
