"""What `qa index status` shows, from the pointer and manifest JSON only: no torch, no Chroma, instant.
With a Chroma server, the pointer and manifest come from the server (through the Chroma client)."""

from __future__ import annotations

from pathlib import Path

from index import store
from index.settings import Settings


def index_status(settings: Settings) -> dict:
    """Facts about the live index. "exists" is False when none was built; a damaged one raises IndexCorrupt."""
    store_path = Path(settings.store_path)
    status = {
        "exists": False,
        "store": str(store_path.resolve()),
        "chroma": store.chroma_location(settings),
        "collection": None,
        "documents": 0,
        "chunks": 0,
        "model": None,
        "embedding_path": None,
        "dimension": None,
        "chunk_size": None,
        "chunk_overlap": None,
        "built_at": None,
        "sources": [],
    }
    pointer = store.current_pointer(settings)
    if pointer is None:
        return status
    manifest = store.fetch_manifest(settings, pointer["collection"])
    status.update(
        exists=True,
        chroma=manifest.get("chroma"),
        collection=pointer["collection"],
        documents=manifest.get("document_count", 0),
        chunks=manifest.get("chunks", 0),
        model=manifest.get("embedding_model"),
        embedding_path=manifest.get("embedding_path", store.RECORD_DEFAULTS["embedding_path"]),
        dimension=manifest.get("dimension"),
        chunk_size=manifest.get("chunk_size"),
        chunk_overlap=manifest.get("chunk_overlap"),
        built_at=manifest.get("built_at"),
        sources=sorted(manifest.get("documents", {})),
    )
    return status


__all__ = ["index_status"]
