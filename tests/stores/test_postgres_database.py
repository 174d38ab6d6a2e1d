"""PostgresDatabase: one object owning the schema's pool, migrations, transactions, errors.

Regression tests for issue 11: recovery after every backend was killed, typed acquire
timeouts, an append inside the thread's own transaction, filtered reads on a table without
statistics, and stores sharing one database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

psycopg = pytest.importorskip("psycopg")

from bank import EVENTS, Deposit, Transfer  # noqa: E402

from eventcore import StoreFailure, StoreTimeout, StreamId, StreamPrefix, execute  # noqa: E402
from eventcore.projections import (  # noqa: E402
    PostgresCheckpointStore,
    PostgresDeadLetterStore,
    PostgresLeadership,
)
from eventcore.snapshots import PostgresSnapshotStore  # noqa: E402
from eventcore.stores.postgres import (  # noqa: E402
    PostgresConfig,
    PostgresDatabase,
    PostgresEventStore,
)
from eventcore.stores.postgres.queries import Statements, _filters  # noqa: E402
from eventcore.testing.contract import Deposited  # noqa: E402

APP = "ec-dbtest"


@pytest.fixture
def config(postgres_dsn: str, postgres_schema: str) -> PostgresConfig:
    return PostgresConfig(postgres_dsn, schema=postgres_schema, application_name=APP)


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator[Any]:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


def test_stores_built_on_one_database_share_its_pool(config: PostgresConfig) -> None:
    with PostgresDatabase(config) as db:
        store = PostgresEventStore(db, events=[Deposited])
        parts = [
            PostgresCheckpointStore(store),
            PostgresDeadLetterStore(db),
            PostgresSnapshotStore(store),
            PostgresLeadership(db),
        ]
        assert all(part.database is db for part in parts) and store.database is db
        for part in (*parts, store):
            part.close()  # none of them owns the database
        sid = StreamId("a")
        store.append({sid: 0}, [Deposited(sid, 1)])
        assert PostgresCheckpointStore(store).database_key == db.key
    with pytest.raises(StoreFailure, match="closed"):
        store.head()


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every node of an ``EXPLAIN (FORMAT JSON)`` plan."""
    if isinstance(tree, list):
        for item in tree:
            yield from _nodes(item)
    elif isinstance(tree, dict):
        if "Node Type" in tree:
            yield tree
        for value in tree.values():
            yield from _nodes(value)


def _kill_backends(admin: Any) -> int:
    killed: int = admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
        (APP,),
    ).fetchone()[0]
    return killed


@pytest.mark.parametrize("pool", [(1, 1), (4, 4), (10, 10), (1, 6)], ids=str)
def test_the_first_command_after_every_backend_died_succeeds(
    config: PostgresConfig, admin: Any, pool: tuple[int, int]
) -> None:
    """Before: psycopg_pool's check loop backed off a second, then two, per dead connection,
    so with a pool of 4 or 10 the first command failed after acquire_timeout. Now a dead
    connection makes the pool check every idle one at once (acquire_timeout=2 here)."""
    low, high = pool
    from dataclasses import replace

    cfg = replace(config, pool_min=low, pool_max=high, acquire_timeout=2.0)
    with PostgresEventStore(cfg, events=EVENTS) as store:
        a, b = StreamId("account-a"), StreamId("account-b")
        execute(store, Deposit(account=a, amount=100))
        # Warm every pooled connection, then kill them all while idle (a failover, a restart).
        with store.database.connection("warm"):
            pass
        time.sleep(0.2)
        assert _kill_backends(admin) >= 1
        time.sleep(0.2)  # let the terminations reach the sockets
        for _ in range(3):
            result = execute(store, Transfer(source=a, target=b, amount=1))
            assert len(result.events) == 2


def test_an_append_inside_the_threads_own_transaction_fails_at_once(
    config: PostgresConfig,
) -> None:
    """Before: it waited for the write lock its own transaction held, until lock_timeout,
    and blamed 'a writer on the same streams'."""
    with PostgresEventStore(config, events=[Deposited]) as store:
        a, b = StreamId("a"), StreamId("b")
        with store.transaction() as tx:
            tx.append({a: 0}, [Deposited(a, 1)])
            started = time.monotonic()
            with pytest.raises(StoreFailure, match="has a transaction open") as info:
                store.append({b: 0}, [Deposited(b, 1)])
            assert not isinstance(info.value, StoreTimeout)
            assert time.monotonic() - started < 1.0  # at once, not after lock_timeout (30 s)
            assert store.head() == 0  # reads still work (they see only committed events)
        assert store.head() == 1
        store.append({b: 0}, [Deposited(b, 1)])  # after it, appends work again


def test_an_exhausted_pool_is_a_store_timeout(config: PostgresConfig) -> None:
    from dataclasses import replace

    with PostgresEventStore(replace(config, pool_max=1, acquire_timeout=0.2)) as store:
        with store.database.connection("hold"), pytest.raises(StoreTimeout, match="pool_max=1"):
            store.head()
        assert store.head() == 0


def test_a_filtered_page_on_a_table_without_statistics_scans_a_bounded_range(
    config: PostgresConfig, admin: Any
) -> None:
    """Before: a prefix read of 7 events took 40 ms before ANALYZE and 1 ms after; the plan
    depended on statistics. Now every filtered statement is a bounded range scan."""
    store = PostgresEventStore(config, events=[Deposited])
    admin.execute(f"ALTER TABLE {config.schema}.events SET (autovacuum_enabled = false)")
    try:
        ids = [StreamId(f"acct-{n}") for n in range(400)]
        for start in range(0, 20_000, 400):  # 20,000 events, then 7 of a rare category
            store.append({sid: start // 400 for sid in ids}, [Deposited(sid, start) for sid in ids])
        rare = [StreamId(f"wb-{n}") for n in range(7)]
        store.append(dict.fromkeys(rare, 0), [Deposited(sid, 1) for sid in rare])
        analyzed = admin.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
            (f"{config.schema}.events",),
        ).fetchone()[0]
        assert analyzed < 0, "the table must not have statistics for this test"
        found = store.read_all(after=100, streams=StreamPrefix("wb-"))
        assert [r.stream_id for r in found] == rare
        q = Statements(config.schema)
        where, params = _filters((StreamPrefix("wb-"),), None)
        query = q.filtered(where, bounded=True).as_string(admin)
        plan = admin.execute("EXPLAIN (FORMAT JSON) " + query, (100, 10_100, *params, 500))
        tree = plan.fetchone()[0]
        assert "Seq Scan" not in json.dumps(tree), tree
        scans = [n for n in _nodes(tree) if n.get("Index Name") == "events_pkey"]
        assert scans, tree
        bounds = scans[0]["Index Cond"]  # a range with both ends: at most one window of rows
        assert '"position" > ' in bounds and '"position" <= ' in bounds, bounds
    finally:
        store.close()


def test_a_version_4_schema_is_migrated_and_reads_back_the_same(
    config: PostgresConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventcore.stores.postgres import schema as schema_module

    old = tuple(m for m in schema_module._MIGRATIONS if m[0] <= 4)
    with monkeypatch.context() as patch:
        patch.setattr(schema_module, "_MIGRATIONS", old)
        patch.setattr(schema_module, "SCHEMA_VERSION", 4)
        with psycopg.connect(config.dsn, autocommit=True) as conn:
            schema_module.migrate(conn, config.schema, config.channel)
            conn.execute(
                f"SELECT {config.schema}.eventcore_append(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    ["a"],
                    [0],
                    [UUID(int=1), UUID(int=2)],
                    ["a", "a"],
                    ["Deposited", "Deposited"],
                    [1, 1],
                    ['{"account": "a", "amount": 1}', '{"account": "a", "amount": 2}'],
                    json.dumps({"correlation_id": str(UUID(int=9)), "causation_id": None}),
                    [datetime(2026, 1, 1, tzinfo=UTC)] * 2,
                ),
            )
    with PostgresEventStore(config, events=[Deposited]) as store:
        assert store.database.schema_version == schema_module.SCHEMA_VERSION
        old_events = store.read_all()
        assert [e.event.amount for e in old_events] == [1, 2]
        assert [e.position for e in store.read_correlation(UUID(int=9))] == [1, 2]
        assert [r.position for r in store.read_all(limit=1)] == [1]  # old rows: one write each
        sid = StreamId("a")
        new = store.append({sid: 2}, [Deposited(sid, 3)], idempotency_key="k")
        assert [e.position for e in new] == [3]


def test_no_migration_script_holds_a_nul_character() -> None:
    """libpq sends a statement as a C string: a NUL would silently cut the script short."""
    from eventcore.stores.postgres import schema as schema_module
    from eventcore.stores.sqlite import schema as sqlite_schema

    for version, _, script in (*schema_module._MIGRATIONS, *sqlite_schema.MIGRATIONS):
        assert "\x00" not in script, version
