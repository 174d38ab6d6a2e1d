"""In-process wake-ups for ``wait_for_events``: one notifier per database object, woken by
every append made through it, plus polling for other processes and database objects."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Notifier", "wait_for_head"]


class Notifier:
    """Counts appends to one database in this process and wakes the threads waiting."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def notify(self) -> None:
        with self._cond:
            self._count += 1
            self._cond.notify_all()

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
