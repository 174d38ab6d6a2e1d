"""In-process wake-ups for ``wait_for_events``: one notifier per database object, woken by
every append made through it, plus polling for other processes and database objects."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable

__all__ = ["Notifier", "wait_for_head", "wait_for_head_async"]


class Notifier:
    """Counts appends to one database in this process and wakes the threads waiting."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self._async: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def count(self) -> int:
        return self._count

    def notify(self) -> None:
        with self._cond:
            self._count += 1
            self._cond.notify_all()
            waiters = list(self._async)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # a loop already closed
                loop.call_soon_threadsafe(event.set)

    async def wait_async(self, seen: int, timeout: float) -> bool:
        """:meth:`wait` for a coroutine: awaits a wake-up without blocking the loop."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._cond:
            if self._count != seen:
                return True
            self._async.add(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
            return self._count != seen
        finally:
            with self._cond:
                self._async.discard(entry)

    def wait(self, seen: int, timeout: float) -> bool:
        """Block until an append after ``seen`` (a :attr:`count`) or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count != seen, timeout)


def wait_for_head(
    head: Callable[[], int], notifier: Notifier, after: int, timeout: float, poll: float
) -> bool:
    """True as soon as ``head() > after``, False after ``timeout`` seconds; re-reads the head
    on every in-process append and at least every ``poll`` seconds (other processes)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = notifier.count
        if head() > after:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        notifier.wait(seen, min(remaining, poll))


async def wait_for_head_async(
    head: Callable[[], Awaitable[int]], notifier: Notifier, after: int, timeout: float, poll: float
) -> bool:
    """:func:`wait_for_head` for a coroutine."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = notifier.count
        if await head() > after:
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await notifier.wait_async(seen, min(remaining, poll))
