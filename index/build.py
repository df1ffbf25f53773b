"""Build or rebuild the index so that a crash at any moment leaves the previous index whole and queryable.

Order of a build: take the lock -> remove leftovers of killed builds -> load and split the seeds -> copy the
vectors of chunks the live index already holds (unchanged documents), embed the rest -> write a NEW collection,
its documents and BM25 -> validate -> switch the pointer atomically -> only then delete the old collection.
Until the pointer flips, readers never look at the new files; after it flips, they never need the old ones.

The store's housekeeping around a build is in index/build_store.py, the checks before a switch in
index/build_check.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from index import store
from index.build_check import distinct_chunks, live_index_holds_up, validate_collection
from index.build_store import (
    active_state,
    build_lock,
    chunk_ids,
    fsync_tree,
    holds_all,
    remove_leftovers,
    reused_vectors,
    write_build_files,
)
from index.formats import SUPPORTED_SUFFIXES
from index.load import load_documents
from index.settings import Settings
from index.split import split_document
from index.types import BuildReport, Chunk, Document, IndexCorrupt, IndexError_

Progress = Callable[[str, int, int], None]

# Stages reported to on_progress(stage, done, total), in order.
STAGES = ("read", "reuse", "embed", "write", "validate", "switch")


class _Reporter:
    """Fans progress out to the caller's callback and, when asked, to rich progress bars on stderr."""

    def __init__(self, show: bool, callback: Progress | None):
        self._callback = callback
        self._bars = None
        self._tasks: dict[str, int] = {}
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bars = Progress(
                TextColumn("{task.description:<18}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )

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
    with (
        build_lock(Path(settings.store_path)),
        _Reporter(progress, on_progress) as report_progress,
        ExitStack() as held,
    ):
        notes: list[str] = []
        client = _client(settings, force, notes)
        lease = None
        if settings.chroma_host:  # one writer across every machine that shares the server
            from index.lease import WriterLease

            lease = held.enter_context(
                WriterLease(client, settings.chroma_lease_seconds, store.chroma_location(settings))
            )
        active, manifest = active_state(settings)
        remove_leftovers(settings, client, keep=active)
        docs, warnings = _read_documents(settings, report_progress)
        if _up_to_date(
            settings, client, active, manifest, docs, force=force, fresh=fresh, report_progress=report_progress
        ):
            return BuildReport(
                collection=active,
                documents=len(docs),
                chunks=int(manifest.get("chunks", 0)),
                embedded=0,
                reused=0,
                removed_documents=0,
                skipped=notes + warnings,
                seconds=time.perf_counter() - started,
                up_to_date=True,
                validated=force,
            )

        chunks_by_doc = {d.source: split_document(d, settings.chunk_size, settings.chunk_overlap) for d in docs}
        chunks = [c for d in docs for c in chunks_by_doc[d.source]]
        stored = distinct_chunks(chunks)
        vectors = _reuse(settings, client, active, manifest, stored, report_progress)
        embedded = _embed_missing(settings, embedder, chunks_by_doc, stored, vectors, report_progress)
        name, folder = _write_collection(
            settings, client, docs, chunks_by_doc, chunks, stored, vectors, report_progress
        )
        if lease is not None:
            store.push_files(settings, name, folder)
            lease.check()
        report_progress("switch", 0, 1)
        store.switch_pointer(settings, name)
        report_progress("switch", 1, 1)
        remove_leftovers(settings, client, keep=name)
        removed = len(set((manifest or {}).get("documents", {})) - {d.source for d in docs})
        return BuildReport(
            collection=name,
            documents=len(docs),
            chunks=len(chunks),
            embedded=embedded,
            reused=len(stored) - embedded,
            removed_documents=removed,
            skipped=notes + warnings,
            seconds=time.perf_counter() - started,
        )


def _client(settings: Settings, force: bool, notes: list[str]):
    """The Chroma client; a forced rebuild moves a damaged embedded database aside (and says so in `notes`)."""
    try:
        return store.chroma_client(settings)
    except IndexCorrupt:
        if not force or settings.chroma_host:
            raise
        notes.append(f"moved the damaged Chroma database aside to {store.move_aside_damaged_chroma(settings)}")
        return store.chroma_client(settings)


def _read_documents(settings: Settings, report_progress: Progress) -> tuple[list[Document], list[str]]:
    docs, warnings = load_documents(
        settings.seeds_dir,
        on_file=lambda done, total: report_progress("read", done, total),
        max_chars=settings.max_doc_chars,
        max_seconds=settings.max_extract_seconds,
        memory_mb=settings.max_extract_mb,
    )
    if not docs:
        raise IndexError_(
            f"no documents to index in {settings.seeds_dir} (put {', '.join(SUPPORTED_SUFFIXES)} files there)"
            + "".join(f"\n  {w}" for w in warnings)
        )
    return docs, warnings


def _up_to_date(
    settings: Settings,
    client,
    active: str | None,
    manifest: dict | None,
    docs: list[Document],
    *,
    force: bool,
    fresh: bool,
    report_progress: Progress,
) -> bool:
    """The live index already holds these documents with these settings, so there is nothing to build: always
    for a plain build; for a forced one only when the live index also passes validation (never when fresh)."""
    if manifest is None or store.config_mismatch(manifest, settings) is not None:
        return False
    old_hashes = {src: d.get("sha256") for src, d in manifest.get("documents", {}).items()}
    if old_hashes != {d.source: d.sha256 for d in docs}:
        return False
    if not holds_all(client, active, manifest.get("vectors", manifest.get("chunks"))):
        return False
    if not force:
        return True
    if fresh:
        return False
    report_progress("validate", 0, 1)
    validated = live_index_holds_up(settings)
    report_progress("validate", int(validated), 1)
    return validated


def _reuse(
    settings: Settings,
    client,
    active: str | None,
    manifest: dict | None,
    stored: list[Chunk],
    report_progress: Progress,
) -> dict[str, list[float]]:
    """Vectors of the chunks the live index already holds, by chunk id.

    A chunk id hashes source, offsets and text, so an id the live index already holds names the same text:
    its vector can be copied whenever the model is the same (whole unchanged documents, and the untouched
    chunks of edited ones, e.g. a title above an edited paragraph)."""
    wanted = store.index_config(settings)
    same_model = manifest is not None and all(
        manifest.get(k, store.RECORD_DEFAULTS.get(k)) == wanted[k]
        for k in ("embedding_model", "embedding_path", "dimension", "chroma")
    )
    old_ids = chunk_ids(settings, active) if same_model else set()
    unchanged = [c.id for c in stored if c.id in old_ids]
    report_progress("reuse", 0, len(unchanged))
    vectors = reused_vectors(client, active, unchanged, client.get_max_batch_size()) if unchanged else {}
    report_progress("reuse", len(vectors), len(unchanged))
    return vectors


def _embed_missing(
    settings: Settings,
    embedder,
    chunks_by_doc: dict[str, list[Chunk]],
    stored: list[Chunk],
    vectors: dict[str, list[float]],
    report_progress: Progress,
) -> int:
    """Embed every stored chunk without a vector into `vectors`; returns how many were embedded."""
    # Longest first, as SentenceTransformer.encode orders one call's texts: each batch then holds chunks of
    # similar length and pads little (in document order the batches padded ~1.2x more tokens).
    encoded = _encoded_texts(chunks_by_doc, settings.embed_skip_overlap)
    todo = sorted((c for c in stored if c.id not in vectors), key=lambda c: -len(encoded[c.id]))
    report_progress("embed", 0, len(todo))
    if not todo:
        return 0
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
                    f"the settings say {settings.embedding_dim}; set QA_EMBEDDING_DIM={len(vec)}"
                )
            vectors[chunk.id] = [float(x) for x in vec]
        report_progress("embed", min(i + step, len(todo)), len(todo))
    return len(todo)


def _write_collection(
    settings: Settings,
    client,
    docs: list[Document],
    chunks_by_doc: dict[str, list[Chunk]],
    chunks: list[Chunk],
    stored: list[Chunk],
    vectors: dict[str, list[float]],
    report_progress: Progress,
) -> tuple[str, Path]:
    """A new collection with its build folder (documents, BM25, manifest), validated and synced to disk; returns
    its name and folder. Nothing points at it yet."""
    name = store.new_collection_name()
    folder = store.build_dir(Path(settings.store_path), name)
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
        collection.add(  # no texts: documents.json holds them (docs/indexing.md)
            ids=[c.id for c in batch],
            embeddings=ordered[i : i + step],
            metadatas=[
                {
                    "source": c.source,
                    "title": c.title,
                    "start": c.start,
                    "end": c.end,
                    **({"page": c.page} if c.page is not None else {}),
                }
                for c in batch
            ],
        )
        report_progress("write", min(i + step, len(stored)), len(stored))
    write_build_files(folder, name, config, docs, chunks_by_doc, chunks, stored)

    report_progress("validate", 0, 1)
    validate_collection(
        collection,
        stored,
        [chunks_by_doc[d.source][0] for d in docs if chunks_by_doc[d.source]],
        lambda rows: [ordered[r] for r in rows],
        settings.embedding_dim,
        folder / store.BM25_DIR,
    )
    fsync_tree(folder)
    report_progress("validate", 1, 1)
    return name, folder


__all__ = ["STAGES", "build_index", "build_lock", "distinct_chunks"]
