"""The store contract (eventcore.testing.contract) on PostgreSQL, one schema per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from eventcore.store import EventStore
from eventcore.testing.contract import EventStoreContract, StoreFactory


class TestPostgresContract(EventStoreContract):
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
