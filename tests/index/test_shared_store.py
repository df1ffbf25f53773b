"""More than one machine: a real Chroma server holds the whole index; writers take a lease kept in the server;
readers with empty local store folders (stand-ins for other machines) serve the same index and follow a switch."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from index import store
from index.build import build_index
from index.lease import PREFIX, WriterLease
from index.reader import index_status, open_index
from index.settings import Settings
from index.types import IndexBusy
from tests.conftest import SEED
from tests.index import test_rebuild_safety as safety
from tests.index.test_rebuild_safety import _extra_docs, _kill, _spawn, _wait_for_line
from tests.reliability.qa_cli import assert_no_traceback, run_qa
from tests.servers import start_server, stop_process

BRIDGE_DOC = (
    "Zanskar Bridge Notes\n\n"
    "The Zanskar suspension bridge was opened in 1987 by the engineer Farida Qureshi.\n"
    "It spans the river near Padum and carries one lane of traffic.\n"
)
pytestmark = pytest.mark.slow  # every test here talks to a real `chroma run` server; one starts page servers
chroma_server = safety.chroma_server  # the fixture: a real `chroma run` on a free port
QUERIES = "Who co-chaired the dialogue?\nWhich highway will see smooth passage?\nKhunjerab Pass\n"


def _remote(settings: Settings, port: int, **values) -> Settings:
    return settings.with_overrides(chroma_host="127.0.0.1", chroma_port=port, **values)


def _citations(out: dict) -> list[tuple]:
    return [(c["source"], c["chunk_id"], c["start"], c["end"]) for c in out["citations"]]


def test_replicas_on_empty_folders_serve_one_index_and_follow_the_writers_switch(tmp_path: Path, chroma_server: int):
    host = {"QA_CHROMA_HOST": "127.0.0.1", "QA_CHROMA_PORT": str(chroma_server)}
    seeds, writer = tmp_path / "seeds", tmp_path / "writer"
    seeds.mkdir()
    shutil.copy(SEED, seeds / SEED.name)
    built = run_qa(["index", "build", "--json"], seeds, writer, **host)
    assert built.returncode == 0, built.stderr
    first = json.loads(built.stdout)["collection"]

    # two readers on other, empty folders (as on other machines) give the same results as each other
    nothing = tmp_path / "no-seeds"
    a = run_qa(["search", "--json", "-", "--k", "4"], nothing, tmp_path / "reader-a", stdin=QUERIES, **host)
    b = run_qa(["search", "--json", "-", "--k", "4"], nothing, tmp_path / "reader-b", stdin=QUERIES, **host)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert_no_traceback(a.stdout, a.stderr)
    assert a.stdout == b.stdout
    lines = [json.loads(line) for line in a.stdout.splitlines()]
    assert len(lines) == 3 and "co-chaired by" in lines[0]["results"][0]["text"]
    assert "Khunjerab" in lines[2]["results"][0]["text"]
    for reader in ("reader-a", "reader-b"):  # a cache of the live collection, and no pointer of their own
        local = tmp_path / reader / "store"
        assert not (local / store.POINTER).exists() and (local / "builds" / first / store.MANIFEST).exists()
        assert not (local / "chroma").exists()

    replicas = []
    try:
        for name in ("replica-a", "replica-b"):
            replicas.append(start_server(tmp_path / name, name, QA_LLM="extractive", **host))
        clients = [server.client() for server, _ in replicas]
        answers = [c.predict("Who co-chaired the dialogue?", None, api_name="/ask") for c in clients]
        assert _citations(answers[0]) == _citations(answers[1]) and answers[0]["citations"]
        assert answers[0]["answer"] == answers[1]["answer"]

        # the writer adds a document and rebuilds while both serve; both switch to the new collection
        (seeds / "zanskar.txt").write_text(BRIDGE_DOC, encoding="utf-8")
        rebuilt = run_qa(["index", "rebuild", "--json"], seeds, writer, **host)
        assert rebuilt.returncode == 0, rebuilt.stderr
        switched = time.monotonic()
        assert json.loads(rebuilt.stdout)["collection"] != first
        seen = []
        for client in clients:
            while True:
                out = client.predict("Who opened the Zanskar suspension bridge?", None, api_name="/ask")
                if {c["source"] for c in out["citations"]} == {"zanskar.txt"}:
                    seen.append(out)
                    break
                assert time.monotonic() - switched < 30, out
                time.sleep(0.2)
        assert "Farida Qureshi" in seen[0]["answer"] and _citations(seen[0]) == _citations(seen[1])
    finally:
        for _server, proc in replicas:
            stop_process(proc)


def test_one_writer_at_a_time_through_the_server_and_a_killed_writer_changes_nothing(
    settings: Settings, chroma_server: int
):
    remote = _remote(settings, chroma_server, chroma_lease_seconds=4.0)
    old = build_index(remote, progress=False)
    _extra_docs(settings.seeds_dir, "new", 3)  # something to embed, so the writer is still running when killed
    elsewhere = remote.with_overrides(data_dir=settings.data_dir.parent / "elsewhere")  # another machine's folder
    child = _spawn(f"""
        import time
        from pathlib import Path
        from index.settings import Settings
        from index.build import build_index
        def pause_at(stage, done, total):
            if stage == "embed" and 0 < done < total:
                print("PAUSED", flush=True)
                time.sleep(300)
        build_index(Settings(_env_file=None, seeds_dir=Path({str(settings.seeds_dir)!r}),
                             data_dir=Path({str(settings.data_dir)!r}), embed_batch_size=4, chroma_host="127.0.0.1",
                             chroma_port={chroma_server}, chroma_lease_seconds=4.0),
                    force=True, progress=False, on_progress=pause_at)
    """)
    _wait_for_line(child, "PAUSED")
    time.sleep(5)  # longer than the lease: it is refreshed while the writer runs
    with pytest.raises(IndexBusy, match="holds the writer lease") as err:
        build_index(elsewhere, force=True, progress=False)
    assert f"pid {child.pid} on " in str(err.value)

    _kill(child)
    reader = open_index(elsewhere)
    assert reader.collection == old.collection == index_status(elsewhere)["collection"]
    assert not any(c.source.startswith("new-") for c in reader.chunks.values())
    assert "co-chaired by" in reader.dense("Who co-chaired the dialogue?", 1)[0][0].text

    deadline = time.monotonic() + 30
    while True:  # the dead writer's lease runs out
        try:
            report = build_index(elsewhere, force=True, progress=False)
            break
        except IndexBusy:
            assert time.monotonic() < deadline, "the lease of a killed writer never expired"
            time.sleep(0.5)
    assert report.collection != old.collection and report.documents == 4
    names = {c.name for c in store.chroma_client(remote).list_collections()}
    assert {n for n in names if store.is_build_collection(n)} == {report.collection, report.collection + ".files"}
    assert len([n for n in names if n.startswith(PREFIX)]) == 1


def test_lease_is_refused_while_held_and_taken_once_expired(settings: Settings, chroma_server: int):
    client = store.chroma_client(_remote(settings, chroma_server))
    with WriterLease(client, 2.0, "here") as held:
        with pytest.raises(IndexBusy, match="holds the writer lease"):
            WriterLease(client, 2.0, "here").acquire()
        time.sleep(3)  # refreshed meanwhile
        held.check()
        with pytest.raises(IndexBusy):
            WriterLease(client, 2.0, "here").acquire()
    taker = WriterLease(client, 2.0, "here").acquire()  # released: free at once
    taker._stop.set()  # simulate a writer that hangs: no more refreshes
    time.sleep(2.5)
    overtaker = WriterLease(client, 2.0, "here").acquire()
    with pytest.raises(IndexBusy, match="lost its writer lease"):
        taker.check()  # the hung writer must not switch
    overtaker.check()
    overtaker.release()


def test_a_reader_notices_the_switch_within_the_check_interval(settings: Settings, chroma_server: int):
    remote = _remote(settings, chroma_server, pointer_check_seconds=1.0)
    build_index(remote, progress=False)
    reader = open_index(remote.with_overrides(data_dir=settings.data_dir.parent / "replica"))
    assert reader.is_current()
    (settings.seeds_dir / "zanskar.txt").write_text(BRIDGE_DOC, encoding="utf-8")
    report = build_index(remote, progress=False)
    deadline = time.monotonic() + 5  # the target: a replica sees the switch within seconds
    while reader.is_current():
        assert time.monotonic() < deadline, "the reader did not notice the switch within 5 s"
        time.sleep(0.2)
    fresh = open_index(remote.with_overrides(data_dir=settings.data_dir.parent / "replica"))
    assert fresh.collection == report.collection
    assert fresh.bm25("Zanskar bridge", 1)[0][0].source == "zanskar.txt"
    # the replica's copy of the old collection is gone; its copy of the new one is there
    assert [p.name for p in (settings.data_dir.parent / "replica" / "store" / "builds").iterdir()] == [
        report.collection
    ]
