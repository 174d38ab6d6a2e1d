"""Data keys in PostgreSQL: the tables of migration 7 in the event store's schema."""

from __future__ import annotations

from psycopg import sql

from eventcore.clock import Clock, system_clock
from eventcore.crypto.keys import WrappedKeyStore, sql_table
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.database import PostgresDatabase
from eventcore.stores.postgres.store import PostgresEventStore, open_database

__all__ = ["PostgresKeyStore"]


class PostgresKeyStore(WrappedKeyStore):
    """Data keys wrapped under ``master_key`` in ``<schema>.subject_keys``; forgotten
    subjects in ``<schema>.forgotten_subjects``.

    ``database``: a :class:`PostgresDatabase` (create it first and pass it to the event
    store too), a :class:`PostgresEventStore` whose database to share, or a config or DSN.
    A forgotten key's row is deleted; PostgreSQL overwrites it only when the table is
    vacuumed (autovacuum does it), and backups keep it until they expire: the key is wrapped
    under the master key meanwhile.
    """

    def __init__(
        self,
        database: PostgresDatabase | PostgresEventStore | PostgresConfig | str,
        *,
        master_key: bytes,
        clock: Clock = system_clock,
        cache_seconds: float = 30.0,
    ) -> None:
        if isinstance(database, PostgresEventStore):
            self.database, self._owns = database.database, False
        else:
            self.database, self._owns = open_database(database, "PostgresKeyStore")
        schema = sql.Identifier(self.database.config.schema)

        def table(name: str) -> str:
            return sql.SQL("{}.{}").format(schema, sql.Identifier(name)).as_string(None)

        super().__init__(
            self.database,
            sql_table(
                table("subject_keys"),
                table("forgotten_subjects"),
                table("key_master"),
                "%s",
                lambda text: sql.SQL(text),
                lock=f"LOCK TABLE {table('subject_keys')} IN SHARE ROW EXCLUSIVE MODE",
            ),
            master_key,
            clock=clock,
            cache_seconds=cache_seconds,
            name=f"PostgresKeyStore(schema={self.database.config.schema!r})",
        )

    def close(self) -> None:
        """Close the database if this key store opened it."""
        if self._owns:
            self.database.close()
