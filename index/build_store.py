"""What a build does to the store around writing its collection: the build lock, the live index's state,
the leftovers of killed builds, vectors copied from the live collection, and a build's files on disk."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from index import store
from index.bm25 import Bm25Index
from index.settings import Settings
from index.types import Chunk, Document, IndexBusy, IndexCorrupt


@contextmanager
def build_lock(store_path: Path) -> Iterator[None]:
    """Exclusive, non-blocking. The kernel drops a flock when its holder dies, even by SIGKILL."""
    store_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(store_path / store.LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise IndexBusy(
            f"another index build (pid {holder}) is running on {store_path}; wait for it to finish, then try again"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def active_state(settings: Settings) -> tuple[str | None, dict | None]:
    """(collection, manifest) of the live index; a damaged one counts as absent (a build replaces it)."""
    try:
        pointer = store.current_pointer(settings)
        if pointer is None:
            return None, None
        store.ensure_local_copy(settings, pointer["collection"])
        return pointer["collection"], store.read_manifest(settings.store_path, pointer["collection"])
    except IndexCorrupt:
        return None, None


def delete_collection(client, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception:  # already gone (killed before it was created) or the server forgot it
        pass


def chunk_ids(settings: Settings, collection: str) -> set[str]:
    try:
        documents = store.read_documents(settings.store_path, collection)
        return {c[0] for doc in documents.values() for c in doc["chunks"]}
    except (IndexCorrupt, KeyError, TypeError, IndexError):
        return set()


def holds_all(client, name: str, count: object) -> bool:
    """The live collection is still in Chroma with all its chunks (a wiped Chroma means: build again)."""
    try:
        return client.get_collection(name, embedding_function=None).count() == count
    except Exception:
        return False


def remove_leftovers(settings: Settings, client, keep: str | None) -> None:
    """Collections of builds that never switched in (killed) or were switched out (killed before deleting).

    Embedded: each has a build folder, made before its collection. Server: every collection a build created
    except the live one (and its .files); only the writer lease holder gets here, so no other build is running.
    """
    folder = store.builds_dir(settings.store_path)
    if settings.chroma_host:
        live = (keep, f"{keep}{store.FILES_SUFFIX}")
        for collection in client.list_collections():
            if store.is_build_collection(collection.name) and collection.name not in live:
                delete_collection(client, collection.name)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name != keep and not path.name.startswith("."):
                if not settings.chroma_host:
                    delete_collection(client, path.name)
                shutil.rmtree(path, ignore_errors=True)
    store.remove_orphan_segments(settings)


def reused_vectors(client, active: str, ids: list[str], batch: int) -> dict[str, list[float]]:
    """Vectors of unchanged chunks copied from the live collection; anything unreadable is just re-embedded."""
    found: dict[str, list[float]] = {}
    try:
        collection = client.get_collection(active, embedding_function=None)
        for i in range(0, len(ids), batch):
            got = collection.get(ids=ids[i : i + batch], include=["embeddings"])
            for cid, vec in zip(got["ids"], got["embeddings"]):
                found[cid] = [float(x) for x in vec]
    except Exception:
        return {}
    return found


def fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for path in [*[p for p in folder.rglob("*") if p.is_dir()], folder]:
        store.fsync_dir(path)


def write_build_files(
    folder: Path,
    name: str,
    config: dict,
    docs: list[Document],
    chunks_by_doc: dict[str, list[Chunk]],
    chunks: list[Chunk],
    stored: list[Chunk],
) -> None:
    """documents.json (texts + chunk spans), BM25, then the manifest last: the manifest is the 'complete' mark."""
    store.write_json_atomic(
        folder / store.DOCUMENTS,
        {
            d.source: {
                "title": d.title,
                "subtitle": d.subtitle,
                "sha256": d.sha256,
                "text": d.text,
                "chunks": [[c.id, c.start, c.end] for c in chunks_by_doc[d.source]],
                **({"pages": list(d.pages)} if d.pages else {}),
            }
            for d in docs
        },
    )
    Bm25Index.build([c.id for c in stored], [c.text for c in stored]).save(folder / store.BM25_DIR)
    store.write_json_atomic(
        folder / store.MANIFEST,
        {
            "collection": name,
            **config,
            "built_at": store.now_iso(),
            "document_count": len(docs),
            "chunks": len(chunks),
            "vectors": len(stored),
            "documents": {
                d.source: {"sha256": d.sha256, "title": d.title, "chunks": len(chunks_by_doc[d.source])} for d in docs
            },
        },
    )


__all__ = [
    "active_state",
    "build_lock",
    "chunk_ids",
    "delete_collection",
    "fsync_tree",
    "holds_all",
    "remove_leftovers",
    "reused_vectors",
    "write_build_files",
]
