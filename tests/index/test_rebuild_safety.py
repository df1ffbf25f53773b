"""A rebuild that is killed, raced or pointed at a Chroma server never leaves the user without an index."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from index import store
from index.build import build_index, build_lock
from index.reader import index_status, open_index
from index.settings import Settings
from index.types import IndexBusy, IndexMissing
from tests.servers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _extra_docs(seeds: Path, prefix: str, n: int) -> None:
    for i in range(n):
        (seeds / f"{prefix}-{i}.txt").write_text(
            f"{prefix} {i}\n\n"
            + "\n".join(
                f"Paragraph {j} of {prefix} {i}. The {prefix} board reviewed item {i * 10 + j} and approved it. "
                f"Members said the {prefix} item {j} needs more study before the next meeting."
                for j in range(4)
            )
        )


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_line(proc: subprocess.Popen, wanted: str, timeout: float = 180) -> list[str]:
    """Read the child's stdout until a line equals `wanted`; fail with its output if it exits or times out."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line == wanted:
            return seen
    proc.kill()
    pytest.fail(f"child never printed {wanted!r}; stdout={seen} stderr={proc.stderr.read()[-2000:]}")


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _settings_code(settings: Settings) -> str:
    return (
        f"Settings(_env_file=None, seeds_dir=Path({str(settings.seeds_dir)!r}), "
        f"data_dir=Path({str(settings.data_dir)!r}), embed_batch_size=4)"
    )


def _assert_queryable(settings: Settings, collection: str) -> None:
    reader = open_index(settings)
    assert reader.collection == collection
    assert "co-chaired by Deputy Prime Minister" in reader.dense("Who co-chaired the dialogue?", 1)[0][0].text
    assert "Khunjerab" in reader.bm25("Khunjerab Pass", 1)[0][0].text
    assert index_status(settings)["collection"] == collection


def test_second_build_is_refused_at_once_and_a_killed_holder_frees_the_lock(settings: Settings):
    holder = _spawn(f"""
        import time
        from pathlib import Path
        from index.build import build_lock
        with build_lock(Path({str(settings.store_path)!r})):
            print("held", flush=True)
            time.sleep(300)
    """)
    _wait_for_line(holder, "held", timeout=60)
    with pytest.raises(IndexBusy) as err:
        build_index(settings, progress=False)
    assert f"pid {holder.pid}" in str(err.value) and "running" in str(err.value)
    assert not (settings.store_path / store.POINTER).exists()  # refused before touching anything

    _kill(holder)
    report = build_index(settings, progress=False)
    assert report.chunks > 0


def test_lock_is_exclusive_within_a_process_too(tmp_path: Path):
    with build_lock(tmp_path):
        with pytest.raises(IndexBusy, match=f"pid {os.getpid()}"):
            with build_lock(tmp_path):
                pass
    with build_lock(tmp_path):  # released on exit
        pass


@pytest.mark.parametrize(
    "stage,moment",
    [
        ("embed", "mid"),  # vectors half computed, no new collection yet
        ("write", "start"),  # new collection created in Chroma, empty; its folder has no files yet
        ("write", "end"),  # vectors written; documents, BM25 and manifest not yet
        ("validate", "start"),  # new collection and files complete, not validated, pointer not switched
        ("switch", "end"),  # pointer switched, old collection not yet deleted
    ],
)
@pytest.mark.slow  # per stage, a build in a process that loads the embedder and is killed
def test_sigkill_mid_rebuild_leaves_a_whole_index_and_the_next_rebuild_succeeds(settings: Settings, stage, moment):
    _extra_docs(settings.seeds_dir, "old", 2)
    old = build_index(settings, progress=False)
    if stage == "embed":
        _extra_docs(settings.seeds_dir, "new", 3)  # something to embed, in several batches of 4
    child = _spawn(f"""
        import time
        from pathlib import Path
        from index.settings import Settings
        from index.build import build_index
        def pause_at(stage, done, total):
            print(stage, done, total, flush=True)
            hit = {{"mid": 0 < done < total, "start": done == 0, "end": done == total}}[{moment!r}]
            if stage == {stage!r} and hit:
                print("PAUSED", flush=True)
                time.sleep(300)
        build_index({_settings_code(settings)}, force=True, fresh=True, progress=False, on_progress=pause_at)
    """)
    _wait_for_line(child, "PAUSED")
    _kill(child)

    if stage == "switch":  # the new index is complete and live; the old one is a leftover
        live = store.read_pointer(settings.store_path)["collection"]
        assert live != old.collection
        _assert_queryable(settings, live)
    else:
        _assert_queryable(settings, old.collection)

    report = build_index(settings, force=True, fresh=True, progress=False)
    _assert_queryable(settings, report.collection)
    assert {c.name for c in store.chroma_client(settings).list_collections()} == {report.collection}
    assert [p.name for p in store.builds_dir(settings.store_path).iterdir()] == [report.collection]
    # the SIGKILLed holder did not leave the lock stuck, and unchanged documents were still reused
    assert report.reused >= old.chunks - 1


@pytest.fixture
def chroma_server(tmp_path: Path):
    port = free_port()
    log = open(tmp_path / "chroma.log", "w")
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "chroma"),
            "run",
            "--path",
            str(tmp_path / "server-data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma server did not start: {(tmp_path / 'chroma.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield port
    finally:
        stop_process(proc)
        log.close()


@pytest.mark.slow  # starts a Chroma server
def test_index_in_a_chroma_server(settings: Settings, chroma_server: int):
    remote = settings.with_overrides(chroma_host="127.0.0.1", chroma_port=chroma_server)
    first = build_index(remote, progress=False)
    assert index_status(remote)["chroma"] == f"http://127.0.0.1:{chroma_server}"
    _assert_queryable(remote, first.collection)
    assert not (remote.store_path / "chroma").exists()  # nothing embedded on disk: the vectors are on the server

    again = build_index(remote, force=True, fresh=True, progress=False)
    assert again.embedded == 0 and again.reused == again.chunks  # vectors copied server-side
    _assert_queryable(remote, again.collection)
    names = {c.name for c in store.chroma_client(remote).list_collections()}
    assert {n for n in names if store.is_build_collection(n)} == {again.collection, again.collection + ".files"}

    with pytest.raises(IndexMissing, match="qa index build"):
        open_index(settings)  # the same store folder without the server: only a cache, no index of its own
