"""The shared state of an in-memory log: what every handle opened with ``reopen`` shares
(the events, their stored JSON, write boundaries, keys, tombstones, removed positions and
the wake-ups of waiters). Used by :mod:`eventcore.stores.memory` only."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventcore.events import EventTypes, RecordedEvent
from eventcore.tombstones import CLOSURE, DELETION, MARKERS, error_for
from eventcore.types import StreamId

__all__ = ["Log", "Stored"]


@dataclass(frozen=True, slots=True)
class Stored:
    """How an event was written: its JSON and the registry that wrote it, so a handle with
    another registry decodes it as an SQL store would (and fails the same way)."""

    data: str
    schema_version: int
    writer: EventTypes


class Log:
    """The events themselves, shared by every handle opened with :meth:`reopen`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.events: list[RecordedEvent] = []
        self.stored: list[Stored] = []
        self.write_end: list[int] = []  # per position: the last position of its write
        self.keys: dict[str, tuple[str, int, int]] = {}  # key -> (fingerprint, first, last)
        self.streams: dict[StreamId, list[RecordedEvent]] = {}
        self.by_correlation: dict[UUID, list[RecordedEvent]] = {}
        self.by_id: dict[UUID, RecordedEvent] = {}
        self.writers: set[EventTypes] = set()  # the registries of the handles that appended
        # What readers must get their own copy of: events of these types (they hold lists,
        # dicts or Any values). Metadata is frozen all the way down, so it is shared.
        self.mutable_types: set[str] = set()
        self.changed = threading.Condition(self.lock)  # notified on every append
        self.async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.async_writes = asyncio.Lock()  # async sessions and appends take turns on it
        self.tombstones: dict[StreamId, RecordedEvent] = {}  # the closing event of each stream
        self.removed: set[int] = set()  # positions removed by retention
        self.runs: list[tuple[int, int, datetime]] = []  # retention: (first, last, when)

    def refuse_tombstoned(self, items: Iterable[tuple[StreamId, str]]) -> None:
        """Raise StreamClosed if an event of ``items`` (stream, type name) targets a closed
        or deleted stream (only a deletion may follow a closure); call with the lock held."""
        if not self.tombstones:
            return
        for sid, type_name in items:
            found = self.tombstones.get(sid)
            if found is not None and not (found.event_type == CLOSURE and type_name == DELETION):
                raise error_for(found)

    def record_tombstones(self, records: Iterable[RecordedEvent]) -> None:
        for rec in records:
            if rec.event_type in MARKERS:
                self.tombstones[rec.stream_id] = rec

    def check_deleted(self, sid: StreamId, after_version: int = 0) -> None:
        """Raise StreamDeleted if a read of ``sid`` after ``after_version`` would reach its
        deletion (as on the SQL stores: a read past the deletion is empty)."""
        found = self.tombstones.get(sid)
        if (
            found is not None
            and found.event_type == DELETION
            and found.stream_version > after_version
        ):
            raise error_for(found, reading=True)

    def wake(self) -> None:
        """Wake every waiter, blocking and asyncio (call with the lock held)."""
        self.changed.notify_all()
        for loop, event in list(self.async_waiters):
            with contextlib.suppress(RuntimeError):  # a loop already closed
                loop.call_soon_threadsafe(event.set)
