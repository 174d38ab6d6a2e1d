"""Tombstones: closing and deleting a stream, as events every store and projection sees.

A stream is *closed* by appending a :class:`StreamClosure` to it and *deleted* by
appending a :class:`StreamDeletion` (``store.close_stream`` and ``store.delete_stream`` do
it). Both are ordinary events at the end of the stream: they take the next global position
(positions are never reused), projections receive them like any other event, and an export
carries them to another store. After either, the store refuses every further event for the
stream with :class:`~eventcore.errors.StreamClosed` (the SQL stores enforce it with a
trigger, so raw SQL and ``import_rows`` are refused too); only a deletion may follow a
closure. Reading a deleted stream raises :class:`~eventcore.errors.StreamDeleted`, saying
when it was deleted (every read that reaches the deletion; a read from after it is empty);
its events stay in the global log until retention removes them.

>>> from eventcore.stores.memory import InMemoryEventStore
>>> store = InMemoryEventStore()
>>> closed = store.close_stream(StreamId("order-1"), reason="shipped")
>>> closed.event
StreamClosure(stream=StreamId('order-1'), reason='shipped')
>>> store.append({StreamId("order-1"): 1}, [StreamClosure(StreamId("order-1"))])
Traceback (most recent call last):
...
eventcore.errors.StreamClosed: stream 'order-1' was closed at position 1 (...
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from eventcore.errors import StreamClosed, StreamDeleted
from eventcore.events import EventInfo, event, event_info
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.events import RecordedEvent

__all__ = [
    "CLOSURE",
    "DELETION",
    "MARKERS",
    "StreamClosure",
    "StreamDeletion",
    "check_not_deleted",
    "check_write",
    "system_info",
    "tombstone_error",
]

CLOSURE: Final = "eventcore.StreamClosure"
DELETION: Final = "eventcore.StreamDeletion"
MARKERS: Final = frozenset({CLOSURE, DELETION})
"""The stored type names of the two tombstone events (the SQL triggers name them too)."""


@event(name=CLOSURE)
@dataclass(frozen=True)
class StreamClosure:
    """The last event of a closed stream: no event may follow it but a deletion."""

    stream: StreamId
    reason: str = ""


@event(name=DELETION)
@dataclass(frozen=True)
class StreamDeletion:
    """The last event of a deleted stream: reads of the stream raise ``StreamDeleted``."""

    stream: StreamId
    reason: str = ""


_SYSTEM: Final[dict[str, EventInfo]] = {
    CLOSURE: event_info(StreamClosure),
    DELETION: event_info(StreamDeletion),
}


def system_info(type_name: str) -> EventInfo | None:
    """The event info of a tombstone type name (every registry decodes them), or None."""
    return _SYSTEM.get(type_name)


def tombstone_error(
    stream_id: str,
    state: str,
    position: int,
    at: object,
    reason: str = "",
    *,
    reading: bool = False,
) -> StreamClosed:
    """The error for a write to (or a read of) a stream in tombstone ``state``."""
    kind = StreamDeleted if state == "deleted" else StreamClosed
    return kind(stream_id, position, at, reason, reading=reading)


def error_for(record: RecordedEvent, *, reading: bool = False) -> StreamClosed:
    """The error a tombstone record stands for."""
    reason = getattr(record.event, "reason", "")
    state = "deleted" if record.event_type == DELETION else "closed"
    return tombstone_error(
        record.stream_id, state, record.position, record.recorded_at, reason, reading=reading
    )


def check_not_deleted(stream_id: StreamId, records: Sequence[RecordedEvent]) -> None:
    """Raise ``StreamDeleted`` if ``records`` (a read of ``stream_id`` to its end) ends with
    a deletion."""
    if records and records[-1].event_type == DELETION:
        raise error_for(records[-1], reading=True)


def check_write(items: Iterable[tuple[StreamId, str]]) -> None:
    """Refuse a write in which an event follows a tombstone of its own stream (one write
    cannot close a stream and go on writing to it); ``items`` are (stream, type name)."""
    closed: dict[StreamId, str] = {}
    for stream_id, type_name in items:
        state = closed.get(stream_id)
        if state is not None and not (state == CLOSURE and type_name == DELETION):
            raise tombstone_error(stream_id, "deleted" if state == DELETION else "closed", 0, "")
        if type_name in MARKERS:
            closed[stream_id] = type_name
