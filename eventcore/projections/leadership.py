"""Leadership: at most one instance runs a given projection at a time.

The runner calls ``acquire(name)`` before it starts (non-blocking: False means another
instance holds it) and ``release(name)`` when it ends. Backends:

- :class:`InProcessLeadership` — runners in one process that share the object;
- :class:`~eventcore.projections.SqliteLeadership` — across processes on one machine, with an
  OS file lock next to the database, released when the holder closes it or dies;
- :class:`~eventcore.stores.postgres.PostgresLeadership` — across machines, with a
  PostgreSQL session advisory lock on a dedicated connection, released when that
  connection closes or dies.

>>> leadership = InProcessLeadership()
>>> leadership.acquire("orders"), leadership.acquire("orders"), leadership.acquire("stock")
(True, False, True)
>>> leadership.release("orders"); leadership.acquire("orders")
True
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from eventcore.projections.checkpoints import check_name

__all__ = ["InProcessLeadership", "Leadership"]


@runtime_checkable
class Leadership(Protocol):
    """Mutual exclusion per projection name. Not re-entrant: a second ``acquire`` of a
    name already held (even by the same object) returns False.

    Optional: ``holds(name) -> bool``, whether this object still holds ``name``; the runner
    calls it before each page when present and stops if the leadership was lost. Optional:
    ``holder(name) -> str | None``, a description of the holder for error messages.
    """

    def acquire(self, name: str) -> bool:
        """Take the leadership of ``name`` if it is free; True if taken, False if held."""
        ...

    def release(self, name: str) -> None:
        """Give up the leadership of ``name`` (nothing happens if it is not held here)."""
        ...


class InProcessLeadership:
    """Leadership among the threads of one process that share this object."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InProcessLeadership(held={sorted(self._held)!r})"

    def acquire(self, name: str) -> bool:
        check_name(name)
        with self._lock:
            if name in self._held:
                return False
            self._held.add(name)
            return True

    def release(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def holds(self, name: str) -> bool:
        """Whether this object holds ``name``."""
        with self._lock:
            return name in self._held

    def holder(self, name: str) -> str | None:
        """A description of the holder of ``name`` (None when free)."""
        with self._lock:
            return "another runner in this process" if name in self._held else None

    def close(self) -> None:
        """Release every name held."""
        with self._lock:
            self._held.clear()
