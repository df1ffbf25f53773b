"""Watched folder: how soon a saved or deleted document reaches the answers, and how many rebuilds a bulk copy makes.

    python -m bench watch [--json] [--files 100] [--debounce 1.0]

The server's path, in one process: a `QAService` (extractive backend: generation is not what is measured) whose
`rebuild(force=False)` is called by an `index.watch.FolderWatcher` on the real folder (inotify through
watchfiles), with the real embedder and an embedded Chroma store in a temp folder holding the seed article.

- add: a new 5 KB text file is written; the clock runs until `service.ask()` about a fact only it holds cites it
  (polled every 0.1 s).
- delete: the file is removed; the clock runs until no passage of the same question comes from it.
- bulk: `--files` 1 KB text files are copied in one after another; after the watcher is idle, the rebuilds it
  ran are counted, and the time until all of them are indexed is recorded.
Targets (issue 15): add and delete within 10 s, a bulk copy of 100 files in at most 2 rebuilds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.common import article_seeds, isolated, log, main_for
from index.settings import Settings

TARGETS = {"add_s": 10.0, "delete_s": 10.0, "bulk_rebuilds": 2}
FACT = "The Hunza valley weather station recorded 1,873 millimetres of snow in the winter of 2019."
QUESTION = "How much snow did the Hunza valley weather station record in the winter of 2019?"
FILLER = (
    "The station sits above the village on a ridge facing the river, and its instruments are read every "
    "morning by a volunteer from the school. Records go back several decades and are shared with the "
    "provincial department, which publishes a summary every spring. "
)


def five_kb_note() -> str:
    """About 5 KB of prose with one fact no other document holds."""
    paras = ["Hunza weather notes", FACT]
    while sum(len(p) + 2 for p in paras) < 5000:
        paras.append(FILLER.strip())
    return "\n\n".join(paras) + "\n"


def bulk_files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        text = (
            f"Field report {i}\n\nOn day {i} of the survey, team {i % 7} measured a flow of {100 + i} cubic "
            f"metres per second at gauge {i}. " + FILLER * 4
        )
        path = folder / f"report-{i:03d}.txt"
        path.write_text(text)
        files.append(path)
    return files


def _sources(service) -> set[str]:
    try:
        answer = service.ask(QUESTION)
    except Exception:  # noqa: BLE001 - the index is being switched: ask again
        return set()
    return {c.source for c in answer.citations} | {p.source for p in answer.passages}


def _until(predicate, limit: float, step: float = 0.1) -> float | None:
    """Seconds until predicate() is true, or None if it stays false for `limit` seconds."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if predicate():
            return time.perf_counter() - started
        time.sleep(step)
    return None


def run(settings: Settings, args) -> dict:
    from index.build import build_index
    from index.types import IndexBusy
    from index.watch import FolderWatcher
    from qa.service import QAService

    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        root = Path(tmp)
        seeds = article_seeds(root / "seeds")
        s = isolated(settings, root, seeds, llm="extractive", watch_debounce_seconds=args.debounce)
        service = QAService(s)
        build_index(s, progress=False, embedder=service.embedder())
        service.ask(QUESTION)  # models and index loaded before anything is timed
        watcher = FolderWatcher(
            seeds, lambda: service.rebuild(force=False), debounce=s.watch_debounce_seconds, retry_on=(IndexBusy,)
        ).start(initial=False)
        try:
            time.sleep(1.0)  # inotify watches in place
            note = seeds / "hunza-weather.txt"
            text = five_kb_note()
            log(f"add: writing {note.name} ({len(text.encode())} bytes)")
            before = watcher.rebuilds
            note.write_text(text)
            add_s = _until(lambda: note.name in _sources(service), 120)
            watcher.wait_idle(120)
            add_rebuilds = watcher.rebuilds - before

            log("delete")
            before = watcher.rebuilds
            note.unlink()
            delete_s = _until(lambda: note.name not in _sources(service), 120)
            watcher.wait_idle(120)
            delete_rebuilds = watcher.rebuilds - before

            staged = bulk_files(root / "staged", args.files)
            log(f"bulk: copying {len(staged)} files")
            before = watcher.rebuilds
            started = time.perf_counter()
            for path in staged:
                shutil.copy(path, seeds / path.name)
            copy_s = time.perf_counter() - started
            expected = 1 + len(staged)
            bulk_s = _until(lambda: _documents(service) == expected, 600, step=0.25)
            watcher.wait_idle(600)
            bulk_rebuilds = watcher.rebuilds - before
        finally:
            watcher.stop(600)
    return {
        "debounce_s": args.debounce,
        "note_bytes": len(text.encode()),
        "add_s": add_s,
        "add_rebuilds": add_rebuilds,
        "delete_s": delete_s,
        "delete_rebuilds": delete_rebuilds,
        "bulk_files": len(staged),
        "bulk_copy_s": copy_s,
        "bulk_indexed_s": bulk_s,
        "bulk_rebuilds": bulk_rebuilds,
        "targets": TARGETS,
        "met": {
            "add_s": add_s is not None and add_s <= TARGETS["add_s"],
            "delete_s": delete_s is not None and delete_s <= TARGETS["delete_s"],
            "bulk_rebuilds": bulk_rebuilds <= TARGETS["bulk_rebuilds"],
        },
    }


def _documents(service) -> int:
    try:
        return int(service.status().get("documents") or 0)
    except Exception:  # noqa: BLE001
        return 0


def _fmt(value) -> str:
    return "not reached" if value is None else f"{value:.2f} s"


def render(result: dict, console) -> None:
    met = result["met"]
    console.print(f"Watched folder (debounce {result['debounce_s']} s, extractive answers, real embedder and Chroma)")
    console.print(
        f"  new {result['note_bytes']:,}-byte file cited after {_fmt(result['add_s'])} "
        f"({result['add_rebuilds']} rebuild) — target ≤ {TARGETS['add_s']:.0f} s: "
        f"{'met' if met['add_s'] else 'NOT met'}"
    )
    console.print(
        f"  deleted file gone from answers after {_fmt(result['delete_s'])} "
        f"({result['delete_rebuilds']} rebuild) — target ≤ {TARGETS['delete_s']:.0f} s: "
        f"{'met' if met['delete_s'] else 'NOT met'}"
    )
    console.print(
        f"  {result['bulk_files']} files copied in {result['bulk_copy_s']:.2f} s: "
        f"{result['bulk_rebuilds']} rebuild(s), all indexed after {_fmt(result['bulk_indexed_s'])} — "
        f"target ≤ {TARGETS['bulk_rebuilds']} rebuilds: {'met' if met['bulk_rebuilds'] else 'NOT met'}"
    )


def add_args(parser) -> None:
    parser.add_argument("--files", type=int, default=100, help="files in the bulk copy")
    parser.add_argument("--debounce", type=float, default=1.0, help="QA_WATCH_DEBOUNCE_SECONDS for the run")


def main(argv: list[str] | None = None) -> int:
    return main_for("watch", __doc__, add_args, run, render, argv)


__all__ = ["main", "run"]
