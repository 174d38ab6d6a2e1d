"""The shop example: order history across customer-*, order-* and payment-*, reconciliation,
and fulfilment, run by the projection runner on every store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from multistream_support import BACKENDS, StoreMaker, open_stores

from eventcore import BusinessRuleViolation, StreamId, execute
from eventcore.examples.shop import (
    EVENTS,
    Fulfilment,
    OrderHistory,
    PlaceOrder,
    Reconciliation,
    RecordPayment,
    RegisterCustomer,
    ShipOrder,
    populate,
)
from eventcore.projections import ProjectionConfig, run_projection, running_projection
from eventcore.projections.checkpoints import InMemoryCheckpointStore
from eventcore.projections.correlation import causation_tree, events_of_correlation
from eventcore.projections.dead_letters import InMemoryDeadLetterStore

HISTORY = """\
Ada     order-1  total 30  paid 60  placed
Ada     order-3  total 20  paid 25  placed
Bob     order-2  total 50  paid 50  placed
Bob     order-4  total 40  paid 40  placed
Cy      order-5  total 10  paid  0  placed"""

FLAGS = [
    "payment-2  payment for unknown order order-9",
    "payment-3  duplicate payment for order-1",
    "payment-4  paid 25 for order-3 of 20",
    "order-2    unpaid within 24h (placed 2026-01-01 18:00)",
    "payment-6  late payment for order-2",
]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    yield from open_stores(request, tmp_path, request.param)


def config(**kwargs: object) -> ProjectionConfig:
    return ProjectionConfig(
        InMemoryCheckpointStore(), dead_letters=InMemoryDeadLetterStore(), **kwargs
    )  # type: ignore[arg-type]


def test_order_history_across_three_stream_patterns(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    history = OrderHistory()
    report = run_projection(history.projection, store, config(page_size=4))
    assert report.applied == store.head()
    assert history.render() == HISTORY
    assert history.unknown_payments == ["payment-2"]
    assert [o.order for o in history.of("customer-ada")] == ["order-1", "order-3"]
    # delivered again from the start (a lost checkpoint): nothing is counted twice
    run_projection(history.projection, store, config())
    assert history.render() == HISTORY


def test_fulfilment_then_history_shows_shipments(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    fulfilment = Fulfilment(store)
    run_projection(fulfilment, store, config())
    history = OrderHistory()
    run_projection(history.projection, store, config())
    assert [line.split()[-1] for line in history.render().splitlines()] == [
        "shipped",
        "shipped",
        "shipped",
        "shipped",
        "placed",
    ]
    assert fulfilment.refused == [("payment-2", "no order order-9")]


def test_reconciliation_flags_the_same_in_batch_and_as_a_projection(
    make_store: StoreMaker,
) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    running = Reconciliation()
    run_projection(running, store, config(page_size=3))
    batch = Reconciliation()
    for event in store.read_all():
        batch.apply(event)
    assert [str(f) for f in running.flags()] == FLAGS
    assert running.flags() == batch.flags()
    last = store.read_all()[-1].recorded_at
    assert [str(f) for f in running.as_of(last + timedelta(hours=24))][-1] == (
        "order-5    unpaid within 24h (placed 2026-01-02 21:00)"
    )


def test_reconciliation_is_unaffected_by_fulfilment_events(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    run_projection(Fulfilment(store), store, config())
    check = Reconciliation()
    run_projection(check, store, config())
    assert [str(f) for f in check.flags()] == FLAGS


def test_a_payment_flow_can_be_traced(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    run_projection(Fulfilment(store), store, config())
    payment = store.read_all(event_types=["PaymentReceived"])[0]
    tree = causation_tree(store, payment.event_id)
    assert tree.render(lambda e: f"{e.stream_id} {e.event_type}").splitlines() == [
        "payment-1 PaymentReceived",
        "├── order-1 OrderShipped",
        f"└── $receipts-fulfilment-{payment.event_id} CommandIssued",
    ]
    flow = events_of_correlation(store, payment.metadata.correlation_id)  # type: ignore[arg-type]
    assert [e.event_type for e in flow] == ["PaymentReceived", "OrderShipped", "CommandIssued"]


def test_continuous_history_reads_its_own_writes(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    history = OrderHistory()
    with running_projection(history.projection, store, config(poll_interval=0.02)) as running:
        execute(store, RegisterCustomer(customer=StreamId("customer-dee"), name="Dee"))
        result = execute(
            store,
            PlaceOrder(order=StreamId("order-7"), customer=StreamId("customer-dee"), total=9),
        )
        assert result.last_position is not None
        assert running.wait_until(result.last_position, timeout=5)
        assert history.render() == "Dee     order-7  total  9  paid  0  placed"


def test_the_shop_rules() -> None:
    from eventcore import InMemoryEventStore

    store = InMemoryEventStore()
    ada = StreamId("customer-ada")
    with pytest.raises(BusinessRuleViolation, match="no customer"):
        execute(store, PlaceOrder(order=StreamId("order-1"), customer=ada, total=5))
    execute(store, RegisterCustomer(customer=ada, name="Ada"))
    with pytest.raises(BusinessRuleViolation, match="already registered"):
        execute(store, RegisterCustomer(customer=ada, name="Ada"))
    with pytest.raises(BusinessRuleViolation, match="total must be positive"):
        execute(store, PlaceOrder(order=StreamId("order-1"), customer=ada, total=0))
    execute(store, PlaceOrder(order=StreamId("order-1"), customer=ada, total=5))
    with pytest.raises(BusinessRuleViolation, match="already exists"):
        execute(store, PlaceOrder(order=StreamId("order-1"), customer=ada, total=5))
    with pytest.raises(BusinessRuleViolation, match="paid 4 of 5"):
        execute(store, ShipOrder(order=StreamId("order-1"), paid=4))
    execute(store, RecordPayment(payment=StreamId("payment-1"), order="order-1", amount=5))
    with pytest.raises(BusinessRuleViolation, match="already recorded"):
        execute(store, RecordPayment(payment=StreamId("payment-1"), order="order-1", amount=5))
    assert len(execute(store, ShipOrder(order=StreamId("order-1"), paid=5)).events) == 1
    assert execute(store, ShipOrder(order=StreamId("order-1"), paid=5)).events == ()
