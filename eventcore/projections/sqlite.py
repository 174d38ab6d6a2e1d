"""Checkpoints, dead letters and leadership for projections on SQLite.

:class:`SqliteCheckpointStore` and :class:`SqliteDeadLetterStore` keep their tables
(``eventcore_checkpoints``, ``eventcore_dead_letters``) in the event store's file, next to
your read models, so a :class:`~eventcore.projections.TransactionalProjector` commits its
writes and its checkpoint in one SQLite transaction. Give them the
:class:`~eventcore.stores.sqlite.SqliteEventStore` (or the same path): for a file they open
their own connection; for ``":memory:"`` or a connection you passed to the store they
share the store's connection and its lock.

:class:`SqliteLeadership` works across **processes**: it takes an OS file lock
(``flock``) on a small lock file next to the database, one per projection. The operating
system releases it when the holder releases it, closes it, or dies.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from eventcore.clock import Clock, system_clock
from eventcore.errors import ConfigurationError, LeadershipUnavailable, StoreFailure
from eventcore.projections.checkpoints import check_name, check_position
from eventcore.projections.dead_letters import DeadLetter
from eventcore.stores.sqlite import SqliteEventStore

__all__ = ["SqliteCheckpointStore", "SqliteDeadLetterStore", "SqliteLeadership"]

Database = SqliteEventStore | str | os.PathLike[str] | sqlite3.Connection

_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS eventcore_checkpoints (
        name        TEXT    PRIMARY KEY,
        position    INTEGER NOT NULL CHECK (position >= 0),
        updated_at  TEXT    NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS eventcore_dead_letters (
        projection  TEXT    NOT NULL,
        position    INTEGER NOT NULL,
        event_id    TEXT    NOT NULL,
        stream_id   TEXT    NOT NULL,
        event_type  TEXT    NOT NULL,
        error_type  TEXT    NOT NULL,
        message     TEXT    NOT NULL,
        traceback   TEXT    NOT NULL,
        attempts    INTEGER NOT NULL,
        recorded_at TEXT    NOT NULL,
        PRIMARY KEY (projection, position)
    )""",
)


class _Sqlite:
    """One connection to the database (own or shared), its lock, transactions and DDL."""

    def __init__(self, database: Database, busy_timeout: float, clock: Clock) -> None:
        if not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ConfigurationError(f"busy_timeout must be seconds >= 0, got {busy_timeout!r}")
        self.clock = clock
        self.busy_timeout = float(busy_timeout)
        self.owns = False
        conn: sqlite3.Connection
        if isinstance(database, SqliteEventStore):
            name = database._name
            if name in (":memory:", "<connection>"):
                conn, self.lock = database._conn, database._lock
            else:
                conn, self.owns = self._open(name), True
                self.lock = threading.RLock()
        elif isinstance(database, sqlite3.Connection):
            conn, self.lock = database, threading.RLock()
        elif isinstance(database, (str, os.PathLike)):
            conn, self.owns = self._open(os.fspath(database)), True
            self.lock = threading.RLock()
        else:
            raise ConfigurationError(
                "expected a SqliteEventStore, a database path or a sqlite3.Connection, got "
                f"{type(database).__name__}"
            )
        self.conn = conn
        with self.lock:
            self.file = _main_file(conn)
        self.database_key: tuple[str, ...] = (
            ("sqlite", os.path.realpath(self.file))
            if self.file
            else ("sqlite-connection", str(id(conn)))
        )
        try:
            with self.transaction("create tables") as tx:
                for statement in _TABLES:
                    tx.execute(statement)
        except BaseException:
            self.close()
            raise

    def _open(self, path: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise StoreFailure("open", f"cannot open SQLite database {path!r}: {exc}") from exc
        return conn

    @contextlib.contextmanager
    def transaction(
        self, operation: str, *, translate: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT. Errors of BEGIN and COMMIT become StoreFailure; so do
        errors raised inside the block when ``translate`` (others propagate unchanged)."""
        with self.lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreFailure(operation, self.explain(exc)) from exc
            try:
                yield conn
            except sqlite3.Error as exc:
                _rollback_quietly(conn)
                if translate:
                    raise StoreFailure(operation, self.explain(exc)) from exc
                raise
            except BaseException:
                _rollback_quietly(conn)
                raise
            try:
                conn.commit()
            except sqlite3.Error as exc:
                _rollback_quietly(conn)
                raise StoreFailure(operation, self.explain(exc)) from exc

    def fetch(self, operation: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreFailure(operation, self.explain(exc)) from exc

    def explain(self, exc: sqlite3.Error) -> str:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return (
                f"{text}: another connection held the write lock for longer than "
                f"busy_timeout={self.busy_timeout:g}s"
            )
        return text

    def now(self) -> str:
        return self.clock().isoformat()

    def close(self) -> None:
        if self.owns:
            with self.lock:
                self.conn.close()


class SqliteCheckpointStore:
    """Checkpoints in table ``eventcore_checkpoints`` of an SQLite database.

    Also a transactional checkpoint store: :meth:`transaction` yields the
    ``sqlite3.Connection`` in which a transactional projector writes its read model; the
    runner saves the checkpoint in it and commits. A lower ``save`` is ignored.
    """

    def __init__(
        self, database: Database, *, busy_timeout: float = 30.0, clock: Clock = system_clock
    ) -> None:
        self._db = _Sqlite(database, busy_timeout, clock)
        self.database_key = self._db.database_key

    def __repr__(self) -> str:
        return f"SqliteCheckpointStore({self._db.file or '<memory>'!r})"

    def load(self, name: str) -> int | None:
        rows = self._db.fetch(
            "load checkpoint",
            "SELECT position FROM eventcore_checkpoints WHERE name = ?",
            (check_name(name),),
        )
        return int(rows[0][0]) if rows else None

    def save(self, name: str, position: int) -> None:
        check_name(name)
        check_position(position)
        self._db.fetch(
            "save checkpoint",
            "INSERT INTO eventcore_checkpoints (name, position, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
            "updated_at = excluded.updated_at WHERE excluded.position > position",
            (name, position, self._db.now()),
        )

    def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name`` (the next run starts from the beginning)."""
        self._db.fetch(
            "reset checkpoint",
            "DELETE FROM eventcore_checkpoints WHERE name = ?",
            (check_name(name),),
        )

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on this store's connection (rolled back if the
        block raises). Do not commit inside it."""
        return self._db.transaction("projection transaction", translate=False)

    @contextlib.contextmanager
    def savepoint(self, tx: sqlite3.Connection) -> Iterator[None]:
        """A savepoint in ``tx``, rolled back alone if the block raises."""
        self._run(tx, "savepoint", "SAVEPOINT eventcore_event")
        try:
            yield
        except BaseException:
            self._run(tx, "savepoint", "ROLLBACK TO eventcore_event")
            self._run(tx, "savepoint", "RELEASE eventcore_event")
            raise
        self._run(tx, "savepoint", "RELEASE eventcore_event")

    def _run(
        self, tx: sqlite3.Connection, operation: str, sql: str, params: tuple[Any, ...] = ()
    ) -> sqlite3.Cursor:
        try:
            return tx.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreFailure(operation, self._db.explain(exc)) from exc

    def save_in(
        self, tx: sqlite3.Connection, name: str, position: int, *, expected: int | None
    ) -> None:
        """Save inside ``tx`` if the checkpoint is still ``expected``, else raise
        :class:`~eventcore.errors.LeadershipUnavailable` (the caller rolls back)."""
        check_position(position)
        row = self._run(
            tx,
            "save checkpoint",
            "SELECT position FROM eventcore_checkpoints WHERE name = ?",
            (check_name(name),),
        ).fetchone()
        current = None if row is None else int(row[0])
        if current != expected:
            raise _moved(name, expected, current)
        self._run(
            tx,
            "save checkpoint",
            "INSERT INTO eventcore_checkpoints (name, position, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
            "updated_at = excluded.updated_at",
            (name, position, self._db.now()),
        )

    def close(self) -> None:
        """Close the connection if this store opened it."""
        self._db.close()


def _moved(name: str, expected: int | None, current: int | None) -> LeadershipUnavailable:
    return LeadershipUnavailable(
        name,
        f"its checkpoint moved from {expected} to {current} while this instance was applying "
        "events (did it lose its leadership?); this instance's transaction was rolled back, "
        "so nothing was applied twice",
    )


class SqliteDeadLetterStore:
    """Dead letters in table ``eventcore_dead_letters`` of an SQLite database."""

    def __init__(
        self, database: Database, *, busy_timeout: float = 30.0, clock: Clock = system_clock
    ) -> None:
        self._db = _Sqlite(database, busy_timeout, clock)
        self.database_key = self._db.database_key

    def __repr__(self) -> str:
        return f"SqliteDeadLetterStore({self._db.file or '<memory>'!r})"

    _INSERT: Final = (
        "INSERT OR REPLACE INTO eventcore_dead_letters (projection, position, event_id, "
        "stream_id, event_type, error_type, message, traceback, attempts, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _SELECT: Final = (
        "SELECT projection, position, event_id, stream_id, event_type, error_type, message, "
        "traceback, attempts, recorded_at FROM eventcore_dead_letters"
    )

    def record(self, letter: DeadLetter) -> None:
        self._db.fetch("record dead letter", self._INSERT, _row(letter))

    def record_in(self, tx: sqlite3.Connection, letter: DeadLetter) -> None:
        """Record ``letter`` inside an open transaction on the same database."""
        try:
            tx.execute(self._INSERT, _row(letter))
        except sqlite3.Error as exc:
            raise StoreFailure("record dead letter", self._db.explain(exc)) from exc

    def list(self, name: str) -> builtins.list[DeadLetter]:
        rows = self._db.fetch(
            "list dead letters",
            f"{self._SELECT} WHERE projection = ? ORDER BY position",
            (check_name(name),),
        )
        return [_letter(r) for r in rows]

    def get(self, name: str, position: int) -> DeadLetter | None:
        rows = self._db.fetch(
            "get dead letter",
            f"{self._SELECT} WHERE projection = ? AND position = ?",
            (check_name(name), check_position(position)),
        )
        return _letter(rows[0]) if rows else None

    def discard(self, name: str, position: int | None = None) -> int:
        with self._db.transaction("discard dead letters") as tx:
            return self.discard_in(tx, name, position)

    def discard_in(self, tx: sqlite3.Connection, name: str, position: int | None = None) -> int:
        """Discard inside an open transaction on the same database."""
        check_name(name)
        params: tuple[Any, ...]
        if position is None:
            sql, params = "DELETE FROM eventcore_dead_letters WHERE projection = ?", (name,)
        else:
            sql = "DELETE FROM eventcore_dead_letters WHERE projection = ? AND position = ?"
            params = (name, check_position(position))
        try:
            return tx.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreFailure("discard dead letters", self._db.explain(exc)) from exc

    def close(self) -> None:
        """Close the connection if this store opened it."""
        self._db.close()


def _row(letter: DeadLetter) -> tuple[Any, ...]:
    if not isinstance(letter, DeadLetter):
        raise ConfigurationError(f"record() takes a DeadLetter, got {letter!r}")
    return (
        letter.projection,
        letter.position,
        str(letter.event_id),
        letter.stream_id,
        letter.event_type,
        letter.error_type,
        letter.message,
        letter.traceback,
        letter.attempts,
        letter.recorded_at.isoformat(),
    )


def _letter(row: Any) -> DeadLetter:
    recorded = datetime.fromisoformat(row[9])
    return DeadLetter(
        projection=row[0],
        position=int(row[1]),
        event_id=UUID(row[2]),
        stream_id=row[3],
        event_type=row[4],
        error_type=row[5],
        message=row[6],
        traceback=row[7],
        attempts=int(row[8]),
        recorded_at=recorded if recorded.tzinfo else recorded.replace(tzinfo=UTC),
    )


class SqliteLeadership:
    """Leadership across processes on one machine, with one OS file lock per projection.

    The lock file is ``<database>.<projection>.lock`` (the name made file-safe), or in
    ``directory`` when given (required for an in-memory database). Lock files are left in
    place after release; they hold the holder's pid and host for :meth:`holder`. Locks are
    per open file, so they also exclude other :class:`SqliteLeadership` objects in the same
    process. Needs ``fcntl`` (Linux, macOS, BSD).
    """

    def __init__(
        self,
        database: SqliteEventStore | str | os.PathLike[str],
        *,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        base: str | None
        if isinstance(database, SqliteEventStore):
            with database._lock:
                base = _main_file(database._conn)
        elif isinstance(database, (str, os.PathLike)):
            path = os.fspath(database)
            base = None if path == ":memory:" or not path else os.path.abspath(path)
        else:
            raise ConfigurationError(
                "SqliteLeadership takes a SqliteEventStore or a database path, got "
                f"{type(database).__name__}"
            )
        if directory is not None:
            stem = os.path.basename(base) if base else "eventcore"
            base = os.path.join(os.path.abspath(os.fspath(directory)), stem)
        if base is None:
            raise ConfigurationError(
                "SqliteLeadership needs a database file to put its lock files next to; for an "
                "in-memory database pass directory=..., or use InProcessLeadership"
            )
        self._base = base
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteLeadership({self._base!r}, held={sorted(self._held)!r})"

    def lock_path(self, name: str) -> str:
        """The lock file of projection ``name``."""
        check_name(name)
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        return f"{self._base}.{slug}-{digest}.lock"

    def acquire(self, name: str) -> bool:
        fcntl = _fcntl()
        path = self.lock_path(name)
        with self._lock:
            if name in self._held:
                return False
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreFailure("acquire leadership", f"cannot open {path!r}: {exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            since = datetime.now(UTC).isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}".encode(), 0)
            self._held[name] = fd
            return True

    def release(self, name: str) -> None:
        with self._lock:
            fd = self._held.pop(name, None)
        if fd is not None:
            fcntl = _fcntl()
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holds(self, name: str) -> bool:
        """Whether this object holds ``name`` (a file lock cannot be lost while held)."""
        with self._lock:
            return name in self._held

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` (pid, host, since when), or None when it is free."""
        fcntl = _fcntl()
        path = self.lock_path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release every projection held by this object."""
        for name in list(self._held):
            self.release(name)

    def __enter__(self) -> SqliteLeadership:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fcntl() -> Any:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        raise ConfigurationError(
            "SqliteLeadership needs fcntl file locks (Linux, macOS, BSD); on this platform use "
            "InProcessLeadership or PostgresLeadership"
        ) from None
    return fcntl


def _main_file(conn: sqlite3.Connection) -> str | None:
    """The file of the connection's main database (None when in memory)."""
    try:
        for _, db_name, file in conn.execute("PRAGMA database_list").fetchall():
            if db_name == "main":
                return str(file) or None
    except sqlite3.Error:  # pragma: no cover - a closed connection
        return None
    return None


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.rollback()
