"""Backends for the serializer and encryption tests: the memory, SQLite and PostgreSQL
stores and their async faces, each able to open a second handle on the same data (with its
own event-type registry), to give a key store next to the events, and (SQL only) to read
and alter the raw rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore import EventTypes, InMemoryEventStore, SeededIds, SqliteEventStore, TickingClock
from eventcore.crypto import InMemoryKeyStore, KeyStore
from eventcore.testing.bridge import LoopThread, SyncBridge

MASTER = bytes(range(32))
"""A fixed test master key (never printed)."""

BACKENDS = ["memory", "sqlite", "postgres", "async-memory", "async-sqlite", "async-postgres"]


class Backend:
    """One kind of store, opened on one database for the length of a test."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.clock = TickingClock()
        self.ids = SeededIds(seed=14)
        self.handles: list[Any] = []
        self._memory: Any = None
        self.loop: LoopThread | None = LoopThread() if kind.startswith("async") else None
        base = kind.removeprefix("async-")
        self.base = base
        self.path = tmp_path / "events.db"
        self.config: Any = None
        self.dsn = ""
        if base == "postgres":
            from eventcore.stores.postgres import PostgresConfig

            self.dsn = request.getfixturevalue("postgres_dsn")
            self.schema = request.getfixturevalue("postgres_schema")
            self.config = PostgresConfig(self.dsn, schema=self.schema, pool_max=4)

    @property
    def sql(self) -> bool:
        return self.base != "memory"

    def open(self, types: EventTypes) -> Any:
        """A new handle on this backend's events, decoding with ``types``."""
        kw: dict[str, Any] = {"events": types, "clock": self.clock, "ids": self.ids}
        if self.loop is None:
            handle = self._sync(kw)
        else:
            handle = SyncBridge.open(self.loop, lambda: self._async(kw))
        self.handles.append(handle)
        return handle

    def _sync(self, kw: dict[str, Any]) -> Any:
        if self.base == "memory":
            if self._memory is None:
                self._memory = InMemoryEventStore(**kw)
                return self._memory
            return self._memory.reopen(**kw)
        if self.base == "sqlite":
            return SqliteEventStore(self.path, **kw)
        from eventcore.stores.postgres import PostgresEventStore

        return PostgresEventStore(self.config, **kw)

    def _async(self, kw: dict[str, Any]) -> Any:
        if self.base == "memory":
            from eventcore.stores.memory import AsyncInMemoryEventStore

            if self._memory is None:
                self._memory = AsyncInMemoryEventStore(**kw)
                return self._memory
            return self._memory.reopen(**kw)
        if self.base == "sqlite":
            from eventcore.stores.sqlite import AsyncSqliteEventStore

            return AsyncSqliteEventStore(self.path, **kw)
        from eventcore.stores.postgres import AsyncPostgresEventStore

        return AsyncPostgresEventStore(self.config, **kw).open()

    def key_store(self, master: bytes = MASTER) -> KeyStore:
        """The database-backed key store of this backend (in memory for the memory store)."""
        if self.base == "memory":
            return InMemoryKeyStore()
        if self.base == "sqlite":
            from eventcore.crypto import SqliteKeyStore

            keys = SqliteKeyStore(self.path, master_key=master, clock=self.clock)
        else:
            from eventcore.crypto import PostgresKeyStore

            keys = PostgresKeyStore(self.config, master_key=master, clock=self.clock)
        self.handles.append(keys)
        return keys

    def raw_rows(self) -> list[tuple[str, str, str]]:
        """``(event_type, data, metadata)`` of every row, as the database holds them."""
        if self.base == "sqlite":
            with sqlite3.connect(self.path) as conn:
                rows = conn.execute(
                    "SELECT event_type, data, metadata FROM eventcore_events ORDER BY position"
                ).fetchall()
            return [(t, d, m) for t, d, m in rows]
        import psycopg
        from psycopg import sql

        query = sql.SQL(
            "SELECT event_type, data::text, metadata::text FROM {}.events ORDER BY position"
        ).format(sql.Identifier(self.schema))
        with psycopg.connect(self.dsn) as conn:
            return [(t, d, m) for t, d, m in conn.execute(query).fetchall()]

    def raw_bytes(self) -> bytes:
        """The whole SQLite file (and its WAL), or every PostgreSQL row of the schema."""
        if self.base == "sqlite":
            data = self.path.read_bytes()
            wal = self.path.with_name(self.path.name + "-wal")
            return data + (wal.read_bytes() if wal.exists() else b"")
        return repr(self.raw_rows()).encode()

    def alter_data(self, position: int, change: Callable[[str], str]) -> None:
        """Rewrite the stored data of one event past the immutability triggers (a test of
        tampering: nothing in EventCore can do this)."""
        if self.base == "sqlite":
            with sqlite3.connect(self.path) as conn:
                (data,) = conn.execute(
                    "SELECT data FROM eventcore_events WHERE position = ?", (position,)
                ).fetchone()
                conn.execute("DROP TRIGGER IF EXISTS eventcore_events_no_update")
                conn.execute(
                    "UPDATE eventcore_events SET data = ? WHERE position = ?",
                    (change(data), position),
                )
            return
        import psycopg
        from psycopg import sql

        table = sql.SQL("{}.events").format(sql.Identifier(self.schema))
        with psycopg.connect(self.dsn) as conn:
            (data,) = conn.execute(
                sql.SQL("SELECT data::text FROM {} WHERE position = %s").format(table), (position,)
            ).fetchone()  # type: ignore[misc]
            conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(table))
            conn.execute(
                sql.SQL("UPDATE {} SET data = %s::json WHERE position = %s").format(table),
                (change(data), position),
            )
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(table))

    def close(self) -> None:
        for handle in reversed(self.handles):
            close = getattr(handle, "close", None)
            if close is not None:
                close()
        if self.loop is not None:
            self.loop.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = Backend(request.param, tmp_path, request)
    yield made
    made.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def sync_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = Backend(request.param, tmp_path, request)
    yield made
    made.close()


@pytest.fixture(params=["sqlite", "postgres"])
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = Backend(request.param, tmp_path, request)
    yield made
    made.close()
