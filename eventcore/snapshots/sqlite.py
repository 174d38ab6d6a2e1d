"""Snapshots in an SQLite file: the table ``eventcore_snapshots``, next to the events.

Give it the event store or its database (it shares them, so ``":memory:"`` databases work
too), a file path, or a connection you own. The table is one of the database's migrations;
it has no triggers: snapshots are a cache that may be deleted at any time. A save runs
in a ``BEGIN IMMEDIATE`` transaction, so comparing with the stored
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
import os
import sqlite3
from datetime import datetime
from typing import Any

from eventcore.clock import Clock, system_clock
from eventcore.errors import ConfigurationError
from eventcore.snapshots.model import Snapshot, SnapshotInfo, covers, parse_versions
from eventcore.snapshots.store import check_prefix
from eventcore.stores._plan import Plan, Query
from eventcore.stores.sqlite import SqliteDatabase, SqliteEventStore
from eventcore.stores.sqlite.database import open_database

__all__ = ["SqliteSnapshotStore"]


class SqliteSnapshotStore:
    """Snapshots in the ``eventcore_snapshots`` table of an SQLite database.

    ``database``: a :class:`SqliteEventStore` or its :class:`SqliteDatabase` (shared), a file
    path (opened here, closed by :meth:`close`), or a ``sqlite3.Connection`` you own.
    ``busy_timeout`` applies to a database opened here.
    """

    def __init__(
        self,
        database: SqliteDatabase | SqliteEventStore | str | os.PathLike[str] | sqlite3.Connection,
        *,
        clock: Clock = system_clock,
        busy_timeout: float | None = None,
    ) -> None:
        self._clock = clock
        if isinstance(database, SqliteEventStore):
            if busy_timeout is not None:
                raise ConfigurationError(
                    "SqliteSnapshotStore: busy_timeout belongs to the event store's database"
                )
            self.database, self._owns = database.database, False
        else:
            if isinstance(database, (str, os.PathLike)) and os.fspath(database) == ":memory:":
                raise ConfigurationError(
                    "a ':memory:' snapshot store would be empty and private; pass the "
                    "SqliteEventStore instead, or use InMemorySnapshotStore"
                )
            self.database, self._owns = open_database(
                database, "SqliteSnapshotStore", None, busy_timeout, clock
            )

    def __repr__(self) -> str:
        return f"SqliteSnapshotStore({self.database.name!r})"

    def load(self, snapshot_id: str) -> Snapshot | None:
        rows = self.database.read(
            "load_snapshot",
            _rows(
                "SELECT data, saved_at FROM eventcore_snapshots WHERE snapshot_id = ?",
                (snapshot_id,),
            ),
        )
        if not rows:
            return None
        data, saved_at = rows[0]
        return Snapshot.from_json(snapshot_id, data, _when(saved_at))

    inspect = load

    def save(self, snapshot: Snapshot) -> bool:
        data = snapshot.to_json()
        plan = _save(snapshot, snapshot.versions_json(), data, self._clock().isoformat())
        return self.database.write("save_snapshot", plan)

    def list(self, *, prefix: str = "") -> builtins.list[SnapshotInfo]:
        check_prefix(prefix)
        rows = self.database.read(
            "list_snapshots",
            _rows(
                "SELECT snapshot_id, data, saved_at FROM eventcore_snapshots "
                "WHERE substr(snapshot_id, 1, ?) = ? ORDER BY snapshot_id",
                (len(prefix), prefix),
            ),
        )
        return [
            Snapshot.from_json(sid, data, _when(saved)).info(len(data.encode("utf-8")))
            for sid, data, saved in rows
        ]

    def delete(self, snapshot_id: str) -> bool:
        sql = "DELETE FROM eventcore_snapshots WHERE snapshot_id = ?"
        return self.database.write("delete_snapshot", _count(sql, (snapshot_id,))) > 0

    def clear(self, *, prefix: str = "") -> int:
        check_prefix(prefix)
        sql = "DELETE FROM eventcore_snapshots WHERE substr(snapshot_id, 1, ?) = ?"
        return self.database.write("clear_snapshots", _count(sql, (len(prefix), prefix)))

    def close(self) -> None:
        """Close the database if this store opened it."""
        if self._owns:
            self.database.close()

    def __enter__(self) -> SqliteSnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rows(sql: str, params: tuple[Any, ...]) -> Plan[list[Any]]:
    rows: list[Any] = yield Query(sql, params)
    return rows


def _count(sql: str, params: tuple[Any, ...]) -> Plan[int]:
    count: int = yield Query(sql, params, "count")
    return count


def _save(snapshot: Snapshot, versions: str, data: str, saved_at: str) -> Plan[bool]:
    """Compare with the stored versions and replace the row, in one immediate transaction."""
    row = yield Query(
        "SELECT versions FROM eventcore_snapshots WHERE snapshot_id = ?",
        (snapshot.snapshot_id,),
        "one",
    )
    if row is not None and not covers(snapshot.versions, parse_versions(row[0])):
        return False
    yield Query(
        "INSERT INTO eventcore_snapshots (snapshot_id, versions, data, saved_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (snapshot_id) DO UPDATE SET "
        "versions = excluded.versions, data = excluded.data, saved_at = excluded.saved_at",
        (snapshot.snapshot_id, versions, data, saved_at),
        "none",
    )
    return True


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
