"""Build or rebuild the index so that a crash at any moment leaves the previous index whole and queryable.

Order of a build: take the lock -> remove leftovers of killed builds -> load and split the seeds -> copy the
vectors of chunks the live index already holds (unchanged documents), embed the rest -> write a NEW collection, its documents and BM25 -> validate ->
switch the pointer atomically -> only then delete the old collection. Until the pointer flips, readers never
look at the new files; after it flips, they never need the old ones.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from index import store
from index.bm25 import Bm25Index
from index.formats import SUPPORTED_SUFFIXES
from index.load import load_documents
from index.settings import Settings
from index.split import split_document
from index.types import BuildReport, Chunk, Document, IndexBusy, IndexCorrupt, IndexError_

Progress = Callable[[str, int, int], None]

# Stages reported to on_progress(stage, done, total), in order.
STAGES = ("read", "reuse", "embed", "write", "validate", "switch")


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


class _Reporter:
    """Fans progress out to the caller's callback and, when asked, to rich progress bars on stderr."""

    def __init__(self, show: bool, callback: Progress | None):
        self._callback = callback
        self._bars = None
        self._tasks: dict[str, int] = {}
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bars = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=Console(stderr=True), transient=False)

    def __enter__(self) -> "_Reporter":
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._bars is not None and stage in {"read", "embed", "write"}:
            label = {"read": "documents read", "embed": "chunks embedded", "write": "chunks written"}[stage]
            if stage not in self._tasks:
                self._tasks[stage] = self._bars.add_task(label, total=total)
            self._bars.update(self._tasks[stage], completed=done, total=total)
        if self._callback is not None:
            self._callback(stage, done, total)


def _active_state(settings: Settings) -> tuple[str | None, dict | None]:
    """(collection, manifest) of the live index; a damaged one counts as absent (a build replaces it)."""
    try:
        pointer = store.current_pointer(settings)
        if pointer is None:
            return None, None
        store.ensure_local_copy(settings, pointer["collection"])
        return pointer["collection"], store.read_manifest(settings.store_path, pointer["collection"])
    except IndexCorrupt:
        return None, None


def _delete_collection(client, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception:  # already gone (killed before it was created) or the server forgot it
        pass


def _chunk_ids(settings: Settings, collection: str) -> set[str]:
    try:
        documents = store.read_documents(settings.store_path, collection)
        return {c[0] for doc in documents.values() for c in doc["chunks"]}
    except (IndexCorrupt, KeyError, TypeError, IndexError):
        return set()


def _holds(client, name: str, count: object) -> bool:
    """The live collection is still in Chroma with all its chunks (a wiped Chroma means: build again)."""
    try:
        return client.get_collection(name, embedding_function=None).count() == count
    except Exception:
        return False


def _remove_leftovers(settings: Settings, client, keep: str | None) -> None:
    """Collections of builds that never switched in (killed) or were switched out (killed before deleting).

    Embedded: each has a build folder, made before its collection. Server: every collection a build created
    except the live one (and its .files); only the writer lease holder gets here, so no other build is running.
    """
    folder = store.builds_dir(settings.store_path)
    if settings.chroma_host:
        for collection in client.list_collections():
            if store.is_build_collection(collection.name) and collection.name not in (keep, f"{keep}{store.FILES_SUFFIX}"):
                _delete_collection(client, collection.name)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name != keep and not path.name.startswith("."):
                if not settings.chroma_host:
                    _delete_collection(client, path.name)
                shutil.rmtree(path, ignore_errors=True)
    store.remove_orphan_segments(settings)


def _reused_vectors(client, active: str, ids: list[str], batch: int) -> dict[str, list[float]]:
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


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for path in [*[p for p in folder.rglob("*") if p.is_dir()], folder]:
        store.fsync_dir(path)


def _encoded_texts(chunks_by_doc: dict[str, list[Chunk]], skip_overlap: bool) -> dict[str, str]:
    """The text the encoder reads for each chunk: all of it, or (skip_overlap) all but the start it shares with
    the previous chunk of its document, which that chunk already encoded. Every character is then encoded once
    instead of 1 + overlap/size times; passages and BM25 keep the whole text."""
    out: dict[str, str] = {}
    for chunks in chunks_by_doc.values():
        prev_end = -1
        for c in chunks:
            cut = prev_end - c.start
            rest = c.text[cut:].lstrip() if skip_overlap and 0 < cut < len(c.text) else ""
            out.setdefault(c.id, rest if len(rest) >= len(c.text) // 4 else c.text)
            prev_end = c.end
    return out


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


def _validate(collection, stored: list[Chunk], firsts: list[Chunk], vectors_of: Callable[[list[int]], list],
              dim: int, bm25_dir: Path) -> None:
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
    hits = collection.query(query_embeddings=vectors_of(rows), n_results=min(SMOKE_K, count), include=["documents"])
    failed = sum(stored[r].text not in found for r, found in zip(rows, hits["documents"]))
    if failed * 2 > len(rows):
        raise IndexError_(f"validation failed: {failed} of {len(rows)} smoke queries did not find the chunk "
                          "they were made from")
    if len(Bm25Index.load(bm25_dir).ids) != len(stored):
        raise IndexError_("validation failed: the BM25 index does not cover every chunk")


def _live_holds_up(settings: Settings) -> bool:
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

        _validate(reader._chroma, stored, firsts, vectors_of, settings.embedding_dim,
                  store.build_dir(Path(settings.store_path), reader.collection) / store.BM25_DIR)
        return True
    except Exception:  # IndexError_ from the checks, KeyError for a missing vector, Chroma errors: rebuild
        return False


def build_index(
    settings: Settings,
    *,
    force: bool = False,
    fresh: bool = False,
    progress: bool = True,
    embedder=None,
    on_progress: Progress | None = None,
) -> BuildReport:
    """Bring the index in line with the seeds folder. force=False: only when something changed (or there is no
    index). force=True (`qa index rebuild`): also when the live index fails validation; when documents and
    settings are unchanged and the live index holds up, it is validated and kept (nothing is copied).
    fresh=True: always write a new collection. Raises IndexBusy at once when
    another build holds the lock, and IndexError_ with a clear message when there is nothing to index."""
    started = time.perf_counter()
    store_path = Path(settings.store_path)
    with build_lock(store_path), _Reporter(progress, on_progress) as report_progress, ExitStack() as held:
        notes: list[str] = []
        try:
            client = store.chroma_client(settings)
        except IndexCorrupt:
            if not force or settings.chroma_host:
                raise
            notes.append(f"moved the damaged Chroma database aside to {store.move_aside_damaged_chroma(settings)}")
            client = store.chroma_client(settings)
        lease = None
        if settings.chroma_host:  # one writer across every machine that shares the server
            from index.lease import WriterLease

            lease = held.enter_context(WriterLease(client, settings.chroma_lease_seconds,
                                                   store.chroma_location(settings)))
        active, manifest = _active_state(settings)
        _remove_leftovers(settings, client, keep=active)

        docs, warnings = load_documents(settings.seeds_dir, on_file=lambda done, total: report_progress("read", done, total),
                                        max_chars=settings.max_doc_chars, max_seconds=settings.max_extract_seconds,
                                        memory_mb=settings.max_extract_mb)
        if not docs:
            raise IndexError_(
                f"no documents to index in {settings.seeds_dir} (put {', '.join(SUPPORTED_SUFFIXES)} files there)"
                + "".join(f"\n  {w}" for w in warnings)
            )
        same_config = manifest is not None and store.config_mismatch(manifest, settings) is None
        old_hashes = {src: d.get("sha256") for src, d in (manifest or {}).get("documents", {}).items()}
        new_hashes = {d.source: d.sha256 for d in docs}
        removed = len(set(old_hashes) - set(new_hashes))
        nothing_changed = (same_config and old_hashes == new_hashes
                           and _holds(client, active, manifest.get("vectors", manifest.get("chunks"))))
        if nothing_changed and force and not fresh:
            report_progress("validate", 0, 1)
            validated = _live_holds_up(settings)
            report_progress("validate", int(validated), 1)
        if nothing_changed and (not force or (not fresh and validated)):
            return BuildReport(collection=active, documents=len(docs), chunks=int(manifest.get("chunks", 0)),
                               embedded=0, reused=0, removed_documents=0, skipped=notes + warnings,
                               seconds=time.perf_counter() - started, up_to_date=True, validated=force)

        chunks_by_doc = {d.source: split_document(d, settings.chunk_size, settings.chunk_overlap) for d in docs}
        chunks = [c for d in docs for c in chunks_by_doc[d.source]]
        stored = distinct_chunks(chunks)
        # A chunk id hashes source, offsets and text, so an id the live index already holds names the same text:
        # its vector can be copied whenever the model is the same (whole unchanged documents, and the untouched
        # chunks of edited ones, e.g. a title above an edited paragraph).
        wanted = store.index_config(settings)
        same_model = manifest is not None and all(
            manifest.get(k, store.RECORD_DEFAULTS.get(k)) == wanted[k]
            for k in ("embedding_model", "embedding_path", "dimension", "chroma"))
        old_ids = _chunk_ids(settings, active) if same_model else set()
        unchanged = [c.id for c in stored if c.id in old_ids]
        report_progress("reuse", 0, len(unchanged))
        vectors = _reused_vectors(client, active, unchanged, client.get_max_batch_size()) if unchanged else {}
        report_progress("reuse", len(vectors), len(unchanged))

        # Longest first, as SentenceTransformer.encode orders one call's texts: each batch then holds chunks of
        # similar length and pads little (in document order the batches padded ~1.2x more tokens).
        encoded = _encoded_texts(chunks_by_doc, settings.embed_skip_overlap)
        todo = sorted((c for c in stored if c.id not in vectors), key=lambda c: -len(encoded[c.id]))
        report_progress("embed", 0, len(todo))
        if todo:
            if embedder is None:
                from index.embed import get_embedder

                embedder = get_embedder(settings)
            step = settings.embed_batch_size
            for i in range(0, len(todo), step):
                batch = todo[i : i + step]
                for chunk, vec in zip(batch, embedder.embed_documents([encoded[c.id] for c in batch])):
                    if len(vec) != settings.embedding_dim:
                        raise IndexError_(
                            f"the model {settings.embedding_model!r} gives {len(vec)}-dimensional vectors, but "
                            f"the settings say {settings.embedding_dim}; set QA_EMBEDDING_DIM={len(vec)}")
                    vectors[chunk.id] = [float(x) for x in vec]
                report_progress("embed", min(i + step, len(todo)), len(todo))

        name = store.new_collection_name()
        folder = store.build_dir(store_path, name)
        folder.mkdir(parents=True)  # before the collection exists: the marker that lets a later build clean up
        config = store.index_config(settings)
        collection = client.create_collection(
            name,
            metadata={**config, "built_at": store.now_iso()},
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,  # vectors are always given explicitly; Chroma's default would go online
        )
        ordered = [vectors[c.id] for c in stored]
        step = client.get_max_batch_size()
        report_progress("write", 0, len(stored))
        for i in range(0, len(stored), step):
            batch = stored[i : i + step]
            collection.add(
                ids=[c.id for c in batch],
                embeddings=ordered[i : i + step],
                documents=[c.text for c in batch],
                metadatas=[{"source": c.source, "title": c.title, "start": c.start, "end": c.end,
                            **({"page": c.page} if c.page is not None else {})} for c in batch],
            )
            report_progress("write", min(i + step, len(stored)), len(stored))
        _write_files(folder, name, config, docs, chunks_by_doc, chunks, stored)

        report_progress("validate", 0, 1)
        _validate(collection, stored, [chunks_by_doc[d.source][0] for d in docs if chunks_by_doc[d.source]],
                  lambda rows: [ordered[r] for r in rows], settings.embedding_dim, folder / store.BM25_DIR)
        _fsync_tree(folder)
        report_progress("validate", 1, 1)

        if lease is not None:
            store.push_files(settings, name, folder)
            lease.check()
        report_progress("switch", 0, 1)
        store.switch_pointer(settings, name)
        report_progress("switch", 1, 1)
        _remove_leftovers(settings, client, keep=name)
        embedded = len(todo)
        return BuildReport(collection=name, documents=len(docs), chunks=len(chunks), embedded=embedded,
                           reused=len(stored) - embedded, removed_documents=removed, skipped=notes + warnings,
                           seconds=time.perf_counter() - started)


def _write_files(folder: Path, name: str, config: dict, docs: list[Document],
                 chunks_by_doc: dict[str, list[Chunk]], chunks: list[Chunk], stored: list[Chunk]) -> None:
    """documents.json (texts + chunk spans), BM25, then the manifest last: the manifest is the 'complete' mark."""
    store.write_json_atomic(folder / store.DOCUMENTS, {
        d.source: {"title": d.title, "subtitle": d.subtitle, "sha256": d.sha256, "text": d.text,
                   "chunks": [[c.id, c.start, c.end] for c in chunks_by_doc[d.source]],
                   **({"pages": list(d.pages)} if d.pages else {})}
        for d in docs
    })
    Bm25Index.build([c.id for c in stored], [c.text for c in stored]).save(folder / store.BM25_DIR)
    store.write_json_atomic(folder / store.MANIFEST, {
        "collection": name,
        **config,
        "built_at": store.now_iso(),
        "document_count": len(docs),
        "chunks": len(chunks),
        "vectors": len(stored),
        "documents": {d.source: {"sha256": d.sha256, "title": d.title, "chunks": len(chunks_by_doc[d.source])}
                      for d in docs},
    })


__all__ = ["STAGES", "build_index", "build_lock", "distinct_chunks"]
