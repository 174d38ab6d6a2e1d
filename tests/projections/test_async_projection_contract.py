"""The projection contract, unchanged, against the asyncio runner on the three async stores
(through AsyncProjectionBridge): one suite, two drivers. PostgreSQL uses the native async
checkpoint and dead-letter stores (psycopg AsyncConnection)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore.projections import (
    InMemoryCheckpointStore,
    InMemoryDeadLetterStore,
    InProcessLeadership,
    SqliteCheckpointStore,
    SqliteDeadLetterStore,
    SqliteLeadership,
)
from eventcore.store import EventStore
from eventcore.stores.memory import AsyncInMemoryEventStore
from eventcore.stores.sqlite import AsyncSqliteEventStore
from eventcore.testing.bridge import LoopThread, SyncBridge
from eventcore.testing.projection_bridge import AsyncProjectionBridge
from eventcore.testing.projection_contract import Factory, ProjectionContract, StoreFactory


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


class _AsyncRunner:
    """Puts the asyncio runner behind the contract's run_projection/running_projection."""

    @pytest.fixture(autouse=True)
    def runner(self, loop: LoopThread) -> AsyncProjectionBridge:
        bridge = AsyncProjectionBridge(loop)
        self.run_projection = bridge.run_projection  # type: ignore[method-assign]
        self.running_projection = bridge.running_projection  # type: ignore[method-assign,assignment]
        return bridge


class TestAsyncInMemoryProjections(_AsyncRunner, ProjectionContract):
    @pytest.fixture
    def make_store(self, loop: LoopThread) -> StoreFactory:
        stores: list[AsyncInMemoryEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            def build() -> AsyncInMemoryEventStore:
                stores.append(
                    stores[0].reopen(**kwargs) if stores else AsyncInMemoryEventStore(**kwargs)
                )
                return stores[-1]

            return SyncBridge.open(loop, build)  # type: ignore[return-value]

        return factory

    @pytest.fixture
    def make_checkpoints(self) -> Factory:
        shared = InMemoryCheckpointStore()
        return lambda store: shared

    @pytest.fixture
    def make_dead_letters(self) -> Factory:
        shared = InMemoryDeadLetterStore()
        return lambda store: shared

    @pytest.fixture
    def make_leadership(self) -> Factory:
        shared = InProcessLeadership()
        return lambda store: shared


class TestAsyncSqliteProjections(_AsyncRunner, ProjectionContract):
    """The blocking SQLite backends over the async store's database: the runner calls them
    on a thread of its own."""

    @pytest.fixture
    def opened(self) -> Iterator[list[Any]]:
        things: list[Any] = []
        yield things
        for thing in reversed(things):
            thing.close()

    @pytest.fixture
    def make_store(self, loop: LoopThread, tmp_path: Path, opened: list[Any]) -> StoreFactory:
        def factory(**kwargs: Any) -> EventStore:
            bridge = SyncBridge.open(
                loop, lambda: AsyncSqliteEventStore(tmp_path / "events.db", **kwargs)
            )
            opened.append(bridge)
            return bridge  # type: ignore[return-value]

        return factory

    @staticmethod
    def _sync(store: Any) -> Any:
        return store.store.sync  # the async store's blocking SqliteEventStore

    @pytest.fixture
    def make_checkpoints(self, opened: list[Any]) -> Factory:
        return lambda store: SqliteCheckpointStore(self._sync(store))

    @pytest.fixture
    def make_dead_letters(self) -> Factory:
        return lambda store: SqliteDeadLetterStore(self._sync(store))

    @pytest.fixture
    def make_leadership(self, opened: list[Any]) -> Factory:
        def factory(store: Any) -> Any:
            opened.append(SqliteLeadership(self._sync(store)))
            return opened[-1]

        return factory


class TestAsyncPostgresProjections(_AsyncRunner, ProjectionContract):
    """Native asyncio checkpoints and dead letters; leadership is the blocking
    PostgresLeadership (the runner calls it on a thread)."""

    @pytest.fixture
    def opened(self) -> Iterator[list[Any]]:
        things: list[Any] = []
        yield things
        for thing in reversed(things):
            thing.close()

    @pytest.fixture
    def pg_config(self, postgres_dsn: str, postgres_schema: str) -> Any:
        pytest.importorskip("psycopg")
        from eventcore.stores.postgres import PostgresConfig

        return PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=4, poll_interval=0.2)

    @pytest.fixture
    def make_store(self, loop: LoopThread, pg_config: Any, opened: list[Any]) -> StoreFactory:
        from eventcore.stores.postgres import AsyncPostgresEventStore

        def factory(**kwargs: Any) -> EventStore:
            bridge = SyncBridge.open(
                loop, lambda: AsyncPostgresEventStore(pg_config, **kwargs).open()
            )
            opened.append(bridge)
            return bridge  # type: ignore[return-value]

        return factory

    @pytest.fixture
    def make_checkpoints(self, runner: AsyncProjectionBridge) -> Factory:
        from eventcore.stores.postgres.projections_aio import AsyncPostgresCheckpointStore

        return lambda store: runner.bridged(AsyncPostgresCheckpointStore(store.store))

    @pytest.fixture
    def make_dead_letters(self, runner: AsyncProjectionBridge) -> Factory:
        from eventcore.stores.postgres.projections_aio import AsyncPostgresDeadLetterStore

        return lambda store: runner.bridged(AsyncPostgresDeadLetterStore(store.store))

    @pytest.fixture
    def make_leadership(self, pg_config: Any, opened: list[Any]) -> Factory:
        from eventcore.stores.postgres.projections import PostgresLeadership

        def factory(store: Any) -> Any:
            opened.append(PostgresLeadership(pg_config))
            return opened[-1]

        return factory
