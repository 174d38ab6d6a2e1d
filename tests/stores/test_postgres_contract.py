"""The store contract (eventcore.testing.contract) and the corrupt-row contract
(eventcore.testing.contract_rows) on PostgreSQL, one schema per test."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from eventcore.store import EventStore
from eventcore.testing.contract import EventStoreContract, StoreFactory
from eventcore.testing.contract_inputs import BAD_WAIT_ARGUMENTS
from eventcore.testing.contract_rows import CorruptRowContract, RawRowWriter

_OWN_WAIT_CHECK = pytest.mark.xfail(
    strict=True,
    reason="lead: PostgresEventStore.wait_for_events must call eventcore.store.check_wait_args "
    "(its own check lets NaN, infinity, 1e300 and after >= 2**63 through)",
)


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

    @pytest.mark.parametrize(
        ("after", "timeout", "message"),
        [
            pytest.param(*case, marks=_OWN_WAIT_CHECK)
            if case[1] in (math.inf, 1e300) or case[1] != case[1] or case[0] == 2**63
            else case
            for case in BAD_WAIT_ARGUMENTS
        ],
    )
    def test_wait_for_events_refuses_bad_arguments(
        self, store: EventStore, after: Any, timeout: Any, message: str
    ) -> None:
        super().test_wait_for_events_refuses_bad_arguments(store, after, timeout, message)


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
            "data": "jsonb",
            "metadata": "jsonb",
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
