"""One object that owns a PostgreSQL schema: the pool, migrations, transactions, errors.

Every EventCore store on PostgreSQL — events, checkpoints, dead letters, snapshots,
leadership — is a thin layer over a :class:`PostgresDatabase`. It holds

- the connection pool (checkouts cost no round trip; a connection found dead is replaced at
  once, and the first dead one makes the pool check every idle connection, so the first
  command after a failover or a restart does not wait out a backoff);
- dedicated connections (the LISTEN connection, leadership locks);
- the migrations of every table in the schema (:mod:`eventcore.stores.postgres.schema`);
- the translation of driver errors into EventCore's typed errors (passwords masked);
- the transactions it has open, per thread or asyncio task, so that a write that would wait
  for a lock its own transaction holds fails at once instead.

>>> # db = PostgresDatabase("postgresql://app@db/shop")   # then PostgresEventStore(db) ...
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from eventcore.errors import (
    ConfigurationError,
    Conflict,
    EventCoreError,
    IdempotencyConflict,
    InvalidStreamSelector,
    SerializationError,
    StoreFailure,
    StoreTimeout,
    VersionConflict,
)
from eventcore.observability import points
from eventcore.stores._plan import Plan, Query, drive
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.notify import Listener
from eventcore.stores.postgres.pool import looks_healthy, usage
from eventcore.stores.postgres.schema import (
    CONFLICT_SQLSTATE,
    IDEMPOTENCY_SQLSTATE,
    ISOLATION_SQLSTATE,
    SCHEMA_VERSION,
    TOMBSTONE_SQLSTATE,
    migrate,
    schema_version,
)

__all__ = ["BrokenConnection", "Connection", "PostgresDatabase", "resumed", "translate_error"]

T = TypeVar("T")
Connection = psycopg.Connection[TupleRow]

_NOT_STARTED: Any = object()
"""``first_result`` of a plan whose first statement has not run yet."""


class PostgresDatabase:
    """A PostgreSQL schema and everything EventCore keeps in it.

    ``config``: a :class:`PostgresConfig` or a DSN string. ``migrate=False`` refuses to open
    a schema that is behind instead of upgrading it (``eventcore migrate`` upgrades it).
    Thread-safe. Open it after forking, not before.
    """

    def __init__(self, config: PostgresConfig | str, *, migrate: bool = True) -> None:
        if isinstance(config, str):
            config = PostgresConfig(config)
        elif not isinstance(config, PostgresConfig):
            raise ConfigurationError(
                f"PostgresDatabase takes a PostgresConfig or a DSN string, got "
                f"{type(config).__name__}"
            )
        if not isinstance(migrate, bool):
            raise ConfigurationError(f"migrate must be True or False, got {migrate!r}")
        self.config = config
        self.key: tuple[str, ...] = ("postgres", config.masked_dsn, config.schema)
        """Identifies the database: equal for two objects on the same schema."""
        self._closed = False
        self._lock = threading.Lock()
        self._listener: Listener | None = None
        self._open_tx: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"eventcore-tx-{id(self)}", default=False
        )
        with self.direct_connection("open") as conn:
            try:
                self.schema_version = (
                    migrate_schema(conn, config) if migrate else check_schema(conn, config)
                )
            except psycopg.Error as exc:
                raise self.translate("open", exc) from exc
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            config.dsn,
            kwargs=config.connect_kwargs(),
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.acquire_timeout,
            configure=self._configure_connection,
            name=f"eventcore-{config.schema}",
            open=True,
        )
        self.namespace = namespace_of(config)
        """The OpenTelemetry ``db.namespace``: ``database|schema``."""
        points.DATABASES.add(self)

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.config.masked_dsn!r}, schema={self.config.schema!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    # -- connections -----------------------------------------------------------------------

    @contextlib.contextmanager
    def direct_connection(self, operation: str, **options: Any) -> Iterator[Connection]:
        """A connection of its own, outside the pool (migrations, probes, leadership);
        ``options`` override the connection keyword arguments."""
        try:
            conn = psycopg.connect(self.config.dsn, **{**self.config.connect_kwargs(), **options})
        except psycopg.Error as exc:
            raise self.cannot_connect(operation, exc) from exc
        try:
            yield conn
        finally:
            conn.close()

    def open_connection(self, operation: str, **options: Any) -> Connection:
        """Like :meth:`direct_connection`, for a connection the caller keeps and closes."""
        try:
            return psycopg.connect(self.config.dsn, **{**self.config.connect_kwargs(), **options})
        except psycopg.Error as exc:
            raise self.cannot_connect(operation, exc) from exc

    def _configure_connection(self, conn: Connection) -> None:
        settings = {"TimeZone": "UTC"}
        for name in ("statement_timeout", "lock_timeout"):
            seconds = getattr(self.config, name)
            if seconds is not None:
                settings[name] = f"{max(1, round(seconds * 1000))}ms"
        calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
        conn.execute(f"SELECT {calls}", [item for pair in settings.items() for item in pair])

    @contextlib.contextmanager
    def connection(self, operation: str) -> Iterator[Connection]:
        """A healthy pooled connection (autocommit) for the length of the block."""
        conn = self._checkout(operation)
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def _checkout(self, operation: str) -> Connection:
        """A pooled connection that looks alive. A dead one goes back (the pool discards it
        and opens another); the first dead one also makes the pool check every idle
        connection at once, because a failover or restart kills them all together."""
        if self._closed:
            raise StoreFailure(operation, "the store is closed")
        deadline = time.monotonic() + self.config.acquire_timeout
        swept = False
        while True:
            try:
                conn = self._pool.getconn(timeout=max(0.0, deadline - time.monotonic()))
            except PoolTimeout as exc:
                failure, cause = self._unavailable(operation)
                raise failure from (cause or exc)
            except PoolClosed as exc:
                raise StoreFailure(operation, "the store is closed") from exc
            if looks_healthy(conn):
                return conn
            self._pool.putconn(conn)
            if not swept:
                points.reconnecting(
                    "postgresql", operation, "a pooled connection was dead; checking the pool"
                )
                swept = True
                with contextlib.suppress(psycopg.Error, PoolClosed):
                    self._pool.check()

    def _unavailable(self, operation: str) -> tuple[StoreFailure, BaseException | None]:
        """Explain a pool timeout: is the server down, or is the pool exhausted?"""
        try:
            probe = psycopg.connect(self.config.dsn, **self.config.connect_kwargs())
        except psycopg.Error as exc:
            return acquire_timeout_error(self.config, operation, exc), exc
        probe.close()
        return acquire_timeout_error(self.config, operation, None), None

    def cannot_connect(self, operation: str, exc: psycopg.Error) -> StoreFailure:
        return cannot_connect_error(self.config, operation, exc)

    def pool_stats(self) -> dict[str, int]:
        """The pool's connections: ``{"used": n, "idle": n, "max": n, "waiting": n}``."""
        return usage(self._pool.get_stats(), self.config.pool_max)

    # -- running plans ---------------------------------------------------------------------

    def read(self, operation: str, plan: Plan[T]) -> T:
        """Run a read-only plan on a pooled connection. When the connection breaks under
        the plan's first statement, that statement runs again once on a fresh connection."""
        if points.ACTIVE is not None:
            return points.ACTIVE.database(
                "postgresql", self.namespace, operation, lambda: self._read(operation, plan)
            )
        return self._read(operation, plan)

    def _read(self, operation: str, plan: Plan[T]) -> T:
        try:
            query = next(plan)
        except StopIteration as done:
            value: T = done.value
            return value
        for attempt in (1, 2):
            with self.connection(operation) as conn:
                try:
                    result = self._execute(operation, conn, query, writing=False)
                except BrokenConnection as broken:
                    if attempt == 1:
                        points.reconnecting(
                            "postgresql", operation, "the connection broke; reading again"
                        )
                        continue
                    plan.close()
                    raise broken.error from broken.error.__cause__
                return self._drive(operation, plan, conn, first_result=result)
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, operation: str, plan: Plan[T]) -> T:
        """Run a plan that writes on a pooled connection in autocommit: fit for a plan of
        one statement (the append is one function call). Refused while this thread or task
        has a :meth:`transaction` open on this database: it would wait for that transaction's
        locks."""
        self.refuse_inside_transaction(operation)
        if points.ACTIVE is not None:
            return points.ACTIVE.database(
                "postgresql", self.namespace, operation, lambda: self._write(operation, plan)
            )
        return self._write(operation, plan)

    def _write(self, operation: str, plan: Plan[T]) -> T:
        with self.connection(operation) as conn:
            return self._drive(operation, plan, conn, writing=True)

    def run_in(self, tx: Connection, operation: str, plan: Plan[T]) -> T:
        """Run ``plan`` inside a transaction opened by :meth:`transaction`."""
        return self._drive(operation, plan, tx, writing=True)

    def _drive(
        self,
        operation: str,
        plan: Plan[T],
        conn: Connection,
        *,
        writing: bool = False,
        first_result: Any = _NOT_STARTED,
    ) -> T:
        def execute(query: Query) -> Any:
            try:
                return self._execute(operation, conn, query, writing=writing)
            except BrokenConnection as broken:
                raise broken.error from broken.error.__cause__

        if first_result is _NOT_STARTED:
            return drive(plan, execute)
        return drive(resumed(plan, first_result), execute)

    def _execute(self, operation: str, conn: Connection, query: Query, *, writing: bool) -> Any:
        try:
            if query.fetch == "many":
                with conn.cursor() as cursor:
                    cursor.executemany(query.sql, query.params)
                return None
            cursor = conn.execute(query.sql, query.params)
            if query.fetch == "all":
                return cursor.fetchall()
            if query.fetch == "one":
                return cursor.fetchone()
            if query.fetch == "count":
                return cursor.rowcount
            return None
        except psycopg.OperationalError as exc:
            error = self.translate(operation, exc, writing=writing)
            if conn.broken:
                error.__cause__ = exc
                raise BrokenConnection(error) from exc
            raise error from exc
        except psycopg.Error as exc:
            raise self.translate(operation, exc, writing=writing) from exc

    # -- transactions ----------------------------------------------------------------------

    def in_transaction(self) -> bool:
        """Whether this thread or asyncio task has a :meth:`transaction` open here."""
        return self._open_tx.get()

    def refuse_inside_transaction(self, operation: str) -> None:
        if self._open_tx.get():
            raise StoreFailure(
                operation,
                "this thread (or task) has a transaction open on this database "
                "(store.transaction()); an append on another connection would wait for the "
                "write lock that transaction holds. Append through the transaction "
                "(tx.append, once per transaction), or after it ends",
            )

    @contextlib.contextmanager
    def transaction(self, operation: str = "transaction") -> Iterator[Connection]:
        """``BEGIN ISOLATION LEVEL READ COMMITTED`` … ``COMMIT`` on one pooled connection;
        rolled back if the block raises. Do not commit inside it."""
        self.refuse_inside_transaction(operation)
        with self.connection(operation) as conn:
            try:
                conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            except psycopg.Error as exc:
                raise self.translate(operation, exc) from exc
            token = self._open_tx.set(True)
            try:
                yield conn
            except BaseException:
                self._open_tx.reset(token)
                _rollback_quietly(conn)
                raise
            self._open_tx.reset(token)
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
                raise self.translate("commit", exc, writing=True) from exc

    # -- errors ----------------------------------------------------------------------------

    def translate(
        self, operation: str, exc: psycopg.Error, *, writing: bool = False
    ) -> EventCoreError:
        """Map a driver error to EventCore's typed errors (the caller chains the cause)."""
        return translate_error(self.config, operation, exc, writing=writing)

    # -- live delivery ---------------------------------------------------------------------

    def listener(self) -> Listener | None:
        """This database's LISTEN connection (started on first use), or None when
        ``config.listen`` is off."""
        if not self.config.listen:
            return None
        with self._lock:
            if self._closed:
                raise StoreFailure("wait_for_events", "the store is closed")
            if self._listener is None:
                kwargs = self.config.connect_kwargs()
                kwargs["application_name"] = f"{self.config.application_name}:listen"[:63]
                self._listener = Listener(self.config.dsn, self.config.channel, kwargs)
                self._listener.start()
            return self._listener

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool and stop listening. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._pool.close()

    def __enter__(self) -> PostgresDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def translate_error(
    config: PostgresConfig, operation: str, exc: psycopg.Error, *, writing: bool = False
) -> EventCoreError:
    """Map a driver error to EventCore's typed errors (the caller chains the cause); shared
    by the blocking and the asyncio database. A store failure is logged (masked)."""
    error = _typed_error(config, operation, exc, writing=writing)
    points.store_failure("postgresql", operation, error)
    return error


def _typed_error(
    config: PostgresConfig, operation: str, exc: psycopg.Error, *, writing: bool
) -> EventCoreError:
    detail = config.mask(message(exc))
    if exc.sqlstate == CONFLICT_SQLSTATE:
        return VersionConflict(_conflicts(exc.diag.message_detail))
    if exc.sqlstate == TOMBSTONE_SQLSTATE:
        from eventcore.stores.postgres.retention import tombstone_from_detail

        return tombstone_from_detail(exc.diag.message_detail)
    if exc.sqlstate == IDEMPOTENCY_SQLSTATE:
        found = json.loads(exc.diag.message_detail or "{}")
        return IdempotencyConflict(
            found.get("key", "?"), found.get("stored", "?"), found.get("given", "?")
        )
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
            f"PostgreSQL cannot store this value: {detail}. PostgreSQL text rejects the NUL "
            "character (\\x00); nothing was written"
        )
    if isinstance(exc, pg_errors.InvalidRegularExpression):
        return InvalidStreamSelector(f"PostgreSQL rejected the stream pattern: {detail}")
    if exc.sqlstate == ISOLATION_SQLSTATE:
        return StoreFailure(
            operation, f"{detail}; run appends in READ COMMITTED transactions (the default)"
        )
    if isinstance(exc, psycopg.OperationalError):
        outcome = (
            " The write is atomic: it committed entirely or not at all; read the streams "
            "to find out, or retry with the same idempotency key (execute() re-reads them)."
            if writing
            else ""
        )
        return StoreFailure(
            operation,
            f"lost the connection to PostgreSQL at {config.address}: {detail}.{outcome}",
        )
    return StoreFailure(operation, detail)


def namespace_of(config: PostgresConfig) -> str:
    """The OpenTelemetry ``db.namespace`` of a schema: ``database|schema``."""
    return f"{config.params.get('dbname', '')}|{config.schema}"


def cannot_connect_error(
    config: PostgresConfig, operation: str, exc: psycopg.Error
) -> StoreFailure:
    error = StoreFailure(
        operation,
        f"cannot connect to PostgreSQL at {config.address}: {config.mask(message(exc))}. "
        "Check that the server is running and reachable, and the DSN "
        "(EVENTCORE_POSTGRES_URL or PG* variables)",
    )
    points.store_failure("postgresql", operation, error)
    return error


def acquire_timeout_error(
    config: PostgresConfig, operation: str, unreachable: psycopg.Error | None
) -> StoreTimeout:
    """No pooled connection within ``acquire_timeout``: the server unreachable (the probe's
    error) or the pool exhausted (None)."""
    if unreachable is not None:
        return StoreTimeout(
            operation,
            f"cannot connect to PostgreSQL at {config.address}: "
            f"{config.mask(message(unreachable))} (no connection within "
            f"acquire_timeout={config.acquire_timeout:g}s). Check that the server is running "
            "and reachable, and the DSN (EVENTCORE_POSTGRES_URL or PG* variables)",
        )
    return StoreTimeout(
        operation,
        f"no pooled connection to PostgreSQL at {config.address} became free within "
        f"acquire_timeout={config.acquire_timeout:g}s (pool_max={config.pool_max}); raise "
        "pool_max or acquire_timeout, or shorten the transactions that hold connections",
    )


def migrate_schema(conn: Connection, config: PostgresConfig) -> int:
    before = migrate(conn, config.schema, config.channel)
    if before != SCHEMA_VERSION:
        points.migrated("postgresql", config.schema, before, SCHEMA_VERSION)
    return SCHEMA_VERSION


def check_schema(conn: Connection, config: PostgresConfig) -> int:
    """The schema's version, or a ConfigurationError if it is behind this library."""
    found = schema_version(conn, config.schema)
    if found < SCHEMA_VERSION:
        raise ConfigurationError(
            f"PostgreSQL schema {config.schema!r} has EventCore schema version {found}, this "
            f"library needs {SCHEMA_VERSION}; apply the migrations with 'eventcore migrate' or "
            "open it with migrate=True"
        )
    if found > SCHEMA_VERSION:
        raise ConfigurationError(
            f"PostgreSQL schema {config.schema!r} has EventCore schema version {found}, newer "
            f"than this library's {SCHEMA_VERSION}; upgrade eventcore"
        )
    return found


class BrokenConnection(Exception):
    """A statement failed because its connection broke."""

    def __init__(self, error: EventCoreError) -> None:
        super().__init__(str(error))
        self.error = error


def resumed(plan: Plan[T], first_result: Any) -> Plan[T]:
    """``plan`` after its first statement, whose result is ``first_result``."""
    result = first_result
    while True:
        try:
            query = plan.send(result)
        except StopIteration as done:
            value: T = done.value
            return value
        result = yield query


def _conflicts(detail: str | None) -> list[Conflict]:
    try:
        items = json.loads(detail or "[]")
        return [Conflict(i["stream"], int(i["expected"]), int(i["actual"])) for i in items]
    except (ValueError, TypeError, KeyError) as exc:  # pragma: no cover - our own JSON
        raise StoreFailure("append", f"unreadable version-conflict detail {detail!r}") from exc


def message(exc: BaseException) -> str:
    """The driver's message on one line (the server's primary message when there is one)."""
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    text = primary or " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def _rollback_quietly(conn: Connection) -> None:
    with contextlib.suppress(psycopg.Error):
        if not conn.closed:
            conn.execute("ROLLBACK")
