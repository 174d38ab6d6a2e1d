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
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.errors import (
    ConfigurationError,
    Conflict,
    EventCoreError,
    InvalidStreamSelector,
    SerializationError,
    StoreFailure,
    StoreTimeout,
    ValidationError,
    VersionConflict,
)
from eventcore.events import EventTypes, Metadata, RecordedEvent
from eventcore.store import (
    PendingEvent,
    StreamSelector,
    check_after_version,
    check_read_args,
    check_uuid,
    prepare_append,
    unique_stream_ids,
)
from eventcore.stores._rows import decode_rows
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.filters import like_prefix, pattern_regex
from eventcore.stores.postgres.notify import Listener, acquire_listener, release_listener
from eventcore.stores.postgres.pool import check_idle_connection
from eventcore.stores.postgres.schema import CONFLICT_SQLSTATE, ISOLATION_SQLSTATE, migrate
from eventcore.types import StreamId, StreamPattern, StreamPrefix, trusted_stream_id

__all__ = ["PostgresEventStore", "PostgresTransaction"]

Connection = psycopg.Connection[TupleRow]

_COLUMNS: Final = (
    "position, stream_id, stream_version, event_type, schema_version, data::text, event_id, "
    "recorded_at, metadata::text"
)


class PostgresEventStore:
    """An event store in a PostgreSQL schema, shared safely by many threads and processes.

    ``config`` is a :class:`PostgresConfig` or a DSN string (then every other setting takes
    its default). The schema and its tables are created or upgraded on open.

    Connections come from a pool (``pool_min`` to ``pool_max``); the store is thread-safe.
    Open stores after forking, not before.
    """

    def __init__(
        self,
        config: PostgresConfig | str,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
    ) -> None:
        if isinstance(config, str):
            config = PostgresConfig(config)
        elif not isinstance(config, PostgresConfig):
            raise ConfigurationError(
                "PostgresEventStore takes a PostgresConfig or a DSN string, got "
                f"{type(config).__name__}"
            )
        self.config = config
        self.types = events if isinstance(events, EventTypes) else EventTypes(events)
        self._clock = clock
        self._ids = ids
        self._closed = False
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        schema = sql.Identifier(config.schema)
        table = sql.SQL("{}.events").format(schema)
        self._sql_stream = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {} WHERE stream_id = %s AND stream_version > %s "
            "ORDER BY stream_version LIMIT %s"
        ).format(table)
        self._sql_streams = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {} WHERE stream_id = ANY(%s::text[]) "
            "ORDER BY stream_id, stream_version LIMIT %s"
        ).format(table)
        self._sql_version = sql.SQL(
            "SELECT coalesce(max(stream_version), 0) FROM {} WHERE stream_id = %s"
        ).format(table)
        self._sql_head = sql.SQL("SELECT coalesce(max(position), 0) FROM {}").format(table)
        self._table = table
        self._sql_append = sql.SQL(
            "SELECT {}.eventcore_append(%s::text[], %s::bigint[], %s::uuid[], %s::text[], "
            "%s::text[], %s::integer[], %s::text[], %s::text, %s::timestamptz[])"
        ).format(schema)

        with self._direct_connection("open") as conn:
            try:
                migrate(conn, config.schema, config.channel)
            except psycopg.Error as exc:
                raise self._translate("open", exc) from exc
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            config.dsn,
            kwargs=config.connect_kwargs(),
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.acquire_timeout,
            configure=self._configure_connection,
            check=check_idle_connection,  # no round trip unless the socket says so
            name=f"eventcore-{config.schema}",
            open=True,
        )

    def __repr__(self) -> str:
        return f"PostgresEventStore({self.config.masked_dsn!r}, schema={self.config.schema!r})"

    # -- connections -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _direct_connection(self, operation: str) -> Iterator[Connection]:
        """A connection outside the pool (migrations, probes)."""
        try:
            conn = psycopg.connect(self.config.dsn, **self.config.connect_kwargs())
        except psycopg.Error as exc:
            raise self._cannot_connect(operation, exc) from exc
        try:
            yield conn
        finally:
            conn.close()

    def _configure_connection(self, conn: Connection) -> None:
        settings = {"TimeZone": "UTC"}
        for name in ("statement_timeout", "lock_timeout"):
            seconds = getattr(self.config, name)
            if seconds is not None:
                settings[name] = f"{max(1, round(seconds * 1000))}ms"
        calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
        conn.execute(
            f"SELECT {calls}",
            [item for pair in settings.items() for item in pair],
        )

    @contextlib.contextmanager
    def _connection(self, operation: str) -> Iterator[Connection]:
        if self._closed:
            raise StoreFailure(operation, "the store is closed")
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            failure, cause = self._unavailable(operation)
            raise failure from (cause or exc)
        except PoolClosed as exc:
            raise StoreFailure(operation, "the store is closed") from exc
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def _unavailable(self, operation: str) -> tuple[StoreFailure, BaseException | None]:
        """Explain a pool timeout: is the server down, or is the pool exhausted?"""
        try:
            probe = psycopg.connect(self.config.dsn, **self.config.connect_kwargs())
        except psycopg.Error as exc:
            return self._cannot_connect(operation, exc), exc
        probe.close()
        return (
            StoreFailure(
                operation,
                f"no pooled connection to PostgreSQL at {self.config.address} became free "
                f"within acquire_timeout={self.config.acquire_timeout:g}s "
                f"(pool_max={self.config.pool_max}); raise pool_max or acquire_timeout, or "
                "shorten the transactions that hold connections",
            ),
            None,
        )

    def _cannot_connect(self, operation: str, exc: psycopg.Error) -> StoreFailure:
        return StoreFailure(
            operation,
            f"cannot connect to PostgreSQL at {self.config.address}: "
            f"{self.config.mask(_message(exc))}. Check that the server is running and "
            "reachable, and the DSN (EVENTCORE_POSTGRES_URL or PG* variables)",
        )

    def _translate(
        self, operation: str, exc: psycopg.Error, *, writing: bool = False
    ) -> EventCoreError:
        """Map a driver error to EventCore's typed errors (the caller chains the cause)."""
        config = self.config
        detail = config.mask(_message(exc))
        if exc.sqlstate == CONFLICT_SQLSTATE:
            return VersionConflict(_conflicts(exc.diag.message_detail))
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreTimeout(
                operation,
                f"waited longer than lock_timeout={config.lock_timeout}s for a lock held by "
                "another transaction (a writer on the same streams, or a long transaction "
                "holding the write lock); nothing was written. Retry, or raise lock_timeout",
            )
        if isinstance(exc, pg_errors.QueryCanceled):
            return StoreTimeout(
                operation,
                f"{detail} (statement_timeout={config.statement_timeout}s); nothing was "
                "written. Retry, or raise statement_timeout",
            )
        if writing and (
            isinstance(exc, pg_errors.UntranslatableCharacter | pg_errors.CharacterNotInRepertoire)
            or (isinstance(exc, psycopg.DataError) and "NUL" in detail)
        ):
            return SerializationError(
                f"PostgreSQL cannot store this event: {detail}. PostgreSQL text and jsonb "
                "reject the NUL character (\\x00, \\u0000); nothing was written"
            )
        if isinstance(exc, pg_errors.InvalidRegularExpression):
            return InvalidStreamSelector(f"PostgreSQL rejected the stream pattern: {detail}")
        if exc.sqlstate == ISOLATION_SQLSTATE:
            return StoreFailure(
                operation,
                f"{detail}; run appends in READ COMMITTED transactions (the default)",
            )
        if isinstance(exc, psycopg.OperationalError):
            outcome = (
                " The append is atomic: it committed entirely or not at all; read the streams "
                "to find out (execute() re-reads them)."
                if writing
                else ""
            )
            return StoreFailure(
                operation,
                f"lost the connection to PostgreSQL at {config.address}: {detail}.{outcome}",
            )
        return StoreFailure(operation, detail)

    def _fetch(self, operation: str, query: sql.Composed, params: Sequence[Any]) -> list[Any]:
        """Run a read; a connection found broken is replaced and the read tried once more."""
        for attempt in (1, 2):
            with self._connection(operation) as conn:
                try:
                    return conn.execute(query, params).fetchall()
                except psycopg.OperationalError as exc:
                    if attempt == 1 and conn.broken:
                        continue
                    raise self._translate(operation, exc) from exc
                except psycopg.Error as exc:
                    raise self._translate(operation, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads -----------------------------------------------------------------------------

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        """Events of one stream in version order, fetched lazily ``page_size`` at a time."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        return self._read_stream_pages(sid, after_version)

    def _read_stream_pages(self, sid: StreamId, after_version: int) -> Iterator[RecordedEvent]:
        page = self.config.page_size
        while True:
            rows = self._fetch("read_stream", self._sql_stream, (sid, after_version, page))
            yield from self._decode_rows(rows)
            if len(rows) < page:
                return
            after_version = rows[-1][2]

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        """Several whole streams (duplicates once) in one query — more only for streams
        longer than a page; an empty list for a stream that does not exist."""
        ids = unique_stream_ids(stream_ids)
        found: dict[StreamId, list[RecordedEvent]] = {sid: [] for sid in ids}
        page = self.config.page_size
        pending = ids
        while pending:
            rows = self._fetch("read_streams", self._sql_streams, (pending, page))
            for rec in self._decode_rows(rows):
                found[rec.stream_id].append(rec)
            if len(rows) < page:
                break
            # A full page: the streams before the last one in it are complete, the last one
            # may go on (read the rest of it alone), the others come next.
            last = trusted_stream_id(rows[-1][1])
            found[last].extend(self._read_stream_pages(last, rows[-1][2]))
            seen = {row[1] for row in rows}
            pending = [sid for sid in pending if sid not in seen]
        return found

    def stream_version(self, stream_id: StreamId) -> int:
        """The number of events in the stream (0 when it does not exist)."""
        rows = self._fetch("stream_version", self._sql_version, (StreamId(stream_id),))
        return int(rows[0][0])

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: StreamSelector | None = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """Events after position ``after`` in position order, filtered in SQL before the
        limit by a stream prefix or pattern and by event types."""
        names = check_read_args(self.types, after, limit, streams, event_types)
        where = [sql.SQL("position > %s")]
        params: list[Any] = [after]
        if isinstance(streams, StreamPrefix):
            where.append(sql.SQL("stream_id LIKE %s ESCAPE '\\'"))
            params.append(like_prefix(streams))
        elif isinstance(streams, StreamPattern):
            where.append(sql.SQL("stream_id ~ %s"))
            params.append(pattern_regex(streams))
        if names is not None:
            if not names:
                return []
            where.append(sql.SQL("event_type = ANY(%s::text[])"))
            params.append(sorted(names))
        params.append(limit)
        query = sql.SQL("SELECT " + _COLUMNS + " FROM {} WHERE {} ORDER BY position LIMIT %s")
        rows = self._fetch(
            "read_all", query.format(self._table, sql.SQL(" AND ").join(where)), params
        )
        return self._decode_rows(rows)

    def head(self) -> int:
        """The highest global position written so far (0 for an empty store)."""
        return int(self._fetch("head", self._sql_head, ())[0][0])

    def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        """Every event stamped with ``correlation_id``, in position order (indexed)."""
        key = check_uuid("correlation_id", correlation_id)
        query = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {} WHERE metadata->>'correlation_id' = %s "
            "ORDER BY position"
        ).format(self._table)
        return self._decode_rows(self._fetch("read_correlation", query, (str(key),)))

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        """The event with this id, or None."""
        key = check_uuid("event_id", event_id)
        query = sql.SQL("SELECT " + _COLUMNS + " FROM {} WHERE event_id = %s").format(self._table)
        found = self._decode_rows(self._fetch("read_event", query, (key,)))
        return found[0] if found else None

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until an event after position ``after`` exists (True) or ``timeout``
        seconds pass (False).

        Woken by LISTEN/NOTIFY when ``config.listen`` is on, and polling every
        ``config.poll_interval`` seconds in any case, so a lost notification only delays.
        """
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ValidationError(f"after must be a position >= 0, got {after!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValidationError(f"timeout must be seconds >= 0, got {timeout!r}")
        deadline = time.monotonic() + timeout
        listener = self._ensure_listener()
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

    def _ensure_listener(self) -> Listener | None:
        if not self.config.listen:
            return None
        with self._listener_lock:
            if self._closed:
                raise StoreFailure("wait_for_events", "the store is closed")
            if self._listener is None:
                kwargs = self.config.connect_kwargs()
                kwargs["application_name"] = f"{self.config.application_name}:listen"[:63]
                self._listener = acquire_listener(self.config.dsn, self.config.channel, kwargs)
            return self._listener

    def _decode_rows(self, rows: list[Any]) -> list[RecordedEvent]:
        return decode_rows(self.types, rows, text_envelope=False)

    # -- writes ----------------------------------------------------------------------------

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
    ) -> list[RecordedEvent]:
        """Append atomically in one round trip (see the module docstring for the locking).

        Raises ``VersionConflict`` listing every stale participant; nothing is written then.
        """
        checked, pending, meta = prepare_append(
            self.types, expected, events, metadata, self._clock, self._ids
        )
        with self._connection("append") as conn:
            return self._append_on(conn, checked, pending, meta)

    def _append_on(
        self,
        conn: Connection,
        checked: dict[StreamId, int],
        pending: list[PendingEvent],
        meta: Metadata,
    ) -> list[RecordedEvent]:
        params = (
            list(checked),
            list(checked.values()),
            [p.event_id for p in pending],
            [p.stream_id for p in pending],
            [p.info.type_name for p in pending],
            [p.info.version for p in pending],
            [p.data for p in pending],
            meta.to_json(),
            [p.recorded_at for p in pending],
        )
        try:
            row = conn.execute(self._sql_append, params).fetchone()
        except psycopg.Error as exc:
            raise self._translate("append", exc, writing=True) from exc
        first = int(row[0]) if row and row[0] is not None else 0
        versions = dict(checked)
        recorded: list[RecordedEvent] = []
        for offset, p in enumerate(pending):
            version = versions[p.stream_id] = versions[p.stream_id] + 1
            recorded.append(
                RecordedEvent(
                    first + offset,
                    p.stream_id,
                    version,
                    p.info.type_name,
                    p.event,
                    p.event_id,
                    p.recorded_at,
                    meta,
                )
            )
        return recorded

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """Open a READ COMMITTED transaction on one pooled connection.

        The handle's :meth:`~PostgresTransaction.append` writes inside it, next to your own
        SQL on :attr:`~PostgresTransaction.connection` (read models, outbox rows); everything
        commits when the block ends and rolls back if it raises. From its append until the
        commit the transaction holds the schema's write lock: other writers wait (readers
        do not), so append last and keep the rest short.
        """
        with self._connection("transaction") as conn:
            try:
                conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            except psycopg.Error as exc:
                raise self._translate("transaction", exc) from exc
            handle = PostgresTransaction(self, conn)
            try:
                yield handle
            except BaseException:
                handle._open = False
                _rollback_quietly(conn)
                raise
            handle._open = False
            if conn.info.transaction_status == TransactionStatus.INERROR:
                _rollback_quietly(conn)
                raise StoreFailure(
                    "commit",
                    "a statement inside the transaction failed, so PostgreSQL rolled it back; "
                    "nothing was committed",
                )
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                raise self._translate("commit", exc, writing=handle._appended) from exc

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool and stop listening. Safe to call twice."""
        with self._listener_lock:
            if self._closed:
                return
            self._closed = True
            listener, self._listener = self._listener, None
        if listener is not None:
            release_listener(listener)
        self._pool.close()

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
        checked, pending, meta = prepare_append(
            store.types, expected, events, metadata, store._clock, store._ids
        )
        self._appended = True
        return store._append_on(self._conn, checked, pending, meta)


def _conflicts(detail: str | None) -> list[Conflict]:
    try:
        items = json.loads(detail or "[]")
        return [Conflict(i["stream"], int(i["expected"]), int(i["actual"])) for i in items]
    except (ValueError, TypeError, KeyError) as exc:  # pragma: no cover - our own JSON
        raise StoreFailure("append", f"unreadable version-conflict detail {detail!r}") from exc


def _message(exc: BaseException) -> str:
    """The driver's message on one line (the server's primary message when there is one)."""
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    text = primary or " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def _rollback_quietly(conn: Connection) -> None:
    with contextlib.suppress(psycopg.Error):
        if not conn.closed:
            conn.execute("ROLLBACK")
