"""Data keys in an SQLite file: the tables of migration 6, next to the events.

>>> from eventcore.stores.sqlite import SqliteDatabase
>>> db = SqliteDatabase(":memory:")
>>> keys = SqliteKeyStore(db, master_key=bytes(range(32)))
>>> keys.current_key("customer-1")
DataKey(subject='customer-1', version=1)
>>> SqliteKeyStore(db, master_key=bytes(32))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
eventcore.errors.ConfigurationError: SqliteKeyStore(':memory:'): the master key does not open ...
>>> db.close()
"""

from __future__ import annotations

import os
import sqlite3

from eventcore.clock import Clock, system_clock
from eventcore.crypto.keys import WrappedKeyStore, sql_table
from eventcore.stores._plan import Plan, Query
from eventcore.stores.sqlite import SqliteDatabase, SqliteEventStore
from eventcore.stores.sqlite.database import open_database

__all__ = ["SqliteKeyStore"]


class SqliteKeyStore(WrappedKeyStore):
    """Data keys wrapped under ``master_key`` in ``eventcore_subject_keys``; forgotten
    subjects in ``eventcore_forgotten_subjects``.

    ``database``: a :class:`SqliteDatabase` (create it first and pass it to the event store
    too), a :class:`SqliteEventStore` whose database to share, or a file path. Forgetting
    deletes the wrapped keys with SQLite's ``secure_delete`` on, so their bytes are
    overwritten in the file, and checkpoints the write-ahead log (backups keep them until they
    are rotated).
    """

    def __init__(
        self,
        database: SqliteDatabase | SqliteEventStore | str | os.PathLike[str] | sqlite3.Connection,
        *,
        master_key: bytes,
        clock: Clock = system_clock,
        cache_seconds: float = 30.0,
    ) -> None:
        if isinstance(database, SqliteEventStore):
            self.database, self._owns = database.database, False
        else:
            self.database, self._owns = open_database(database, "SqliteKeyStore", None, None, clock)
        with self.database.transaction("key_store_secure_delete") as conn:
            conn.execute("PRAGMA secure_delete = ON")
        table = sql_table(
            "eventcore_subject_keys",
            "eventcore_forgotten_subjects",
            "eventcore_key_master",
            "?",
            str,
        )
        super().__init__(
            self.database,
            table,
            master_key,
            clock=clock,
            cache_seconds=cache_seconds,
            name=f"SqliteKeyStore({self.database.name!r})",
        )

    def forget(self, subject: str) -> int:
        """Destroy ``subject``'s keys (their bytes overwritten: ``secure_delete``), then
        checkpoint the write-ahead log so that no older copy of their page stays in it (best
        effort: a checkpoint waits for no reader)."""
        destroyed = super().forget(subject)
        self.database.read("key_store_checkpoint", _checkpoint())
        return destroyed

    def close(self) -> None:
        """Close the database if this key store opened it."""
        if self._owns:
            self.database.close()


def _checkpoint() -> Plan[None]:
    yield Query("PRAGMA wal_checkpoint(TRUNCATE)", (), "one")
