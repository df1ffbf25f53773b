"""Find the passages that can answer a question: dense + BM25, fused by reciprocal rank fusion.

Dense search catches paraphrases ("led the talks" ~ "co-chaired"); BM25 catches exact names and numbers.
RRF needs no score calibration between the two: each list contributes 1 / (rrf_k + rank).
Then the few best fused chunks are ranked a third time by their best *sentence* (BM25 of one sentence, idf from
the index): a chunk mentions many things, and the one that answers usually has the question's rare words in one
sentence. That ranking joins the fusion as a third list (weight SENTENCE_WEIGHT); it costs no embedding.
"""

from __future__ import annotations

import threading
from bisect import bisect_right

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from index import store
from index.bm25 import best_sentence_score
from index.reader import IndexReader, open_index
from index.settings import Settings
from index.types import Chunk, IndexCorrupt
from qa.types import Passage, QAError

MODES = ("hybrid", "dense", "bm25")
# Each list contributes this many candidates to the fusion (at least k): deep enough that a passage ranked
# low by one method but high by the other still surfaces.
FUSION_DEPTH = 20
# How many of the best fused chunks the sentence-level ranking re-orders, and its weight in the second fusion.
# bench/retrieval.py at chunk_size 500: article hybrid hit@1 0.845 -> 0.914, SQuAD 0.709 -> 0.735.
RERANK_DEPTH = 5
SENTENCE_WEIGHT = 1.5


def rrf_fuse(
    rankings: list[list[Chunk]], rrf_k: int, weights: list[float] | tuple[float, ...] | None = None
) -> list[tuple[Chunk, float]]:
    """Reciprocal rank fusion, list i weighted by weights[i] (default 1 each); ties go to the chunk ranked best
    in any list, then to the earlier list."""
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}
    chunks: dict[str, Chunk] = {}
    for li, (ranking, weight) in enumerate(zip(rankings, weights)):
        for rank, chunk in enumerate(ranking, 1):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + weight / (rrf_k + rank)
            best[chunk.id] = min(best.get(chunk.id, (rank, li)), (rank, li))
            chunks[chunk.id] = chunk
    order = sorted(scores, key=lambda cid: (-scores[cid], best[cid]))
    return [(chunks[cid], scores[cid]) for cid in order]


def sentence_ranking(chunks: list[Chunk], weights: dict[str, float]) -> list[Chunk]:
    """The chunks that share a word with the query, best sentence first (ties keep the given order)."""
    scored = [(best_sentence_score(weights, c.text), i, c) for i, c in enumerate(chunks)] if weights else []
    return [c for score, _, c in sorted(scored, key=lambda t: (-t[0], t[1])) if score > 0]


def _page_starts(reader: IndexReader, chunk: Chunk) -> tuple[int, ...]:
    """Offsets inside the chunk where a new page of its PDF starts (for the page of a cited sentence)."""
    if chunk.page is None:
        return ()
    pages = reader.document_pages(chunk.source)
    return tuple(s for s in pages[chunk.page : bisect_right(pages, chunk.end)] if chunk.start < s < chunk.end)


class Retriever:
    """Searches the live index; after a rebuild switches the pointer, the next call reopens the new index."""

    def __init__(self, settings: Settings, reader: IndexReader | None = None, *, embedder=None):
        self.settings = settings
        self._reader = reader
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def reader(self) -> IndexReader:
        """The open index, reopened when stale. Raises index.types.IndexError_ subclasses (missing, mismatch...)."""
        with self._lock:
            if self._reader is None or not self._reader.is_current():
                self._reader = self._open()
            return self._reader

    def _open(self) -> IndexReader:
        """open_index, tried once more when it failed because a rebuild switched the pointer meanwhile (and
        deleted the build being read): the new build is opened instead of reporting a damaged index."""
        try:
            before = store.read_pointer(self.settings.store_path)
        except IndexCorrupt:
            before = None
        try:
            return open_index(self.settings, embedder=self._embedder)
        except IndexCorrupt:
            try:
                after = store.read_pointer(self.settings.store_path)
            except IndexCorrupt:
                after = None
            if after is None or after == before:
                raise
            return open_index(self.settings, embedder=self._embedder)

    def validate(self, query: str) -> str:
        """The query, stripped; QAError when it is empty or too long (bad input changes nothing)."""
        if not isinstance(query, str) or not query.strip():
            raise QAError("the question is empty; type a question about your documents")
        if len(query) > self.settings.max_query_chars:
            raise QAError(
                f"the question is {len(query):,} characters long; the limit is "
                f"{self.settings.max_query_chars:,} (QA_MAX_QUERY_CHARS)"
            )
        return query.strip()

    def retrieve(self, query: str, k: int | None = None, mode: str | None = None) -> list[Passage]:
        """The k best passages, numbered 1..k. Score: fused RRF score (hybrid) or the method's own score."""
        query = self.validate(query)
        k = self.settings.top_k if k is None else k
        mode = self.settings.retrieval_mode if mode is None else mode
        if mode not in MODES:
            raise QAError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        if not isinstance(k, int) or k < 1:
            raise QAError(f"k must be a whole number of passages, at least 1 (got {k!r})")
        reader = self.reader
        try:
            hits = self._search(reader, query, k, mode)
        except IndexCorrupt:
            if reader.is_current():
                raise
            hits = self._search(self.reader, query, k, mode)  # a rebuild switched and deleted it mid-search
        return [
            Passage(
                n=n,
                chunk_id=c.id,
                source=c.source,
                title=c.title,
                start=c.start,
                end=c.end,
                score=float(score),
                text=c.text,
                page=c.page,
                page_starts=_page_starts(reader, c),
            )
            for n, (c, score) in enumerate(hits, 1)
        ]

    def _search(self, reader: IndexReader, query: str, k: int, mode: str) -> list[tuple[Chunk, float]]:
        if mode == "dense":
            return reader.dense(query, k)
        if mode == "bm25":
            return reader.bm25(query, k)
        depth = max(k, FUSION_DEPTH)
        dense = [c for c, _ in reader.dense(query, depth)]
        lexical = [c for c, _ in reader.bm25(query, depth)]
        fused = rrf_fuse([dense, lexical], self.settings.rrf_k)
        sentence = sentence_ranking([c for c, _ in fused[:RERANK_DEPTH]], reader.term_weights(query))
        if sentence:
            fused = rrf_fuse([dense, lexical, sentence], self.settings.rrf_k, weights=(1.0, 1.0, SENTENCE_WEIGHT))
        return fused[:k]

    def as_langchain(self, k: int | None = None, mode: str | None = None) -> "PassageRetriever":
        """The same search as a LangChain retriever, for LCEL chains."""
        return PassageRetriever(retriever=self, k=k, mode=mode)


class PassageRetriever(BaseRetriever):
    """LangChain view of a Retriever: Documents whose metadata carries the Passage fields (n, offsets, score)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    retriever: Retriever
    k: int | None = None
    mode: str | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        return [
            LCDocument(
                page_content=p.text,
                id=p.chunk_id,
                metadata={
                    "n": p.n,
                    "chunk_id": p.chunk_id,
                    "source": p.source,
                    "title": p.title,
                    "start": p.start,
                    "end": p.end,
                    "score": p.score,
                    "page": p.page,
                },
            )
            for p in self.retriever.retrieve(query, k=self.k, mode=self.mode)
        ]


__all__ = ["MODES", "PassageRetriever", "Retriever", "rrf_fuse", "sentence_ranking"]
