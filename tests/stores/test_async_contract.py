"""The store contract, unchanged, against the asyncio stores (through SyncBridge): one
suite, two drivers."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore.stores.memory import AsyncInMemoryEventStore
from eventcore.stores.sqlite import AsyncSqliteEventStore
from eventcore.testing.bridge import LoopThread, SyncBridge
from eventcore.testing.contract import EventStoreContract, StoreFactory


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


class TestAsyncInMemoryContract(EventStoreContract):
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


class TestAsyncSqliteFileContract(EventStoreContract):
    @pytest.fixture
    def make_store(self, loop: LoopThread, tmp_path: Path) -> Iterator[StoreFactory]:
        handles: list[SyncBridge] = []

        def factory(**kwargs: Any) -> SyncBridge:
            handles.append(
                SyncBridge.open(
                    loop, lambda: AsyncSqliteEventStore(tmp_path / "events.db", **kwargs)
                )
            )
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()

    @pytest.fixture
    def make_empty_store(self, loop: LoopThread, tmp_path: Path) -> Iterator[StoreFactory]:
        handles: list[SyncBridge] = []

        def factory(**kwargs: Any) -> SyncBridge:
            path = tmp_path / f"other-{len(handles)}.db"
            handles.append(SyncBridge.open(loop, lambda: AsyncSqliteEventStore(path, **kwargs)))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()


class TestAsyncSqliteMemoryContract(EventStoreContract):
    """``:memory:`` through one shared connection, so a second handle sees the same data."""

    @pytest.fixture
    def make_store(self, loop: LoopThread) -> Iterator[StoreFactory]:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        handles: list[SyncBridge] = []

        def factory(**kwargs: Any) -> SyncBridge:
            handles.append(SyncBridge.open(loop, lambda: AsyncSqliteEventStore(conn, **kwargs)))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()
        conn.close()

    @pytest.fixture
    def make_empty_store(self, loop: LoopThread) -> StoreFactory:
        return lambda **kwargs: SyncBridge.open(
            loop, lambda: AsyncSqliteEventStore(":memory:", **kwargs)
        )


class TestAsyncPostgresContract(EventStoreContract):
    """Native asyncio: psycopg's AsyncConnection and AsyncConnectionPool."""

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
