"""The snapshot contract (eventcore.testing.snapshot_contract) on every bundled backend."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore.snapshots import InMemorySnapshotStore, SqliteSnapshotStore
from eventcore.store import EventStore
from eventcore.stores.memory import InMemoryEventStore
from eventcore.stores.sqlite import SqliteEventStore
from eventcore.testing.snapshot_contract import SnapshotStoreContract, StoresFactory


class TestInMemorySnapshots(SnapshotStoreContract):
    """Later calls reopen the event store and share the one snapshot store."""

    @pytest.fixture
    def make_stores(self) -> StoresFactory:
        events: list[InMemoryEventStore] = []
        snapshots = InMemorySnapshotStore()

        def factory(**kwargs: Any) -> tuple[EventStore, InMemorySnapshotStore]:
            events.append(events[0].reopen(**kwargs) if events else InMemoryEventStore(**kwargs))
            return events[-1], snapshots

        return factory


class TestSqliteFileSnapshots(SnapshotStoreContract):
    """Each call opens the file again; the snapshot store shares the event store's connection."""

    @pytest.fixture
    def make_stores(self, tmp_path: Path) -> Iterator[StoresFactory]:
        handles: list[SqliteEventStore] = []

        def factory(**kwargs: Any) -> tuple[EventStore, SqliteSnapshotStore]:
            handles.append(SqliteEventStore(tmp_path / "events.db", **kwargs))
            return handles[-1], SqliteSnapshotStore(handles[-1])

        yield factory
        for handle in handles:
            handle.close()


class TestSqliteOwnConnectionSnapshots(SnapshotStoreContract):
    """The snapshot store opens the file itself (its own connection next to the store's)."""

    @pytest.fixture
    def make_stores(self, tmp_path: Path) -> Iterator[StoresFactory]:
        handles: list[Any] = []

        def factory(**kwargs: Any) -> tuple[EventStore, SqliteSnapshotStore]:
            events = SqliteEventStore(tmp_path / "events.db", **kwargs)
            snapshots = SqliteSnapshotStore(tmp_path / "events.db")
            handles.extend((events, snapshots))
            return events, snapshots

        yield factory
        for handle in handles:
            handle.close()


class TestSqliteMemorySnapshots(SnapshotStoreContract):
    """``:memory:`` through one shared connection, so a second handle sees the same data."""

    @pytest.fixture
    def make_stores(self) -> Iterator[StoresFactory]:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)

        def factory(**kwargs: Any) -> tuple[EventStore, SqliteSnapshotStore]:
            handle = SqliteEventStore(conn, **kwargs)
            return handle, SqliteSnapshotStore(handle)

        yield factory
        conn.close()


class TestPostgresSnapshots(SnapshotStoreContract):
    """One schema per test; every call opens a new store (its own pool) on that schema."""

    @pytest.fixture
    def make_stores(self, postgres_dsn: str, postgres_schema: str) -> Iterator[StoresFactory]:
        from eventcore.snapshots.postgres import PostgresSnapshotStore
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=8)
        handles: list[PostgresEventStore] = []

        def factory(**kwargs: Any) -> tuple[EventStore, PostgresSnapshotStore]:
            handles.append(PostgresEventStore(config, **kwargs))
            return handles[-1], PostgresSnapshotStore(handles[-1])

        yield factory
        for handle in handles:
            handle.close()
