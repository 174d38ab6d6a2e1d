"""Checkpoints, dead letters and leadership for projections on SQLite.

:class:`SqliteCheckpointStore` and :class:`SqliteDeadLetterStore` are thin layers over a
:class:`~eventcore.stores.sqlite.SqliteDatabase`: their tables (``eventcore_checkpoints``,
``eventcore_dead_letters``) are part of the database's migrations and live in the event
store's file, next to your read models, so a
:class:`~eventcore.projections.TransactionalProjector` commits its writes and its checkpoint
in one SQLite transaction. Give them the :class:`~eventcore.stores.sqlite.SqliteEventStore`
or its database (they share it), a path (they open their own), or a connection (every store
given the same connection shares one database object and its lock).

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
from eventcore.stores._plan import Plan, Query
from eventcore.stores.sqlite import SqliteDatabase, SqliteEventStore
from eventcore.stores.sqlite.database import open_database

__all__ = ["SqliteCheckpointStore", "SqliteDeadLetterStore", "SqliteLeadership"]

Database = SqliteDatabase | SqliteEventStore | str | os.PathLike[str] | sqlite3.Connection


def _database(
    database: Database, who: str, busy_timeout: float | None, clock: Clock
) -> tuple[SqliteDatabase, bool]:
    if isinstance(database, SqliteEventStore):
        if busy_timeout is not None:
            raise ConfigurationError(
                f"{who}: busy_timeout belongs to the event store's database; set it there"
            )
        return database.database, False
    return open_database(database, who, None, busy_timeout, clock)


def _plan(query: Query) -> Plan[Any]:
    result = yield query
    return result


class _Tables:
    """A store's database, whether it closes it, and its clock."""

    def __init__(self, database: Database, who: str, busy_timeout: float | None, clock: Clock):
        self.db, self.owns = _database(database, who, busy_timeout, clock)
        self.clock = clock

    def read(self, operation: str, sql: str, params: tuple[Any, ...]) -> Any:
        return self.db.read(operation, _plan(Query(sql, params)))

    def write(self, operation: str, sql: str, params: tuple[Any, ...], fetch: Any = "count") -> Any:
        return self.db.write(operation, _plan(Query(sql, params, fetch)))

    def run_in(
        self, tx: sqlite3.Connection, operation: str, sql: str, params: tuple[Any, ...] = ()
    ) -> Any:
        return self.db.run_in(tx, operation, _plan(Query(sql, params, "count")))

    def now(self) -> str:
        return self.clock().isoformat()

    def name(self) -> str:
        return self.db.file or "<memory>"

    def close(self) -> None:
        if self.owns:
            self.db.close()


_SAVE: Final = (
    "INSERT INTO eventcore_checkpoints (name, position, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
    "updated_at = excluded.updated_at"
)


class SqliteCheckpointStore:
    """Checkpoints in table ``eventcore_checkpoints`` of an SQLite database.

    Also a transactional checkpoint store: :meth:`transaction` yields the
    ``sqlite3.Connection`` in which a transactional projector writes its read model; the
    runner saves the checkpoint in it and commits. A lower ``save`` is ignored.
    ``busy_timeout`` applies to a database this store opens itself.
    """

    def __init__(
        self,
        database: Database,
        *,
        busy_timeout: float | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._t = _Tables(database, "SqliteCheckpointStore", busy_timeout, clock)
        self.database = self._t.db
        self.database_key = self.database.key

    def __repr__(self) -> str:
        return f"SqliteCheckpointStore({self._t.name()!r})"

    def load(self, name: str) -> int | None:
        rows = self._t.read(
            "load checkpoint",
            "SELECT position FROM eventcore_checkpoints WHERE name = ?",
            (check_name(name),),
        )
        return int(rows[0][0]) if rows else None

    def save(self, name: str, position: int) -> None:
        check_name(name)
        check_position(position)
        self._t.write(
            "save checkpoint",
            _SAVE + " WHERE excluded.position > position",
            (name, position, self._t.now()),
        )

    def names(self) -> dict[str, int]:
        """Every saved checkpoint, name to position, in name order (for ``eventcore``)."""
        rows = self._t.read(
            "list checkpoints", "SELECT name, position FROM eventcore_checkpoints ORDER BY name", ()
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name`` (the next run starts from the beginning)."""
        self._t.write(
            "reset checkpoint",
            "DELETE FROM eventcore_checkpoints WHERE name = ?",
            (check_name(name),),
        )

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on the database's writer connection (rolled
        back if the block raises). Do not commit inside it."""
        return self.database.transaction("projection transaction")

    @contextlib.contextmanager
    def savepoint(self, tx: sqlite3.Connection) -> Iterator[None]:
        """A savepoint in ``tx``, rolled back alone if the block raises."""
        self._t.run_in(tx, "savepoint", "SAVEPOINT eventcore_event")
        try:
            yield
        except BaseException:
            self._t.run_in(tx, "savepoint", "ROLLBACK TO eventcore_event")
            self._t.run_in(tx, "savepoint", "RELEASE eventcore_event")
            raise
        self._t.run_in(tx, "savepoint", "RELEASE eventcore_event")

    def save_in(
        self, tx: sqlite3.Connection, name: str, position: int, *, expected: int | None
    ) -> None:
        """Save inside ``tx`` if the checkpoint is still ``expected``, else raise
        :class:`~eventcore.errors.LeadershipUnavailable` (the caller rolls back)."""
        check_position(position)
        row = self.database.run_in(
            tx,
            "save checkpoint",
            _plan(
                Query(
                    "SELECT position FROM eventcore_checkpoints WHERE name = ?",
                    (check_name(name),),
                    "one",
                )
            ),
        )
        current = None if row is None else int(row[0])
        if current != expected:
            raise _moved(name, expected, current)
        self._t.run_in(tx, "save checkpoint", _SAVE, (name, position, self._t.now()))

    def close(self) -> None:
        """Close the database if this store opened it."""
        self._t.close()


def _moved(name: str, expected: int | None, current: int | None) -> LeadershipUnavailable:
    return LeadershipUnavailable(
        name,
        f"its checkpoint moved from {expected} to {current} while this instance was applying "
        "events (did it lose its leadership?); this instance's transaction was rolled back, "
        "so nothing was applied twice",
    )


_LETTERS: Final = (
    "projection, position, event_id, stream_id, event_type, error_type, message, traceback, "
    "attempts, recorded_at"
)


class SqliteDeadLetterStore:
    """Dead letters in table ``eventcore_dead_letters`` of an SQLite database."""

    _INSERT: Final = (
        f"INSERT OR REPLACE INTO eventcore_dead_letters ({_LETTERS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _SELECT: Final = f"SELECT {_LETTERS} FROM eventcore_dead_letters"

    def __init__(
        self,
        database: Database,
        *,
        busy_timeout: float | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._t = _Tables(database, "SqliteDeadLetterStore", busy_timeout, clock)
        self.database = self._t.db
        self.database_key = self.database.key

    def __repr__(self) -> str:
        return f"SqliteDeadLetterStore({self._t.name()!r})"

    def record(self, letter: DeadLetter) -> None:
        self._t.write("record dead letter", self._INSERT, _row(letter))

    def record_in(self, tx: sqlite3.Connection, letter: DeadLetter) -> None:
        """Record ``letter`` inside an open transaction on the same database."""
        self._t.run_in(tx, "record dead letter", self._INSERT, _row(letter))

    def list(self, name: str) -> builtins.list[DeadLetter]:
        rows = self._t.read(
            "list dead letters",
            f"{self._SELECT} WHERE projection = ? ORDER BY position",
            (check_name(name),),
        )
        return [_letter(r) for r in rows]

    def names(self) -> dict[str, int]:
        """The projections that have dead letters, name to how many, in name order."""
        rows = self._t.read(
            "list dead letters",
            "SELECT projection, COUNT(*) FROM eventcore_dead_letters GROUP BY projection "
            "ORDER BY projection",
            (),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def get(self, name: str, position: int) -> DeadLetter | None:
        rows = self._t.read(
            "get dead letter",
            f"{self._SELECT} WHERE projection = ? AND position = ?",
            (check_name(name), check_position(position)),
        )
        return _letter(rows[0]) if rows else None

    def discard(self, name: str, position: int | None = None) -> int:
        sql, params = _discard(name, position)
        return int(self._t.write("discard dead letters", sql, params))

    def discard_in(self, tx: sqlite3.Connection, name: str, position: int | None = None) -> int:
        """Discard inside an open transaction on the same database."""
        sql, params = _discard(name, position)
        return int(self._t.run_in(tx, "discard dead letters", sql, params))

    def close(self) -> None:
        """Close the database if this store opened it."""
        self._t.close()


def _discard(name: str, position: int | None) -> tuple[str, tuple[Any, ...]]:
    check_name(name)
    if position is None:
        return "DELETE FROM eventcore_dead_letters WHERE projection = ?", (name,)
    return (
        "DELETE FROM eventcore_dead_letters WHERE projection = ? AND position = ?",
        (name, check_position(position)),
    )


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
        database: SqliteDatabase | SqliteEventStore | str | os.PathLike[str],
        *,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        base: str | None
        if isinstance(database, SqliteEventStore):
            database = database.database
        if isinstance(database, SqliteDatabase):
            base = database.file
        elif isinstance(database, (str, os.PathLike)):
            path = os.fspath(database)
            base = None if path == ":memory:" or not path else os.path.abspath(path)
        else:
            raise ConfigurationError(
                "SqliteLeadership takes a SqliteDatabase, a SqliteEventStore or a database path, "
                "got "
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
