"""Keep the index in step with the documents folder: a change to a document triggers an incremental rebuild.

Changes are debounced (a copy of 100 files, an editor's save dance) into one rebuild, rebuilds run one at a
time, and a change that arrives while one runs schedules exactly one more. Hidden files, temporary files and
editor swap or lock files are not documents and never trigger anything.

`Debounce` is the scheduling decision alone (no threads, no clock); `FolderWatcher` runs it in a thread, fed by
`watchfiles` (inotify on Linux), and calls the rebuild it is given: `index.build.build_index` for
`qa index watch`, `QAService.rebuild` in the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# Names that are never documents: partial downloads and copies, editor backups, swap and lock files.
_TEMP_SUFFIXES = ("~", ".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp", ".swo", ".swx", ".bak")


def ignored(path: str | Path, root: str | Path) -> bool:
    """True for paths whose change must not trigger a rebuild: hidden (any dot-named part, which covers
    `.upload-*` and `.~lock.*#`), temporary (`~`, `.tmp`, `.part`, `.swp`...), Emacs `#autosave#` files and
    Office `~$owner` files. Paths outside `root` are ignored too."""
    try:
        parts = Path(path).resolve().relative_to(Path(root).resolve()).parts
    except ValueError:
        return True
    if not parts:
        return False  # the folder itself (deleted or renamed)
    name = parts[-1].lower()
    return (
        any(part.startswith(".") for part in parts)
        or name.endswith(_TEMP_SUFFIXES)
        or (name.startswith("#") and name.endswith("#"))
        or name.startswith("~$")
    )


class Debounce:
    """When to rebuild. Call `changed(now)` for each relevant change; `wait(now)` says how long until a rebuild
    is due (0: now; None: nothing to do, or one is running); `started()` and `finished(now)` bracket a rebuild.

    A rebuild starts `delay` seconds after the last change. Changes during a rebuild make exactly one more,
    which starts when the rebuild ends (or `delay` after the last of those changes, whichever is later).
    """

    def __init__(self, delay: float):
        self.delay = delay
        self.pending = False  # a change not yet covered by a rebuild
        self.running = False
        self.due = 0.0  # when the pending rebuild may start

    def changed(self, now: float) -> None:
        self.pending = True
        self.due = now + self.delay

    def wait(self, now: float) -> float | None:
        if self.running or not self.pending:
            return None
        return max(0.0, self.due - now)

    def started(self) -> None:
        self.running, self.pending = True, False

    def finished(self, now: float) -> None:
        self.running = False

    def retry(self, now: float) -> None:
        """The rebuild could not run (another one held the index): try again after the delay."""
        self.running = False
        self.changed(now)


class FolderWatcher:
    """Watches `folder` and calls `rebuild()` (debounced, one at a time) after documents change.

    `rebuild` may raise: an exception of a type in `retry_on` (another rebuild holds the index) schedules a
    retry; any other is logged and shown in `status`. `on_done(result_or_exception)` is called after each
    rebuild (the CLI prints a summary). `start()` watches the folder in background threads; without it,
    `notify()` feeds changes by hand (tests).
    """

    def __init__(
        self,
        folder: str | Path,
        rebuild: Callable[[], object],
        *,
        debounce: float = 1.0,
        retry_on: tuple[type[BaseException], ...] = (),
        on_done: Callable[[object], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.folder = Path(folder)
        self._rebuild = rebuild
        self._retry_on = retry_on
        self._on_done = on_done
        self._clock = clock
        self._state = Debounce(debounce)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.rebuilds = 0  # rebuilds started
        self.changes = 0  # relevant changed paths seen
        self.last_error: str | None = None
        self._watching = False

    # --- feeding changes -----------------------------------------------------------------------------------
    def notify(self, paths: Iterable[str | Path] = ()) -> bool:
        """Report changed paths (none: "something changed"); True when any of them is relevant."""
        paths = list(paths)
        relevant = [p for p in paths if not ignored(p, self.folder)] if paths else [self.folder]
        if not relevant:
            return False
        with self._cond:
            self.changes += len(relevant)
            self._state.changed(self._clock())
            self._cond.notify_all()
        return True

    # --- running -----------------------------------------------------------------------------------------------
    def start(self, initial: bool = True, files: bool = True) -> "FolderWatcher":
        """Run in background threads. `initial` runs one rebuild first (for changes made while nothing watched);
        `files=False` schedules only what `notify()` reports (tests)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if initial:
            with self._cond:
                self._state.changed(self._clock() - self._state.delay)  # due at once
        self._watching = files
        self._threads = [threading.Thread(target=self._schedule, name="qa-watch-rebuild", daemon=True)]
        if files:
            self._threads.append(threading.Thread(target=self._watch, name="qa-watch-files", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching; a rebuild that is running finishes first (its build is atomic either way)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no rebuild is running or pending (True), or `timeout` seconds pass (False)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._state.running or self._state.pending:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _watch(self) -> None:
        import watchfiles

        root = str(self.folder)
        try:
            for changes in watchfiles.watch(
                root,
                watch_filter=lambda _change, path: not ignored(path, root),
                debounce=200,
                step=50,
                stop_event=self._stop,
                raise_interrupt=False,
            ):
                self.notify(path for _change, path in changes)
        except Exception as exc:  # noqa: BLE001 - the folder vanished, inotify limits...: say so, keep serving
            log.warning("stopped watching %s: %s", self.folder, exc)
            with self._cond:
                self.last_error = f"stopped watching the documents folder ({type(exc).__name__})"
        finally:
            self._watching = False
            with self._cond:
                self._cond.notify_all()

    def _schedule(self) -> None:
        while True:
            with self._cond:
                while not self._stop.is_set():
                    wait = self._state.wait(self._clock())
                    if wait == 0:
                        break
                    self._cond.wait(wait)
                if self._stop.is_set():
                    return
                self._state.started()
                self.rebuilds += 1
                self._cond.notify_all()
            self._run_once()

    def _run_once(self) -> None:
        outcome: object
        try:
            outcome = self._rebuild()
            error = None
        except self._retry_on as exc:
            with self._cond:
                self._state.retry(self._clock())
                self._cond.notify_all()
            log.info("rebuild postponed: %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - a failed rebuild leaves the previous index serving
            outcome, error = exc, str(exc).split("\n", 1)[0][:300]
            log.warning("rebuild after a change failed: %s", exc)
        with self._cond:
            self.last_error = error
            self._state.finished(self._clock())
            self._cond.notify_all()
        if self._on_done is not None:
            try:
                self._on_done(outcome)
            except Exception:  # noqa: BLE001 - reporting must not stop the watcher
                log.warning("watch report failed", exc_info=True)

    # --- status --------------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """One short line for a status bar (no paths: the page may be seen from another machine)."""
        with self._cond:
            running, pending, error = self._state.running, self._state.pending, self.last_error
        if running:
            return "Rebuilding the index after a change to the documents…"
        if pending:
            return "Documents changed: rebuilding shortly…"
        if error:
            return f"Watching the documents folder; the last rebuild failed: {error}"
        if len(self._threads) > 1 and not self._watching and not self._stop.is_set():
            return "Not watching the documents folder."
        return "Watching the documents folder for changes."


__all__ = ["Debounce", "FolderWatcher", "ignored"]
