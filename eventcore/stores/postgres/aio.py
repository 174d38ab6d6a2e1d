"""The asyncio face of the PostgreSQL store, native: psycopg's ``AsyncConnection`` and
``AsyncConnectionPool``, the same plans, migrations, errors and guarantees as the blocking
store (one-round-trip append, commit-ordered gapless positions, LISTEN/NOTIFY wake-ups,
typed timeouts).

>>> # async with AsyncPostgresEventStore("postgresql://app@db/shop") as store:
>>> #     await store.append(...)

The store opens its pool on first use, on ``await store.open()`` or in ``async with``. An
append, once started, runs to its end: cancelling the awaiting task cannot turn a commit
into a reported failure (:mod:`eventcore._finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from eventcore._finish import finish
from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.errors import ConfigurationError, EventCoreError, StoreFailure
from eventcore.events import EventTypes, Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.observability import points
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.retention.engine import run_retention_async, write_tombstone_async
from eventcore.selection import Selection, aiter_log
from eventcore.store import check_positive, check_wait_args
from eventcore.stores._plan import Plan, Query, drive_async
from eventcore.stores._verify import LogChecker
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.database import (
    BrokenConnection,
    acquire_timeout_error,
    cannot_connect_error,
    check_schema,
    migrate_schema,
    namespace_of,
    resumed,
    translate_error,
)
from eventcore.stores.postgres.operations import Operations
from eventcore.stores.postgres.pool import readable, usage
from eventcore.stores.postgres.schema import TRIGGERS, global_lock_text
from eventcore.tombstones import StreamClosure, StreamDeletion
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.retention import Archive, RetentionPolicy, RetentionReport
    from eventcore.tenants.aio import AsyncTenantStore

__all__ = [
    "AsyncConnection",
    "AsyncPostgresDatabase",
    "AsyncPostgresEventStore",
    "AsyncPostgresSession",
]

T = TypeVar("T")
AsyncConnection = psycopg.AsyncConnection[TupleRow]


class AsyncPostgresDatabase:
    """The asyncio :class:`~eventcore.stores.postgres.PostgresDatabase`: a schema, its pool
    (``AsyncConnectionPool``, opened by :meth:`open`), its migrations and its errors."""

    def __init__(self, config: PostgresConfig | str, *, migrate: bool = True) -> None:
        if isinstance(config, str):
            config = PostgresConfig(config)
        elif not isinstance(config, PostgresConfig):
            raise ConfigurationError(
                f"AsyncPostgresDatabase takes a PostgresConfig or a DSN string, got "
                f"{type(config).__name__}"
            )
        if not isinstance(migrate, bool):
            raise ConfigurationError(f"migrate must be True or False, got {migrate!r}")
        self.config = config
        self.key: tuple[str, ...] = ("postgres", config.masked_dsn, config.schema)
        self.namespace = namespace_of(config)
        self.schema_version = 0
        self._migrate = migrate
        self._pool: AsyncConnectionPool[AsyncConnection] | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False
        self._listener: AsyncListener | None = None
        self._open_tx: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"eventcore-async-tx-{id(self)}", default=False
        )
        points.DATABASES.add(self)

    def pool_stats(self) -> dict[str, int]:
        """The pool's connections, as :meth:`PostgresDatabase.pool_stats` (all 0 but ``max``
        before :meth:`open`); read by the pool metric, from any thread."""
        pool = self._pool
        return usage({} if pool is None else pool.get_stats(), self.config.pool_max)

    def __repr__(self) -> str:
        schema = self.config.schema
        return f"AsyncPostgresDatabase({self.config.masked_dsn!r}, schema={schema!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self) -> AsyncPostgresDatabase:
        """Migrate (or check) the schema and open the pool; a second call does nothing."""
        if self._pool is not None:
            return self
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                if self._closed:
                    raise StoreFailure("open", "the store is closed")
                self.schema_version = await asyncio.to_thread(self._prepare_schema)
                pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
                    self.config.dsn,
                    kwargs=self.config.connect_kwargs(),
                    min_size=self.config.pool_min,
                    max_size=self.config.pool_max,
                    timeout=self.config.acquire_timeout,
                    configure=self._configure_connection,
                    name=f"eventcore-async-{self.config.schema}",
                    open=False,
                )
                await pool.open()
                self._pool = pool
        return self

    def _prepare_schema(self) -> int:
        """The blocking migration (once per open, on a connection of its own)."""
        try:
            conn = psycopg.connect(self.config.dsn, **self.config.connect_kwargs())
        except psycopg.Error as exc:
            raise cannot_connect_error(self.config, "open", exc) from exc
        try:
            if self._migrate:
                return migrate_schema(conn, self.config)
            return check_schema(conn, self.config)
        except psycopg.Error as exc:
            raise translate_error(self.config, "open", exc) from exc
        finally:
            conn.close()

    async def _configure_connection(self, conn: AsyncConnection) -> None:
        settings = {"TimeZone": "UTC"}
        for name in ("statement_timeout", "lock_timeout"):
            seconds = getattr(self.config, name)
            if seconds is not None:
                settings[name] = f"{max(1, round(seconds * 1000))}ms"
        calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
        await conn.execute(f"SELECT {calls}", [v for pair in settings.items() for v in pair])

    # -- connections -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connection(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """A healthy pooled connection (autocommit) for the length of the block."""
        await self.open()
        pool = self._pool
        assert pool is not None
        conn = await self._checkout(pool, operation)
        try:
            yield conn
        finally:
            await pool.putconn(conn)

    async def _checkout(
        self, pool: AsyncConnectionPool[AsyncConnection], operation: str
    ) -> AsyncConnection:
        """As the blocking database does: a dead connection goes back, the first dead one
        makes the pool check every idle connection."""
        if self._closed:
            raise StoreFailure(operation, "the store is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.acquire_timeout
        swept = False
        while True:
            try:
                conn = await pool.getconn(timeout=max(0.0, deadline - loop.time()))
            except PoolTimeout as exc:
                unreachable = await asyncio.to_thread(self._probe)
                raise acquire_timeout_error(self.config, operation, unreachable) from (
                    unreachable or exc
                )
            except PoolClosed as exc:
                raise StoreFailure(operation, "the store is closed") from exc
            if await _looks_healthy(conn):
                return conn
            await pool.putconn(conn)
            if not swept:
                swept = True
                with contextlib.suppress(psycopg.Error, PoolClosed):
                    await pool.check()

    def _probe(self) -> psycopg.Error | None:
        try:
            psycopg.connect(self.config.dsn, **self.config.connect_kwargs()).close()
        except psycopg.Error as exc:
            return exc
        return None

    # -- running plans ---------------------------------------------------------------------

    async def read(self, operation: str, plan: Plan[T]) -> T:
        """Run a read-only plan on a pooled connection; a connection that breaks under the
        first statement is replaced and that statement run again once."""
        if points.ACTIVE is not None:
            return await points.ACTIVE.database_async(  # type: ignore[no-any-return]
                "postgresql", self.namespace, operation, lambda: self._read(operation, plan)
            )
        return await self._read(operation, plan)

    async def _read(self, operation: str, plan: Plan[T]) -> T:
        try:
            query = next(plan)
        except StopIteration as done:
            value: T = done.value
            return value
        for attempt in (1, 2):
            async with self.connection(operation) as conn:
                try:
                    result = await self._execute(operation, conn, query, writing=False)
                except BrokenConnection as broken:
                    if attempt == 1:
                        continue
                    plan.close()
                    raise broken.error from broken.error.__cause__
                return await self._drive(operation, plan, conn, first_result=(result,))
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(self, operation: str, plan: Plan[T]) -> T:
        """Run a writing plan in autocommit (refused inside this task's transaction)."""
        self.refuse_inside_transaction(operation)
        if points.ACTIVE is not None:
            return await points.ACTIVE.database_async(  # type: ignore[no-any-return]
                "postgresql", self.namespace, operation, lambda: self._write(operation, plan)
            )
        return await self._write(operation, plan)

    async def _write(self, operation: str, plan: Plan[T]) -> T:
        async with self.connection(operation) as conn:
            return await self._drive(operation, plan, conn, writing=True)

    async def run_in(self, tx: AsyncConnection, operation: str, plan: Plan[T]) -> T:
        """Run ``plan`` inside a transaction opened by :meth:`transaction`."""
        return await self._drive(operation, plan, tx, writing=True)

    async def _drive(
        self,
        operation: str,
        plan: Plan[T],
        conn: AsyncConnection,
        *,
        writing: bool = False,
        first_result: tuple[Any] | None = None,
    ) -> T:
        async def execute(query: Query) -> Any:
            try:
                return await self._execute(operation, conn, query, writing=writing)
            except BrokenConnection as broken:
                raise broken.error from broken.error.__cause__

        if first_result is None:
            return await drive_async(plan, execute)
        return await drive_async(resumed(plan, first_result[0]), execute)

    async def _execute(
        self, operation: str, conn: AsyncConnection, query: Query, *, writing: bool
    ) -> Any:
        try:
            if query.fetch == "many":
                async with conn.cursor() as cursor:
                    await cursor.executemany(query.sql, query.params)
                return None
            cursor = await conn.execute(query.sql, query.params)
            if query.fetch == "all":
                return await cursor.fetchall()
            if query.fetch == "one":
                return await cursor.fetchone()
            if query.fetch == "count":
                return cursor.rowcount
            return None
        except psycopg.OperationalError as exc:
            error = translate_error(self.config, operation, exc, writing=writing)
            if conn.broken:
                error.__cause__ = exc
                raise BrokenConnection(error) from exc
            raise error from exc
        except psycopg.Error as exc:
            raise translate_error(self.config, operation, exc, writing=writing) from exc

    # -- transactions ----------------------------------------------------------------------

    def refuse_inside_transaction(self, operation: str) -> None:
        if self._open_tx.get():
            raise StoreFailure(
                operation,
                "this task has a transaction open on this database (store.transaction()); an "
                "append on another connection would wait for the write lock that transaction "
                "holds. Append through the transaction (tx.append, once per transaction), or "
                "after it ends",
            )

    @contextlib.asynccontextmanager
    async def transaction(self, operation: str = "transaction") -> AsyncIterator[AsyncConnection]:
        """``BEGIN ISOLATION LEVEL READ COMMITTED`` … ``COMMIT`` on one pooled connection."""
        self.refuse_inside_transaction(operation)
        async with self.connection(operation) as conn:
            try:
                await conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            except psycopg.Error as exc:
                raise translate_error(self.config, operation, exc) from exc
            token = self._open_tx.set(True)
            try:
                yield conn
            except BaseException:
                self._open_tx.reset(token)
                await _rollback_quietly(conn)
                raise
            self._open_tx.reset(token)
            if conn.info.transaction_status == TransactionStatus.INERROR:
                await _rollback_quietly(conn)
                raise StoreFailure(
                    "commit",
                    "a statement inside the transaction failed, so PostgreSQL rolled it back; "
                    "nothing was committed",
                )
            try:
                await finish(conn.execute("COMMIT"))  # once sent, the commit runs to its end
            except psycopg.Error as exc:
                raise translate_error(self.config, "commit", exc, writing=True) from exc

    def translate(
        self, operation: str, exc: psycopg.Error, *, writing: bool = False
    ) -> EventCoreError:
        return translate_error(self.config, operation, exc, writing=writing)

    # -- live delivery ---------------------------------------------------------------------

    def listener(self) -> AsyncListener | None:
        """This database's LISTEN task (started on first use), or None when
        ``config.listen`` is off."""
        if not self.config.listen:
            return None
        if self._closed:
            raise StoreFailure("wait_for_events", "the store is closed")
        if self._listener is None:
            kwargs = self.config.connect_kwargs()
            kwargs["application_name"] = f"{self.config.application_name}:listen"[:63]
            self._listener = AsyncListener(self.config.dsn, self.config.channel, kwargs)
            self._listener.start()
        return self._listener

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the pool and stop listening. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        if self._pool is not None:
            await self._pool.close()

    async def __aenter__(self) -> AsyncPostgresDatabase:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncListener:
    """One LISTENing ``AsyncConnection`` in a task; wakes the coroutines waiting for
    positions. A hint only, as in the blocking store: waiters confirm with a query and poll
    anyway."""

    def __init__(self, dsn: str, channel: str, connect_kwargs: dict[str, Any]) -> None:
        self.channel = channel
        self._dsn = dsn
        self._kwargs = {**connect_kwargs, "autocommit": True}
        self._changed = asyncio.Condition()
        self.latest = 0
        self._generation = 0
        self.connected = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._dsn, **self._kwargs)
                async with conn:
                    await conn.execute(listen)
                    await self._set_connected(True)
                    async for note in conn.notifies():
                        await self._announce(note.payload)
            except psycopg.Error:
                pass  # waiters keep polling; reconnect below
            finally:
                await self._set_connected(False)
            await asyncio.sleep(1.0)

    async def _announce(self, payload: str) -> None:
        try:
            position = int(payload)
        except ValueError:
            return
        async with self._changed:
            if position > self.latest:
                self.latest = position
                self._changed.notify_all()

    async def _set_connected(self, connected: bool) -> None:
        async with self._changed:
            self.connected = connected
            self._generation += 1  # notifications may have been missed: waiters re-read
            self._changed.notify_all()

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        """Until a notification above ``position``, a (re)connection, or ``timeout``."""
        async with self._changed:
            generation = self._generation
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self.latest > position or self._generation != generation
                    ),
                    timeout,
                )
            except TimeoutError:
                return False
            return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class AsyncPostgresEventStore:
    """An event store in a PostgreSQL schema, for asyncio code.

    ``config``: an :class:`AsyncPostgresDatabase` (shared, not closed by :meth:`close`), or a
    :class:`PostgresConfig` or DSN (a database is opened on first use and closed by
    :meth:`close`).
    """

    def __init__(
        self,
        config: AsyncPostgresDatabase | PostgresConfig | str,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
    ) -> None:
        if isinstance(config, AsyncPostgresDatabase):
            self.database, self._owns = config, False
        elif isinstance(config, (PostgresConfig, str)):
            self.database, self._owns = AsyncPostgresDatabase(config), True
        else:
            raise ConfigurationError(
                "AsyncPostgresEventStore takes an AsyncPostgresDatabase, a PostgresConfig or a "
                f"DSN string, got {type(config).__name__}"
            )
        self.config = self.database.config
        self.types = events if isinstance(events, EventTypes) else EventTypes(events)
        self.operations = Operations(
            self.config.schema, self.types, clock, ids, self.config.page_size
        )

    def __repr__(self) -> str:
        schema = self.config.schema
        return f"AsyncPostgresEventStore({self.config.masked_dsn!r}, schema={schema!r})"

    async def open(self) -> AsyncPostgresEventStore:
        """Open the database now (it opens on first use otherwise)."""
        await self.database.open()
        return self

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        plan = self.operations.read_stream(stream_id, after_version)
        return await self.database.read("read_stream", plan)

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        return await self.database.read("read_streams", self.operations.read_streams(stream_ids))

    async def stream_version(self, stream_id: StreamId) -> int:
        plan = self.operations.stream_version(stream_id)
        return await self.database.read("stream_version", plan)

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        plan = self.operations.read_all(
            after=after, limit=limit, streams=streams, event_types=event_types
        )
        return await self.database.read("read_all", plan)

    def for_tenant(self, tenant: str) -> AsyncTenantStore:
        """This store as tenant ``tenant`` sees it (see :mod:`eventcore.tenants`)."""
        from eventcore.tenants.aio import AsyncTenantStore

        return AsyncTenantStore(self, tenant)

    async def read_retained(self, **kwargs: Any) -> list[RecordedEvent]:
        """``read_all`` without the retention check."""
        return await self.database.read("read_all", self.operations.read_retained(**kwargs))

    async def close_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Close a stream (see :meth:`PostgresEventStore.close_stream`)."""
        marker = StreamClosure(StreamId(stream_id), reason)
        return await write_tombstone_async(self, marker, expected_version)

    async def delete_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Delete a stream (see :meth:`PostgresEventStore.delete_stream`)."""
        marker = StreamDeletion(StreamId(stream_id), reason)
        return await write_tombstone_async(self, marker, expected_version)

    async def apply_retention(
        self, policies: Sequence[RetentionPolicy], *, archive: Archive | None
    ) -> RetentionReport:
        """Archive and remove what ``policies`` select (see :mod:`eventcore.retention`)."""
        clock = self.operations.clock
        return await run_retention_async(self, policies, archive, clock, self._remove)

    async def _remove(self, rows: Sequence[RawEvent], at: datetime) -> int:
        plan = self.operations.retention.remove_plan(rows, at)
        async with self.database.transaction("apply_retention") as conn:
            return await self.database.run_in(conn, "apply_retention", plan)

    async def retention_runs(self) -> list[tuple[int, int, datetime]]:
        return await self.database.read("retention_runs", self.operations.retention.runs_plan())

    async def head(self) -> int:
        return await self.database.read("head", self.operations.head())

    async def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        plan = self.operations.read_correlation(correlation_id)
        return await self.database.read("read_correlation", plan)

    async def read_event(self, event_id: UUID) -> RecordedEvent | None:
        return await self.database.read("read_event", self.operations.read_event(event_id))

    async def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        plan = self.operations.read_idempotent_write(key)
        return await self.database.read("read_idempotent_write", plan)

    async def iter_all(
        self,
        *,
        after: int = 0,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """Every selected event after ``after``, a page (whole writes) at a time."""
        async for event in aiter_log(
            self.read_all,
            after=after,
            streams=streams,
            event_types=event_types,
            page_size=page_size,
        ):
            yield event

    async def list_streams(
        self, *, streams: Selection = None, after: str = "", limit: int | None = None
    ) -> list[StreamInfo]:
        plan = self.operations.list_streams(streams, after, limit)
        return await self.database.read("list_streams", plan)

    async def stats(self) -> StoreStats:
        await self.database.open()
        plan = self.operations.stats(self.database.schema_version)
        return await self.database.read("stats", plan)

    async def export_rows(self, *, after: int = 0, limit: int | None = None) -> list[RawEvent]:
        return await self.database.read("export", self.operations.export_rows(after, limit))

    async def stream_rows(
        self, stream_id: StreamId, *, after_version: int = 0, limit: int | None = None
    ) -> list[RawEvent]:
        """See :meth:`PostgresEventStore.stream_rows`."""
        plan = self.operations.stream_rows(stream_id, after_version, limit)
        return await self.database.read("stream_rows", plan)

    async def verify(
        self, *, page_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> list[LogProblem]:
        """See :meth:`PostgresEventStore.verify`."""
        check_positive("page_size", page_size)
        checker = LogChecker(text_envelope=False)
        after = 0
        while rows := await self.database.read(
            "verify", self.operations.verify_page(after, page_size)
        ):
            checker.check(rows)
            after = rows[-1][0]
            if progress is not None:
                progress(after)
        found = await self.database.read("verify", self.operations.triggers())
        checker.missing_triggers(found, TRIGGERS)
        return checker.problems

    async def import_rows(self, rows: Iterable[RawEvent]) -> int:
        plan = self.operations.import_rows(
            rows, global_lock_text(self.config.schema), self.config.channel
        )
        async with self.database.transaction("import") as conn:
            return await self.database.run_in(conn, "import", plan)

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append atomically in one round trip; runs to its end once started."""
        plan = self.operations.append(expected, events, metadata, idempotency_key)
        return await finish(self.database.write("append", plan))

    async def forget_idempotency_keys(self, *, before: datetime) -> int:
        plan = self.operations.forget_idempotency_keys(before)
        return await self.database.write("forget_idempotency_keys", plan)

    async def wait_for_events(self, after: int, timeout: float) -> bool:
        """Wait until an event after ``after`` exists (True) or ``timeout`` seconds pass;
        woken by LISTEN/NOTIFY, polling every ``config.poll_interval`` in any case."""
        check_wait_args(after, timeout)
        await self.database.open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        listener = self.database.listener()
        threshold = after
        while True:
            if await self.head() > after:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            step = min(remaining, self.config.poll_interval)
            if listener is None:
                await asyncio.sleep(step)
            elif await listener.wait_beyond(threshold, step):
                threshold = max(threshold, listener.latest)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncPostgresTransaction]:
        """As :meth:`PostgresEventStore.transaction`, for asyncio code."""
        async with self.database.transaction("transaction") as conn:
            handle = AsyncPostgresTransaction(self, conn)
            try:
                yield handle
            finally:
                handle.closed = True

    @contextlib.asynccontextmanager
    async def session(self, lock: Iterable[StreamId] = ()) -> AsyncIterator[AsyncPostgresSession]:
        """As :meth:`PostgresEventStore.session`, for asyncio code."""
        streams = sorted({StreamId(sid) for sid in lock})
        with contextlib.suppress(_RolledBack):
            async with self.database.transaction("session") as conn:
                if streams:
                    plan = self.operations.lock_streams(streams)
                    await self.database.run_in(conn, "lock streams", plan)
                session = AsyncPostgresSession(self, conn)
                yield session
                if session.failed:  # PostgreSQL aborted the transaction: roll it back quietly
                    raise _RolledBack

    async def close(self) -> None:
        """Close the database if this store opened it."""
        if self._owns:
            await self.database.close()

    async def __aenter__(self) -> AsyncPostgresEventStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncPostgresTransaction:
    """A transaction opened by :meth:`AsyncPostgresEventStore.transaction` (one append)."""

    def __init__(self, store: AsyncPostgresEventStore, conn: AsyncConnection) -> None:
        self.store = store
        self.connection = conn
        self.closed = False
        self.appended = False

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        if self.closed:
            raise StoreFailure("append", "the transaction has ended; open a new one")
        if self.appended:
            raise StoreFailure(
                "append",
                "this transaction has already appended; pass every event to one append() "
                "(it may span several streams)",
            )
        plan = self.store.operations.append(expected, events, metadata, idempotency_key)
        self.appended = True
        return await self.store.database.run_in(self.connection, "append", plan)


class AsyncPostgresSession:
    """Reads and one append inside :meth:`AsyncPostgresEventStore.session`."""

    def __init__(self, store: AsyncPostgresEventStore, conn: AsyncConnection) -> None:
        self.store = store
        self.types = store.types
        self._conn = conn
        self._appended = False
        self.failed = False

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        plan = self.store.operations.read_stream(stream_id, after_version)
        return await self.store.database.run_in(self._conn, "read_stream", plan)

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        plan = self.store.operations.read_streams(stream_ids)
        return await self.store.database.run_in(self._conn, "read_streams", plan)

    async def stream_version(self, stream_id: StreamId) -> int:
        plan = self.store.operations.stream_version(stream_id)
        return await self.store.database.run_in(self._conn, "stream_version", plan)

    async def append(
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
            return await finish(self.store.database.run_in(self._conn, "append", plan))
        except EventCoreError:
            self.failed = True
            raise


class _RolledBack(Exception):
    """Leave a session whose append failed: rolled back, nothing raised."""


async def _looks_healthy(conn: AsyncConnection) -> bool:
    if conn.closed or conn.broken:
        return False
    if not readable(conn.pgconn.socket):
        return True
    try:
        await AsyncConnectionPool.check_connection(conn)
    except Exception:
        return False
    return True


async def _rollback_quietly(conn: AsyncConnection) -> None:
    with contextlib.suppress(psycopg.Error):
        if not conn.closed:
            await conn.execute("ROLLBACK")
