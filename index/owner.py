"""One process at a time owns an embedded store: a running `qa serve`, a `qa index build/rebuild`, or a command
that reads it (`qa ask`, `qa search`, `qa chat`, `qa eval`): Chroma's embedded client writes to its files even
when it only reads (measured: chroma.sqlite3 and the vector segment change on every open).

Chroma's embedded database is not safe for two processes writing one folder: a rebuild from a second process
while the server runs would change files under the server's open Chroma and could corrupt or silently
desynchronise the store. So each entry point that writes the store claims it first, with an exclusive flock on
`<store>/owner.lock` held until the process exits. The kernel drops the lock when its holder dies, even by
SIGKILL, so a crashed server never blocks the next start. A store in a Chroma server (QA_CHROMA_HOST) is safe
to share and is not claimed. Rebuilds inside the serving process (the page's button) go through its own
rebuild lock instead.

The claiming process also makes the data folder private: the folders become user-only (0700) and the process
umask 077, so everything it writes there (Chroma's files, the index, the feedback log) is user-only (0600).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Literal

from index.settings import Settings
from index.types import IndexBusy

OWNER_LOCK = "owner.lock"
Role = Literal["serve", "build", "read", "watch"]

_held: dict[Path, tuple[int, str]] = {}  # store folder -> (fd of the held lock, role), for this process
_held_lock = threading.Lock()


# Why a claim is refused and what to do, by (claiming role, holder's role); the first row that matches wins,
# None matching any role. Fields: {store}, {pid}, {holder_role}.
_REFUSALS: tuple[tuple[str | None, str | None, str], ...] = (
    (
        "read",
        "watch",
        "the index in {store} is kept in step by a running `qa index watch` (pid {pid}): stop it to "
        "run this command, or serve the folder with `qa serve`, which watches it and answers",
    ),
    (
        "read",
        "serve",
        "the index in {store} is in use by a running `qa serve` (pid {pid}): ask through the page "
        "or its /ask API, or stop the server and run this command again",
    ),
    (
        "read",
        None,
        "the index in {store} is in use by another `qa` command (pid {pid}, {holder_role}); wait for "
        "it to finish, then try again",
    ),
    (
        None,
        "read",
        "the index in {store} is in use by a `qa ask/search/chat/eval` command (pid {pid}); wait for "
        "it to finish or stop it, then try again",
    ),
    (
        "build",
        "serve",
        "the index in {store} is in use by a running `qa serve` (pid {pid}): rebuild it with the "
        'page\'s "Rebuild index" button, or stop the server and run this command again',
    ),
    (
        None,
        "serve",
        "another `qa serve` (pid {pid}) is already serving the index in {store}; stop it first, or "
        "serve another data folder (QA_DATA_DIR)",
    ),
    (
        "serve",
        None,
        "a `qa index build` (pid {pid}) is writing the index in {store}; wait for it to finish, then "
        "start the server again",
    ),
    (
        None,
        None,
        "another `qa index build` (pid {pid}) is writing the index in {store}; wait for it to finish, then try again",
    ),
)


def _refusal(role: Role, holder_role: str, pid: str, store: Path) -> str:
    text = next(
        text for claimer, holder, text in _REFUSALS if claimer in (None, role) and holder in (None, holder_role)
    )
    return text.format(store=store, pid=pid, holder_role=holder_role)


def make_private(settings: Settings, role: Role) -> None:
    """Set umask 077 and create the folders this process writes user-only (tightening them when they are ours):
    the store, and the data folder when serving (feedback, models) or when the store lies inside it."""
    os.umask(0o077)
    store, data = Path(settings.store_path).resolve(), Path(settings.data_dir).resolve()
    for folder in ([data] if role == "serve" or data in store.parents else []) + [store]:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(folder, 0o700)


def claim_store(settings: Settings, role: Role) -> None:
    """Own the embedded store until this process exits, or raise IndexBusy saying who holds it and what to do.

    Claiming again from the process that holds the store is a no-op. Also makes the data folder private.
    """
    make_private(settings, role)
    if settings.chroma_host:
        return
    store = Path(settings.store_path).resolve()
    with _held_lock:
        if store in _held:
            return
        fd = os.open(store / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").split() + ["unknown", "unknown"]
            os.close(fd)
            raise IndexBusy(_refusal(role, holder[0], holder[1], store)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{role} {os.getpid()}\n".encode(), 0)
        _held[store] = (fd, role)


def store_owner(settings: Settings) -> tuple[str, int] | None:
    """(role, pid) of the process that owns the store now, or None when no live process does."""
    path = Path(settings.store_path) / OWNER_LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        role, _, pid = os.pread(fd, 64, 0).decode("ascii", "replace").strip().partition(" ")
        return role, int(pid) if pid.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


__all__ = ["OWNER_LOCK", "claim_store", "make_private", "store_owner"]
