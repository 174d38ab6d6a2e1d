"""One object that owns an SQLite database: connections, locks, transactions, errors, schema.

Every EventCore store on an SQLite file — events, checkpoints, dead letters, snapshots — is
a thin layer over a :class:`SqliteDatabase`. It holds

- one **writer** connection with its lock: every write is an explicit ``BEGIN IMMEDIATE`` …
  ``COMMIT`` on it, so the user's ``isolation_level`` never leaves a transaction open;
- a small pool of **reader** connections (for a file), so that reads never wait behind a
  write that is itself waiting for another process's lock (WAL readers need no lock);
- the translation of driver errors into EventCore's typed errors, in one place;
- the migrations of every table it holds (:mod:`eventcore.stores.sqlite.schema`);
- the in-process wake-ups of ``wait_for_events``.

>>> db = SqliteDatabase(":memory:")
>>> db.schema_version == SCHEMA_VERSION
True
>>> db.close()

An ``":memory:"`` database, or a ``sqlite3.Connection`` you pass, has a single connection;
reads then take its lock. Stores given the same connection object share one
``SqliteDatabase`` (and so one lock): see :meth:`SqliteDatabase.for_connection`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Final, Literal, TypeVar

from eventcore.clock import Clock, system_clock
from eventcore.errors import ConfigurationError, StoreFailure, StoreTimeout
from eventcore.observability import points
from eventcore.stores._notify import Notifier
from eventcore.stores._plan import Plan, Query, drive
from eventcore.stores.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, statements

__all__ = ["SCHEMA_VERSION", "SqliteDatabase", "Synchronous"]

T = TypeVar("T")

Synchronous = Literal["FULL", "NORMAL"]

_WAL_RETRY: Final = 0.01
"""First pause when another opener holds the lock ``PRAGMA journal_mode = WAL`` needs
(the busy handler is not consulted for it); doubles up to 0.2 s, within ``busy_timeout``."""

_SHARED: weakref.WeakValueDictionary[int, SqliteDatabase] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()
"""The database of each ``sqlite3.Connection`` handed to a store, by ``id`` (connections
cannot be weakly referenced themselves). The database holds its connection, so while an
entry lives its id cannot be reused; the identity check guards the rest."""


class SqliteDatabase:
    """An SQLite database and everything EventCore keeps in it.

    ``database``: a file path, ``":memory:"`` or a ``sqlite3.Connection`` you own (it is
    used as it is and never closed here). ``synchronous``: ``"FULL"`` (durable, the default)
    or ``"NORMAL"`` (faster; survives application crashes only). ``busy_timeout``: seconds a
    writer waits for another process's write lock. ``readers``: the most reader connections
    kept open for a file. ``migrate=False`` refuses to open a database whose schema is
    behind instead of upgrading it (``eventcore migrate`` upgrades explicitly).
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | sqlite3.Connection,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 30.0,
        readers: int = 4,
        migrate: bool = True,
        clock: Clock = system_clock,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigurationError(
                f"synchronous must be 'FULL' (durable) or 'NORMAL' (faster), got {synchronous!r}"
            )
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, (int, float))
            or not 0 <= busy_timeout < 86_400
        ):
            raise ConfigurationError(
                f"busy_timeout must be seconds in [0, 86400), got {busy_timeout!r}"
            )
        if isinstance(readers, bool) or not isinstance(readers, int) or not 1 <= readers <= 64:
            raise ConfigurationError(f"readers must be an int from 1 to 64, got {readers!r}")
        if not isinstance(migrate, bool):
            raise ConfigurationError(f"migrate must be True or False, got {migrate!r}")
        self.clock = clock
        self.busy_timeout = float(busy_timeout)
        self.synchronous: Synchronous = synchronous
        self.notifier = Notifier()
        self._writer_lock = threading.Lock()
        self._owner: int | None = None  # the thread inside transaction(), if any
        self._idle: list[sqlite3.Connection] = []
        self._readers: list[sqlite3.Connection] = []
        self.max_readers = readers
        self._reader_free = threading.Condition()
        self._closed = False
        if isinstance(database, sqlite3.Connection):
            self._writer, self._owns, self.name = database, False, "<connection>"
        elif isinstance(database, (str, os.PathLike)):
            self.name = os.fspath(database)
            if not self.name:
                raise ConfigurationError(
                    "database must be a file path or ':memory:', got an empty string"
                )
            self._writer, self._owns = self._connect(self.name), True
        else:
            raise ConfigurationError(
                "database must be a file path, ':memory:' or a sqlite3.Connection, got "
                f"{type(database).__name__}"
            )
        try:
            self.file = _main_file(self._writer)
            self._configure_writer()
            self.schema_version = self._migrate(migrate)
        except sqlite3.Error as exc:
            self.close()
            raise self.translate("open", exc) from exc
        except BaseException:
            self.close()
            raise
        self.key: tuple[str, ...] = (
            ("sqlite", os.path.realpath(self.file))
            if self.file
            else ("sqlite-connection", str(id(self._writer)))
        )
        """Identifies the database: equal for two objects on the same file."""

    @classmethod
    def for_connection(cls, conn: sqlite3.Connection, **options: Any) -> SqliteDatabase:
        """The one database of ``conn``: every store handed the same connection object
        shares it, so all of them take the same lock (options apply to the first call)."""
        with _SHARED_LOCK:
            found = _SHARED.get(id(conn))
            if found is not None and found._writer is conn and not found._closed:
                return found
            database = cls(conn, **options)
            _SHARED[id(conn)] = database
            return database

    def __repr__(self) -> str:
        return f"SqliteDatabase({self.name!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    # -- connections ---------------------------------------------------------------------

    def _connect(self, target: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                target, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        except sqlite3.Error as exc:
            raise StoreFailure("open", f"cannot open SQLite database {self.name!r}: {exc}") from exc
        return conn

    def _configure_writer(self) -> None:
        conn = self._writer
        if self._owns:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        if self.file is not None:
            self._enable_wal(conn)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")  # a validated literal

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """``PRAGMA journal_mode = WAL``, retried while another opener holds the lock it
        needs: SQLite does not consult the busy handler for it."""
        deadline = time.monotonic() + self.busy_timeout
        pause = _WAL_RETRY
        while True:
            try:
                mode = _journal_mode_wal(conn)
                break
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        if str(mode).lower() != "wal":
            raise ConfigurationError(
                f"SQLite database {self.name!r} refused WAL mode (got {mode!r}); "
                "use a local file system"
            )

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A reader connection for this thread's exclusive use: from the pool for a file,
        else the single connection under its lock."""
        if self.file is None:
            if self._owner == threading.get_ident():  # inside this thread's transaction
                yield self._writer
                return
            with self._writer_lock:
                self._check_open("read")
                yield self._writer
            return
        conn = self._checkout()
        try:
            yield conn
        finally:
            with self._reader_free:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)
                    self._reader_free.notify()

    def _checkout(self) -> sqlite3.Connection:
        with self._reader_free:
            while True:
                self._check_open("read")
                if self._idle:
                    return self._idle.pop()
                if len(self._readers) < self.max_readers:
                    break
                self._reader_free.wait()
        assert self.file is not None  # only file databases have readers
        conn = self._connect(self.file)  # outside the condition: opening can take a moment
        conn.execute("PRAGMA query_only = 1")  # a reader never writes, by construction
        with self._reader_free:
            self._readers.append(conn)
        return conn

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise StoreFailure(operation, f"the SQLite database {self.name!r} is closed")

    # -- running plans -------------------------------------------------------------------

    def read(self, operation: str, plan: Plan[T]) -> T:
        """Run a read-only plan on a reader connection (outside any transaction)."""
        if points.ACTIVE is not None:
            return points.ACTIVE.database(
                "sqlite", self.name, operation, lambda: self._read(operation, plan)
            )
        return self._read(operation, plan)

    def _read(self, operation: str, plan: Plan[T]) -> T:
        with self._reader() as conn:
            return self._drive(operation, plan, conn)

    def write(self, operation: str, plan: Plan[T]) -> T:
        """Run ``plan`` in a ``BEGIN IMMEDIATE`` transaction on the writer; commit at its
        end, roll back if it raises."""
        if points.ACTIVE is not None:
            return points.ACTIVE.database(
                "sqlite", self.name, operation, lambda: self._write(operation, plan)
            )
        return self._write(operation, plan)

    def _write(self, operation: str, plan: Plan[T]) -> T:
        with self.transaction(operation) as conn:
            return self._drive(operation, plan, conn)

    def run_in(self, tx: sqlite3.Connection, operation: str, plan: Plan[T]) -> T:
        """Run ``plan`` on ``tx``, a connection with a transaction open (from
        :meth:`transaction`, on this database or another object on the same file)."""
        if isinstance(tx, sqlite3.Connection) and not tx.in_transaction:
            raise StoreFailure(
                operation,
                f"expected the connection of an open transaction() on {self!r}, got {tx!r}",
            )
        return self._drive(operation, plan, tx)

    def _drive(self, operation: str, plan: Plan[T], conn: sqlite3.Connection) -> T:
        def execute(query: Query) -> Any:
            try:
                if query.fetch == "many":
                    conn.executemany(query.sql, query.params)
                    return None
                cursor = conn.execute(query.sql, query.params)
                if query.fetch == "all":
                    return cursor.fetchall()
                if query.fetch == "one":
                    return cursor.fetchone()
                if query.fetch == "count":
                    return cursor.rowcount
                return None
            except sqlite3.Error as exc:
                raise self.translate(operation, exc) from exc

        return drive(plan, execute)

    @contextlib.contextmanager
    def transaction(self, operation: str = "transaction") -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on the writer connection, yielded for your own
        statements (a read model next to the events); rolled back if the block raises.

        One transaction per thread at a time: a write by the same thread while it is open
        fails at once (it would otherwise wait for itself)."""
        me = threading.get_ident()
        if self._owner == me:
            raise StoreFailure(
                operation,
                f"this thread already has a transaction open on {self!r} (from "
                "transaction()): a second one would wait for itself. Do this work inside "
                "the open transaction (run_in, save_in, record_in), or after it ends",
            )
        with self._writer_lock:
            self._check_open(operation)
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.translate(operation, exc) from exc
            self._owner = me
            try:
                yield conn
            except BaseException:
                self._owner = None
                _rollback_quietly(conn)
                raise
            self._owner = None
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback_quietly(conn)
                raise self.translate(operation, exc) from exc

    def pragmas(self) -> dict[str, str]:
        """``journal_mode`` and ``synchronous`` as the writer connection reports them."""
        with self._writer_lock:
            mode = self._writer.execute("PRAGMA journal_mode").fetchone()[0]
            sync = self._writer.execute("PRAGMA synchronous").fetchone()[0]
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {"journal_mode": str(mode).upper(), "synchronous": names.get(sync, str(sync))}

    # -- errors --------------------------------------------------------------------------

    def translate(self, operation: str, exc: sqlite3.Error) -> StoreFailure:
        """The typed error for a driver error (the caller chains the cause); logged."""
        error = self._typed_error(operation, exc)
        points.store_failure("sqlite", operation, error)
        return error

    def _typed_error(self, operation: str, exc: sqlite3.Error) -> StoreFailure:
        text = str(exc)
        if _is_busy(exc):
            return StoreTimeout(
                operation,
                f"{text}: another connection held the write lock for longer than "
                f"busy_timeout={self.busy_timeout:g}s; nothing was written. Retry, raise "
                "busy_timeout, or shorten the other transactions",
            )
        if "within a transaction" in text:
            return StoreFailure(
                operation,
                f"{text}: the connection given to EventCore has a transaction open (a "
                "sqlite3 connection in its default mode opens one before INSERT or UPDATE); "
                "commit it first, or open the connection with isolation_level=None",
            )
        if isinstance(exc, sqlite3.OperationalError) and "disk is full" in text:
            return StoreFailure(
                operation,
                f"{text}; nothing was written. Free disk space next to {self.name!r} (the "
                "WAL file needs room too) and retry",
            )
        return StoreFailure(operation, text)

    # -- schema --------------------------------------------------------------------------

    def _migrate(self, migrate: bool) -> int:
        """Apply the migrations not recorded yet, in one immediate transaction (safe across
        processes); return the schema version now in the file."""
        done = self._applied()
        if done is not None and done >= {v for v, _, _ in MIGRATIONS}:
            self._check_not_newer(max(done))
            return max(done)
        if not migrate:
            raise ConfigurationError(
                f"SQLite database {self.name!r} has EventCore schema version "
                f"{max(done or {0})}, this library needs {SCHEMA_VERSION}; apply the "
                "migrations with 'eventcore migrate' or open it with migrate=True"
            )
        with self.transaction("migrate") as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS eventcore_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM eventcore_migrations")}
            self._check_not_newer(max(done or {0}))
            applied_at = self.clock().isoformat()
            for version, _, script in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO eventcore_migrations (version, applied_at) VALUES (?, ?)",
                    (version, applied_at),
                )
        points.migrated("sqlite", self.name, max(done or {0}), SCHEMA_VERSION)
        return SCHEMA_VERSION

    def _applied(self) -> set[int] | None:
        """The recorded migration versions, or None before the first migration."""
        conn = self._writer
        with self._writer_lock:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                ("eventcore_migrations",),
            ).fetchone()
            if exists is None:
                return None
            return {row[0] for row in conn.execute("SELECT version FROM eventcore_migrations")}

    def _check_not_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"SQLite database {self.name!r} has EventCore schema version {version}, "
                f"newer than this library's {SCHEMA_VERSION}; upgrade eventcore"
            )

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections this object opened (a connection you passed stays open).
        Safe to call twice."""
        with self._reader_free:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._reader_free.notify_all()
        for conn in idle:
            conn.close()
        if self._owns:
            with self._writer_lock:
                self._writer.close()

    def __enter__(self) -> SqliteDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _journal_mode_wal(conn: sqlite3.Connection) -> Any:
    """Switch ``conn``'s database to WAL; the mode it is in afterwards."""
    return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _main_file(conn: sqlite3.Connection) -> str | None:
    """The file of the connection's main database (None when in memory)."""
    for _, db_name, file in conn.execute("PRAGMA database_list").fetchall():
        if db_name == "main":
            return str(file) or None
    return None  # pragma: no cover - every connection has a main database


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


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
