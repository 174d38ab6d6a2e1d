"""The PostgreSQL event store: many processes, one database, positions subscribers can trust.

**Appends.** One append is one round trip: a call of the PL/pgSQL function
``<schema>.eventcore_append`` in an autocommit transaction. It takes a transaction-level
advisory lock on every participating stream (in sorted key order, so writers never
deadlock), checks the version of *every* participant (read-only ones too) and reports all
conflicts at once, then takes one schema-wide advisory lock, assigns ``max(position) + 1``
onwards, inserts the rows and sends one ``NOTIFY``.

**Ordering guarantee.** The schema-wide lock is held until commit, so positions are
assigned in commit order and without gaps: when position *n* is visible, every position
below *n* is visible too. A reader polling "events after P" can never skip an event that
commits late.

**Cost.** Inserts and commits run one at a time per schema, and each commit's WAL flush
finishes before the next append can insert, so one schema's write rate is bounded by the
disk's flush latency (``synchronous_commit=off`` lifts that bound, at the risk of losing the
last acknowledged appends in a server crash). The per-stream locks and version checks of
different writers run in parallel, and readers are never blocked. A transaction opened with
:meth:`PostgresEventStore.transaction` holds the schema-wide lock from its append until it
ends, delaying every other writer (not reader) meanwhile: keep such transactions short.

The store is a thin layer over a :class:`~eventcore.stores.postgres.PostgresDatabase`, which
owns the pool, the migrations and the error translation; build several stores on one
database to share them: ``db = PostgresDatabase(url)``, ``PostgresEventStore(db)``,
``PostgresCheckpointStore(db)``...
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.errors import ConfigurationError, EventCoreError, StoreFailure
from eventcore.events import EventTypes, Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.retention.engine import run_retention, write_tombstone
from eventcore.selection import Selection, iter_log
from eventcore.store import check_positive, check_wait_args
from eventcore.stores._verify import LogChecker
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.database import Connection, PostgresDatabase
from eventcore.stores.postgres.operations import Operations
from eventcore.stores.postgres.schema import TRIGGERS, global_lock_text
from eventcore.tombstones import StreamClosure, StreamDeletion, check_not_deleted
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.retention import Archive, RetentionPolicy, RetentionReport
    from eventcore.tenants.store import TenantStore

__all__ = ["PostgresEventStore", "PostgresTransaction"]


class PostgresEventStore:
    """An event store in a PostgreSQL schema, shared safely by many threads and processes.

    ``config``: a :class:`~eventcore.stores.postgres.PostgresDatabase` (shared, not closed
    by :meth:`close`), or a :class:`PostgresConfig` or DSN string (a database is opened here
    and closed by :meth:`close`; the schema and its tables are created or upgraded).
    Open stores after forking, not before.
    """

    def __init__(
        self,
        config: PostgresDatabase | PostgresConfig | str,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
    ) -> None:
        self.database, self._owns = open_database(config, "PostgresEventStore")
        self.config = self.database.config
        self.types = events if isinstance(events, EventTypes) else EventTypes(events)
        self.operations = Operations(
            self.config.schema, self.types, clock, ids, self.config.page_size
        )

    def __repr__(self) -> str:
        return f"PostgresEventStore({self.config.masked_dsn!r}, schema={self.config.schema!r})"

    # -- reads -----------------------------------------------------------------------------

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        """Events of one stream in version order, fetched lazily ``page_size`` at a time."""
        self.operations.stream_page(stream_id, after_version)  # check the arguments now
        return self._stream_pages(StreamId(stream_id), after_version)

    def _stream_pages(self, sid: StreamId, after_version: int) -> Iterator[RecordedEvent]:
        first = True
        while True:
            page = self.database.read(
                "read_stream", self.operations.stream_page(sid, after_version)
            )
            if first and len(page) < self.config.page_size:
                check_not_deleted(sid, page)  # the whole stream: a deletion is its last event
            elif first:  # a long stream: ask its tombstone before yielding anything
                deleted = self.database.read("read_stream", self.operations.deletion(sid))
                if deleted is not None:
                    raise deleted
            first = False
            yield from page
            if len(page) < self.config.page_size:
                return
            after_version = page[-1].stream_version

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        """Several whole streams (duplicates once) in one query — more only for streams
        longer than a page; an empty list for a stream that does not exist."""
        return self.database.read("read_streams", self.operations.read_streams(stream_ids))

    def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[VersionedEvent]:
        """The events of one stream and their versions, without their envelopes: what
        ``execute`` folds. As :meth:`read_stream` (lazy pages, the same checks of the columns
        read, ``StreamDeleted``), without the id, time and metadata columns."""
        self.operations.stream_events_page(stream_id, after_version)  # check the arguments
        return self._events_pages(StreamId(stream_id), after_version)

    def _events_pages(self, sid: StreamId, after_version: int) -> Iterator[VersionedEvent]:
        first = True
        while True:
            plan = self.operations.stream_events_page(sid, after_version)
            page, count = self.database.read("read_stream", plan)
            if first and count == self.config.page_size:  # long: its tombstone first
                deleted = self.database.read("read_stream", self.operations.deletion(sid))
                if deleted is not None:
                    raise deleted
            first = False
            yield from page
            if count < self.config.page_size:
                return
            after_version = page[-1].stream_version

    def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        """Several whole streams as :meth:`read_stream_events` reads each, in one query."""
        plan = self.operations.read_streams_events(stream_ids)
        return self.database.read("read_streams", plan)

    def stream_version(self, stream_id: StreamId) -> int:
        """The number of events in the stream (0 when it does not exist)."""
        return self.database.read("stream_version", self.operations.stream_version(stream_id))

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
        plan = self.operations.read_all(
            after=after, limit=limit, streams=streams, event_types=event_types
        )
        return self.database.read("read_all", plan)

    def read_retained(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """``read_all`` without the retention check: what is left, removed events skipped."""
        plan = self.operations.read_retained(
            after=after, limit=limit, streams=streams, event_types=event_types
        )
        return self.database.read("read_all", plan)

    def head(self) -> int:
        """The highest global position written so far (0 for an empty store)."""
        return self.database.read("head", self.operations.head())

    def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        """Every event stamped with ``correlation_id``, in position order (indexed)."""
        plan = self.operations.read_correlation(correlation_id)
        return self.database.read("read_correlation", plan)

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        """The event with this id, or None."""
        return self.database.read("read_event", self.operations.read_event(event_id))

    def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        """The write recorded under idempotency ``key`` (its fingerprint and events), or
        None if the key was never used."""
        plan = self.operations.read_idempotent_write(key)
        return self.database.read("read_idempotent_write", plan)

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
        plan = self.operations.list_streams(streams, after, limit)
        return self.database.read("list_streams", plan)

    def stats(self) -> StoreStats:
        """Kind, schema version, head, and the numbers of events and streams."""
        plan = self.operations.stats(self.database.schema_version)
        return self.database.read("stats", plan)

    def export_rows(self, *, after: int = 0, limit: int | None = None) -> list[RawEvent]:
        """Stored rows after ``after``, undecoded (whole writes; see :mod:`eventcore.raw`)."""
        return self.database.read("export", self.operations.export_rows(after, limit))

    def stream_rows(
        self, stream_id: StreamId, *, after_version: int = 0, limit: int | None = None
    ) -> list[RawEvent]:
        """The stored rows of one stream after ``after_version``, undecoded, in version order (at
        most ``limit``): what ``eventcore show`` prints, without the event classes."""
        plan = self.operations.stream_rows(stream_id, after_version, limit)
        return self.database.read("stream_rows", plan)

    def import_rows(self, rows: Iterable[RawEvent]) -> int:
        """Add rows exported from a store after this store's head, exactly, in one
        transaction; return how many. Rows that do not continue the log raise
        ``ValidationError`` and nothing is written."""
        plan = self.operations.import_rows(
            rows, global_lock_text(self.config.schema), self.config.channel
        )
        with self.database.transaction("import") as conn:
            return self.database.run_in(conn, "import", plan)

    def verify(
        self, *, page_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> list[LogProblem]:
        """Check the stored log: positions gapless and increasing, every stream's versions
        contiguous, every row decodable (its envelope and JSON; event classes are not
        needed) and the immutability triggers present and enabled. Returns the problems,
        ``[]`` when the log is sound; ``progress`` gets the last position checked after
        each page. Writes nothing."""
        check_positive("page_size", page_size)
        checker = LogChecker(text_envelope=False)
        after = 0
        while True:
            rows = self.database.read("verify", self.operations.verify_page(after, page_size))
            if not rows:
                break
            checker.check(rows)
            after = rows[-1][0]
            if progress is not None:
                progress(after)
        checker.missing_triggers(self.database.read("verify", self.operations.triggers()), TRIGGERS)
        return checker.problems

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until an event after position ``after`` exists (True) or ``timeout``
        seconds pass (False).

        Woken by LISTEN/NOTIFY when ``config.listen`` is on, and polling every
        ``config.poll_interval`` seconds in any case, so a lost notification only delays.
        """
        check_wait_args(after, timeout)
        deadline = time.monotonic() + timeout
        listener = self.database.listener()
        threshold = after
        while True:
            if self.head() > after:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            step = min(remaining, self.config.poll_interval)
            if listener is None:
                time.sleep(step)
            elif listener.wait_beyond(threshold, step):
                # A stale announcement (from a dropped and recreated schema) must not spin.
                threshold = max(threshold, listener.latest)

    # -- writes ----------------------------------------------------------------------------

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append atomically in one round trip (see the module docstring for the locking).

        Raises ``VersionConflict`` listing every stale participant; nothing is written then.
        With ``idempotency_key``, a key already used for the same request writes nothing and
        returns the events first written with it.
        """
        plan = self.operations.append(expected, events, metadata, idempotency_key)
        return self.database.write("append", plan)

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
        marker = StreamClosure(StreamId(stream_id), reason)
        return write_tombstone(self, marker, expected_version)

    def delete_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Delete a stream: append a :class:`~eventcore.tombstones.StreamDeletion`; reads of
        it then raise ``StreamDeleted`` (saying when), appends ``StreamDeleted`` too."""
        marker = StreamDeletion(StreamId(stream_id), reason)
        return write_tombstone(self, marker, expected_version)

    def apply_retention(
        self, policies: Sequence[RetentionPolicy], *, archive: Archive | None
    ) -> RetentionReport:
        """Remove the events ``policies`` select (each stream keeps its last event), after
        writing them to ``archive`` (None: discard them), in one transaction past the
        immutability trigger; see :mod:`eventcore.retention`."""
        return run_retention(self, policies, archive, self.operations.clock, self._remove)

    def _remove(self, rows: Sequence[RawEvent], at: datetime) -> int:
        plan = self.operations.retention.remove_plan(rows, at)
        with self.database.transaction("apply_retention") as conn:
            return self.database.run_in(conn, "apply_retention", plan)

    def retention_runs(self) -> list[tuple[int, int, datetime]]:
        """Each retention run: its first and last removed positions and when it ran."""
        return self.database.read("retention_runs", self.operations.retention.runs_plan())

    def forget_idempotency_keys(self, *, before: datetime) -> int:
        """Delete the idempotency keys recorded before ``before``; return how many."""
        plan = self.operations.forget_idempotency_keys(before)
        return self.database.write("forget_idempotency_keys", plan)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """Open a READ COMMITTED transaction on one pooled connection.

        The handle's :meth:`~PostgresTransaction.append` writes inside it, next to your own
        SQL on :attr:`~PostgresTransaction.connection` (read models, outbox rows); everything
        commits when the block ends and rolls back if it raises. From its append until the
        commit the transaction holds the schema's write lock: other writers wait (readers
        do not), so append last and keep the rest short. A ``store.append`` by the same
        thread or task while it is open fails at once (it would wait for that lock).
        """
        with self.database.transaction("transaction") as conn:
            handle = PostgresTransaction(self, conn)
            try:
                yield handle
            finally:
                handle._open = False

    @contextlib.contextmanager
    def session(self, lock: Iterable[StreamId] = ()) -> Iterator[PostgresSession]:
        """A READ COMMITTED transaction that first locks the ``lock`` streams (advisory
        locks, in the append's sorted order); its reads and one append run inside it. No
        other writer changes those streams until it ends. See :mod:`eventcore.session`."""
        streams = sorted({StreamId(sid) for sid in lock})
        with contextlib.suppress(_RolledBack), self.database.transaction("session") as conn:
            if streams:
                plan = self.operations.lock_streams(streams)
                self.database.run_in(conn, "lock streams", plan)
            session = PostgresSession(self, conn)
            yield session
            if session.failed:  # PostgreSQL aborted the transaction: roll it back quietly
                raise _RolledBack

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database if this store opened it. Safe to call twice."""
        if self._owns:
            self.database.close()

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresTransaction:
    """A transaction opened by :meth:`PostgresEventStore.transaction`.

    One :meth:`append` per transaction (it may span many streams): a second append could
    deadlock against other writers, because the first already holds the write lock.
    """

    def __init__(self, store: PostgresEventStore, conn: Connection) -> None:
        self._store = store
        self._conn = conn
        self._open = True
        self._appended = False

    @property
    def connection(self) -> Connection:
        """The psycopg connection of this transaction, for your own statements."""
        return self._conn

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append inside this transaction; visible to others only after the commit."""
        if not self._open:
            raise StoreFailure("append", "the transaction has ended; open a new one")
        if self._appended:
            raise StoreFailure(
                "append",
                "this transaction has already appended; pass every event to one append() "
                "(it may span several streams)",
            )
        store = self._store
        plan = store.operations.append(expected, events, metadata, idempotency_key)
        self._appended = True
        return store.database.run_in(self._conn, "append", plan)


class PostgresSession:
    """Reads and one append inside :meth:`PostgresEventStore.session`."""

    def __init__(self, store: PostgresEventStore, conn: Connection) -> None:
        self.store = store
        self.types = store.types
        self._conn = conn
        self._appended = False
        self.failed = False

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        plan = self.store.operations.read_stream(stream_id, after_version)
        return iter(self.store.database.run_in(self._conn, "read_stream", plan))

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        plan = self.store.operations.read_streams(stream_ids)
        return self.store.database.run_in(self._conn, "read_streams", plan)

    def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[VersionedEvent]:
        plan = self.store.operations.read_stream_events(stream_id, after_version)
        return iter(self.store.database.run_in(self._conn, "read_stream", plan))

    def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        plan = self.store.operations.read_streams_events(stream_ids)
        return self.store.database.run_in(self._conn, "read_streams", plan)

    def stream_version(self, stream_id: StreamId) -> int:
        plan = self.store.operations.stream_version(stream_id)
        return self.store.database.run_in(self._conn, "stream_version", plan)

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        if self._appended:
            raise StoreFailure(
                "append", "this session has already appended; pass every event to one append()"
            )
        plan = self.store.operations.append(expected, events, metadata, idempotency_key)
        self._appended = True
        try:
            return self.store.database.run_in(self._conn, "append", plan)
        except EventCoreError:
            self.failed = True
            raise


class _RolledBack(Exception):
    """Leave a session whose append failed: the transaction is rolled back, nothing raised."""


def open_database(config: object, who: str) -> tuple[PostgresDatabase, bool]:
    """The database a store works on, and whether the store owns (closes) it."""
    if isinstance(config, PostgresDatabase):
        return config, False
    if isinstance(config, (PostgresConfig, str)):
        return PostgresDatabase(config), True
    raise ConfigurationError(
        f"{who} takes a PostgresDatabase, a PostgresConfig or a DSN string, got "
        f"{type(config).__name__}"
    )
