"""Faults on real parts: a rebuild while chats go on, rebuilds racing each other and the server, a rebuild killed
with SIGKILL, damaged stores, and a missing or corrupt model file. Answering is extractive wherever the model's
writing is not what is tested."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from index import store
from index.build import build_index
from index.owner import store_owner
from index.reader import open_index
from index.settings import Settings
from index.types import IndexCorrupt
from qa.types import QAError
from tests.index.test_rebuild_safety import _extra_docs
from tests.reliability.qa_cli import assert_no_traceback, qa_command, qa_env, run_qa
from tests.reliability.test_security import assert_private
from tests.servers import ROOT

QUESTION = "Who co-chaired the dialogue?"
BRIDGE_DOC = (
    "Zanskar Bridge Notes\n\n"
    "The Zanskar suspension bridge was opened in 1987 by the engineer Farida Qureshi.\n"
    "It spans the river near Padum and carries one lane of traffic.\n"
)


# A process that owns a store the way `qa index build` does, for as long as it lives.
HOLD_AS_BUILD = (
    "import sys, time\nfrom pathlib import Path\nfrom index.settings import Settings\n"
    "from index.owner import claim_store\nclaim_store(Settings(_env_file=None, data_dir=Path(sys.argv[1])), 'build')\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


def _co_chairs_named(answer) -> bool:
    return not answer.abstained and ("Dar" in answer.answer or "Wang Yi" in answer.answer) and bool(answer.citations)


def _live(settings: Settings) -> str:
    return store.read_pointer(settings.store_path)["collection"]


def _wait_until(check, what: str, timeout: float = 180, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited first ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.01)
    pytest.fail(f"{what}: not within {timeout} s")


# --- rebuilds while serving --------------------------------------------------------------------------------------
def test_chats_keep_answering_during_a_rebuild_and_use_the_new_index_after_the_switch(page_server):
    seeds = page_server.seeds_dir
    _extra_docs(seeds, "ledger", 80)  # work for the rebuild: some eighty chunks to embed
    (seeds / "zanskar.txt").write_text(BRIDGE_DOC, encoding="utf-8")
    store_path = page_server.data_dir / "store"
    before = store.read_pointer(store_path)["collection"]

    stop, answers, errors = threading.Event(), [], []

    def chat() -> None:
        client = page_server.client()
        while not stop.is_set():
            started = time.monotonic()
            try:
                out = client.predict(QUESTION, None, api_name="/ask")
                answers.append((started, time.monotonic(), out))
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(repr(exc))

    threads = [threading.Thread(target=chat, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    _wait_until(lambda: len(answers) >= 2, "first answers")
    began = time.monotonic()
    progress, status = page_server.client().predict(api_name="/rebuild")
    ended = time.monotonic()
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join(timeout=60)

    assert 'data-state="done"' in progress and "Index rebuilt" in progress, progress
    assert errors == []
    during = [out for start, end, out in answers if start >= began and end <= ended]
    assert during, "no chat started and finished while the rebuild ran"
    for _start, _end, out in answers:
        assert not out["abstained"] and "Dar" in out["answer"] and out["citations"], out["answer"]
    assert store.read_pointer(store_path)["collection"] != before

    out = page_server.client().predict("Who opened the Zanskar suspension bridge?", None, api_name="/ask")
    assert "Farida Qureshi" in out["answer"] and {c["source"] for c in out["citations"]} == {"zanskar.txt"}


def test_cli_rebuild_is_refused_while_the_server_owns_the_store(page_server):
    pointer = page_server.data_dir / "store" / store.POINTER
    before = pointer.read_text()
    owner = store_owner(Settings(_env_file=None, data_dir=page_server.data_dir))
    assert owner is not None and owner[0] == "serve"

    out = run_qa(["index", "rebuild"], page_server.seeds_dir, page_server.data_dir)
    assert out.returncode == 1
    assert f"in use by a running `qa serve` (pid {owner[1]})" in out.stderr
    assert 'the page\'s "Rebuild index" button, or stop the server' in out.stderr
    assert_no_traceback(out.stdout, out.stderr)
    assert pointer.read_text() == before  # refused before touching anything
    assert "Dar" in page_server.client().predict(QUESTION, None, api_name="/ask")["answer"]


def test_a_second_server_or_a_server_during_a_cli_build_is_refused(page_server, tmp_path):
    out = run_qa(["serve", "--port", "1"], page_server.seeds_dir, page_server.data_dir, timeout=120)
    assert out.returncode == 1 and "another `qa serve` (pid" in out.stderr and "is already serving" in out.stderr
    assert_no_traceback(out.stdout, out.stderr)

    data = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AS_BUILD, str(data)], cwd=ROOT, text=True, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        out = run_qa(["serve", "--port", "1"], tmp_path / "seeds", data, timeout=120)
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert out.returncode == 1
    assert f"a `qa index build` (pid {holder.pid}) is writing the index" in out.stderr
    assert "then start the server again" in out.stderr
    assert_no_traceback(out.stdout, out.stderr)


@pytest.mark.slow  # `qa index build` processes, one SIGKILLed
def test_a_second_cli_rebuild_is_refused_and_a_sigkilled_rebuild_leaves_the_old_index(tmp_path, article_settings):
    # A copy of a built store that this test process has never opened: what the next `qa` run would find.
    seeds, data = tmp_path / "seeds", tmp_path / "data"
    shutil.copytree(article_settings.seeds_dir, seeds)
    shutil.copytree(article_settings.data_dir, data)
    settings = article_settings.with_overrides(seeds_dir=seeds, data_dir=data)
    old = _live(settings)
    _extra_docs(seeds, "novel", 30)  # something to embed, so the rebuild is still running when killed

    first = subprocess.Popen(
        qa_command("index", "rebuild"),
        cwd=ROOT,
        env=qa_env(seeds, data),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until(
            lambda: store_owner(settings) == ("build", first.pid), "the first rebuild owns the store", proc=first
        )
        second = run_qa(["index", "rebuild"], seeds, data)
        assert second.returncode == 1
        assert f"another `qa index build` (pid {first.pid}) is writing the index" in second.stderr
        assert_no_traceback(second.stdout, second.stderr)

        # Kill the first as soon as its new collection's folder appears: it is writing the new index.
        builds = store.builds_dir(settings.store_path)
        _wait_until(lambda: {p.name for p in builds.iterdir()} - {old}, "a new build folder", proc=first)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=30)
        first.stdout.close()
        first.stderr.close()
    assert first.returncode == -signal.SIGKILL
    assert store_owner(settings) is None  # the kernel released the dead process's claim

    # Whatever moment the kill hit, the live index is whole: the old one with nothing of the killed build in it,
    # or (killed after the switch, which is rare) the complete new one.
    reader = open_index(settings)
    novel = {c.source for c in reader.chunks.values() if c.source.startswith("novel-")}
    assert (reader.collection, novel) == (old, set()) or (reader.collection != old and len(novel) == 30)
    from qa.service import QAService

    assert _co_chairs_named(QAService(settings).ask(QUESTION))

    # The next rebuild succeeds and leaves exactly one collection.
    again = run_qa(["index", "rebuild", "--json"], seeds, data)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert _live(settings) == report["collection"] != old and report["documents"] == 31
    assert [p.name for p in builds.iterdir()] == [report["collection"]]
    assert any(c.source.startswith("novel-") for c in open_index(settings).chunks.values())
    # What the CLI wrote is user-only, and it tightened the folders it found open.
    assert_private(builds / report["collection"])
    assert {oct(p.stat().st_mode & 0o777) for p in (data, settings.store_path)} == {"0o700"}


# --- damaged stores ------------------------------------------------------------------------------------------------
def _truncate_db(store_path: Path) -> None:
    db = store_path / "chroma" / "chroma.sqlite3"
    os.truncate(db, db.stat().st_size // 2)


def _garble_db(store_path: Path) -> None:
    """Random bytes over the header and the first pages (the schema): what every reader of the file needs."""
    with open(store_path / "chroma" / "chroma.sqlite3", "r+b") as f:
        f.write(os.urandom(16384))


def _empty_db(store_path: Path) -> None:
    os.truncate(store_path / "chroma" / "chroma.sqlite3", 0)


def _other_model(store_path: Path) -> None:
    """What an index built with another embedding model looks like: its manifest and Chroma metadata say so."""
    other = "sentence-transformers/paraphrase-MiniLM-L3-v2"
    name = store.read_pointer(store_path)["collection"]
    manifest = store.build_dir(store_path, name) / store.MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "embedding_model": other}))
    db = sqlite3.connect(store_path / "chroma" / "chroma.sqlite3")
    with db:
        db.execute("UPDATE collection_metadata SET str_value = ? WHERE key = 'embedding_model'", (other,))
    db.close()


@pytest.mark.parametrize(
    "damage, says",
    [
        (_truncate_db, "cannot be opened"),
        (_garble_db, "cannot be opened"),
        (_empty_db, "is missing from Chroma"),
        (
            _other_model,
            "was built with other settings: embedding_model 'sentence-transformers/paraphrase-MiniLM-L3-v2'",
        ),
    ],
    ids=["truncated-db", "garbled-db", "emptied-db", "other-model"],
)
@pytest.mark.slow  # a `qa index rebuild` process per damage
def test_a_damaged_store_is_explained_and_qa_index_rebuild_recovers(tmp_path, article_settings, damage, says):
    seeds, data = article_settings.seeds_dir, tmp_path / "data"
    shutil.copytree(article_settings.data_dir, data)
    settings = article_settings.with_overrides(data_dir=data)
    damage(settings.store_path)

    found = run_qa(["search", "--mode", "bm25", "--json", QUESTION], seeds, data)
    assert found.returncode == 1
    error = json.loads(found.stdout)["error"]
    assert says in error and "run `qa index rebuild`" in error
    assert_no_traceback(found.stdout, found.stderr)

    fixed = run_qa(["index", "rebuild", "--json"], seeds, data)
    assert fixed.returncode == 0, fixed.stderr
    assert_no_traceback(fixed.stdout, fixed.stderr)
    assert json.loads(fixed.stdout)["chunks"] == len(open_index(settings).chunks)
    from qa.service import QAService

    assert _co_chairs_named(QAService(settings).ask(QUESTION))


def test_deleted_vector_files_are_noticed_and_rebuild_recovers(tmp_path):
    """Chroma compacts its log into the vector segment at 1,000 vectors; after that, a deleted segment folder used
    to leave dense search silently returning almost nothing. Opening the index now reads a vector to check.
    (Vectors from a deterministic fake: this tests the store, not the meaning of the vectors.)"""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for d in range(2):  # over 1,000 chunks of 300 characters
        (seeds / f"ledger-{d}.txt").write_text(
            f"Ledger {d}\n\n"
            + "\n\n".join(
                f"Entry {d}-{i}: crate {d * 100_000 + i} was logged on shelf {i % 11} of district {i % 37}. "
                f"Inspector {i} signed for crate {d * 100_000 + i} and found nothing unusual."
                for i in range(1100)
            )
        )
    fake = DeterministicFakeEmbedding(size=384)
    settings = Settings(_env_file=None, seeds_dir=seeds, data_dir=tmp_path / "built", chunk_size=300, chunk_overlap=50)
    assert build_index(settings, progress=False, embedder=fake).chunks >= 1000
    copy = settings.with_overrides(data_dir=tmp_path / "data")  # never opened by this process
    shutil.copytree(settings.data_dir, copy.data_dir)
    segments = [p for p in (copy.store_path / "chroma").iterdir() if p.is_dir()]
    assert len(segments) == 1
    shutil.rmtree(segments[0])

    with pytest.raises(IndexCorrupt, match=r"vectors of the index .* cannot be read.*run `qa index rebuild`"):
        open_index(copy, embedder=fake)
    build_index(copy, force=True, progress=False, embedder=fake)
    reader = open_index(copy, embedder=fake)
    for chunk in list(reader.chunks.values())[::250]:
        assert reader.dense(chunk.text, 1)[0][0].id == chunk.id


# --- the model file --------------------------------------------------------------------------------------------------
def _broken_model_settings(settings: Settings, tmp_path: Path, how: str, fallback: str) -> Settings:
    if how == "missing":
        return settings.with_overrides(llm="local", llm_fallback=fallback, llm_model_path=tmp_path / "gone.gguf")
    from qa.model_file import QWEN_05B

    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    with open(models / QWEN_05B.filename, "wb") as f:  # the right size, the wrong bytes (sparse: instant)
        f.truncate(QWEN_05B.size)
    return settings.with_overrides(
        llm="local", llm_fallback=fallback, data_dir=tmp_path / "data", store_dir=settings.store_path
    )


@pytest.mark.parametrize(
    "how, reason", [("missing", "which is not a file"), ("corrupt", "does not match the expected checksum")]
)
def test_a_missing_or_corrupt_model_file_is_explained_and_extractive_answers(tmp_path, article_settings, how, reason):
    from qa.service import QAService

    service = QAService(_broken_model_settings(article_settings, tmp_path, how, "extractive"))
    assert _co_chairs_named(service.ask(QUESTION))
    assert reason in service.llm_note and "extractive" in service.llm_note
    assert service.llm_name() == "extractive (no generative model)"

    strict = QAService(_broken_model_settings(article_settings, tmp_path / "strict", how, "none"))
    with pytest.raises(QAError, match=f"The answering model is not available: .*{reason}"):
        strict.ask(QUESTION)


@pytest.mark.slow  # a `qa ask` process
def test_the_cli_names_the_model_problem(tmp_path, article_settings):
    settings = _broken_model_settings(article_settings, tmp_path, "corrupt", "none")
    out = run_qa(
        ["ask", "--json", QUESTION],
        article_settings.seeds_dir,
        settings.data_dir,
        QA_STORE_DIR=str(article_settings.store_path),
        QA_LLM="local",
        QA_LLM_FALLBACK="none",
    )
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert "The answering model is not available" in error and "does not match the expected checksum" in error
    assert_no_traceback(out.stdout, out.stderr)
