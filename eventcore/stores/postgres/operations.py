"""Every operation of the PostgreSQL event store, sans I/O: arguments checked, then a plan.

:class:`Operations` is what the blocking :class:`~eventcore.stores.postgres.PostgresEventStore`
and the asyncio :class:`~eventcore.stores.postgres.AsyncPostgresEventStore` share: each
method validates its arguments at once (so bad input fails before any I/O, on both faces)
and returns a plan (:mod:`eventcore.stores._plan`) whose result is the operation's answer,
rows already decoded. A face only runs the plan on its database::

    events = database.read("read_all", operations.read_all(after=0))          # blocking
    events = await database.read("read_all", operations.read_all(after=0))    # asyncio
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from eventcore.clock import Clock, IdFactory
from eventcore.errors import ConfigurationError, DeserializationError, StreamClosed, StreamDeleted
from eventcore.events import EventTypes, Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite, append_key, idempotency_key
from eventcore.raw import RawEvent, StoreStats, StreamInfo
from eventcore.selection import Selection, selectors
from eventcore.store import (
    check_after_version,
    check_read_args,
    check_uuid,
    prepare_append,
    unique_stream_ids,
)
from eventcore.stores._plan import Plan, Query
from eventcore.stores._rows import decode_rows, decode_versioned, deletion_at, versioned_streams
from eventcore.stores.postgres.queries import (
    COLUMNS,
    Replayed,
    Row,
    Statements,
    append_plan,
    count_plan,
    export_plan,
    import_plan,
    list_streams_plan,
    read_all_plan,
    recorded_write_plan,
    rows_plan,
    stats_plan,
    streams_plan,
    value_plan,
)
from eventcore.stores.postgres.retention import RetentionStatements
from eventcore.tombstones import check_not_deleted
from eventcore.types import StreamId

__all__ = ["Operations"]


def _none(query: Any, params: Any) -> Plan[None]:
    yield Query(query, params, "none")


class Operations:
    """The operations of one store (its event registry, clock, ids and page size)."""

    def __init__(
        self, schema: str, types: EventTypes, clock: Clock, ids: IdFactory, page_size: int
    ) -> None:
        self.q = Statements(schema)
        self.schema = schema
        self.retention = RetentionStatements(schema)
        self.types = types
        self.clock = clock
        self.ids = ids
        self.page_size = page_size

    def decode(self, rows: list[Row]) -> list[RecordedEvent]:
        return decode_rows(self.types, rows, text_envelope=False)

    def _decoded(self, plan: Plan[list[Row]]) -> Plan[list[RecordedEvent]]:
        rows = yield from plan
        return self.decode(rows)

    # -- reads -----------------------------------------------------------------------------

    def stream_page(self, stream_id: StreamId, after_version: int) -> Plan[list[RecordedEvent]]:
        """One page (``page_size`` events) of a stream after ``after_version``."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        return self._decoded(rows_plan(self.q.stream, (sid, after_version, self.page_size)))

    def read_stream(self, stream_id: StreamId, after_version: int) -> Plan[list[RecordedEvent]]:
        """A whole stream after ``after_version``, page after page on one connection."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        return self._whole_stream(sid, after_version)

    def _whole_stream(self, sid: StreamId, after_version: int) -> Plan[list[RecordedEvent]]:
        out: list[Row] = []
        while True:
            rows = yield from rows_plan(self.q.stream, (sid, after_version, self.page_size))
            out += rows
            if len(rows) < self.page_size:
                found = self.decode(out)
                check_not_deleted(sid, found)
                return found
            after_version = rows[-1][2]

    def stream_events_page(
        self, stream_id: StreamId, after_version: int
    ) -> Plan[tuple[list[VersionedEvent], int]]:
        """One page of a stream's events and versions (no envelopes) and the number of rows
        read; a deletion ending the page raises ``StreamDeleted``."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        return self._events_page(sid, after_version)

    def _events_page(
        self, sid: StreamId, after_version: int
    ) -> Plan[tuple[list[VersionedEvent], int]]:
        rows = yield from rows_plan(self.q.fold_stream, (sid, after_version, self.page_size))
        yield from self._raise_deletion(deletion_at(rows))
        return decode_versioned(self.types, rows), len(rows)

    def read_stream_events(
        self, stream_id: StreamId, after_version: int
    ) -> Plan[list[VersionedEvent]]:
        """A whole stream's events and versions after ``after_version``, on one connection."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        return self._whole_stream_events(sid, after_version)

    def _whole_stream_events(self, sid: StreamId, after_version: int) -> Plan[list[VersionedEvent]]:
        out: list[VersionedEvent] = []
        while True:
            page, count = yield from self._events_page(sid, after_version)
            out += page
            if count < self.page_size:
                return out
            after_version = page[-1].stream_version

    def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> Plan[dict[StreamId, list[VersionedEvent]]]:
        ids = unique_stream_ids(stream_ids)
        return self._streams_events(ids)

    def _streams_events(self, ids: list[StreamId]) -> Plan[dict[StreamId, list[VersionedEvent]]]:
        rows = yield from streams_plan(self.q, ids, self.page_size, fold=True)
        found, deleted = versioned_streams(self.types, ids, rows)
        for position in deleted:
            yield from self._raise_deletion(position)
        return found

    def _raise_deletion(self, position: int | None) -> Plan[None]:
        """Raise the ``StreamDeleted`` of the deletion at ``position`` (read whole)."""
        if position is not None:
            rows = yield from rows_plan(self.q.at_position, (position,))
            (record,) = self.decode(rows)
            check_not_deleted(record.stream_id, [record])

    def deletion(self, stream_id: StreamId) -> Plan[StreamClosed | None]:
        """``StreamDeleted`` if the stream was deleted, else None (for long lazy reads)."""
        found = yield from self.retention.tombstone_plan([stream_id])
        return found if isinstance(found, StreamDeleted) else None

    def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> Plan[dict[StreamId, list[RecordedEvent]]]:
        ids = unique_stream_ids(stream_ids)
        return self._streams(ids)

    def _streams(self, ids: list[StreamId]) -> Plan[dict[StreamId, list[RecordedEvent]]]:
        rows = yield from streams_plan(self.q, ids, self.page_size)
        found: dict[StreamId, list[RecordedEvent]] = {sid: [] for sid in ids}
        for rec in self.decode(rows):
            found[rec.stream_id].append(rec)
        for sid, records in found.items():
            check_not_deleted(sid, records)
        return found

    def stream_version(self, stream_id: StreamId) -> Plan[int]:
        return value_plan(self.q.version, (StreamId(stream_id),))

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> Plan[list[RecordedEvent]]:
        chosen = selectors(streams)
        names = check_read_args(self.types, after, limit, None, event_types)
        return self._decoded(read_all_plan(self.q, after, limit, chosen, names, checked=True))

    def read_retained(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> Plan[list[RecordedEvent]]:
        """``read_all`` without the retention check."""
        chosen = selectors(streams)
        names = check_read_args(self.types, after, limit, None, event_types)
        return self._decoded(read_all_plan(self.q, after, limit, chosen, names))

    def head(self) -> Plan[int]:
        return value_plan(self.q.head, ())

    def read_correlation(self, correlation_id: UUID) -> Plan[list[RecordedEvent]]:
        key = check_uuid("correlation_id", correlation_id)
        return self._decoded(rows_plan(self.q.correlation, (key,)))

    def read_event(self, event_id: UUID) -> Plan[RecordedEvent | None]:
        key = check_uuid("event_id", event_id)
        return self._first(rows_plan(self.q.event, (key,)))

    def _first(self, plan: Plan[list[Row]]) -> Plan[RecordedEvent | None]:
        found = self.decode((yield from plan))
        return found[0] if found else None

    def read_idempotent_write(self, key: str) -> Plan[RecordedWrite | None]:
        checked = idempotency_key(key, "-").key
        return self._recorded_write(checked)

    def _recorded_write(self, key: str) -> Plan[RecordedWrite | None]:
        found = yield from recorded_write_plan(self.q, key)
        if found is None:
            return None
        known, rows, recorded_at = found
        return RecordedWrite(key, known, tuple(self.decode(rows)), recorded_at)

    # -- writes ----------------------------------------------------------------------------

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        metadata: Metadata | None,
        idempotency_key: str | IdempotencyKey | None,
    ) -> Plan[list[RecordedEvent]]:
        """The append: checked and encoded now, one round trip when run."""
        checked, pending, meta = prepare_append(
            self.types, expected, events, metadata, self.clock, self.ids
        )
        key = None if idempotency_key is None else append_key(idempotency_key, pending)
        return self._append(append_plan(self.q, checked, pending, meta, key))

    def _append(self, plan: Plan[list[RecordedEvent] | Replayed]) -> Plan[list[RecordedEvent]]:
        outcome = yield from plan
        if isinstance(outcome, Replayed):  # the key was used before: the original write
            return self.decode(outcome.rows)
        return outcome

    def list_streams(
        self, streams: Selection, after: str, limit: int | None
    ) -> Plan[list[StreamInfo]]:
        chosen = selectors(streams)
        check_read_args(self.types, 0, limit, None, None)
        return self._streams_info(list_streams_plan(self.q, chosen, str(after), limit))

    def _streams_info(self, plan: Plan[list[tuple[Any, ...]]]) -> Plan[list[StreamInfo]]:
        rows = yield from plan
        return [
            StreamInfo(StreamId(r[0]), int(r[1]), int(r[2]), int(r[3]), _utc(r[4]), _utc(r[5]))
            for r in rows
        ]

    def stats(self, schema_version: int) -> Plan[StoreStats]:
        return self._stats(schema_version)

    def _stats(self, schema_version: int) -> Plan[StoreStats]:
        head, events, count = yield from stats_plan(self.q)
        return StoreStats("postgres", schema_version, head, events, count)

    def export_rows(self, after: int, limit: int | None) -> Plan[list[RawEvent]]:
        check_read_args(self.types, after, limit, None, None)
        return self._raw(export_plan(self.q, after, limit))

    def _raw(self, plan: Plan[list[Row]]) -> Plan[list[RawEvent]]:
        rows = yield from plan
        out = []
        for r in rows:
            if r[6] is None or r[7] is None:
                raise DeserializationError(f"corrupt event row at position {r[0]}: NULL envelope")
            out.append(
                RawEvent(
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    _utc(r[7]),
                    r[8],
                    r[9] if type(r[9]) is int else r[0],
                )
            )
        return out

    def stream_rows(
        self, stream_id: StreamId, after_version: int, limit: int | None
    ) -> Plan[list[RawEvent]]:
        sid = StreamId(stream_id)
        check_after_version(after_version)
        check_read_args(self.types, 0, limit, None, None)
        query = sql.SQL(
            "SELECT " + COLUMNS + ", write_end FROM {} WHERE stream_id = %s AND "
            "stream_version > %s ORDER BY stream_version LIMIT %s"
        ).format(self.q.table)
        return self._raw(rows_plan(query, (sid, after_version, limit)))

    def verify_page(self, after: int, limit: int) -> Plan[list[Row]]:
        """Raw rows after ``after`` exactly as stored, for :class:`LogChecker`."""
        check_read_args(self.types, after, limit, None, None)
        return export_plan(self.q, after, limit)

    def triggers(self) -> Plan[dict[str, bool]]:
        """The user triggers on the events table, each mapped to whether it is enabled."""
        return self._triggers()

    def _triggers(self) -> Plan[dict[str, bool]]:
        rows = yield Query(
            "SELECT tgname, tgenabled <> 'D' FROM pg_trigger "
            "WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
            (f"{self.schema}.events",),
        )
        return {str(r[0]): bool(r[1]) for r in rows}

    def import_rows(self, rows: Iterable[RawEvent], write_lock: str, channel: str) -> Plan[int]:
        return import_plan(self.q, list(rows), write_lock, channel)

    def lock_streams(self, streams: list[StreamId]) -> Plan[None]:
        """Advisory-lock ``streams`` for the rest of the transaction (sessions)."""
        return _none(self.q.lock_streams, (streams,))

    def forget_idempotency_keys(self, before: datetime) -> Plan[int]:
        if not isinstance(before, datetime) or before.tzinfo is None:
            raise ConfigurationError(f"before must be an aware datetime, got {before!r}")
        return count_plan(self.q.forget_keys, (before,))

    def __repr__(self) -> str:
        return f"Operations({self.q!r})"


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise DeserializationError(f"corrupt recorded_at {value!r}")
    return value.astimezone(UTC)
