"""Checkpoints: the last position a projection has dealt with, saved by name.

A checkpoint **never moves backwards**: saving a position lower than the stored one is
ignored (not an error), so a slow, stale writer cannot rewind a projection. To rebuild a
projection from scratch, call ``reset(name)`` on the backend.

>>> checkpoints = InMemoryCheckpointStore()
>>> checkpoints.save("orders", 42)
>>> checkpoints.save("orders", 7)  # ignored: never backwards
>>> checkpoints.load("orders"), checkpoints.load("unknown")
(42, None)
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar, runtime_checkable

from eventcore.errors import ValidationError
from eventcore.store import EventStore, check_count, check_timeout

__all__ = [
    "CheckpointStore",
    "InMemoryCheckpointStore",
    "TransactionalCheckpointStore",
    "check_position",
    "projection_lag",
    "wait_until",
]

TxT = TypeVar("TxT")


@runtime_checkable
class CheckpointStore(Protocol):
    """Where projections keep their position. Backends: :class:`InMemoryCheckpointStore`,
    :class:`~eventcore.projections.SqliteCheckpointStore` and
    :class:`~eventcore.stores.postgres.PostgresCheckpointStore`."""

    def load(self, name: str) -> int | None:
        """The saved position of projection ``name``, or None if it never saved one."""
        ...

    def save(self, name: str, position: int) -> None:
        """Upsert the position of ``name``; a position below the stored one is ignored."""
        ...


@runtime_checkable
class TransactionalCheckpointStore(CheckpointStore, Protocol[TxT]):
    """A checkpoint store in a database that can also hold the read model, so that a
    :class:`~eventcore.projections.TransactionalProjector`'s writes and the checkpoint
    commit together."""

    def transaction(self) -> AbstractContextManager[TxT]:
        """Open a write transaction; commit when the block ends, roll back if it raises."""
        ...

    def savepoint(self, tx: TxT) -> AbstractContextManager[None]:
        """A savepoint inside ``tx``: rolled back alone if the block raises."""
        ...

    def save_in(self, tx: TxT, name: str, position: int, *, expected: int | None) -> None:
        """Save inside ``tx`` only if the stored position is still ``expected`` (None: no
        checkpoint yet); otherwise raise
        :class:`~eventcore.errors.LeadershipUnavailable`: another instance moved it."""
        ...


def check_position(position: object) -> int:
    """A checkpoint position is a position any store can hold: an int in
    ``0..MAX_POSITION``."""
    return check_count("a checkpoint position", position, "a position")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"a projection name must be a non-empty str, got {name!r}")
    return name


class InMemoryCheckpointStore:
    """Checkpoints in process memory (thread-safe); lost when the process ends."""

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}
        self._changed = threading.Condition()

    def __repr__(self) -> str:
        return f"InMemoryCheckpointStore({self._positions!r})"

    def load(self, name: str) -> int | None:
        check_name(name)
        with self._changed:
            return self._positions.get(name)

    def save(self, name: str, position: int) -> None:
        check_name(name)
        check_position(position)
        with self._changed:
            if position > self._positions.get(name, -1):
                self._positions[name] = position
                self._changed.notify_all()

    def names(self) -> dict[str, int]:
        """Every saved checkpoint, name to position, in name order (for ``eventcore``)."""
        with self._changed:
            return dict(sorted(self._positions.items()))

    def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name`` (the next run starts from the beginning)."""
        with self._changed:
            self._positions.pop(check_name(name), None)

    def wait_for(self, name: str, position: int, timeout: float) -> bool:
        """Block until the checkpoint of ``name`` reaches ``position``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._positions.get(name, -1) >= position, timeout
            )


def wait_until(checkpoints: CheckpointStore, name: str, position: int, timeout: float) -> bool:
    """Read-your-writes: wait until projection ``name`` has dealt with ``position``.

    After ``result = execute(store, command)``, ``wait_until(checkpoints, "orders",
    result.last_position, 5.0)`` returns True once the read model includes the command's
    events (for a projection whose selector skips them, once it has moved past them), or
    False after ``timeout`` seconds.
    """
    check_name(name)
    check_position(position)
    timeout = check_timeout(timeout, "to wait longer, call wait_until in a loop")
    waiter = getattr(checkpoints, "wait_for", None)
    if callable(waiter):
        return bool(waiter(name, position, timeout))
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        current = checkpoints.load(name)
        if current is not None and current >= position:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.025)


def projection_lag(store: EventStore, checkpoints: CheckpointStore, name: str) -> int:
    """How many positions projection ``name`` is behind the store's head (0: caught up).

    A projection that selects few events still moves its checkpoint past the others when it
    catches up, so its lag falls to 0 too.
    """
    return max(0, store.head() - (checkpoints.load(name) or 0))
