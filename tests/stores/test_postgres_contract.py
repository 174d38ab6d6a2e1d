"""The store contract (eventcore.testing.contract) and the corrupt-row contract
(eventcore.testing.contract_rows) on PostgreSQL, one schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from eventcore.store import EventStore
from eventcore.testing.contract import EventStoreContract, StoreFactory
from eventcore.testing.contract_rows import CorruptRowContract, RawRowWriter


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


class TestPostgresCorruptRows(CorruptRowContract):
    """Rows inserted with psycopg after ``ALTER TABLE ... DROP NOT NULL`` and dropping the
    CHECK constraints; PostgreSQL's typed columns refuse the rest."""

    unstorable = frozenset(
        {
            "data-not-json",
            "metadata-not-json",
            "event_id-not-a-uuid",
            "recorded_at-not-a-time",
            "stream_version-text",
            "schema_version-text",
            "stream_id-blob",
            "data-blob",
            "metadata-number",
        }
    )

    @pytest.fixture
    def store(self, postgres_dsn: str, postgres_schema: str) -> Iterator[EventStore]:
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        store = PostgresEventStore(PostgresConfig(postgres_dsn, schema=postgres_schema))
        yield store
        store.close()

    @pytest.fixture
    def write_raw_row(
        self, postgres_dsn: str, postgres_schema: str, store: EventStore
    ) -> RawRowWriter:
        import psycopg
        from psycopg import sql

        table = sql.Identifier(postgres_schema, "events")
        casts = {
            "data": "json",
            "metadata": "json",
            "event_id": "uuid",
            "recorded_at": "timestamptz",
        }

        def write(row: dict[str, Any]) -> None:
            if any(isinstance(v, bytes) for v in row.values()):
                raise TypeError("no column of the events table holds bytes")  # bytea -> text
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                checks = conn.execute(
                    "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass "
                    "AND contype = 'c'",
                    (f"{postgres_schema}.events",),
                ).fetchall()
                for (name,) in checks:
                    conn.execute(
                        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                            table, sql.Identifier(name)
                        )
                    )
                for column in row:
                    if column != "position":
                        conn.execute(
                            sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                                table, sql.Identifier(column)
                            )
                        )
                row = {**row, "correlation_id": _correlation(row.get("metadata"))}
                values = sql.SQL(", ").join(
                    sql.SQL("%s::" + casts[c]) if c in casts else sql.SQL("%s") for c in row
                )
                conn.execute(
                    sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                        table, sql.SQL(", ").join(map(sql.Identifier, row)), values
                    ),
                    list(row.values()),
                )

        return write


def _correlation(metadata: object) -> Any:
    """The correlation id the append would put in its own column (None if unreadable)."""
    import json
    from uuid import UUID

    try:
        return UUID(json.loads(metadata)["correlation_id"])  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError, RecursionError):
        return None
