"""Tenant views (eventcore.tenants) on memory, SQLite and PostgreSQL: every read, write,
command, projection, dead letter and snapshot through ``store.for_tenant(...)`` sees only
that tenant's data, and no stream id or selector reaches another tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from eventcore import (
    Command,
    InMemoryEventStore,
    SeededIds,
    SqliteEventStore,
    StreamId,
    TickingClock,
    stream,
)
from eventcore.errors import (
    ConfigurationError,
    InvalidStreamId,
    StreamClosed,
    StreamDeleted,
    UndeclaredStream,
)
from eventcore.execution import execute
from eventcore.projections import (
    InMemoryCheckpointStore,
    InMemoryDeadLetterStore,
    ProjectionConfig,
    projector,
    run_projection,
)
from eventcore.snapshots import InMemorySnapshotStore, SnapshotPolicy
from eventcore.store import read_versioned, read_versioned_streams
from eventcore.tenants import TenantRouter, TenantSnapshots, tenant_config
from eventcore.types import StreamPattern, StreamPrefix
from tests.bank import EVENTS, Deposit, MoneyDeposited, balances_in

ACCOUNT = StreamId("account-1")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    clock, ids = TickingClock(), SeededIds(11)
    if request.param == "memory":
        yield InMemoryEventStore(events=EVENTS, clock=clock, ids=ids)
    elif request.param == "sqlite":
        with SqliteEventStore(tmp_path / "t.db", events=EVENTS, clock=clock, ids=ids) as s:
            yield s
    else:
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        config = PostgresConfig(dsn, schema=schema, pool_max=2)
        with PostgresEventStore(config, events=EVENTS, clock=clock, ids=ids) as s:
            yield s


def test_commands_and_reads_see_only_their_tenant(store: Any) -> None:
    acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
    execute(acme, Deposit(account=ACCOUNT, amount=5))
    execute(beta, Deposit(account=ACCOUNT, amount=7))
    execute(acme, Deposit(account=ACCOUNT, amount=1))
    assert balances_in(acme, ACCOUNT) == {ACCOUNT: 6}
    assert balances_in(beta, ACCOUNT) == {ACCOUNT: 7}
    assert [(e.stream_id, e.stream_version) for e in acme.read_all()] == [
        (ACCOUNT, 1),
        (ACCOUNT, 2),
    ]
    assert [e.event for e in beta.read_stream(ACCOUNT)] == [MoneyDeposited(ACCOUNT, 7)]
    assert sorted(e.stream_id for e in store.read_all()) == [
        "@acme/account-1",
        "@acme/account-1",
        "@beta/account-1",
    ]
    assert acme.stream_version(ACCOUNT) == 2
    assert [i.stream_id for i in acme.list_streams()] == [ACCOUNT]
    beta_event = beta.read_all()[0]
    assert acme.read_event(beta_event.event_id) is None
    assert beta.read_event(beta_event.event_id) == beta_event
    assert beta_event.metadata.correlation_id is not None
    assert acme.read_correlation(beta_event.metadata.correlation_id) == []


@pytest.mark.parametrize(
    "selector",
    [
        StreamPattern("*"),
        StreamPattern("*beta*"),
        StreamPattern("[@]beta/*"),
        StreamPattern("?beta/*"),
        StreamPrefix("@beta/"),
        StreamPrefix("../beta/"),
    ],
)
def test_no_selector_reaches_another_tenant(store: Any, selector: Any) -> None:
    execute(store.for_tenant("beta"), Deposit(account=ACCOUNT, amount=7))
    execute(store.for_tenant("acme"), Deposit(account=StreamId("x"), amount=1))
    found = store.for_tenant("acme").read_all(streams=selector)
    assert all(e.stream_id == "x" for e in found)


@pytest.mark.parametrize("trick", ["@beta/account-1", "../@beta/account-1", " @beta/account-1"])
def test_no_stream_id_reaches_another_tenant(store: Any, trick: str) -> None:
    beta = store.for_tenant("beta")
    execute(beta, Deposit(account=ACCOUNT, amount=7))
    acme = store.for_tenant("acme")
    assert list(acme.read_stream(StreamId(trick))) == []
    written = acme.append({StreamId(trick): 0}, [MoneyDeposited(StreamId(trick), 1)])
    assert written[0].stream_id == StreamId(trick)
    assert [e.event.amount for e in beta.read_stream(ACCOUNT)] == [7]
    assert store.stream_version(StreamId("@beta/account-1")) == 1


def test_an_event_for_another_stream_is_still_undeclared(store: Any) -> None:
    acme = store.for_tenant("acme")
    with pytest.raises(UndeclaredStream):
        acme.append({ACCOUNT: 0}, [MoneyDeposited(StreamId("other"), 1)])
    assert store.head() == 0


def test_bad_tenant_names_and_too_long_ids_are_refused(store: Any) -> None:
    for name in ("", "Acme", "a/b", "@a", "a*", "x" * 64, 5):
        with pytest.raises(ConfigurationError):
            store.for_tenant(name)
    with pytest.raises(InvalidStreamId):
        store.for_tenant("acme").stream_version(StreamId("x" * 250))


def test_idempotency_keys_are_per_tenant(store: Any) -> None:
    acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
    execute(acme, Deposit(account=ACCOUNT, amount=5), idempotency_key="req-1")
    execute(beta, Deposit(account=ACCOUNT, amount=5), idempotency_key="req-1")
    assert store.head() == 2
    found = acme.read_idempotent_write("req-1")
    assert found is not None and [e.stream_id for e in found.events] == [ACCOUNT]


def test_tombstones_through_a_tenant(store: Any) -> None:
    acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
    execute(acme, Deposit(account=ACCOUNT, amount=5))
    execute(beta, Deposit(account=ACCOUNT, amount=5))
    closed = acme.close_stream(ACCOUNT)
    assert closed.stream_id == ACCOUNT and closed.event.stream == ACCOUNT
    with pytest.raises(StreamClosed):
        execute(acme, Deposit(account=ACCOUNT, amount=1))
    execute(beta, Deposit(account=ACCOUNT, amount=1))
    beta.delete_stream(ACCOUNT)
    with pytest.raises(StreamDeleted):
        list(beta.read_stream(ACCOUNT))
    assert [e.event.amount for e in acme.read_stream(ACCOUNT) if hasattr(e.event, "amount")] == [5]


def test_a_commands_fold_reads_the_tenants_streams_as_the_tenant_sees_them(store: Any) -> None:
    acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
    execute(acme, Deposit(account=ACCOUNT, amount=5))
    execute(beta, Deposit(account=ACCOUNT, amount=7))
    execute(acme, Deposit(account=ACCOUNT, amount=1))
    expected = [(e.stream_version, e.event) for e in acme.read_stream(ACCOUNT)]
    assert expected == [(1, MoneyDeposited(ACCOUNT, 5)), (2, MoneyDeposited(ACCOUNT, 1))]
    folded = [(v.stream_version, v.event) for v in read_versioned(acme, ACCOUNT)]
    assert folded == expected
    assert [(v.stream_version, v.event) for v in read_versioned(acme, ACCOUNT, 1)] == expected[1:]
    found = read_versioned_streams(beta, [ACCOUNT, StreamId("account-2")])
    assert [(v.stream_version, v.event) for v in found[ACCOUNT]] == [
        (1, MoneyDeposited(ACCOUNT, 7))
    ]
    assert list(found[StreamId("account-2")]) == []
    with acme.session([ACCOUNT]) as session:
        assert [(v.stream_version, v.event) for v in read_versioned(session, ACCOUNT)] == expected
        in_session = read_versioned_streams(session, [ACCOUNT])
    assert [(v.stream_version, v.event) for v in in_session[ACCOUNT]] == expected


def test_pessimistic_sessions_through_a_tenant(store: Any) -> None:
    acme = store.for_tenant("acme")
    with acme.session([ACCOUNT]) as session:
        assert session.stream_version(ACCOUNT) == 0
        session.append({ACCOUNT: 0}, [MoneyDeposited(ACCOUNT, 3)])
    with acme.session([ACCOUNT]) as session:
        assert [e.stream_id for e in session.read_stream(ACCOUNT)] == [ACCOUNT]
        assert list(session.read_streams([ACCOUNT])) == [ACCOUNT]
    assert store.stream_version(StreamId("@acme/account-1")) == 1


def test_projections_checkpoints_and_dead_letters_per_tenant(store: Any) -> None:
    acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
    execute(acme, Deposit(account=ACCOUNT, amount=5))
    execute(beta, Deposit(account=ACCOUNT, amount=13))
    seen: dict[str, list[tuple[str, int]]] = {"acme": [], "beta": []}
    shared = ProjectionConfig(InMemoryCheckpointStore(), dead_letters=InMemoryDeadLetterStore())

    def build(tenant: str) -> Any:
        @projector("totals", error_policy=_dead_letter_13())
        def follow(event: Any) -> None:
            if event.event.amount == 13:
                raise ValueError("unlucky")
            seen[tenant].append((event.stream_id, event.event.amount))

        return follow

    for tenant, view in (("acme", acme), ("beta", beta)):
        run_projection(build(tenant), view, tenant_config(shared, tenant))
    assert seen == {"acme": [(ACCOUNT, 5)], "beta": []}
    assert shared.checkpoints.load("@acme/totals") == 2  # runs end at the head they read
    assert shared.checkpoints.load("@beta/totals") == 2
    assert shared.checkpoints.load("totals") is None
    beta_letters = tenant_config(shared, "beta").dead_letters.list("totals")
    assert [(d.projection, d.stream_id) for d in beta_letters] == [("totals", ACCOUNT)]
    assert tenant_config(shared, "acme").dead_letters.list("totals") == []


def _dead_letter_13() -> Any:
    from eventcore.projections import ErrorPolicy

    return ErrorPolicy.dead_letter()


class Count(Command[int]):
    account: StreamId = stream()
    snapshot: ClassVar[SnapshotPolicy] = SnapshotPolicy(every=1)

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: object) -> int:
        return state + 1

    def handle(self, state: int) -> list[object]:
        return [MoneyDeposited(self.account, state + 1)]


def test_snapshots_per_tenant(store: Any) -> None:
    shared = InMemorySnapshotStore()
    acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
    for _ in range(3):
        execute(acme, Count(account=ACCOUNT), snapshots=TenantSnapshots(shared, "acme"))
    for _ in range(2):
        execute(beta, Count(account=ACCOUNT), snapshots=TenantSnapshots(shared, "beta"))
    assert [e.event.amount for e in beta.read_stream(ACCOUNT)] == [1, 2]
    assert [e.event.amount for e in acme.read_stream(ACCOUNT)] == [1, 2, 3]
    ids = sorted(i.snapshot_id for i in shared.list())
    assert len(ids) == 2 and ids[0].startswith("@acme/") and ids[1].startswith("@beta/")
    assert [i.snapshot_id for i in TenantSnapshots(shared, "acme").list()] == [ids[0][6:]]


def test_a_router_places_tenants_on_stores(tmp_path: Path) -> None:
    router = TenantRouter(
        lambda name: SqliteEventStore(tmp_path / f"{name}.db", events=EVENTS),
        placement=lambda tenant: tenant,  # one SQLite file per tenant
    )
    with router:
        execute(router.for_tenant("acme"), Deposit(account=ACCOUNT, amount=5))
        execute(router.for_tenant("beta"), Deposit(account=ACCOUNT, amount=6))
        assert router.store_of("acme").head() == 1
        assert balances_in(router.for_tenant("beta"), ACCOUNT) == {ACCOUNT: 6}
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["acme.db", "beta.db"]
    with pytest.raises(ConfigurationError, match="no store is named"):
        TenantRouter({}, placement={"acme": "eu"}).for_tenant("acme")


def test_a_router_places_tenants_on_postgres_schemas(postgres_dsn: str) -> None:
    import uuid

    import psycopg

    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    schemas = {name: f"ec_test_{uuid.uuid4().hex[:12]}" for name in ("eu", "us")}
    router = TenantRouter(
        {
            name: (lambda s=schema: PostgresEventStore(PostgresConfig(postgres_dsn, schema=s)))
            for name, schema in schemas.items()
        },
        placement={"acme": "eu", "globex": "us"},
        default="eu",
    )
    try:
        with router:
            execute(router.for_tenant("acme"), Deposit(account=ACCOUNT, amount=5))
            execute(router.for_tenant("globex"), Deposit(account=ACCOUNT, amount=6))
            execute(router.for_tenant("initech"), Deposit(account=ACCOUNT, amount=7))
            eu, us = router.store_of("eu"), router.store_of("us")
            assert sorted(e.stream_id for e in eu.read_all()) == [
                "@acme/account-1",
                "@initech/account-1",
            ]
            assert [e.stream_id for e in us.read_all()] == ["@globex/account-1"]
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            for schema in schemas.values():
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
