"""What a build checks before it switches: a collection holds every distinct chunk, with vectors of the right
dimension that find their own chunks, and BM25 covers them all. The same checks decide whether a live index
holds up when a rebuild finds nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from index import store
from index.bm25 import Bm25Index
from index.settings import Settings
from index.types import Chunk, IndexError_


def distinct_chunks(chunks: list[Chunk]) -> list[Chunk]:
    """The first chunk of each distinct text, in order: what Chroma and BM25 hold.

    Identical texts get identical vectors, and many identical vectors wreck an HNSW graph (each node's neighbour
    list fills with copies at distance 0, and greedy search can no longer leave them: measured, a document of one
    phrase repeated made every chunk of the other document unfindable). Stored once, a text is embedded once and
    found once; documents.json still holds every chunk's place in its document.
    """
    first: dict[str, Chunk] = {}
    for c in chunks:
        first.setdefault(c.text, c)
    return list(first.values())


SMOKE_PROBES = 16  # documents probed by validation (spread over the corpus)
SMOKE_K = 10


def validate_collection(
    collection,
    stored: list[Chunk],
    firsts: list[Chunk],
    vectors_of: Callable[[list[int]], list],
    dim: int,
    bm25_dir: Path,
) -> None:
    """Count, dimension, smoke queries on a collection, and its BM25 files read back.

    The smoke queries check the index, not the documents' variety: the first chunk of each document (up to
    SMOKE_PROBES documents, spread) is looked up by its own vector, and a probe passes when its nearest SMOKE_K
    hold a chunk with its text (near-identical texts may share a vector, and HNSW is approximate). The build
    fails when most probes fail, so one odd document never blocks the others.
    """
    count = collection.count()
    if count != len(stored):
        raise IndexError_(f"validation failed: the collection holds {count} chunks, expected {len(stored)}")
    probe = collection.get(ids=[stored[0].id], include=["embeddings"])
    if len(probe["ids"]) != 1 or len(probe["embeddings"][0]) != dim:
        raise IndexError_(f"validation failed: stored vectors do not have dimension {dim}")
    text_row = {c.text: i for i, c in enumerate(stored)}
    step = max(1.0, len(firsts) / SMOKE_PROBES)
    picked = [firsts[int(i * step)] for i in range(min(len(firsts), SMOKE_PROBES))]
    rows = sorted({text_row[c.text] for c in picked})
    if len(rows) < 3:  # few documents: probe a few stored chunks spread over the whole index
        rows = sorted(set(rows) | {int(i * (len(stored) - 1) / 2) for i in range(3)})
    hits = collection.query(query_embeddings=vectors_of(rows), n_results=min(SMOKE_K, count), include=[])
    text_of = {c.id: c.text for c in stored}
    failed = sum(stored[r].text not in {text_of.get(i) for i in found} for r, found in zip(rows, hits["ids"]))
    if failed * 2 > len(rows):
        raise IndexError_(
            f"validation failed: {failed} of {len(rows)} smoke queries did not find the chunk they were made from"
        )
    if len(Bm25Index.load(bm25_dir).ids) != len(stored):
        raise IndexError_("validation failed: the BM25 index does not cover every chunk")


def live_index_holds_up(settings: Settings) -> bool:
    """The live index opens with every reader check (files, BM25, collection, counts, models) and passes the
    same smoke queries as a new build: then a rebuild of unchanged documents has nothing to repair."""
    from index.reader import open_index

    try:
        reader = open_index(settings)
        chunks = list(reader.chunks.values())
        stored = distinct_chunks(chunks)
        firsts = list({c.source: c for c in reversed(chunks)}.values())[::-1]

        def vectors_of(rows: list[int]) -> list:
            got = reader._chroma.get(ids=[stored[r].id for r in rows], include=["embeddings"])
            by_id = dict(zip(got["ids"], got["embeddings"]))
            return [by_id[stored[r].id] for r in rows]

        validate_collection(
            reader._chroma,
            stored,
            firsts,
            vectors_of,
            settings.embedding_dim,
            store.build_dir(Path(settings.store_path), reader.collection) / store.BM25_DIR,
        )
        return True
    except Exception:  # IndexError_ from the checks, KeyError for a missing vector, Chroma errors: rebuild
        return False


__all__ = ["SMOKE_K", "SMOKE_PROBES", "distinct_chunks", "live_index_holds_up", "validate_collection"]
