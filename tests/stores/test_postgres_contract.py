"""The store contract (eventcore.testing.contract) on PostgreSQL, one schema per test."""

from __future__ import annotations

import uuid
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
