"""Snapshots in an SQLite file: the table ``eventcore_snapshots``, next to the events.

Give it the event store (it shares the store's connection and lock, so ``":memory:"``
databases work too), a file path, or a connection you own. The table is created with
``CREATE TABLE IF NOT EXISTS``; it has no triggers: snapshots are a cache that may be deleted
at any time. A save runs in a ``BEGIN IMMEDIATE`` transaction, so comparing with the stored
versions and replacing the row is atomic across threads and processes.

>>> from eventcore.stores.sqlite import SqliteEventStore
>>> from eventcore.types import StreamId
>>> events = SqliteEventStore(":memory:")
>>> snapshots = SqliteSnapshotStore(events)
>>> snapshots.save(Snapshot("Deposit/v1/a", ((StreamId("a"), 3),), (30,)))
True
>>> [str(info) for info in snapshots.list()]
['Deposit/v1/a  [a@3]  40 bytes']
>>> events.close()
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from eventcore.clock import Clock, system_clock
from eventcore.errors import ConfigurationError, StoreFailure
from eventcore.snapshots.model import Snapshot, SnapshotInfo, covers, parse_versions
from eventcore.snapshots.store import check_prefix
from eventcore.stores.sqlite import SqliteEventStore

__all__ = ["SqliteSnapshotStore"]

_TABLE: Final = """
CREATE TABLE IF NOT EXISTS eventcore_snapshots (
    snapshot_id TEXT PRIMARY KEY,
    versions    TEXT NOT NULL,
    data        TEXT NOT NULL,
    saved_at    TEXT NOT NULL
)
"""


class SqliteSnapshotStore:
    """Snapshots in the ``eventcore_snapshots`` table of an SQLite database.

    ``database``: a :class:`SqliteEventStore` (shares its connection), a file path, or a
    ``sqlite3.Connection`` you own. ``busy_timeout`` applies to a connection opened here.
    """

    def __init__(
        self,
        database: SqliteEventStore | str | os.PathLike[str] | sqlite3.Connection,
        *,
        clock: Clock = system_clock,
        busy_timeout: float = 30.0,
    ) -> None:
        self._clock = clock
        self._owns_connection = False
        if isinstance(database, SqliteEventStore):
            self._conn: sqlite3.Connection = database._conn
            self._lock: threading.RLock | Any = database._lock
            self._name = repr(database)
        elif isinstance(database, sqlite3.Connection):
            self._conn, self._lock, self._name = database, threading.RLock(), "<connection>"
        elif isinstance(database, (str, os.PathLike)):
            self._name = os.fspath(database)
            if self._name == ":memory:":
                raise ConfigurationError(
                    "a ':memory:' snapshot store would be empty and private; pass the "
                    "SqliteEventStore instead, or use InMemorySnapshotStore"
                )
            try:
                self._conn = sqlite3.connect(
                    self._name, timeout=busy_timeout, isolation_level=None, check_same_thread=False
                )
                self._conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.Error as exc:
                raise StoreFailure(
                    "open", f"cannot open SQLite database {self._name!r}: {exc}"
                ) from exc
            self._lock = threading.RLock()
            self._owns_connection = True
        else:
            raise ConfigurationError(
                "SqliteSnapshotStore takes a SqliteEventStore, a file path or a "
                f"sqlite3.Connection, got {type(database).__name__}"
            )
        self._run("open", _TABLE, ())

    def __repr__(self) -> str:
        return f"SqliteSnapshotStore({self._name})"

    def _run(self, operation: str, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreFailure(operation, str(exc)) from exc

    def load(self, snapshot_id: str) -> Snapshot | None:
        rows = self._run(
            "load_snapshot",
            "SELECT data, saved_at FROM eventcore_snapshots WHERE snapshot_id = ?",
            (snapshot_id,),
        )
        if not rows:
            return None
        data, saved_at = rows[0]
        return Snapshot.from_json(snapshot_id, data, _when(saved_at))

    inspect = load

    def save(self, snapshot: Snapshot) -> bool:
        data = snapshot.to_json()
        versions = snapshot.versions_json()
        conn = self._conn
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreFailure("save_snapshot", str(exc)) from exc
            try:
                row = conn.execute(
                    "SELECT versions FROM eventcore_snapshots WHERE snapshot_id = ?",
                    (snapshot.snapshot_id,),
                ).fetchone()
                if row is not None and not covers(snapshot.versions, parse_versions(row[0])):
                    conn.rollback()
                    return False
                conn.execute(
                    "INSERT INTO eventcore_snapshots (snapshot_id, versions, data, saved_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (snapshot_id) DO UPDATE SET "
                    "versions = excluded.versions, data = excluded.data, "
                    "saved_at = excluded.saved_at",
                    (snapshot.snapshot_id, versions, data, self._clock().isoformat()),
                )
                conn.commit()
                return True
            except sqlite3.Error as exc:
                _rollback_quietly(conn)
                raise StoreFailure("save_snapshot", str(exc)) from exc
            except BaseException:
                _rollback_quietly(conn)
                raise

    def list(self, *, prefix: str = "") -> builtins.list[SnapshotInfo]:
        check_prefix(prefix)
        rows = self._run(
            "list_snapshots",
            "SELECT snapshot_id, data, saved_at FROM eventcore_snapshots "
            "WHERE substr(snapshot_id, 1, ?) = ? ORDER BY snapshot_id",
            (len(prefix), prefix),
        )
        return [
            Snapshot.from_json(sid, data, _when(saved)).info(len(data.encode("utf-8")))
            for sid, data, saved in rows
        ]

    def delete(self, snapshot_id: str) -> bool:
        with self._lock:
            try:
                cursor = self._conn.execute(
                    "DELETE FROM eventcore_snapshots WHERE snapshot_id = ?", (snapshot_id,)
                )
            except sqlite3.Error as exc:
                raise StoreFailure("delete_snapshot", str(exc)) from exc
            return cursor.rowcount > 0

    def clear(self, *, prefix: str = "") -> int:
        check_prefix(prefix)
        with self._lock:
            try:
                cursor = self._conn.execute(
                    "DELETE FROM eventcore_snapshots WHERE substr(snapshot_id, 1, ?) = ?",
                    (len(prefix), prefix),
                )
            except sqlite3.Error as exc:
                raise StoreFailure("clear_snapshots", str(exc)) from exc
            return int(cursor.rowcount)

    def close(self) -> None:
        """Close the connection if this store opened it."""
        if self._owns_connection:
            with self._lock:
                self._conn.close()

    def __enter__(self) -> SqliteSnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.rollback()
