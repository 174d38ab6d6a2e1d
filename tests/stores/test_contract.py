"""The store contract (eventcore.testing.contract) run on every bundled store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore.store import EventStore
from eventcore.stores.memory import InMemoryEventStore
from eventcore.stores.sqlite import SqliteEventStore
from eventcore.testing.contract import EventStoreContract, StoreFactory


class TestInMemoryContract(EventStoreContract):
    """Later handles are ``reopen()``-ed: the same events, their own event-type registry."""

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


class TestSqliteFileContract(EventStoreContract):
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


class TestSqliteMemoryContract(EventStoreContract):
    """``:memory:`` through one shared connection, so a second handle sees the same data."""

    @pytest.fixture
    def make_store(self) -> Iterator[StoreFactory]:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)

        def factory(**kwargs: Any) -> EventStore:
            return SqliteEventStore(conn, **kwargs)

        yield factory
        conn.close()

    @pytest.fixture
    def make_empty_store(self) -> Iterator[StoreFactory]:
        conns: list[sqlite3.Connection] = []

        def factory(**kwargs: Any) -> EventStore:
            conns.append(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
            return SqliteEventStore(conns[-1], **kwargs)

        yield factory
        for conn in conns:
            conn.close()
