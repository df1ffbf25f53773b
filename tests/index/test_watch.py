"""The watched folder: which changes count, the debounce and one-at-a-time scheduling (logic, explicit time),
and `qa index watch` end to end (real files, real embedder, real Chroma in a temp dir, `qa search --json`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from index.watch import Debounce, FolderWatcher, ignored

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name, skip",
    [
        ("report.pdf", False),
        ("notes/2024/minutes.txt", False),
        ("Manual.docx", False),
        (".hidden.txt", True),
        (".git/index", True),
        ("notes/.DS_Store", True),
        (".upload-x1y2.part", True),
        ("draft.txt~", True),
        ("draft.tmp", True),
        ("movie.part", True),
        ("download.crdownload", True),
        (".draft.txt.swp", True),
        ("draft.txt.swp", True),
        ("#draft.txt#", True),
        ("~$Manual.docx", True),
        (".~lock.Manual.docx#", True),
    ],
)
def test_hidden_temporary_and_swap_files_are_ignored(tmp_path: Path, name: str, skip: bool):
    assert ignored(tmp_path / name, tmp_path) is skip
    assert ignored(tmp_path.parent / "elsewhere.txt", tmp_path)  # outside the folder


def test_debounce_waits_for_quiet_and_a_change_during_a_rebuild_makes_exactly_one_more():
    d = Debounce(1.0)
    assert d.wait(0.0) is None
    for t in (0.0, 0.3, 0.6):  # a burst: the rebuild is due a second after its last change
        d.changed(t)
    assert d.wait(0.7) == pytest.approx(0.9) and d.wait(1.6) == 0
    d.started()
    assert d.wait(1.7) is None
    for t in (2.0, 2.1, 2.2):  # three changes while it runs ...
        d.changed(t)
    assert d.wait(2.5) is None  # ... never start a second rebuild beside it
    d.finished(5.0)
    assert d.wait(5.0) == 0  # ... and make exactly one more, at once when their quiet time has passed
    d.started()
    d.finished(6.0)
    assert d.wait(6.0) is None
    d.changed(7.0)
    d.started()
    d.retry(7.5)  # another rebuild held the index: try again after the delay
    assert d.wait(7.6) == pytest.approx(0.9)


class GatedRebuild:
    """A rebuild that blocks until released, counting calls and checking they never overlap."""

    def __init__(self):
        self.calls = 0
        self.active = 0
        self.overlapped = False
        self.entered = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def __call__(self):
        self.active += 1
        self.overlapped |= self.active > 1
        self.calls += 1
        self.entered.release()
        self.release.acquire()
        self.active -= 1
        return "report"


def test_watcher_runs_one_rebuild_for_a_burst_and_one_more_for_changes_during_it(tmp_path: Path):
    rebuild = GatedRebuild()
    done = []
    w = FolderWatcher(tmp_path, rebuild, debounce=0.05, on_done=done.append)
    w.start(initial=False, files=False)  # the scheduler only; changes come by hand
    try:
        assert not w.notify([tmp_path / ".tmpfile", tmp_path / "a.txt~"])  # ignored: nothing scheduled
        assert w.notify([tmp_path / f"doc{i}.txt" for i in range(100)])
        assert rebuild.entered.acquire(timeout=30)
        assert "Rebuilding" in w.status
        for i in range(5):  # changes while it runs
            w.notify([tmp_path / f"late{i}.txt"])
        rebuild.release.release()
        assert rebuild.entered.acquire(timeout=30)  # exactly one more ...
        rebuild.release.release()
        assert w.wait_idle(30)
        assert not rebuild.entered.acquire(timeout=0.3)  # ... and no third
        assert rebuild.calls == 2 and not rebuild.overlapped and done == ["report", "report"]
        assert w.status == "Watching the documents folder for changes."
    finally:
        rebuild.release.release()
        w.stop(5)


def test_a_busy_index_is_retried_and_a_failure_is_shown(tmp_path: Path):
    class Busy(Exception):
        pass

    outcomes = iter([Busy("another rebuild runs"), RuntimeError("disk full"), "ok"])

    def rebuild():
        item = next(outcomes)
        if isinstance(item, Exception):
            raise item
        return item

    w = FolderWatcher(tmp_path, rebuild, debounce=0.01, retry_on=(Busy,))
    w.start(initial=False, files=False)
    try:
        w.notify()
        assert w.wait_idle(30)
        assert w.rebuilds == 2 and "the last rebuild failed: disk full" in w.status  # the busy one was retried
        w.notify()
        assert w.wait_idle(30) and w.rebuilds == 3 and "failed" not in w.status
    finally:
        w.stop(5)


# --- end to end ---------------------------------------------------------------------------------------------
def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _qa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600
    )


def _documents(store: Path) -> int:
    r = _qa("index", "status", "--json", "--store", str(store))
    return int(json.loads(r.stdout).get("documents") or 0) if r.returncode == 0 else 0


def _wait_documents(store: Path, n: int, proc: subprocess.Popen, limit: float = 300) -> None:
    end = time.monotonic() + limit
    while _documents(store) != n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"the index never reached {n} documents"
        time.sleep(0.5)


def _sources(store: Path, seeds: Path, query: str) -> list[str]:
    r = _qa("search", query, "--json", "--k", "5", "--seeds", str(seeds), "--store", str(store))
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert all("page" in item for item in results)
    return [item["source"] for item in results]


def _watch(store: Path, seeds: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ui.cli",
            "index",
            "watch",
            "--seeds",
            str(seeds),
            "--store",
            str(store),
            "--debounce",
            "0.3",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, errs = proc.communicate(timeout=120)
    return out + errs


@pytest.mark.slow
def test_qa_index_watch_indexes_a_new_file_and_forgets_a_deleted_one(tmp_path: Path, seeds_dir: Path):
    """The watcher owns the store while it runs (opening the embedded store writes to it), like `qa serve`:
    `qa search` reads it between watcher runs."""
    store = tmp_path / "store"
    question = "How far did the Baltoro glacier retreat?"
    proc = _watch(store, seeds_dir)
    try:
        _wait_documents(store, 1, proc)  # the first rebuild indexes what is already there
        (seeds_dir / ".draft.swp").write_text("swap file: never indexed")
        note = seeds_dir / "glacier-note.txt"
        note.write_text("Glacier survey\n\nThe Baltoro glacier retreated 42 metres in the survey year.\n")
        _wait_documents(store, 2, proc)
        refused = _qa("search", question, "--json", "--seeds", str(seeds_dir), "--store", str(store))
        assert refused.returncode != 0 and "watch" in refused.stdout + refused.stderr  # says who holds it
    finally:
        first = _stop(proc)
    assert "glacier-note.txt" in _sources(store, seeds_dir, question)
    proc = _watch(store, seeds_dir)
    try:
        note.unlink()
        _wait_documents(store, 1, proc)
    finally:
        second = _stop(proc)
    assert "glacier-note.txt" not in _sources(store, seeds_dir, question)
    assert "Indexed 2 documents" in first and "1 documents removed" in second, (first, second)
    assert ".draft.swp" not in first + second
