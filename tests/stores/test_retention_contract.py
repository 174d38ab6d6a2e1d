"""The tombstone and retention contracts (eventcore.testing.contract_retention) on every
bundled store: memory, SQLite (file and shared ``:memory:``), PostgreSQL, and the asyncio
faces of all three through SyncBridge."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore.store import EventStore
from eventcore.stores.memory import AsyncInMemoryEventStore, InMemoryEventStore
from eventcore.stores.sqlite import AsyncSqliteEventStore, SqliteEventStore
from eventcore.testing.bridge import LoopThread, SyncBridge
from eventcore.testing.contract import StoreFactory
from eventcore.testing.contract_retention import RetentionContract, TombstoneContract


class Memory:
    @pytest.fixture
    def make_store(self) -> StoreFactory:
        stores: list[InMemoryEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            stores.append(stores[0].reopen(**kwargs) if stores else InMemoryEventStore(**kwargs))
            return stores[-1]

        return factory

    @pytest.fixture
    def make_empty_store(self) -> StoreFactory:
        return lambda **kwargs: InMemoryEventStore(**kwargs)


class SqliteFile:
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[StoreFactory]:
        handles: list[SqliteEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            handles.append(SqliteEventStore(tmp_path / "events.db", **kwargs))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()

    @pytest.fixture
    def make_empty_store(self, tmp_path: Path) -> Iterator[StoreFactory]:
        handles: list[SqliteEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            handles.append(SqliteEventStore(tmp_path / f"other-{len(handles)}.db", **kwargs))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()


class SqliteMemory:
    @pytest.fixture
    def make_store(self) -> Iterator[StoreFactory]:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        yield lambda **kwargs: SqliteEventStore(conn, **kwargs)
        conn.close()

    @pytest.fixture
    def make_empty_store(self) -> StoreFactory:
        return lambda **kwargs: SqliteEventStore(":memory:", **kwargs)


class Postgres:
    @pytest.fixture
    def make_store(self, postgres_dsn: str, postgres_schema: str) -> Iterator[StoreFactory]:
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=4)
        handles: list[PostgresEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            handles.append(PostgresEventStore(config, **kwargs))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()

    @pytest.fixture
    def make_empty_store(self, postgres_dsn: str) -> Iterator[StoreFactory]:
        import psycopg

        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        handles: list[PostgresEventStore] = []
        schemas: list[str] = []

        def factory(**kwargs: Any) -> EventStore:
            schemas.append(f"ec_test_{uuid.uuid4().hex[:12]}")
            config = PostgresConfig(postgres_dsn, schema=schemas[-1], pool_max=2)
            handles.append(PostgresEventStore(config, **kwargs))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


class AsyncMemory:
    @pytest.fixture
    def make_store(self, loop: LoopThread) -> StoreFactory:
        stores: list[AsyncInMemoryEventStore] = []

        def factory(**kwargs: Any) -> SyncBridge:
            def build() -> AsyncInMemoryEventStore:
                stores.append(
                    stores[0].reopen(**kwargs) if stores else AsyncInMemoryEventStore(**kwargs)
                )
                return stores[-1]

            return SyncBridge.open(loop, build)

        return factory

    @pytest.fixture
    def make_empty_store(self, loop: LoopThread) -> StoreFactory:
        return lambda **kwargs: SyncBridge.open(loop, lambda: AsyncInMemoryEventStore(**kwargs))


class AsyncSqlite:
    @pytest.fixture
    def make_store(self, loop: LoopThread, tmp_path: Path) -> Iterator[StoreFactory]:
        handles: list[SyncBridge] = []

        def factory(**kwargs: Any) -> SyncBridge:
            path = tmp_path / "events.db"
            handles.append(SyncBridge.open(loop, lambda: AsyncSqliteEventStore(path, **kwargs)))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()

    @pytest.fixture
    def make_empty_store(self, loop: LoopThread) -> StoreFactory:
        return lambda **kwargs: SyncBridge.open(
            loop, lambda: AsyncSqliteEventStore(":memory:", **kwargs)
        )


class AsyncPostgres:
    @pytest.fixture
    def make_store(
        self, loop: LoopThread, postgres_dsn: str, postgres_schema: str
    ) -> Iterator[StoreFactory]:
        from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

        config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=4)
        handles: list[SyncBridge] = []

        def factory(**kwargs: Any) -> SyncBridge:
            handles.append(
                SyncBridge.open(loop, lambda: AsyncPostgresEventStore(config, **kwargs).open())
            )
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()

    @pytest.fixture
    def make_empty_store(self, loop: LoopThread, postgres_dsn: str) -> Iterator[StoreFactory]:
        import psycopg

        from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

        handles: list[SyncBridge] = []
        schemas: list[str] = []

        def factory(**kwargs: Any) -> SyncBridge:
            schemas.append(f"ec_test_{uuid.uuid4().hex[:12]}")
            config = PostgresConfig(postgres_dsn, schema=schemas[-1], pool_max=2)
            handles.append(
                SyncBridge.open(loop, lambda: AsyncPostgresEventStore(config, **kwargs).open())
            )
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class TestMemoryTombstones(Memory, TombstoneContract):
    pass


class TestMemoryRetention(Memory, RetentionContract):
    pass


class TestSqliteFileTombstones(SqliteFile, TombstoneContract):
    pass


class TestSqliteFileRetention(SqliteFile, RetentionContract):
    pass


class TestSqliteMemoryTombstones(SqliteMemory, TombstoneContract):
    pass


class TestSqliteMemoryRetention(SqliteMemory, RetentionContract):
    pass


class TestPostgresTombstones(Postgres, TombstoneContract):
    pass


class TestPostgresRetention(Postgres, RetentionContract):
    pass


class TestAsyncMemoryTombstones(AsyncMemory, TombstoneContract):
    pass


class TestAsyncMemoryRetention(AsyncMemory, RetentionContract):
    pass


class TestAsyncSqliteTombstones(AsyncSqlite, TombstoneContract):
    pass


class TestAsyncSqliteRetention(AsyncSqlite, RetentionContract):
    pass


class TestAsyncPostgresTombstones(AsyncPostgres, TombstoneContract):
    pass


class TestAsyncPostgresRetention(AsyncPostgres, RetentionContract):
    pass
