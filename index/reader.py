"""Open the live index for searching: dense (Chroma) and BM25 over the same chunks.

Opening checks everything a search relies on (pointer, manifest, files, the collection and its size, the
model and chunking it was built with), so a broken or foreign index fails here with a message that says what
to run, not later with a traceback.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from index import store
from index.bm25 import Bm25Index, tokenize
from index.formats import page_at
from index.settings import Settings
from index.status import index_status
from index.types import Chunk, IndexCorrupt, IndexError_, IndexMismatch, IndexMissing


class IndexReader:
    """One opened build of the index. Cheap to query from many threads; reopen when `is_current()` is False."""

    def __init__(
        self,
        settings: Settings,
        collection: str,
        manifest: dict,
        documents: dict,
        chunks: dict[str, Chunk],
        bm25: Bm25Index,
        chroma_collection,
        embedder=None,
    ):
        self.settings = settings
        self.collection = collection
        self.manifest = manifest
        self.chunks = chunks
        self._documents = documents
        self._bm25 = bm25
        self._chroma = chroma_collection
        self._embedder = embedder
        self._checked_at = time.monotonic()  # when the pointer was last seen naming this collection (server)

    @property
    def embedder(self):
        """Loaded on first dense search: BM25-only use never imports torch."""
        if self._embedder is None:
            from index.embed import get_embedder

            self._embedder = get_embedder(self.settings)
        return self._embedder

    def sources(self) -> list[str]:
        """The indexed documents' sources, in order."""
        return sorted(self._documents)

    def document_text(self, source: str) -> str:
        return self._documents[source]["text"]

    def document_title(self, source: str) -> str:
        return self._documents[source]["title"]

    def document_pages(self, source: str) -> list[int]:
        """Where each page starts in a PDF's text (see index.formats.page_at); [] for other formats."""
        return self._documents[source].get("pages") or []

    def dense(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """Nearest chunks by cosine similarity (higher is better)."""
        k = min(k, len(self.chunks))
        if k <= 0:
            return []
        vector = self.embedder.embed_query(query)
        try:
            hits = self._chroma.query(query_embeddings=[vector], n_results=k, include=["distances"])
        except Exception as e:  # the collection vanished under us (rebuilt elsewhere) or the server went away
            self._checked_at = float("-inf")  # look at the pointer again before trusting this collection
            raise IndexCorrupt(
                f"the index collection {self.collection} cannot be searched ({type(e).__name__}: {e}); "
                "if a rebuild just finished, search again, else run `qa index rebuild`"
            ) from None
        return [(self.chunks[cid], 1.0 - float(dist)) for cid, dist in zip(hits["ids"][0], hits["distances"][0])]

    def bm25(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """Best chunks by BM25 score (higher is better); only chunks sharing a word with the query."""
        return [(self.chunks[cid], score) for cid, score in self._bm25.search(query, k)]

    def term_weights(self, query: str) -> dict[str, float]:
        """The query's BM25 tokens with their idf in this index (tokens no chunk holds are left out)."""
        return self._bm25.idf(tokenize(query))

    def is_current(self) -> bool:
        """Does the pointer still name this collection? False after a rebuild switched. Embedded: one small file
        read. Chroma server: one request at most every `pointer_check_seconds` (replicas switch within that)."""
        if self.settings.chroma_host:
            if time.monotonic() - self._checked_at < self.settings.pointer_check_seconds:
                return True
        try:
            pointer = store.current_pointer(self.settings)
        except IndexError_:
            return False
        current = pointer is not None and pointer["collection"] == self.collection
        if current:
            self._checked_at = time.monotonic()
        return current


def _chunks(documents: dict, path: Path) -> dict[str, Chunk]:
    try:
        return {
            cid: Chunk(cid, source, doc["title"], start, end, doc["text"][start:end], page_at(doc.get("pages"), start))
            for source, doc in documents.items()
            for cid, start, end in doc["chunks"]
        }
    except (KeyError, TypeError, ValueError) as e:
        raise IndexCorrupt(f"the index document file {path} is damaged ({e!r}); run `qa index rebuild`") from None


def open_index(settings: Settings, embedder=None) -> IndexReader:
    """The live index, checked. Raises IndexMissing, IndexMismatch or IndexCorrupt with the command to run."""
    store_path = Path(settings.store_path)
    pointer = store.current_pointer(settings)
    where = store.chroma_location(settings) if settings.chroma_host else store_path
    if pointer is None:
        raise IndexMissing(f"there is no index in {where} yet; run `qa index build`")
    name = pointer["collection"]
    store.ensure_local_copy(settings, name)
    manifest = store.read_manifest(store_path, name)
    mismatch = store.config_mismatch(manifest, settings)
    if mismatch:
        raise IndexMismatch(f"the index in {where} was built with other settings: {mismatch}; run `qa index rebuild`")
    documents = store.read_documents(store_path, name)
    folder = store.build_dir(store_path, name)
    chunks = _chunks(documents, folder / store.DOCUMENTS)
    try:
        bm25 = Bm25Index.load(folder / store.BM25_DIR)
    except Exception as e:  # missing or damaged numpy/json files
        raise IndexCorrupt(
            f"the BM25 index in {folder} is damaged ({type(e).__name__}: {e}); run `qa index rebuild`"
        ) from None
    client = store.chroma_client(settings)
    try:
        collection = client.get_collection(name, embedding_function=None)
        count = collection.count()
        meta = collection.metadata or {}
    except Exception as e:
        raise IndexCorrupt(
            f"the index collection {name} is missing from Chroma ({store.chroma_location(settings)}): "
            f"{type(e).__name__}: {e}; run `qa index rebuild`"
        ) from None
    if meta.get("embedding_model") != settings.embedding_model or meta.get("dimension") != settings.embedding_dim:
        raise IndexMismatch(
            f"the collection {name} was built with {meta.get('embedding_model')!r} "
            f"({meta.get('dimension')} dimensions); run `qa index rebuild`"
        )
    # Chroma and BM25 hold each distinct chunk text once (index.build_check.distinct_chunks).
    stored = {c.text: cid for cid, c in reversed(chunks.items())}
    if count != len(stored) or set(bm25.ids) != set(stored.values()):
        raise IndexCorrupt(
            f"the index {name} is incomplete ({count} vectors, {len(chunks)} chunks, "
            f"{len(bm25.ids)} BM25 rows); run `qa index rebuild`"
        )
    # The count comes from Chroma's metadata; reading the first-written vector proves the vector files are there
    # too (a deleted segment folder otherwise leaves dense search silently returning almost nothing).
    try:
        probe = collection.get(ids=[bm25.ids[0]], include=["embeddings"])
        if len(probe["ids"]) != 1:
            raise LookupError("the first chunk has no vector")
    except Exception as e:
        raise IndexCorrupt(
            f"the vectors of the index {name} cannot be read ({type(e).__name__}: {e}); run `qa index rebuild`"
        ) from None
    if settings.chroma_host:
        _drop_older_copies(store_path, name)
    return IndexReader(settings, name, manifest, documents, chunks, bm25, collection, embedder)


def _drop_older_copies(store_path: Path, live: str) -> None:
    """Server: this machine's copies of collections older than the live one (names sort by build time; newer
    folders may be a build in progress here)."""
    folder = store.builds_dir(store_path)
    for path in folder.iterdir() if folder.is_dir() else ():
        if store.is_build_collection(path.name) and path.name < live:
            shutil.rmtree(path, ignore_errors=True)


__all__ = ["IndexReader", "index_status", "open_index"]
