"""The SQLite event store: one file, durable by default, safe for several processes.

Appends run in ``BEGIN IMMEDIATE`` transactions, so writers are serialised by SQLite's own
file lock: positions are the table's integer rowid — commit-ordered and gapless — and a
reader polling "after position P" can never miss an event. WAL mode lets readers run on
their own connections while a writer commits. ``synchronous=FULL`` (the default) survives
power loss; ``NORMAL`` is faster and survives application crashes only.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Opened:
...     account: StreamId
>>> store = SqliteEventStore(":memory:")
>>> [e.position for e in store.append({StreamId("a"): 0}, [Opened(StreamId("a"))])]
[1]
>>> store.close()

The store is a thin layer over a :class:`~eventcore.stores.sqlite.SqliteDatabase`, which
owns the connections; every operation is a plan (its statements and what to make of the
rows) that the database runs. Build several stores on one database to share it::

    db = SqliteDatabase("shop.db")
    store, checkpoints = SqliteEventStore(db), SqliteCheckpointStore(db)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.errors import ConfigurationError, DeserializationError, StoreFailure, StreamClosed
from eventcore.events import EventTypes, Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite, append_key, idempotency_key
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.retention.engine import run_retention, write_tombstone
from eventcore.selection import Selection, iter_log, selectors
from eventcore.store import (
    check_after_version,
    check_positive,
    check_read_args,
    check_uuid,
    check_wait_args,
    prepare_append,
    unique_stream_ids,
)
from eventcore.stores._notify import wait_for_head
from eventcore.stores._plan import Plan
from eventcore.stores._rows import decode_rows, decode_versioned, deletion_at, versioned_streams
from eventcore.stores._verify import LogChecker
from eventcore.stores.sqlite.database import SqliteDatabase, Synchronous, open_database
from eventcore.stores.sqlite.plans import (
    FOLD_SELECT,
    SELECT,
    Row,
    append_plan,
    count_plan,
    export_plan,
    head_plan,
    import_plan,
    list_streams_plan,
    raw_event,
    read_all_plan,
    recorded_write_plan,
    rows_plan,
    stats_plan,
    stream_page,
    stream_rows_plan,
    streams_plan,
    triggers_plan,
    version_plan,
    whole_stream_plan,
)
from eventcore.stores.sqlite.retention import (
    all_runs_plan,
    horizon_plan,
    is_tombstoned,
    remove_plan,
    tombstone_of,
    tombstones_plan,
)
from eventcore.stores.sqlite.schema import CORRELATION, TRIGGERS
from eventcore.tombstones import StreamClosure, StreamDeletion, check_not_deleted
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.retention import Archive, RetentionPolicy, RetentionReport
    from eventcore.tenants.store import TenantStore

__all__ = ["SqliteEventStore"]

_WAIT_POLL: Final = 0.05
"""How often ``wait_for_events`` looks for appends by other database objects or processes."""


class SqliteEventStore:
    """An event store in an SQLite database.

    ``database``: a :class:`SqliteDatabase` (shared, not closed by :meth:`close`), a file
    path or ``":memory:"`` (opened here and closed by :meth:`close`), or a
    ``sqlite3.Connection`` you own (every store given the same connection shares one
    database object). ``synchronous`` (``"FULL"``, the default, or ``"NORMAL"``) and
    ``busy_timeout`` (seconds, default 30) configure a database this store opens; for a
    :class:`SqliteDatabase` pass them to it instead. ``page_size``: events per query when
    reading a stream.
    """

    def __init__(
        self,
        database: SqliteDatabase | str | os.PathLike[str] | sqlite3.Connection,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
        synchronous: Synchronous | None = None,
        busy_timeout: float | None = None,
        page_size: int = 1000,
    ) -> None:
        check_positive("page_size", page_size)
        self.types = events if isinstance(events, EventTypes) else EventTypes(events)
        self.page_size = page_size
        self._clock = clock
        self._ids = ids
        self.database, self._owns = open_database(
            database, "SqliteEventStore", synchronous, busy_timeout, clock
        )

    def __repr__(self) -> str:
        return f"SqliteEventStore({self.database.name!r})"

    # -- reads ---------------------------------------------------------------------------

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        """Events of one stream in version order, fetched lazily ``page_size`` at a time."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        return self._stream_pages(sid, after_version)

    def _stream_pages(self, sid: StreamId, after_version: int) -> Iterator[RecordedEvent]:
        size = self.page_size
        first = True
        while True:
            rows = self.database.read("read_stream", stream_page(sid, after_version, size))
            page = self._decode(rows)
            if first and len(rows) < size:
                check_not_deleted(sid, page)  # the whole stream: a deletion is its last event
            elif first:  # a long stream: ask its tombstone before yielding anything
                self._refuse_deleted(sid)
            first = False
            yield from page
            if len(rows) < size:
                return
            after_version = rows[-1][2]

    def _refuse_deleted(self, sid: StreamId) -> None:
        """Raise ``StreamDeleted`` if ``sid`` was deleted (before a long lazy read)."""
        found = self.database.read("read_stream", tombstones_plan([sid]))
        error = tombstone_of(found, reading=True)
        if error is not None and error.state == "deleted":
            raise error

    def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[VersionedEvent]:
        """The events of one stream and their versions, without their envelopes: what
        ``execute`` folds. As :meth:`read_stream` (lazy pages, the same checks of the columns
        read, ``StreamDeleted``), at about half the cost of decoding a row."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        return self._versioned_pages(sid, after_version)

    def _versioned_pages(self, sid: StreamId, after_version: int) -> Iterator[VersionedEvent]:
        size = self.page_size
        first = True
        while True:
            plan = stream_page(sid, after_version, size, FOLD_SELECT)
            rows = self.database.read("read_stream", plan)
            if first and len(rows) < size:
                self.database.read("read_stream", _deletion_plan(self.types, deletion_at(rows)))
            elif first:
                self._refuse_deleted(sid)
            first = False
            yield from decode_versioned(self.types, rows)
            if len(rows) < size:
                return
            after_version = rows[-1][2]

    def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        """Several whole streams as :meth:`read_stream_events` reads each (one query, as
        :meth:`read_streams`)."""
        plan = _streams_events_plan(self.types, unique_stream_ids(stream_ids), self.page_size)
        return self.database.read("read_streams", plan)

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        """Several whole streams (duplicates once) in one query — more only for streams
        longer than a page; an empty list for a stream that does not exist."""
        ids = unique_stream_ids(stream_ids)
        rows = self.database.read("read_streams", streams_plan(ids, self.page_size))
        found: dict[StreamId, list[RecordedEvent]] = {sid: [] for sid in ids}
        for rec in self._decode(rows):
            found[rec.stream_id].append(rec)
        for sid, records in found.items():
            check_not_deleted(sid, records)
        return found

    def stream_version(self, stream_id: StreamId) -> int:
        """The number of events in the stream (0 when it does not exist)."""
        return self.database.read("stream_version", version_plan(StreamId(stream_id)))

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """Events after position ``after`` in position order, filtered in SQL before the
        limit by stream prefixes or patterns and by event types. A page never ends inside
        an atomic write (it is extended to the write's last selected event). Raises
        ``EventsRemoved`` if retention removed events after ``after`` (see
        :meth:`read_retained`)."""
        chosen = selectors(streams)
        names = check_read_args(self.types, after, limit, None, event_types)
        plan = horizon_plan(after, read_all_plan(after, limit, chosen, names))
        return self._decode(self.database.read("read_all", plan))

    def read_retained(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """``read_all`` without the retention check: what is left, removed events skipped."""
        chosen = selectors(streams)
        names = check_read_args(self.types, after, limit, None, event_types)
        plan = read_all_plan(after, limit, chosen, names)
        return self._decode(self.database.read("read_all", plan))

    def head(self) -> int:
        """The highest global position written so far (0 for an empty store)."""
        return self.database.read("head", head_plan())

    def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        """Every event stamped with ``correlation_id``, in position order (indexed)."""
        key = str(check_uuid("correlation_id", correlation_id))
        sql = f"{SELECT} WHERE {CORRELATION} = ? ORDER BY position"
        return self._decode(self.database.read("read_correlation", rows_plan(sql, (key,))))

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        """The event with this id, or None."""
        key = str(check_uuid("event_id", event_id))
        rows = self.database.read("read_event", rows_plan(f"{SELECT} WHERE event_id = ?", (key,)))
        found = self._decode(rows)
        return found[0] if found else None

    def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        """The write recorded under idempotency ``key`` (its fingerprint and events), or
        None if the key was never used."""
        checked = idempotency_key(key, "-").key
        found = self.database.read("read_idempotent_write", recorded_write_plan(checked))
        if found is None:
            return None
        fingerprint_, rows, recorded_at = found
        return RecordedWrite(checked, fingerprint_, tuple(self._decode(rows)), _when(recorded_at))

    def _decode(self, rows: list[Row]) -> list[RecordedEvent]:
        return decode_rows(self.types, rows, text_envelope=True)

    # -- operations ------------------------------------------------------------------------

    def iter_all(
        self,
        *,
        after: int = 0,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
        page_size: int = 1000,
    ) -> Iterator[RecordedEvent]:
        """Every selected event after ``after``, in position order, read lazily a page
        (whole writes) at a time: the whole log with no hand paging."""
        return iter_log(
            self.read_all,
            after=after,
            streams=streams,
            event_types=event_types,
            page_size=page_size,
        )

    def list_streams(
        self, *, streams: Selection = None, after: str = "", limit: int | None = None
    ) -> list[StreamInfo]:
        """The streams (filtered by prefixes or patterns) in stream-id order, after the id
        ``after``: each with its version and first and last positions and times."""
        chosen = selectors(streams)
        check_read_args(self.types, 0, limit, None, None)
        rows = self.database.read("list_streams", list_streams_plan(chosen, str(after), limit))
        return [
            StreamInfo(StreamId(r[0]), r[1], r[2], r[3], _time(r[4]), _time(r[5])) for r in rows
        ]

    def stats(self) -> StoreStats:
        """Kind, schema version, head, and the numbers of events and streams."""
        head, events, count = self.database.read("stats", stats_plan())
        return StoreStats("sqlite", self.database.schema_version, head, events, count)

    def export_rows(self, *, after: int = 0, limit: int | None = None) -> list[RawEvent]:
        """Stored rows after ``after``, undecoded (whole writes; see :mod:`eventcore.raw`)."""
        check_read_args(self.types, after, limit, None, None)
        return [raw_event(row) for row in self.database.read("export", export_plan(after, limit))]

    def stream_rows(
        self, stream_id: StreamId, *, after_version: int = 0, limit: int | None = None
    ) -> list[RawEvent]:
        """The stored rows of one stream after ``after_version``, undecoded, in version order (at
        most ``limit``): what ``eventcore show`` prints, without the event classes."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        check_read_args(self.types, 0, limit, None, None)
        plan = stream_rows_plan(sid, after_version, limit)
        return [raw_event(row) for row in self.database.read("stream_rows", plan)]

    def import_rows(self, rows: Iterable[RawEvent]) -> int:
        """Add rows exported from a store after this store's head, exactly (ids, positions,
        versions, times, metadata, writes), in one transaction; return how many. Rows that do
        not continue the log raise ``ValidationError`` and nothing is written."""
        batch = list(rows)
        try:
            count = self.database.write("import", import_plan(batch))
        except StoreFailure as exc:
            if not is_tombstoned(exc):
                raise
            raise self._refusal(exc, [r.stream_id for r in batch]) from exc
        if count:
            self.database.notifier.notify()
        return count

    def verify(
        self, *, page_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> list[LogProblem]:
        """Check the stored log: positions gapless and increasing, every stream's versions
        contiguous, every row decodable (its envelope and JSON; event classes are not
        needed) and the immutability triggers present. Returns the problems, in position
        order then the triggers; ``[]`` when the log is sound. ``progress`` is called with
        the last position checked after each page. Writes nothing."""
        check_positive("page_size", page_size)
        checker = LogChecker(text_envelope=True)
        after = 0
        while True:
            rows = self.database.read("verify", export_plan(after, page_size))
            if not rows:
                break
            checker.check(rows)
            after = rows[-1][0]
            if progress is not None:
                progress(after)
        checker.missing_triggers(self.database.read("verify", triggers_plan()), TRIGGERS)
        return checker.problems

    # -- writes --------------------------------------------------------------------------

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append atomically: every stream in ``expected`` must be at that version.

        With ``idempotency_key``, a key already used for the same request writes nothing and
        returns the events first written with it (a key used for another request raises
        :class:`~eventcore.errors.IdempotencyConflict`).
        """
        checked, pending, meta = prepare_append(
            self.types, expected, events, metadata, self._clock, self._ids
        )
        key = None if idempotency_key is None else append_key(idempotency_key, pending)
        try:
            outcome = self.database.write("append", append_plan(checked, pending, meta, key))
        except StoreFailure as exc:
            if not is_tombstoned(exc):
                raise
            raise self._refusal(exc, [p.stream_id for p in pending]) from exc
        if isinstance(outcome, list):
            if outcome:
                self.database.notifier.notify()
            return outcome
        return self._decode(outcome.rows)  # the key was used before: the original write

    def _refusal(self, exc: StoreFailure, stream_ids: list[str]) -> StoreFailure | StreamClosed:
        """The tombstone a write was refused for (``StreamClosed``), or a copy of ``exc``."""
        found = self.database.read("append", tombstones_plan(stream_ids))
        return tombstone_of(found) or StoreFailure(exc.operation, str(exc))

    def for_tenant(self, tenant: str) -> TenantStore:
        """This store as tenant ``tenant`` sees it: only the tenant's streams, for every
        read and write (see :mod:`eventcore.tenants`)."""
        from eventcore.tenants.store import TenantStore

        return TenantStore(self, tenant)

    # -- tombstones and retention ----------------------------------------------------------

    def close_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Close a stream: append a :class:`~eventcore.tombstones.StreamClosure`; every later
        event for it raises ``StreamClosed`` (a trigger refuses it). Returns the event."""
        return write_tombstone(self, StreamClosure(StreamId(stream_id), reason), expected_version)

    def delete_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Delete a stream: append a :class:`~eventcore.tombstones.StreamDeletion`; reads of
        it then raise ``StreamDeleted`` (saying when), appends ``StreamDeleted`` too."""
        return write_tombstone(self, StreamDeletion(StreamId(stream_id), reason), expected_version)

    def apply_retention(
        self, policies: Sequence[RetentionPolicy], *, archive: Archive | None
    ) -> RetentionReport:
        """Remove the events ``policies`` select (each stream keeps its last event), after
        writing them to ``archive`` (None: discard them), in one transaction past the
        immutability trigger; see :mod:`eventcore.retention`."""
        return run_retention(self, policies, archive, self._clock, self._remove)

    def _remove(self, rows: Sequence[RawEvent], at: datetime) -> int:
        return self.database.write("apply_retention", remove_plan(rows, at))

    def retention_runs(self) -> list[tuple[int, int, datetime]]:
        """Each retention run: its first and last removed positions and when it ran."""
        return self.database.read("retention_runs", all_runs_plan())

    def forget_idempotency_keys(self, *, before: datetime) -> int:
        """Delete the idempotency keys recorded before ``before``; return how many."""
        if not isinstance(before, datetime) or before.tzinfo is None:
            raise ConfigurationError(f"before must be an aware datetime, got {before!r}")
        sql = "DELETE FROM eventcore_idempotency WHERE recorded_at < ?"
        return self.database.write(
            "forget_idempotency_keys", count_plan(sql, (before.isoformat(),))
        )

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until an event after position ``after`` exists (True) or ``timeout``
        seconds pass (False). Appends through this database object wake the waiter at once;
        appends by other processes are found by polling every 50 ms."""
        check_wait_args(after, timeout)
        return wait_for_head(self.head, self.database.notifier, after, timeout, _WAIT_POLL)

    @contextlib.contextmanager
    def session(self, lock: Iterable[StreamId] = ()) -> Iterator[SqliteSession]:
        """A write transaction (``BEGIN IMMEDIATE``) whose reads and one append run on the
        writer connection: no other writer, in any process, until it ends. ``lock`` is
        checked but needs nothing more: the whole file is locked. See
        :mod:`eventcore.session`."""
        for sid in lock:
            StreamId(sid)
        with self.database.transaction("session") as tx:
            session = SqliteSession(self, tx)
            yield session
        if session.appended:
            self.database.notifier.notify()

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database if this store opened it (a database or connection you passed
        stays open)."""
        if self._owns:
            self.database.close()

    def __enter__(self) -> SqliteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteSession:
    """Reads and one append inside :meth:`SqliteEventStore.session`."""

    def __init__(self, store: SqliteEventStore, tx: sqlite3.Connection) -> None:
        self.store = store
        self.types = store.types
        self._tx = tx
        self.appended = False

    def _run(self, operation: str, plan: Plan[Any]) -> Any:
        return self.store.database.run_in(self._tx, operation, plan)

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        sid = StreamId(stream_id)
        check_after_version(after_version)
        rows = self._run("read_stream", whole_stream_plan(sid, after_version, self.store.page_size))
        found = self.store._decode(rows)
        check_not_deleted(sid, found)
        return iter(found)

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        ids = unique_stream_ids(stream_ids)
        rows = self._run("read_streams", streams_plan(ids, self.store.page_size))
        found: dict[StreamId, list[RecordedEvent]] = {sid: [] for sid in ids}
        for rec in self.store._decode(rows):
            found[rec.stream_id].append(rec)
        for sid, records in found.items():
            check_not_deleted(sid, records)
        return found

    def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[VersionedEvent]:
        sid = StreamId(stream_id)
        check_after_version(after_version)
        plan = _stream_events_plan(self.types, sid, after_version, self.store.page_size)
        return iter(self._run("read_stream", plan))

    def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        ids = unique_stream_ids(stream_ids)
        plan = _streams_events_plan(self.types, ids, self.store.page_size)
        return self._run("read_streams", plan)  # type: ignore[no-any-return]

    def stream_version(self, stream_id: StreamId) -> int:
        return int(self._run("stream_version", version_plan(StreamId(stream_id))))

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        if self.appended:
            raise StoreFailure(
                "append", "this session has already appended; pass every event to one append()"
            )
        store = self.store
        checked, pending, meta = prepare_append(
            store.types, expected, events, metadata, store._clock, store._ids
        )
        key = None if idempotency_key is None else append_key(idempotency_key, pending)
        try:
            outcome = self._run("append", append_plan(checked, pending, meta, key))
        except StoreFailure as exc:
            if not is_tombstoned(exc):
                raise
            found = self._run("append", tombstones_plan([p.stream_id for p in pending]))
            raise (tombstone_of(found) or StoreFailure("append", str(exc))) from exc
        self.appended = True
        if isinstance(outcome, list):
            return outcome
        return store._decode(outcome.rows)


# -- a command's fold reads, as plans (run on a reader, or inside a session) ----------------


def _stream_events_plan(
    types: EventTypes, sid: StreamId, after_version: int, size: int
) -> Plan[list[VersionedEvent]]:
    rows = yield from whole_stream_plan(sid, after_version, size, FOLD_SELECT)
    yield from _deletion_plan(types, deletion_at(rows))
    return decode_versioned(types, rows)


def _streams_events_plan(
    types: EventTypes, ids: list[StreamId], size: int
) -> Plan[dict[StreamId, list[VersionedEvent]]]:
    rows = yield from streams_plan(ids, size, FOLD_SELECT)
    found, deleted = versioned_streams(types, ids, rows)
    for position in deleted:
        yield from _deletion_plan(types, position)
    return found


def _deletion_plan(types: EventTypes, position: int | None) -> Plan[None]:
    """Raise the ``StreamDeleted`` of the deletion at ``position`` (its row read whole, for
    the error's position and time); nothing when ``position`` is None."""
    if position is not None:
        rows: list[Row] = yield from rows_plan(f"{SELECT} WHERE position = ?", (position,))
        (record,) = decode_rows(types, rows, text_envelope=True)
        check_not_deleted(record.stream_id, [record])


def _time(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise DeserializationError(f"corrupt recorded_at {text!r}: {exc}") from None


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
