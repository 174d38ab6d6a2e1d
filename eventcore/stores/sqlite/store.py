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

import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.errors import ConfigurationError, Conflict, IdempotencyConflict, VersionConflict
from eventcore.events import EventTypes, Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite, append_key, idempotency_key
from eventcore.store import (
    PendingEvent,
    check_after_version,
    check_positive,
    check_read_args,
    check_uuid,
    check_wait_args,
    prepare_append,
    unique_stream_ids,
)
from eventcore.stores._notify import wait_for_head
from eventcore.stores._plan import Plan, Query
from eventcore.stores._rows import decode_rows
from eventcore.stores._select import Selection, StreamSelector, selectors
from eventcore.stores.sqlite.database import SqliteDatabase, Synchronous
from eventcore.stores.sqlite.glob import glob
from eventcore.stores.sqlite.schema import CORRELATION
from eventcore.types import StreamId, trusted_stream_id

__all__ = ["SqliteEventStore"]

_WAIT_POLL: Final = 0.05
"""How often ``wait_for_events`` looks for appends by other database objects or processes."""

COLUMNS: Final = (
    "position, stream_id, stream_version, event_type, schema_version, data, event_id, "
    "recorded_at, metadata"
)
_SELECT: Final = f"SELECT {COLUMNS} FROM eventcore_events"

_IN_LIMIT: Final = 500
"""Stream ids per ``read_streams`` query (SQLite bounds the number of parameters)."""

Row = tuple[Any, ...]


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
        while True:
            rows = self.database.read("read_stream", stream_page(sid, after_version, size))
            yield from self._decode(rows)
            if len(rows) < size:
                return
            after_version = rows[-1][2]

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        """Several whole streams (duplicates once) in one query — more only for streams
        longer than a page; an empty list for a stream that does not exist."""
        ids = unique_stream_ids(stream_ids)
        rows = self.database.read("read_streams", streams_plan(ids, self.page_size))
        found: dict[StreamId, list[RecordedEvent]] = {sid: [] for sid in ids}
        for rec in self._decode(rows):
            found[rec.stream_id].append(rec)
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
        an atomic write (it is extended to the write's last selected event)."""
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
        sql = f"{_SELECT} WHERE {CORRELATION} = ? ORDER BY position"
        return self._decode(self.database.read("read_correlation", rows_plan(sql, (key,))))

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        """The event with this id, or None."""
        key = str(check_uuid("event_id", event_id))
        rows = self.database.read("read_event", rows_plan(f"{_SELECT} WHERE event_id = ?", (key,)))
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
        outcome = self.database.write("append", append_plan(checked, pending, meta, key))
        if isinstance(outcome, list):
            if outcome:
                self.database.notifier.notify()
            return outcome
        return self._decode(outcome.rows)  # the key was used before: the original write

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


def open_database(
    database: object,
    who: str,
    synchronous: Synchronous | None,
    busy_timeout: float | None,
    clock: Clock,
) -> tuple[SqliteDatabase, bool]:
    """The database a store works on, and whether the store owns (closes) it."""
    options: dict[str, Any] = {"clock": clock}
    if synchronous is not None:
        options["synchronous"] = synchronous
    if busy_timeout is not None:
        options["busy_timeout"] = busy_timeout
    if isinstance(database, SqliteDatabase):
        if synchronous is not None or busy_timeout is not None:
            raise ConfigurationError(
                f"{who}: synchronous and busy_timeout belong to the SqliteDatabase you passed; "
                "set them when you create it"
            )
        return database, False
    if isinstance(database, sqlite3.Connection):
        return SqliteDatabase.for_connection(database, **options), False
    if isinstance(database, (str, os.PathLike)):
        return SqliteDatabase(database, **options), True
    raise ConfigurationError(
        f"{who} takes a SqliteDatabase, a file path, ':memory:' or a sqlite3.Connection, got "
        f"{type(database).__name__}"
    )


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


# -- plans: the statements of each operation, and what to make of their rows -----------------


class _Replayed:
    """The rows of a write found under an idempotency key (decoded by the store)."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows


def rows_plan(sql: str, params: Sequence[Any]) -> Plan[list[Row]]:
    rows: list[Row] = yield Query(sql, params)
    return rows


def count_plan(sql: str, params: Sequence[Any]) -> Plan[int]:
    count: int = yield Query(sql, params, "count")
    return count


def head_plan() -> Plan[int]:
    row = yield Query("SELECT COALESCE(MAX(position), 0) FROM eventcore_events", (), "one")
    return int(row[0])


def version_plan(sid: StreamId) -> Plan[int]:
    # MAX answers from the end of the (stream_id, stream_version) index in O(log n).
    sql = "SELECT COALESCE(MAX(stream_version), 0) FROM eventcore_events WHERE stream_id = ?"
    row = yield Query(sql, (sid,), "one")
    return int(row[0])


def stream_page(sid: StreamId, after_version: int, size: int) -> Plan[list[Row]]:
    sql = f"{_SELECT} WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version LIMIT ?"
    rows: list[Row] = yield Query(sql, (sid, after_version, size))
    return rows


def streams_plan(ids: list[StreamId], size: int) -> Plan[list[Row]]:
    """Whole streams, ``_IN_LIMIT`` ids per query; a stream longer than a page is read on
    alone from where the page stopped."""
    out: list[Row] = []
    for start in range(0, len(ids), _IN_LIMIT):
        pending = ids[start : start + _IN_LIMIT]
        while pending:
            sql = (
                f"{_SELECT} WHERE stream_id IN ({', '.join('?' * len(pending))}) "
                "ORDER BY stream_id, stream_version LIMIT ?"
            )
            rows: list[Row] = yield Query(sql, (*pending, size))
            out += rows
            if len(rows) < size:
                break
            # The streams before the last one in the page are complete; the last may go on.
            last, version = trusted_stream_id(rows[-1][1]), rows[-1][2]
            while True:
                more = yield from stream_page(last, version, size)
                out += more
                if len(more) < size:
                    break
                version = more[-1][2]
            seen = {row[1] for row in rows}
            pending = [sid for sid in pending if sid not in seen]
    return out


def _filters(
    chosen: tuple[StreamSelector, ...] | None, names: frozenset[str] | None
) -> tuple[str, list[Any]]:
    where, params = "", []
    if chosen is not None:
        where += " AND (" + " OR ".join("stream_id GLOB ?" for _ in chosen) + ")"
        params += [glob(s) for s in chosen]
    if names is not None:
        where += f" AND event_type IN ({', '.join('?' * len(names))})"
        params += sorted(names)
    return where, params


def read_all_plan(
    after: int,
    limit: int | None,
    chosen: tuple[StreamSelector, ...] | None,
    names: frozenset[str] | None,
) -> Plan[list[Row]]:
    """A page of the log; extended to the end of the write the limit would cut."""
    if limit == 0 or (names is not None and not names):
        return []
    where, params = _filters(chosen, names)
    sql = f"{_SELECT} WHERE position > ?{where} ORDER BY position LIMIT ?"
    rows: list[Row] = yield Query(sql, (after, *params, -1 if limit is None else limit))
    if limit is not None and len(rows) == limit:
        last = rows[-1][0]
        found = yield Query(
            "SELECT write_end FROM eventcore_events WHERE position = ?", (last,), "one"
        )
        end = found[0] if found is not None and type(found[0]) is int else last
        if end > last:
            rest = f"{_SELECT} WHERE position > ? AND position <= ?{where} ORDER BY position"
            rows += yield Query(rest, (last, end, *params))
    return rows


def recorded_write_plan(key: str) -> Plan[tuple[str, list[Row], Any] | None]:
    sql = (
        "SELECT fingerprint, first_position, last_position, recorded_at "
        "FROM eventcore_idempotency WHERE key = ?"
    )
    found = yield Query(sql, (key,), "one")
    if found is None:
        return None
    rows: list[Row] = yield Query(
        f"{_SELECT} WHERE position BETWEEN ? AND ? ORDER BY position", (found[1], found[2])
    )
    return found[0], rows, found[3]


_INSERT: Final = (
    "INSERT INTO eventcore_events (position, event_id, stream_id, stream_version, event_type, "
    "schema_version, data, metadata, recorded_at, write_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def append_plan(
    checked: dict[StreamId, int],
    pending: list[PendingEvent],
    meta: Metadata,
    key: IdempotencyKey | None,
) -> Plan[list[RecordedEvent] | _Replayed]:
    """Check the key, check every expected version, insert; inside the caller's
    ``BEGIN IMMEDIATE`` transaction."""
    if key is not None:
        found = yield from recorded_write_plan(key.key)
        if found is not None:
            if found[0] != key.fingerprint:
                raise IdempotencyConflict(key.key, found[0], key.fingerprint)
            return _Replayed(found[1])
    conflicts = []
    for sid, version in checked.items():
        actual = yield from version_plan(sid)
        if actual != version:
            conflicts.append(Conflict(sid, version, actual))
    if conflicts:
        raise VersionConflict(conflicts)
    if not pending:
        return []
    position = yield from head_plan()
    end = position + len(pending)
    meta_json = meta.to_json()
    versions = dict(checked)
    rows = []
    recorded = []
    record = RecordedEvent
    at: datetime | None = None  # the events of one write usually share their time
    at_text = ""
    for p in pending:
        position += 1
        version = versions[p.stream_id] = versions[p.stream_id] + 1
        if p.recorded_at is not at:
            at, at_text = p.recorded_at, p.recorded_at.isoformat()
        rows.append(
            (
                position,
                str(p.event_id),
                p.stream_id,
                version,
                p.info.type_name,
                p.info.version,
                p.data,
                meta_json,
                at_text,
                end,
            )
        )
        recorded.append(
            record(
                position,
                p.stream_id,
                version,
                p.info.type_name,
                p.event,
                p.event_id,
                p.recorded_at,
                meta,
            )
        )
    yield Query(_INSERT, rows, "many")
    if key is not None:
        yield Query(
            "INSERT INTO eventcore_idempotency (key, fingerprint, first_position, "
            "last_position, recorded_at) VALUES (?, ?, ?, ?, ?)",
            (key.key, key.fingerprint, end - len(pending) + 1, end, rows[0][8]),
            "none",
        )
    return recorded
