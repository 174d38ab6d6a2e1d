"""The asyncio PostgreSQL database: psycopg's ``AsyncConnectionPool`` opened on first use,
the schema migrations, one transaction per plan with typed errors and timeouts, and the
LISTEN/NOTIFY listener that wakes waiting readers. :mod:`eventcore.stores.postgres.aio`
builds the store on it (and re-exports :class:`AsyncPostgresDatabase` from there).

>>> AsyncConnection.__name__
'AsyncConnection'
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from eventcore._finish import finish
from eventcore.errors import ConfigurationError, EventCoreError, StoreFailure
from eventcore.observability import points
from eventcore.stores._plan import Plan, Query, drive_async
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
from eventcore.stores.postgres.pool import readable, usage

__all__ = ["AsyncConnection", "AsyncListener", "AsyncPostgresDatabase"]

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
