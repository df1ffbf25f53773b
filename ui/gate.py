"""One limit on concurrent answers, shared by the page (Gradio worker threads) and the HTTP API (the event
loop): at most `limit` answers run at once, whoever asks, first come first served.

Threads wait on an Event; coroutines wait on a Future, so a waiting API request holds no thread. An API request
whose client goes away while its answer runs stops that answer (`until_gone`), so the slot is free again at the
model's next token, not after seconds of work nobody will read.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from contextlib import asynccontextmanager, contextmanager

import anyio
from starlette.requests import Request


class AnswerGate:
    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._lock = threading.Lock()
        self._free = self.limit
        self._waiters: deque = deque()  # threading.Event | (asyncio.Future, loop), oldest first

    # --- threads -----------------------------------------------------------------------------------------------
    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            event = threading.Event()
            self._waiters.append(event)
        event.wait()

    @contextmanager
    def hold(self):
        self.acquire()
        try:
            yield
        finally:
            self.release()

    # --- coroutines --------------------------------------------------------------------------------------------
    async def acquire_async(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            entry = (loop.create_future(), loop)
            self._waiters.append(entry)
        try:
            await entry[0]
        except BaseException:  # cancelled (the client went away): give back a slot handed over meanwhile
            with self._lock:
                try:
                    self._waiters.remove(entry)
                    granted = False
                except ValueError:
                    granted = True
            if granted:
                self.release()
            raise

    @asynccontextmanager
    async def slot(self):
        await self.acquire_async()
        try:
            yield
        finally:
            self.release()

    # --- both ----------------------------------------------------------------------------------------------------
    def release(self) -> None:
        """Hand the slot to the oldest waiter, or free it."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if isinstance(waiter, threading.Event):
                    waiter.set()
                    return
                future, loop = waiter
                if loop.is_closed():
                    continue
                loop.call_soon_threadsafe(_wake, future)  # a cancelled waiter releases it itself
                return
            self._free = min(self.limit, self._free + 1)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    @property
    def free(self) -> int:
        with self._lock:
            return self._free


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def until_gone(request: Request, stop: threading.Event, fn, *args):
    """fn(*args) in a worker thread, the event loop meanwhile checking that the client is still there: once it
    has gone, `stop` is set, so the answer ends at the model's next token or the next step (Stopped is raised)
    instead of holding its slot for seconds of translation nobody will read."""
    result, error = None, None
    async with anyio.create_task_group() as watch:

        async def check() -> None:
            while not stop.is_set():
                if await request.is_disconnected():
                    stop.set()
                    return
                await anyio.sleep(DISCONNECT_POLL_S)

        watch.start_soon(check)
        try:
            result = await anyio.to_thread.run_sync(fn, *args)
        except Exception as exc:  # raised after the task group, as itself (not in an exception group)
            error = exc
        finally:
            watch.cancel_scope.cancel()
    if error is not None:
        raise error
    return result


DISCONNECT_POLL_S = 0.2


__all__ = ["DISCONNECT_POLL_S", "AnswerGate", "until_gone"]
