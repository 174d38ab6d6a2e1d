"""Undecoded rows of the in-memory log: export (what ``eventcore export`` and ``verify``
read) and import (rows from another store, continuing the log exactly). The methods of
:class:`~eventcore.stores.memory.InMemoryEventStore` check their arguments and call these.

>>> from eventcore import InMemoryEventStore
>>> store = InMemoryEventStore()
>>> export_rows(store.shared_log, 0, None)
[]
"""

from __future__ import annotations

from collections.abc import Iterable

from eventcore.events import EventTypes, Metadata, RecordedEvent
from eventcore.raw import RawEvent, check_continues
from eventcore.stores.memory_log import Log, Stored
from eventcore.tombstones import check_write
from eventcore.types import StreamId

__all__ = ["export_rows", "import_rows"]


def export_rows(shared: Log, after: int, limit: int | None) -> list[RawEvent]:
    """The stored events of ``shared`` after ``after``, undecoded, whole writes (arguments
    checked by the caller)."""
    log = shared.events
    with shared.lock:
        end = len(log) if limit is None else min(len(log), after + limit)
        if end > after:
            end = max(end, shared.write_end[end - 1])
        records = log[after:end]
        stored = shared.stored[after:end]
        ends = shared.write_end[after:end]
        removed = set(shared.removed)
    return [
        RawEvent(
            r.position,
            r.stream_id,
            r.stream_version,
            r.event_type,
            raw.schema_version,
            raw.data,
            r.event_id,
            r.recorded_at,
            r.metadata.to_json(),
            last,
        )
        for r, raw, last in zip(records, stored, ends, strict=True)
        if r.position not in removed
    ]


def import_rows(shared: Log, types: EventTypes, rows: Iterable[RawEvent]) -> int:
    """Add rows exported from a store after this store's head, exactly, decoded with
    this store's event classes (an unknown type raises ``DeserializationError``); rows
    that do not continue the log raise ``ValidationError``. Nothing is written then."""
    batch = list(rows)
    log, streams = shared.events, shared.streams
    with shared.lock:
        versions: dict[str, int] = {sid: len(recs) for sid, recs in streams.items()}
        checked = check_continues(batch, len(log), versions)
        items = [(StreamId(r.stream_id), r.event_type) for r in checked]
        check_write(items)
        shared.refuse_tombstoned(items)
        decoded = []
        for r in checked:
            where = f" at position {r.position} (stream {r.stream_id!r})"
            event = types.decode(r.event_type, r.schema_version, r.data, where)
            meta = Metadata.from_json(r.metadata)
            decoded.append(
                RecordedEvent(
                    r.position,
                    StreamId(r.stream_id),
                    r.stream_version,
                    r.event_type,
                    event,
                    r.event_id,
                    r.recorded_at,
                    meta,
                )
            )
        for rec, r in zip(decoded, checked, strict=True):
            streams.setdefault(rec.stream_id, []).append(rec)
            shared.stored.append(Stored(r.data, r.schema_version, types))
            shared.write_end.append(r.write_end)
            shared.by_id[rec.event_id] = rec
            if rec.metadata.correlation_id is not None:
                shared.by_correlation.setdefault(rec.metadata.correlation_id, []).append(rec)
            info = types.by_name.get(rec.event_type)
            if info is None or not info.codec.shareable:
                shared.mutable_types.add(rec.event_type)
        if decoded:
            shared.writers.add(types)
            log.extend(decoded)
            shared.record_tombstones(decoded)
            shared.wake()
    return len(decoded)
