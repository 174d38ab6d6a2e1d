"""Correlation and causation: caused_by, the store lookups and the three queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from multistream_support import BACKENDS, BareStore, StoreMaker, open_stores

from eventcore import (
    Command,
    EventCoreError,
    InMemoryEventStore,
    Metadata,
    SerializationError,
    SqliteEventStore,
    StreamId,
    ValidationError,
    execute,
    stream,
)
from eventcore.projections.correlation import (
    CausationTree,
    EventNotFound,
    causation_chain,
    causation_tree,
    caused_by,
    events_of_correlation,
)
from eventcore.store import EventLookups, EventStore
from eventcore.stores.sqlite import schema as sqlite_schema


@dataclass(frozen=True)
class Noted:
    topic: StreamId
    text: str


class Note(Command[int]):
    topic: StreamId = stream()
    text: str

    def initial_state(self) -> int:
        return 0

    def apply(self, count: int, event: Any) -> int:
        return count + 1

    def handle(self, count: int) -> list[object]:
        return [Noted(self.topic, self.text)]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    yield from open_stores(request, tmp_path, request.param)


def note(store: EventStore, topic: str, text: str, meta: Metadata | None = None) -> Any:
    return execute(store, Note(topic=StreamId(topic), text=text), metadata=meta).events[0]


def texts(events: Any) -> list[str]:
    return [e.event.text for e in events]


def flow(store: EventStore) -> dict[str, Any]:
    """order -> payment -> (shipment, email) ; shipment -> delivery; plus an unrelated flow."""
    order = note(store, "order-1", "placed")
    other = note(store, "order-2", "other flow")
    payment = note(store, "payment-1", "paid", caused_by(order))
    shipment = note(store, "order-1", "shipped", caused_by(payment))
    email = note(store, "mail-1", "emailed", caused_by(payment))
    delivery = note(store, "order-1", "delivered", caused_by(shipment))
    return {
        "order": order,
        "other": other,
        "payment": payment,
        "shipment": shipment,
        "email": email,
        "delivery": delivery,
    }


# -- caused_by ---------------------------------------------------------------------------------


def test_caused_by_inherits_the_correlation_and_names_the_cause() -> None:
    store = InMemoryEventStore()
    order = note(store, "order-1", "placed")
    meta = caused_by(order, custom={"by": "test"})
    assert meta == Metadata(order.metadata.correlation_id, order.event_id, {"by": "test"})
    assert order.metadata.correlation_id == order.event_id  # the default for a first write
    paid = note(store, "payment-1", "paid", meta)
    assert paid.metadata == meta
    again = note(store, "order-1", "shipped", caused_by(paid))
    assert again.metadata.correlation_id == order.event_id
    assert again.metadata.causation_id == paid.event_id
    assert again.metadata.custom == {}


def test_execute_stamps_caused_by_on_every_event_it_writes() -> None:
    class Both(Command[None]):
        a: StreamId = stream()
        b: StreamId = stream()

        def initial_state(self) -> None:
            return None

        def apply(self, state: None, event: Any) -> None:
            return None

        def handle(self, state: None) -> list[object]:
            return [Noted(self.a, "x"), Noted(self.b, "y")]

    store = InMemoryEventStore()
    cause = note(store, "order-1", "placed")
    result = execute(store, Both(a=StreamId("a-1"), b=StreamId("b-1")), metadata=caused_by(cause))
    assert [e.metadata for e in result.events] == [caused_by(cause)] * 2


@pytest.mark.parametrize("bad", [Noted(StreamId("x"), "y"), None, "event"])
def test_caused_by_needs_a_recorded_event(bad: object) -> None:
    with pytest.raises(ValidationError, match="caused_by\\(\\) takes a RecordedEvent") as info:
        caused_by(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, EventCoreError)


@pytest.mark.parametrize("custom", [5, ["a"], {1: "x"}, {"x": object()}])
def test_caused_by_refuses_custom_data_that_is_not_a_json_object(custom: object) -> None:
    store = InMemoryEventStore()
    cause = note(store, "order-1", "placed")
    with pytest.raises(SerializationError, match=r"Metadata\.custom"):
        caused_by(cause, custom=custom)  # type: ignore[arg-type]


def test_caused_by_falls_back_to_the_event_id_without_correlation() -> None:
    store = InMemoryEventStore()
    rec = note(store, "order-1", "placed")
    from dataclasses import replace

    bare = replace(rec, metadata=Metadata())
    assert caused_by(bare).correlation_id == rec.event_id


# -- the queries, on every store -----------------------------------------------------------------


def test_events_of_correlation_in_position_order(make_store: StoreMaker) -> None:
    store = make_store()
    f = flow(store)
    found = events_of_correlation(store, f["order"].event_id)
    assert texts(found) == ["placed", "paid", "shipped", "emailed", "delivered"]
    assert {e.stream_id for e in found} == {"order-1", "payment-1", "mail-1"}
    assert texts(events_of_correlation(store, f["other"].event_id)) == ["other flow"]
    assert events_of_correlation(store, UUID(int=42)) == []


def test_causation_chain_from_root_to_event(make_store: StoreMaker) -> None:
    store = make_store()
    f = flow(store)
    assert texts(causation_chain(store, f["delivery"].event_id)) == [
        "placed",
        "paid",
        "shipped",
        "delivered",
    ]
    assert texts(causation_chain(store, f["email"].event_id)) == ["placed", "paid", "emailed"]
    assert texts(causation_chain(store, f["order"].event_id)) == ["placed"]
    with pytest.raises(EventNotFound, match="no event with id"):
        causation_chain(store, UUID(int=42))


def test_causation_tree_holds_everything_an_event_caused(make_store: StoreMaker) -> None:
    store = make_store()
    f = flow(store)
    tree = causation_tree(store, f["order"].event_id)
    assert len(tree) == 5
    assert tree.depth == 4
    assert texts(tree.walk()) == ["placed", "paid", "shipped", "delivered", "emailed"]
    assert tree.render(lambda e: e.event.text) == (
        "placed\n└── paid\n    ├── shipped\n    │   └── delivered\n    └── emailed"
    )
    sub = causation_tree(store, f["shipment"].event_id)
    assert texts(sub.walk()) == ["shipped", "delivered"]
    leaf = causation_tree(store, f["email"].event_id)
    assert leaf == CausationTree(f["email"], ())
    assert leaf.render().endswith("mail-1 Noted")
    with pytest.raises(EventNotFound):
        causation_tree(store, UUID(int=42))


def test_lookups_through_a_second_handle(make_store: StoreMaker) -> None:
    writer = make_store()
    f = flow(writer)
    reader = make_store(events=[Noted])
    assert texts(events_of_correlation(reader, f["order"].event_id)) == [
        "placed",
        "paid",
        "shipped",
        "emailed",
        "delivered",
    ]
    assert texts(causation_chain(reader, f["delivery"].event_id))[0] == "placed"


def test_bad_ids_are_rejected(make_store: StoreMaker) -> None:
    store = make_store()
    with pytest.raises(ValidationError, match="correlation_id must be a UUID"):
        events_of_correlation(store, "not-a-uuid")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="event_id must be a UUID"):
        causation_chain(store, 7)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="root_event_id must be a UUID"):
        causation_tree(store, None)  # type: ignore[arg-type]


# -- fallbacks and edge cases ------------------------------------------------------------------


def test_a_store_without_lookups_is_scanned() -> None:
    inner = InMemoryEventStore()
    bare = BareStore(inner)
    assert not isinstance(bare, EventLookups)
    assert isinstance(inner, EventLookups)
    f = flow(bare)
    for _ in range(1200):  # more than one scan page
        inner.append(
            {StreamId("noise"): inner.stream_version(StreamId("noise"))},
            [Noted(StreamId("noise"), "n")],
        )
    last = note(bare, "order-1", "late", caused_by(f["delivery"]))
    assert texts(events_of_correlation(bare, f["order"].event_id)) == texts(
        events_of_correlation(inner, f["order"].event_id)
    )
    assert texts(causation_chain(bare, last.event_id)) == [
        "placed",
        "paid",
        "shipped",
        "delivered",
        "late",
    ]
    assert len(causation_tree(bare, f["order"].event_id)) == 6
    with pytest.raises(EventNotFound):
        causation_chain(bare, UUID(int=1))


def test_chain_stops_at_a_cause_outside_the_store() -> None:
    store = InMemoryEventStore()
    outside = UUID(int=99)  # say, the id of an HTTP request
    first = note(store, "order-1", "placed", Metadata(UUID(int=5), outside))
    second = note(store, "order-1", "shipped", caused_by(first))
    assert texts(causation_chain(store, second.event_id)) == ["placed", "shipped"]


def test_a_corrupt_causation_cycle_terminates() -> None:
    a_id = UUID(int=1)
    flow_id = UUID(int=9)
    # event ids are assigned by the store, so a cycle needs a fixed id factory
    ids = iter([a_id, UUID(int=2)])
    looped = InMemoryEventStore(ids=lambda: next(ids))
    looped.append(
        {StreamId("x"): 0}, [Noted(StreamId("x"), "a")], metadata=Metadata(flow_id, UUID(int=2))
    )
    looped.append({StreamId("x"): 1}, [Noted(StreamId("x"), "b")], metadata=Metadata(flow_id, a_id))
    assert texts(causation_chain(looped, UUID(int=2))) == ["a", "b"]
    assert texts(causation_tree(looped, a_id).walk()) == ["a", "b"]


# -- the SQLite index and migration ------------------------------------------------------------


def test_sqlite_correlation_query_uses_the_index(tmp_path: Path) -> None:
    SqliteEventStore(tmp_path / "e.db").close()
    with sqlite3.connect(tmp_path / "e.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT position FROM eventcore_events "
            f"WHERE {sqlite_schema.CORRELATION} = ? ORDER BY position",
            ("x",),
        ).fetchall()
    assert "eventcore_events_correlation" in " ".join(str(row) for row in plan)


def test_a_version_1_sqlite_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE eventcore_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    for statement in sqlite_schema.statements(sqlite_schema.MIGRATIONS[0][2]):
        conn.execute(statement)
    conn.execute("INSERT INTO eventcore_migrations VALUES (1, '2026-01-01T00:00:00+00:00')")
    conn.close()
    store = SqliteEventStore(path)
    try:
        with sqlite3.connect(path) as raw:
            rows = raw.execute("SELECT version FROM eventcore_migrations").fetchall()
            names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert [r[0] for r in rows] == [v for v, _, _ in sorted(sqlite_schema.MIGRATIONS)]
        assert "eventcore_events_correlation" in names
        order = note(store, "order-1", "placed")
        assert events_of_correlation(store, order.event_id) == [order]
    finally:
        store.close()


def test_postgres_has_the_correlation_index(postgres_dsn: str, postgres_schema: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    store = PostgresEventStore(PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=2))
    try:
        with psycopg.connect(postgres_dsn) as conn:
            found = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                (postgres_schema, "events_correlation"),
            ).fetchall()
        assert found and "correlation_id" in found[0][0]
    finally:
        store.close()
