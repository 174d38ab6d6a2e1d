"""The snapshot store protocol, the in-memory store, and how the shells perform the snapshot
strategy's effects without ever letting a snapshot failure fail a command.

>>> from eventcore.types import StreamId
>>> snapshots = InMemorySnapshotStore()
>>> a = StreamId("account-1")
>>> snapshots.save(Snapshot("Deposit/v1/account-1", ((a, 150),), (420,)))
True
>>> snapshots.save(Snapshot("Deposit/v1/account-1", ((a, 120),), (300,)))  # older: refused
False
>>> snapshots.load("Deposit/v1/account-1").streams
((StreamId('account-1'), 150),)
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import threading
from typing import Any, Protocol, runtime_checkable

from eventcore.clock import Clock, system_clock
from eventcore.errors import ValidationError
from eventcore.snapshots.model import Snapshot, SnapshotInfo, covers, parse_versions
from eventcore.snapshots.replay import LoadSnapshot, SaveSnapshot, SnapshotEffect

__all__ = ["InMemorySnapshotStore", "SnapshotStore", "perform", "perform_async"]

logger = logging.getLogger("eventcore.snapshots")


@runtime_checkable
class SnapshotStore(Protocol):
    """Where command-state snapshots live. ``execute(..., snapshots=store)`` uses it."""

    def load(self, snapshot_id: str) -> Snapshot | None:
        """The snapshot with this id, or ``None``."""
        ...

    def save(self, snapshot: Snapshot) -> bool:
        """Store ``snapshot`` unless the stored one is newer (see :meth:`Snapshot.covers`),
        atomically; return whether it was stored."""
        ...

    def list(self, *, prefix: str = "") -> builtins.list[SnapshotInfo]:
        """The snapshots whose id starts with ``prefix``, by id."""
        ...

    def inspect(self, snapshot_id: str) -> Snapshot | None:
        """The stored snapshot (streams, versions, encoded state), or ``None``."""
        ...

    def delete(self, snapshot_id: str) -> bool:
        """Delete one snapshot; return whether it existed."""
        ...

    def clear(self, *, prefix: str = "") -> int:
        """Delete the snapshots whose id starts with ``prefix`` (all by default); return how
        many were deleted."""
        ...

    def close(self) -> None: ...


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ValidationError(f"prefix must be a str, got {type(prefix).__name__}")
    return prefix


class InMemorySnapshotStore:
    """Snapshots in process memory (kept as JSON text, exactly as the SQL stores keep them)."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[str, str, Any]] = {}  # id -> (versions, data, saved_at)

    def __repr__(self) -> str:
        return f"InMemorySnapshotStore(snapshots={len(self._rows)})"

    def load(self, snapshot_id: str) -> Snapshot | None:
        with self._lock:
            row = self._rows.get(snapshot_id)
        return None if row is None else Snapshot.from_json(snapshot_id, row[1], row[2])

    inspect = load

    def save(self, snapshot: Snapshot) -> bool:
        data = snapshot.to_json()
        versions = snapshot.versions_json()
        with self._lock:
            row = self._rows.get(snapshot.snapshot_id)
            if row is not None and not covers(snapshot.versions, parse_versions(row[0])):
                return False
            self._rows[snapshot.snapshot_id] = (versions, data, self._clock())
            return True

    def list(self, *, prefix: str = "") -> builtins.list[SnapshotInfo]:
        check_prefix(prefix)
        with self._lock:
            rows = sorted((k, v) for k, v in self._rows.items() if k.startswith(prefix))
        return [
            Snapshot.from_json(k, data, saved).info(len(data.encode("utf-8")))
            for k, (_, data, saved) in rows
        ]

    def delete(self, snapshot_id: str) -> bool:
        with self._lock:
            return self._rows.pop(snapshot_id, None) is not None

    def clear(self, *, prefix: str = "") -> int:
        check_prefix(prefix)
        with self._lock:
            doomed = [k for k in self._rows if k.startswith(prefix)]
            for k in doomed:
                del self._rows[k]
        return len(doomed)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> InMemorySnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- calls from the shells: a snapshot problem never fails the command ----------------------


def perform(snapshots: Any, effect: SnapshotEffect) -> Snapshot | bool | None:
    """Perform one effect of the snapshot strategy on ``snapshots`` (for the synchronous
    shell): the snapshot (or ``None``) for :class:`LoadSnapshot`, whether it was stored for
    :class:`SaveSnapshot`."""
    if isinstance(effect, LoadSnapshot):
        return load_quietly(snapshots, effect.snapshot_id)
    if isinstance(effect, SaveSnapshot):
        return save_quietly(snapshots, effect.snapshot)
    raise TypeError(f"unknown effect {effect!r}")  # pragma: no cover - typed away


async def perform_async(snapshots: Any, effect: SnapshotEffect) -> Snapshot | bool | None:
    """:func:`perform` for the asyncio shell (a store's coroutine methods are awaited,
    blocking ones run in a worker thread)."""
    if isinstance(effect, LoadSnapshot):
        return await load_quietly_async(snapshots, effect.snapshot_id)
    if isinstance(effect, SaveSnapshot):
        return await save_quietly_async(snapshots, effect.snapshot)
    raise TypeError(f"unknown effect {effect!r}")  # pragma: no cover - typed away


def load_quietly(snapshots: Any, snapshot_id: str) -> Snapshot | None:
    """``snapshots.load``; a failure is logged and reads as "no snapshot"."""
    try:
        found: Snapshot | None = snapshots.load(snapshot_id)
        return found
    except Exception:
        logger.warning("could not load snapshot %r; replaying instead", snapshot_id, exc_info=True)
        return None


def save_quietly(snapshots: Any, snapshot: Snapshot) -> bool:
    """``snapshots.save``; a failure is logged and reads as "not saved"."""
    try:
        return bool(snapshots.save(snapshot))
    except Exception:
        logger.warning(
            "could not save snapshot %r; the command goes on", snapshot.snapshot_id, exc_info=True
        )
        return False


async def load_quietly_async(snapshots: Any, snapshot_id: str) -> Snapshot | None:
    """:func:`load_quietly` for the asyncio shell (coroutine methods are awaited, blocking
    ones run in a worker thread)."""
    method = snapshots.load
    if not inspect.iscoroutinefunction(method):
        return await asyncio.to_thread(load_quietly, snapshots, snapshot_id)
    try:
        found: Snapshot | None = await method(snapshot_id)
        return found
    except Exception:
        logger.warning("could not load snapshot %r; replaying instead", snapshot_id, exc_info=True)
        return None


async def save_quietly_async(snapshots: Any, snapshot: Snapshot) -> bool:
    """:func:`save_quietly` for the asyncio shell."""
    method = snapshots.save
    if not inspect.iscoroutinefunction(method):
        return await asyncio.to_thread(save_quietly, snapshots, snapshot)
    try:
        return bool(await method(snapshot))
    except Exception:
        logger.warning(
            "could not save snapshot %r; the command goes on", snapshot.snapshot_id, exc_info=True
        )
        return False
