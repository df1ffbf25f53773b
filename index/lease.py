"""One writer at a time on a Chroma server: a lease kept in the server itself, not in any machine's files.

The lease is a collection named `qa-writer-<generation>` whose metadata names its holder and when it expires.
Taking it means creating the next generation's collection: the server refuses to create a name that exists, so
of two writers racing for the same generation exactly one wins, on any number of machines. A lease that has
expired (its holder died or hung) may be taken the same way. The holder refreshes the expiry from a background
thread while it builds, and checks just before it switches the live pointer that the lease is still its own, so
a writer that stalled past its expiry and was overtaken gives up instead of switching. Expiry is compared to
each machine's own clock: keep the machines' clocks in step (NTP) to well under the lease length.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time

from index.types import IndexBusy

PREFIX = "qa-writer-"
_NAME = re.compile(re.escape(PREFIX) + r"(\d{1,12})")


def _leases(client) -> dict[int, object]:
    return {int(m.group(1)): c for c in client.list_collections() if (m := _NAME.fullmatch(c.name))}


class WriterLease:
    """Held from `acquire()` until `release()`; refreshed every third of its length in between."""

    def __init__(self, client, seconds: float, location: str):
        self._client = client
        self._seconds = max(1.0, float(seconds))
        self._location = location
        self.holder = f"pid {os.getpid()} on {socket.gethostname()}"
        self.generation: int | None = None
        self._collection = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _meta(self) -> dict:
        return {"holder": self.holder, "expires": time.time() + self._seconds}

    def acquire(self) -> "WriterLease":
        held = _leases(self._client)
        latest = max(held, default=0)
        if latest:
            meta = held[latest].metadata or {}
            left = float(meta.get("expires", 0)) - time.time()
            if left > 0:
                raise IndexBusy(
                    f"another index build ({meta.get('holder', 'unknown')}) holds the writer lease on "
                    f"{self._location} for {left:.0f} s more; wait for it to finish, then try again"
                )
        try:
            self._collection = self._client.create_collection(
                f"{PREFIX}{latest + 1}", metadata=self._meta(), embedding_function=None
            )
        except Exception as e:
            if "already exists" in str(e).lower():
                raise IndexBusy(
                    f"another index build took the writer lease on {self._location} just now; wait "
                    "for it to finish, then try again"
                ) from None
            raise
        self.generation = latest + 1
        for generation in held:  # expired or released leases of earlier writers
            try:
                self._client.delete_collection(f"{PREFIX}{generation}")
            except Exception:
                pass
        self._thread = threading.Thread(target=self._refresh, name="qa-writer-lease", daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                self._collection.modify(metadata=self._meta())
            except Exception:  # the server forgot it or another writer removed it after it expired
                self.lost = True
                return

    def check(self) -> None:
        """Raise IndexBusy unless this lease is still the newest and unexpired (call before switching)."""
        held = _leases(self._client)
        mine = held.get(self.generation)
        expires = float((mine.metadata or {}).get("expires", 0)) if mine is not None else 0.0
        if self.lost or mine is None or max(held) != self.generation or expires <= time.time():
            raise IndexBusy(
                f"this build lost its writer lease on {self._location} (it stalled past the lease "
                "and another writer may have taken over); nothing was switched; run it again"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.generation is not None:
            try:  # expire it now rather than deleting: the generation counter stays where it is
                self._collection.modify(metadata={"holder": self.holder, "expires": 0.0})
            except Exception:
                pass

    def __enter__(self) -> "WriterLease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["PREFIX", "WriterLease"]
