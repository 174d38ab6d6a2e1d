"""The immutability triggers with retention in the schema: only ``apply_retention`` gets past
them, and only to delete; closed streams are refused by the database itself (raw SQL too)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore import SqliteEventStore, StreamId
from eventcore.retention import KeepLast
from eventcore.testing.contract import Deposited
from eventcore.types import StreamPrefix

A = StreamId("account-a")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def sqlite_store(path: Path) -> Iterator[SqliteEventStore]:
    with SqliteEventStore(path, events=[Deposited]) as store:
        for n in range(3):
            store.append({A: n}, [Deposited(A, n + 1)])
        yield store


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_sqlite_delete_is_refused_before_and_after_a_retention_run(
    sqlite_store: SqliteEventStore, path: Path
) -> None:
    conn = _raw(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="immutable: DELETE"):
            conn.execute("DELETE FROM eventcore_events WHERE position = 1")
        sqlite_store.apply_retention([KeepLast(StreamPrefix("account-"), 2)], archive=None)
        assert conn.execute("SELECT count(*) FROM eventcore_retention_guard").fetchone() == (0,)
        with pytest.raises(sqlite3.IntegrityError, match="immutable: DELETE"):
            conn.execute("DELETE FROM eventcore_events")
        positions = conn.execute("SELECT position FROM eventcore_events ORDER BY 1").fetchall()
        assert positions == [(2,), (3,)]
    finally:
        conn.close()


def test_sqlite_update_is_refused_even_with_the_guard_armed(
    sqlite_store: SqliteEventStore, path: Path
) -> None:
    conn = _raw(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO eventcore_retention_guard (armed) VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError, match="immutable: UPDATE"):
            conn.execute("UPDATE eventcore_events SET data = '{}'")
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    assert [r.event.amount for r in sqlite_store.read_stream(A)] == [1, 2, 3]


def test_sqlite_refuses_a_raw_insert_into_a_closed_stream(
    sqlite_store: SqliteEventStore, path: Path
) -> None:
    closed = sqlite_store.close_stream(A)
    conn = _raw(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="eventcore stream is closed"):
            conn.execute(
                "INSERT INTO eventcore_events (position, event_id, stream_id, stream_version, "
                "event_type, schema_version, data, metadata, recorded_at) "
                "VALUES (5, 'x', ?, 5, 'Deposited', 1, '{}', '{}', 'now')",
                (A,),
            )
        row = conn.execute("SELECT state, position FROM eventcore_tombstones").fetchall()
        assert row == [("closed", closed.position)]
    finally:
        conn.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_dsn: str, postgres_schema: str) -> Iterator[tuple[Any, Any, str]]:
    import psycopg

    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=2)
    with PostgresEventStore(config, events=[Deposited]) as store:
        for n in range(3):
            store.append({A: n}, [Deposited(A, n + 1)])
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            yield store, admin, postgres_schema


def test_postgres_delete_needs_the_guard_of_its_own_schema(pg: tuple[Any, Any, str]) -> None:
    import psycopg

    from eventcore.stores.postgres.schema import retention_guard_text

    store, admin, schema = pg
    for guard in ("", "on", retention_guard_text("other_schema")):
        with pytest.raises(psycopg.Error, match="immutable") as info, admin.transaction():
            admin.execute("SELECT set_config('eventcore.retention', %s, true)", (guard,))
            admin.execute(f"DELETE FROM {schema}.events")
        assert info.value.sqlstate == "EC002"
    store.apply_retention([KeepLast(StreamPrefix("account-"), 1)], archive=None)
    with pytest.raises(psycopg.Error, match="immutable: DELETE"):
        admin.execute(f"DELETE FROM {schema}.events")
    assert admin.execute(f"SELECT position FROM {schema}.events").fetchall() == [(3,)]


@pytest.mark.parametrize(
    "statement", ["UPDATE {s}.events SET event_type = 'x'", "TRUNCATE {s}.events"]
)
def test_postgres_update_and_truncate_are_refused_even_with_the_guard(
    pg: tuple[Any, Any, str], statement: str
) -> None:
    import psycopg

    from eventcore.stores.postgres.schema import retention_guard_text

    store, admin, schema = pg
    with pytest.raises(psycopg.Error, match="immutable") as info, admin.transaction():
        admin.execute(
            "SELECT set_config('eventcore.retention', %s, true)", (retention_guard_text(schema),)
        )
        admin.execute(statement.format(s=schema))
    assert info.value.sqlstate == "EC002"
    assert len(store.export_rows()) == 3


def test_postgres_refuses_a_raw_insert_into_a_closed_stream(pg: tuple[Any, Any, str]) -> None:
    import psycopg

    store, admin, schema = pg
    store.close_stream(A, reason="done")
    with pytest.raises(psycopg.Error, match="eventcore stream account-a is closed") as info:
        admin.execute(
            f"INSERT INTO {schema}.events (position, event_id, stream_id, stream_version, "
            "event_type, schema_version, data, metadata, recorded_at) VALUES "
            "(9, gen_random_uuid(), %s, 9, 'Deposited', 1, '{}', '{}', now())",
            (A,),
        )
    assert info.value.sqlstate == "EC008"
    rows = admin.execute(f"SELECT state, position, reason FROM {schema}.tombstones").fetchall()
    assert rows == [("closed", 4, "done")]
