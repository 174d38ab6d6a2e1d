"""The projection contract (eventcore.testing.projection_contract) on memory and SQLite;
PostgreSQL in test_postgres_projection_contract.py."""

from __future__ import annotations

import sqlite3
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
from eventcore.stores.memory import InMemoryEventStore
from eventcore.stores.sqlite import SqliteEventStore
from eventcore.testing.projection_contract import Factory, ProjectionContract, StoreFactory


class TestInMemoryProjections(ProjectionContract):
    @pytest.fixture
    def make_store(self) -> StoreFactory:
        stores: list[InMemoryEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            stores.append(stores[0].reopen(**kwargs) if stores else InMemoryEventStore(**kwargs))
            return stores[-1]

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


class _SqliteHandles:
    def __init__(self) -> None:
        self.opened: list[Any] = []

    def keep(self, thing: Any) -> Any:
        self.opened.append(thing)
        return thing

    def close(self) -> None:
        for thing in reversed(self.opened):
            thing.close()


class TestSqliteFileProjections(ProjectionContract):
    @pytest.fixture
    def handles(self) -> Iterator[_SqliteHandles]:
        handles = _SqliteHandles()
        yield handles
        handles.close()

    @pytest.fixture
    def make_store(self, tmp_path: Path, handles: _SqliteHandles) -> StoreFactory:
        return lambda **kwargs: handles.keep(SqliteEventStore(tmp_path / "events.db", **kwargs))

    @pytest.fixture
    def make_checkpoints(self, handles: _SqliteHandles) -> Factory:
        return lambda store: handles.keep(SqliteCheckpointStore(store))

    @pytest.fixture
    def make_dead_letters(self, handles: _SqliteHandles) -> Factory:
        return lambda store: handles.keep(SqliteDeadLetterStore(store))

    @pytest.fixture
    def make_leadership(self, handles: _SqliteHandles) -> Factory:
        return lambda store: handles.keep(SqliteLeadership(store))


class TestSqliteMemoryProjections(ProjectionContract):
    """``:memory:`` through one shared connection: checkpoints and dead letters share the
    store's connection; leadership needs a directory for its lock files."""

    @pytest.fixture
    def make_store(self) -> Iterator[StoreFactory]:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        yield lambda **kwargs: SqliteEventStore(conn, **kwargs)
        conn.close()

    @pytest.fixture
    def make_checkpoints(self) -> Factory:
        return lambda store: SqliteCheckpointStore(store)

    @pytest.fixture
    def make_dead_letters(self) -> Factory:
        return lambda store: SqliteDeadLetterStore(store)

    @pytest.fixture
    def make_leadership(self, tmp_path: Path) -> Factory:
        return lambda store: SqliteLeadership(store, directory=tmp_path)
