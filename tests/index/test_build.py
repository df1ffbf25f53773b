"""Building the index on real parts: real Chroma in a temp dir and the real embedding model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from index import store
from index.build import build_index
from index.embed import get_embedder
from index.reader import index_status, open_index
from index.settings import Settings
from index.types import IndexCorrupt, IndexError_, IndexMismatch, IndexMissing

ROOT = Path(__file__).resolve().parents[2]


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed (to tell embedded from reused chunks)."""

    def __init__(self, inner):
        self.inner = inner
        self.texts: list[str] = []

    def embed_documents(self, texts):
        self.texts.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture
def counting(settings: Settings) -> CountingEmbedder:
    return CountingEmbedder(get_embedder(settings))


def _paragraphs(topic: str, n: int = 4) -> str:
    return "\n".join(
        f"Report {i} on {topic}. The {topic} committee met on day {i} and agreed on measure {i * 7}. "
        f"Officials said the {topic} plan number {i} would be reviewed in a later session."
        for i in range(n)
    )


def _chroma_names(settings: Settings) -> set[str]:
    return {c.name for c in store.chroma_client(settings).list_collections()}


def test_status_before_build_says_no_index(settings: Settings):
    status = index_status(settings)
    assert status["exists"] is False and status["chunks"] == 0
    with pytest.raises(IndexMissing, match="qa index build"):
        open_index(settings)


def test_build_status_and_up_to_date(settings: Settings, counting: CountingEmbedder):
    report = build_index(settings, progress=False, embedder=counting)
    assert not report.up_to_date and report.documents == 1
    assert report.chunks == report.embedded == len(counting.texts) > 5 and report.reused == 0

    status = index_status(settings)
    assert status["exists"] and status["collection"] == report.collection
    assert (status["documents"], status["chunks"]) == (1, report.chunks)
    assert status["model"] == settings.embedding_model and status["dimension"] == 384
    assert (status["chunk_size"], status["chunk_overlap"]) == (settings.chunk_size, settings.chunk_overlap)
    assert status["built_at"] and status["store"] == str(settings.store_path.resolve())

    reader = open_index(settings, embedder=counting)
    assert reader.collection == report.collection and len(reader.chunks) == report.chunks
    for chunk in reader.chunks.values():
        assert reader.document_text(chunk.source)[chunk.start : chunk.end] == chunk.text
    assert reader.document_title(chunk.source).startswith("Pakistan, China press Taliban")

    again = build_index(settings, progress=False, embedder=counting)
    assert again.up_to_date and again.collection == report.collection and again.embedded == 0
    assert len(counting.texts) == report.chunks  # nothing embedded the second time


def test_status_reads_json_only(settings: Settings):
    """`qa index status` must stay instant: no torch, no Chroma, no sentence-transformers."""
    build_index(settings, progress=False)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from index.settings import Settings
        from index.status import index_status
        s = Settings(_env_file=None, seeds_dir=Path({str(settings.seeds_dir)!r}), data_dir=Path({str(settings.data_dir)!r}))
        assert index_status(s)["exists"]
        heavy = [m for m in ("torch", "chromadb", "sentence_transformers", "transformers") if m in sys.modules]
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_incremental_rebuild_embeds_only_what_changed(settings: Settings, counting: CountingEmbedder):
    seeds = settings.seeds_dir
    (seeds / "keep.md").write_text("# Rivers\n\n" + _paragraphs("river"))
    (seeds / "edit.txt").write_text("Dams\n\n" + _paragraphs("dam"))
    (seeds / "gone.txt").write_text("Roads\n\n" + _paragraphs("road"))
    first = build_index(settings, progress=False, embedder=counting)
    before = open_index(settings, embedder=counting)
    gone_ids = {c.id for c in before.chunks.values() if c.source == "gone.txt"}
    assert first.documents == 4 and gone_ids

    (seeds / "edit.txt").write_text("Dams\n\n" + _paragraphs("dam") + "\nA new sentence about the spillway.")
    (seeds / "gone.txt").unlink()
    sub = seeds / "new"
    sub.mkdir()
    (sub / "added.txt").write_text("Ports\n\n" + _paragraphs("port", 2))
    counting.texts.clear()
    second = build_index(settings, progress=False, embedder=counting)

    after = open_index(settings, embedder=counting)
    changed = [c for c in after.chunks.values() if c.source in {"edit.txt", "new/added.txt"}]
    new_ids = {c.id for c in changed} - set(before.chunks)
    assert second.embedded == len(counting.texts) == len(new_ids)
    assert second.reused == second.chunks - second.embedded
    untouched = [c for c in before.chunks.values() if c.source in {"keep.md", "pakistan-china-strategic-dialogue.txt"}]
    assert second.reused >= len(untouched) and 0 < second.embedded < second.chunks
    assert second.removed_documents == 1 and second.documents == 4
    assert not gone_ids & set(after.chunks)
    assert all(c.source != "gone.txt" for c in after.chunks.values())
    assert not after._chroma.get(ids=sorted(gone_ids))["ids"]
    assert "spillway" in after.bm25("spillway", 1)[0][0].text
    # the old collection and its files are gone
    assert _chroma_names(settings) == {second.collection}
    assert [p.name for p in store.builds_dir(settings.store_path).iterdir()] == [second.collection]
    assert not before.is_current() and after.is_current()


def test_rebuild_with_nothing_changed_validates_the_live_index_and_writes_nothing(
    settings: Settings, counting: CountingEmbedder
):
    first = build_index(settings, progress=False, embedder=counting)
    pointer = (settings.store_path / store.POINTER).read_bytes()
    files = sorted(p.relative_to(settings.store_path) for p in store.builds_dir(settings.store_path).rglob("*"))
    counting.texts.clear()
    steps = []
    second = build_index(
        settings,
        force=True,
        progress=False,
        embedder=counting,
        on_progress=lambda stage, done, total: steps.append(stage),
    )
    assert second.up_to_date and second.validated and second.collection == first.collection
    assert second.embedded == 0 and second.chunks == first.chunks and counting.texts == []
    assert "write" not in steps and "validate" in steps  # checked, not copied
    assert (settings.store_path / store.POINTER).read_bytes() == pointer
    assert sorted(p.relative_to(settings.store_path) for p in store.builds_dir(settings.store_path).rglob("*")) == files
    assert _chroma_names(settings) == {first.collection}

    # a live index that does not hold up is rebuilt, reusing what it can
    shutil.rmtree(store.build_dir(settings.store_path, first.collection) / store.BM25_DIR)
    repaired = build_index(settings, force=True, progress=False, embedder=counting)
    assert not repaired.up_to_date and not repaired.validated and repaired.collection != first.collection
    assert repaired.embedded == 0 and repaired.reused == repaired.chunks
    open_index(settings, embedder=counting)


def test_fresh_rebuild_with_nothing_changed_reuses_every_vector(settings: Settings, counting: CountingEmbedder):
    first = build_index(settings, progress=False, embedder=counting)
    counting.texts.clear()
    second = build_index(settings, force=True, fresh=True, progress=False, embedder=counting)
    assert second.collection != first.collection and not second.up_to_date
    assert second.embedded == 0 and second.reused == second.chunks == first.chunks
    assert counting.texts == []
    assert _chroma_names(settings) == {second.collection}
    # reused vectors are the same vectors: a query finds the same chunk with the same score
    query = "Who co-chaired the dialogue?"
    old = open_index(settings, embedder=counting).dense(query, 3)
    assert [c.id for c, _ in old] and old[0][0].text.count("co-chaired by Deputy Prime Minister") == 1


def test_other_model_or_chunking_is_a_mismatch_with_rebuild_hint(settings: Settings):
    build_index(settings, progress=False)
    with pytest.raises(IndexMismatch, match="qa index rebuild") as err:
        open_index(
            settings.with_overrides(embedding_model="sentence-transformers/all-mpnet-base-v2", embedding_dim=768)
        )
    assert "all-mpnet-base-v2" in str(err.value)
    with pytest.raises(IndexMismatch, match="chunk_size"):
        open_index(settings.with_overrides(chunk_size=300))


def test_changed_chunking_rebuilds_on_plain_build(settings: Settings, counting: CountingEmbedder):
    first = build_index(settings, progress=False, embedder=counting)
    old_ids = set(open_index(settings, embedder=counting).chunks)
    smaller = settings.with_overrides(chunk_size=250, chunk_overlap=50)
    counting.texts.clear()
    second = build_index(smaller, progress=False, embedder=counting)
    assert not second.up_to_date and second.chunks > first.chunks
    reader = open_index(smaller, embedder=counting)
    assert reader.manifest["chunk_size"] == 250
    # only chunks with identical source, offsets and text (e.g. the headline block) keep their vectors
    assert second.reused == len(set(reader.chunks) & old_ids) < second.chunks // 4
    assert second.embedded == len(counting.texts) == second.chunks - second.reused


def test_no_documents_changes_nothing(settings: Settings):
    first = build_index(settings, progress=False)
    for path in settings.seeds_dir.iterdir():
        path.unlink()
    (settings.seeds_dir / "empty.txt").write_text("")
    with pytest.raises(IndexError_, match="no documents to index") as err:
        build_index(settings, force=True, progress=False)
    assert "empty.txt" in str(err.value)
    assert open_index(settings).collection == first.collection


def test_skipped_files_are_reported(settings: Settings):
    (settings.seeds_dir / "bad.txt").write_bytes(b"\xff\xfe\x00binary")
    report = build_index(settings, progress=False)
    assert report.documents == 1 and any("bad.txt" in w for w in report.skipped)


def test_progress_callback_sees_every_stage_in_order(settings: Settings):
    seen: list[tuple[str, int, int]] = []
    build_index(settings, progress=False, on_progress=lambda *a: seen.append(a))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages == ["read", "reuse", "embed", "write", "validate", "switch"]
    embed = [(d, t) for s, d, t in seen if s == "embed"]
    assert embed[-1][0] == embed[-1][1] > 0


def test_damaged_pointer_or_files_are_corrupt_and_rebuild_recovers(settings: Settings):
    report = build_index(settings, progress=False)
    pointer = settings.store_path / store.POINTER
    pointer.write_text("{not json")
    with pytest.raises(IndexCorrupt, match="qa index rebuild"):
        open_index(settings)
    with pytest.raises(IndexCorrupt):
        index_status(settings)
    assert build_index(settings, force=True, progress=False).chunks == report.chunks
    open_index(settings)

    active = store.read_pointer(settings.store_path)["collection"]
    shutil.rmtree(store.build_dir(settings.store_path, active) / store.BM25_DIR)
    with pytest.raises(IndexCorrupt, match="BM25"):
        open_index(settings)
    build_index(settings, force=True, progress=False)

    active = store.read_pointer(settings.store_path)["collection"]
    docs = store.build_dir(settings.store_path, active) / store.DOCUMENTS
    docs.write_text(json.dumps({"x": {"title": "t"}}))
    with pytest.raises(IndexCorrupt):
        open_index(settings)


def test_collection_missing_from_chroma_is_noticed(settings: Settings):
    report = build_index(settings, progress=False)
    store.chroma_client(settings).delete_collection(report.collection)
    with pytest.raises(IndexCorrupt, match="qa index rebuild"):
        open_index(settings)
    again = build_index(settings, progress=False)  # a plain build sees the index is not whole
    assert not again.up_to_date and again.embedded == again.chunks
    open_index(settings)


def test_damaged_chroma_database_is_corrupt_and_rebuild_moves_it_aside(settings: Settings):
    build_index(settings, progress=False)
    other = settings.with_overrides(store_dir=settings.data_dir / "copy")
    shutil.copytree(settings.store_path, other.store_path)  # a store this process has not opened yet
    (other.store_path / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexCorrupt, match="qa index rebuild"):
        open_index(other)
    report = build_index(other, force=True, progress=False)
    assert any("moved the damaged Chroma database aside" in note for note in report.skipped)
    reader = open_index(other)
    assert reader.bm25("Khunjerab Pass", 1)[0][0].text.count("Khunjerab") == 1


def test_identical_chunks_are_stored_once_and_never_break_the_other_documents(
    settings: Settings, counting: CountingEmbedder
):
    """A document of one phrase repeated gives hundreds of chunks with the same few texts. Their identical vectors
    used to wreck Chroma's HNSW graph (the article's own chunks became unfindable) and fail validation."""
    (settings.seeds_dir / "odd.txt").write_text("No. 5, " * 12000)
    report = build_index(settings, force=True, progress=False, embedder=counting)
    reader = open_index(settings, embedder=counting)
    odd = [c for c in reader.chunks.values() if c.source == "odd.txt"]
    distinct = {c.text for c in reader.chunks.values()}
    assert len(odd) > 100 and report.chunks == len(reader.chunks)
    # every distinct text is embedded and stored once; every chunk still has its place in its document
    assert len(counting.texts) == report.embedded == len(distinct) < len(reader.chunks)
    assert report.reused == 0  # the copies were not taken from an earlier index
    assert reader._chroma.count() == len(distinct)
    assert all(reader.document_text(c.source)[c.start : c.end] == c.text for c in odd)
    # the article is still found by its own words and meaning
    hits = reader.dense("Who co-chaired the strategic dialogue?", 3)
    assert hits[0][0].source == "pakistan-china-strategic-dialogue.txt"
    assert "co-chaired" in hits[0][0].text
    odd_hits = [c.text for c, _ in reader.bm25("No 5", 20) if c.source == "odd.txt"]
    assert sorted(odd_hits) == sorted({c.text for c in odd})  # each odd text once: no duplicate passages
    # and a rebuild with nothing changed copies the stored vectors
    counting.texts.clear()
    again = build_index(settings, force=True, progress=False, embedder=counting)
    assert again.embedded == 0 and counting.texts == []


def test_chroma_holds_vectors_and_places_while_the_texts_come_from_the_build_files(settings: Settings):
    report = build_index(settings, progress=False)
    reader = open_index(settings)
    got = reader._chroma.get(include=["documents", "metadatas"])
    assert len(got["ids"]) == report.chunks and set(got["documents"]) == {None}
    by_id = dict(zip(got["ids"], got["metadatas"]))
    for cid, chunk in reader.chunks.items():
        assert (by_id[cid]["source"], by_id[cid]["start"], by_id[cid]["end"]) == (chunk.source, chunk.start, chunk.end)
    hits = reader.dense("Who co-chaired the dialogue?", 3)
    assert hits and all(chunk.text for chunk, _ in hits)


def test_validation_fails_when_the_vectors_do_not_find_their_chunks(settings: Settings):
    from index.build_check import distinct_chunks, validate_collection

    for topic in ("trade", "water", "rail"):
        (settings.seeds_dir / f"{topic}.txt").write_text(_paragraphs(topic, 12), encoding="utf-8")
    build_index(settings, progress=False)
    reader = open_index(settings)
    chunks = list(reader.chunks.values())
    stored = distinct_chunks(chunks)
    firsts = list({c.source: c for c in reversed(chunks)}.values())[::-1]
    assert len(stored) > 20 and len(firsts) >= 3
    got = reader._chroma.get(ids=[c.id for c in stored], include=["embeddings"])
    vector = dict(zip(got["ids"], got["embeddings"]))
    bm25 = store.build_dir(settings.store_path, reader.collection) / store.BM25_DIR

    def own(rows):
        return [vector[stored[r].id] for r in rows]

    def far(rows):  # each probe's vector pointing away from its chunk
        return [[-x for x in vector[stored[r].id]] for r in rows]

    validate_collection(reader._chroma, stored, firsts, own, settings.embedding_dim, bm25)
    with pytest.raises(IndexError_, match="smoke queries did not find"):
        validate_collection(reader._chroma, stored, firsts, far, settings.embedding_dim, bm25)
