"""Where an index lives on disk, and the Chroma client that holds its vectors.

Layout of the store folder (one writer at a time, guarded by `build.lock`):

    ACTIVE.json                 the pointer: names the live collection; replaced atomically, last
    build.lock                  flock'ed by the process that builds
    chroma/                     the embedded Chroma database (unused when a Chroma server is configured)
    builds/<collection>/        one folder per collection:
        manifest.json           models, chunking, counts, documents and their sha256 (small: what status reads)
        documents.json          cleaned texts and each document's chunk spans
        bm25/                   the persisted BM25 index over the same chunks, and its row -> chunk id list

Every collection gets its build folder *before* it is created in Chroma, so a build killed at any moment
leaves only things the next build can recognise and remove. This module imports nothing heavy at load time:
`qa index status` reads JSON only.

With a Chroma server (QA_CHROMA_HOST) the server holds the whole index and the store folder is only a cache:

    collection qa-meta                      its metadata is the pointer (one atomic `modify` switches it)
    collection <collection>                 the chunks: vectors, source and offsets (texts: in .files)
    collection <collection>.files           the manifest and each document's cleaned text and chunk spans
    collection qa-writer-<n>                the writer lease (index/lease.py)

A reader copies `<collection>.files` into `builds/<collection>/` and derives BM25 from it there; a collection
name is never reused, so that copy never goes stale. Build folders appear by an atomic rename, whole.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from index.settings import Settings
from index.types import IndexCorrupt, IndexError_

FORMAT = 2  # bump when chunking or BM25 tokenizing changes: older indexes then rebuild instead of misleading
POINTER = "ACTIVE.json"
LOCK = "build.lock"
BUILDS = "builds"
MANIFEST = "manifest.json"
DOCUMENTS = "documents.json"
BM25_DIR = "bm25"
META = "qa-meta"  # server only: the collection whose metadata is the pointer
FILES_SUFFIX = ".files"  # server only: "<collection>.files" holds the manifest and the documents
_BUILD_NAME = re.compile(r"qa-\d{8}t\d{6}(?:\d{6})?-[0-9a-f]{8}")  # microseconds since names sort by time

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def chroma_location(settings: Settings) -> str:
    """A label for where vectors live; an index is only valid in the Chroma it was built in."""
    if settings.chroma_host:
        return f"http://{settings.chroma_host}:{settings.chroma_port}"
    return "embedded"


def chroma_client(settings: Settings):
    """One Chroma client per process per location: HttpClient when a server is configured, else embedded."""
    key = (
        ("http", settings.chroma_host, settings.chroma_port)
        if settings.chroma_host
        else ("local", str(Path(settings.store_path).resolve() / "chroma"))
    )
    with _clients_lock:
        if key not in _clients:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            try:
                if settings.chroma_host:
                    _clients[key] = chromadb.HttpClient(
                        host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                    )
                else:
                    Path(key[1]).mkdir(parents=True, exist_ok=True)
                    _clients[key] = chromadb.PersistentClient(path=key[1], settings=chroma_settings)
            except Exception as e:
                if settings.chroma_host:
                    raise IndexError_(
                        f"cannot reach the Chroma server at {chroma_location(settings)} "
                        f"({type(e).__name__}: {e}); is it running?"
                    ) from None
                # Chroma caches the half-started system per path; drop it so a fresh folder can be opened later.
                from chromadb.api.shared_system_client import SharedSystemClient

                SharedSystemClient._identifier_to_system.pop(key[1], None)
                raise IndexCorrupt(
                    f"the Chroma database in {key[1]} cannot be opened ({type(e).__name__}: {e}); "
                    "run `qa index rebuild` (it moves the damaged database aside)"
                ) from None
        return _clients[key]


def move_aside_damaged_chroma(settings: Settings) -> Path:
    """Rename an embedded Chroma folder that cannot be opened, so a rebuild can start a fresh one beside it."""
    folder = Path(settings.store_path) / "chroma"
    aside = folder.with_name(f"chroma.damaged-{datetime.now(timezone.utc).strftime('%Y%m%dt%H%M%S')}")
    os.replace(folder, aside)
    return aside


def remove_orphan_segments(settings: Settings) -> None:
    """Delete segment folders of collections Chroma already deleted.

    Chroma 1.5 leaves a deleted collection's vector files on disk (chroma-core/chroma#5520), so without this
    every rebuild would leave a copy behind. Only folders the database no longer names are touched, and only
    in the embedded store; if Chroma's schema ever changes, nothing is deleted.
    """
    if settings.chroma_host:
        return
    folder = Path(settings.store_path) / "chroma"
    try:
        db = sqlite3.connect(f"file:{folder / 'chroma.sqlite3'}?mode=ro", uri=True)
        try:
            live = {row[0] for row in db.execute("SELECT id FROM segments")}
        finally:
            db.close()
    except sqlite3.Error:
        return
    for path in folder.iterdir():
        if path.is_dir() and _UUID.fullmatch(path.name) and path.name not in live:
            shutil.rmtree(path, ignore_errors=True)


def new_collection_name() -> str:
    """Unique and sortable by time, to the microsecond (two builds in one second still sort in order); Chroma
    allows [a-zA-Z0-9._-], 3-512 characters."""
    return f"qa-{datetime.now(timezone.utc).strftime('%Y%m%dt%H%M%S%f')}-{secrets.token_hex(4)}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def builds_dir(store: Path) -> Path:
    return Path(store) / BUILDS


def build_dir(store: Path, collection: str) -> Path:
    return builds_dir(store) / collection


def write_json_atomic(path: Path, data: object) -> None:
    """Readers see the old file or the new one, never a half-written one, even across a power cut."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, what: str) -> dict:
    """Parse a store file; any damage is IndexCorrupt with the way out in the message."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise IndexCorrupt(f"the index {what} {path} is missing; run `qa index rebuild`") from None
    except (OSError, ValueError) as e:
        raise IndexCorrupt(f"the index {what} {path} is damaged ({e}); run `qa index rebuild`") from None
    if not isinstance(data, dict):
        raise IndexCorrupt(f"the index {what} {path} is damaged (not a JSON object); run `qa index rebuild`")
    return data


def read_pointer(store: Path) -> dict | None:
    """The active pointer, or None when no index was ever switched in."""
    path = Path(store) / POINTER
    if not path.exists():
        return None
    pointer = read_json(path, "pointer")
    if not isinstance(pointer.get("collection"), str):
        raise IndexCorrupt(f"the index pointer {path} names no collection; run `qa index rebuild`")
    return pointer


def write_pointer(store: Path, collection: str) -> None:
    write_json_atomic(Path(store) / POINTER, {"format": FORMAT, "collection": collection, "switched_at": now_iso()})


def read_manifest(store: Path, collection: str) -> dict:
    return read_json(build_dir(store, collection) / MANIFEST, "manifest")


def read_documents(store: Path, collection: str) -> dict:
    return read_json(build_dir(store, collection) / DOCUMENTS, "document file")


def is_build_collection(name: str) -> bool:
    """A collection (or its .files companion) that some build created: what leftover removal may delete."""
    return bool(_BUILD_NAME.fullmatch(name.removesuffix(FILES_SUFFIX)))


def _missing(e: Exception) -> bool:
    return type(e).__name__ == "NotFoundError" or "does not exist" in str(e)


def current_pointer(settings: Settings) -> dict | None:
    """The live pointer: the store folder's ACTIVE.json, or the server's qa-meta collection when one is set."""
    if not settings.chroma_host:
        return read_pointer(settings.store_path)
    try:
        pointer = dict(chroma_client(settings).get_collection(META, embedding_function=None).metadata or {})
    except IndexError_:
        raise
    except Exception as e:
        if _missing(e):
            return None
        raise IndexError_(
            f"cannot read the index pointer from the Chroma server at {chroma_location(settings)} "
            f"({type(e).__name__}: {e}); is it running?"
        ) from None
    if not isinstance(pointer.get("collection"), str):
        raise IndexCorrupt(
            f"the index pointer in {chroma_location(settings)} names no collection; run `qa index rebuild`"
        )
    return pointer


def switch_pointer(settings: Settings, collection: str) -> None:
    """Make `collection` the live index, atomically (a file rename, or one metadata update on the server)."""
    if not settings.chroma_host:
        write_pointer(settings.store_path, collection)
        return
    client = chroma_client(settings)
    pointer = {"format": FORMAT, "collection": collection, "switched_at": now_iso()}
    try:
        client.get_collection(META, embedding_function=None).modify(metadata=pointer)
    except Exception as e:
        if not _missing(e):
            raise
        client.create_collection(META, metadata=pointer, embedding_function=None)


def push_files(settings: Settings, collection: str, folder: Path) -> None:
    """Server only: copy a build folder's manifest and documents into `<collection>.files` (never replaced)."""
    manifest = read_json(folder / MANIFEST, "manifest")
    documents = read_json(folder / DOCUMENTS, "document file")
    records = [("manifest", json.dumps(manifest, ensure_ascii=False))] + [
        (f"doc-{i}", json.dumps({"source": source, **doc}, ensure_ascii=False))
        for i, (source, doc) in enumerate(documents.items())
    ]
    client = chroma_client(settings)
    files = client.create_collection(collection + FILES_SUFFIX, embedding_function=None)
    limit, batch, size = client.get_max_batch_size(), [], 0
    for record in records + [None]:
        if batch and (record is None or len(batch) >= limit or size + len(record[1]) > 8_000_000):
            files.add(ids=[r[0] for r in batch], documents=[r[1] for r in batch], embeddings=[[1.0]] * len(batch))
            batch, size = [], 0
        if record is not None:
            batch.append(record)
            size += len(record[1])


def fetch_manifest(settings: Settings, collection: str) -> dict:
    """The manifest of a build: the local copy when there is one, else the server's."""
    local = build_dir(settings.store_path, collection) / MANIFEST
    if local.exists() or not settings.chroma_host:
        return read_json(local, "manifest")
    return _fetch_records(settings, collection, ["manifest"])[0]


def _fetch_records(settings: Settings, collection: str, ids: list[str]) -> list[dict]:
    try:
        files = chroma_client(settings).get_collection(collection + FILES_SUFFIX, embedding_function=None)
        got = dict(zip(*(lambda r: (r["ids"], r["documents"]))(files.get(ids=ids, include=["documents"]))))
        return [json.loads(got[i]) for i in ids]
    except IndexError_:
        raise
    except Exception as e:
        raise IndexCorrupt(
            f"the index files of {collection} cannot be read from the Chroma server at "
            f"{chroma_location(settings)} ({type(e).__name__}: {e}); run `qa index rebuild`"
        ) from None


def ensure_local_copy(settings: Settings, collection: str) -> Path:
    """Server only: the build folder of `collection` in this machine's store folder, fetched and BM25 derived
    when missing. Built in a private temporary folder and renamed into place, so concurrent readers never see
    half a copy."""
    folder = build_dir(settings.store_path, collection)
    if not settings.chroma_host or (folder / MANIFEST).exists():
        return folder
    manifest = _fetch_records(settings, collection, ["manifest"])[0]
    count = manifest.get("document_count")
    if not isinstance(count, int) or count < 0:
        raise IndexCorrupt(
            f"the manifest of {collection} in {chroma_location(settings)} is damaged; run `qa index rebuild`"
        )
    documents: dict = {}
    for i in range(0, count, 256):
        for doc in _fetch_records(settings, collection, [f"doc-{j}" for j in range(i, min(i + 256, count))]):
            documents[doc.pop("source")] = doc
    from index.bm25 import Bm25Index

    ids, texts, seen = [], [], set()
    try:
        for doc in documents.values():  # the build's order: every distinct chunk text once, first place first
            for cid, start, end in doc["chunks"]:
                text = doc["text"][start:end]
                if text not in seen:
                    seen.add(text)
                    ids.append(cid)
                    texts.append(text)
    except (KeyError, TypeError, ValueError) as e:
        raise IndexCorrupt(
            f"the documents of {collection} in {chroma_location(settings)} are damaged ({e!r}); run `qa index rebuild`"
        ) from None
    tmp = builds_dir(settings.store_path) / f".{collection}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir(parents=True)
    try:
        write_json_atomic(tmp / DOCUMENTS, documents)
        Bm25Index.build(ids, texts).save(tmp / BM25_DIR)
        write_json_atomic(tmp / MANIFEST, manifest)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process of this machine fetched it first
            if not (folder / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def embedding_path(settings: Settings) -> str:
    """How chunk vectors are computed beyond the model's name: "fp32" or "int8" (torch dynamic quantisation),
    "+no-overlap" when each chunk is encoded without the start it shares with the previous one."""
    return ("int8" if settings.embed_int8 else "fp32") + ("+no-overlap" if settings.embed_skip_overlap else "")


# Indexes written before the embedding path was recorded were all built this way.
RECORD_DEFAULTS = {"embedding_path": "fp32"}


def index_config(settings: Settings) -> dict:
    """What must match between an index and the settings that read it."""
    return {
        "format": FORMAT,
        "embedding_model": settings.embedding_model,
        "embedding_path": embedding_path(settings),
        "dimension": settings.embedding_dim,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "chroma": chroma_location(settings),
    }


def config_mismatch(manifest: dict, settings: Settings) -> str | None:
    """A sentence naming what differs between the index and the settings, or None when they agree."""
    wanted = index_config(settings)
    diffs = [
        f"index format {manifest.get(k)!r} (this version reads {v!r})"
        if k == "format"
        else f"{k} {manifest.get(k)!r} (settings say {v!r})"
        for k, v in wanted.items()
        if manifest.get(k, RECORD_DEFAULTS.get(k)) != v
    ]
    return "; ".join(diffs) or None
