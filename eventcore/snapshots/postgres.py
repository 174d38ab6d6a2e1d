"""Snapshots in PostgreSQL: the table ``<schema>.snapshots`` of the event store's schema.

The table comes with the store's migrations. The store's connection pool is shared. A save
is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement whose condition compares the
stored versions with the new ones under the row lock, so concurrent saves never regress.
"""

from __future__ import annotations

import builtins
from typing import Any, Final

from psycopg import sql

from eventcore.clock import Clock, system_clock
from eventcore.errors import ConfigurationError
from eventcore.snapshots.model import Snapshot, SnapshotInfo
from eventcore.snapshots.store import check_prefix
from eventcore.stores._plan import Plan, Query
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.database import PostgresDatabase
from eventcore.stores.postgres.store import PostgresEventStore, open_database

__all__ = ["PostgresSnapshotStore"]

# The new row wins when no stream both share went back, and it keeps every stored stream
# unless a shared one moved forward (eventcore.snapshots.model.covers, in SQL).
_SAVE: Final = """
INSERT INTO {table} AS old (snapshot_id, versions, data, saved_at)
VALUES (%s, %s::jsonb, %s, %s)
ON CONFLICT (snapshot_id) DO UPDATE
   SET versions = EXCLUDED.versions, data = EXCLUDED.data, saved_at = EXCLUDED.saved_at
 WHERE NOT EXISTS (
           SELECT 1 FROM jsonb_each_text(old.versions) AS o(stream_id, version)
            WHERE EXCLUDED.versions ? o.stream_id
              AND (EXCLUDED.versions ->> o.stream_id)::bigint < o.version::bigint)
   AND (NOT EXISTS (
           SELECT 1 FROM jsonb_each_text(old.versions) AS o(stream_id, version)
            WHERE NOT EXCLUDED.versions ? o.stream_id)
        OR EXISTS (
           SELECT 1 FROM jsonb_each_text(old.versions) AS o(stream_id, version)
            WHERE EXCLUDED.versions ? o.stream_id
              AND (EXCLUDED.versions ->> o.stream_id)::bigint > o.version::bigint))
RETURNING 1
"""


class PostgresSnapshotStore:
    """Snapshots next to the events of a :class:`PostgresEventStore`.

    ``store``: the event store or its :class:`PostgresDatabase` (shared), or a
    :class:`PostgresConfig` or DSN, from which a database is opened and owned (closed by
    :meth:`close`).
    """

    def __init__(
        self,
        store: PostgresEventStore | PostgresDatabase | PostgresConfig | str,
        *,
        clock: Clock = system_clock,
    ) -> None:
        if isinstance(store, PostgresEventStore):
            self.database, self._owns = store.database, False
        elif isinstance(store, (PostgresDatabase, PostgresConfig, str)):
            self.database, self._owns = open_database(store, "PostgresSnapshotStore")
        else:
            raise ConfigurationError(
                "PostgresSnapshotStore takes a PostgresEventStore, a PostgresDatabase, a "
                f"PostgresConfig or a DSN, got {type(store).__name__}"
            )
        self._clock = clock
        table = sql.SQL("{}.snapshots").format(sql.Identifier(self.database.config.schema))
        self._sql_save = sql.SQL(_SAVE).format(table=table)
        self._sql_load = sql.SQL("SELECT data, saved_at FROM {} WHERE snapshot_id = %s").format(
            table
        )
        self._sql_list = sql.SQL(
            "SELECT snapshot_id, data, saved_at FROM {} "
            'WHERE left(snapshot_id, %s) = %s ORDER BY snapshot_id COLLATE "C"'
        ).format(table)
        self._sql_delete = sql.SQL("DELETE FROM {} WHERE snapshot_id = %s").format(table)
        self._sql_clear = sql.SQL("DELETE FROM {} WHERE left(snapshot_id, %s) = %s").format(table)

    def __repr__(self) -> str:
        return f"PostgresSnapshotStore(schema={self.database.config.schema!r})"

    def _read(self, operation: str, query: sql.Composed, params: tuple[Any, ...]) -> Any:
        return self.database.read(operation, _plan(Query(query, params)))

    def _write(self, operation: str, query: sql.Composed, params: tuple[Any, ...]) -> Any:
        return self.database.write(operation, _plan(Query(query, params, "count")))

    def load(self, snapshot_id: str) -> Snapshot | None:
        rows = self._read("load_snapshot", self._sql_load, (snapshot_id,))
        if not rows:
            return None
        data, saved_at = rows[0]
        return Snapshot.from_json(snapshot_id, data, saved_at)

    inspect = load

    def save(self, snapshot: Snapshot) -> bool:
        params = (
            snapshot.snapshot_id,
            snapshot.versions_json(),
            snapshot.to_json(),
            self._clock(),
        )
        return bool(self._write("save_snapshot", self._sql_save, params))

    def list(self, *, prefix: str = "") -> builtins.list[SnapshotInfo]:
        check_prefix(prefix)
        rows = self._read("list_snapshots", self._sql_list, (len(prefix), prefix))
        return [
            Snapshot.from_json(sid, data, saved).info(len(data.encode("utf-8")))
            for sid, data, saved in rows
        ]

    def delete(self, snapshot_id: str) -> bool:
        return bool(self._write("delete_snapshot", self._sql_delete, (snapshot_id,)))

    def clear(self, *, prefix: str = "") -> int:
        check_prefix(prefix)
        return int(self._write("clear_snapshots", self._sql_clear, (len(prefix), prefix)))

    def close(self) -> None:
        """Close the database if this snapshot store opened it."""
        if self._owns:
            self.database.close()

    def __enter__(self) -> PostgresSnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plan(query: Query) -> Plan[Any]:
    result = yield query
    return result
