"""The course's shop (eventcore.examples.shop): its rules, its composed Products view,
reconciliation and fulfilment, run by the projection runner on every store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from multistream_support import BACKENDS, StoreMaker, open_stores

from eventcore import BusinessRuleViolation, StreamId, TickingClock, execute
from eventcore.examples.shop import (
    CATALOG,
    EVENTS,
    AddToCart,
    CartAlreadyCheckedOut,
    EmptyCart,
    Fulfilment,
    OrderAlreadyPlaced,
    OrderPlaced,
    OutOfStock,
    PlaceOrder,
    Products,
    ReceiveStock,
    Reconciliation,
    RecordPayment,
    SetPrice,
    ShipOrder,
    UnknownProduct,
    populate,
    stock_of,
)
from eventcore.projections import ProjectionConfig, run_projection, running_projection
from eventcore.projections.checkpoints import InMemoryCheckpointStore
from eventcore.projections.correlation import causation_tree, events_of_correlation
from eventcore.projections.dead_letters import InMemoryDeadLetterStore

PRODUCTS = """\
kettle  2500  available  3
mug      800  available  2
tea      450  available 14"""

FLAGS = [
    "payment-2  payment for unknown order order-9",
    "payment-3  duplicate payment for order-1",
    "order-2    unpaid within 24h (placed 2026-01-02 11:00)",
    "payment-4  paid 1000 for order-3 of 900",
    "payment-6  late payment for order-2",
]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    yield from open_stores(request, tmp_path, request.param)


def shop(make_store: StoreMaker) -> object:
    """A store holding the shop's story, two hours of event time per event."""
    store = make_store(events=EVENTS, clock=TickingClock(step=timedelta(hours=2)))
    populate(store)
    return store


def config(**kwargs: object) -> ProjectionConfig:
    return ProjectionConfig(
        InMemoryCheckpointStore(), dead_letters=InMemoryDeadLetterStore(), **kwargs
    )  # type: ignore[arg-type]


def test_products_across_the_catalog_and_every_stock_stream(make_store: StoreMaker) -> None:
    store = shop(make_store)
    products = Products()
    report = run_projection(products.projection, store, config(page_size=4))  # type: ignore[arg-type]
    assert report.applied == 12  # 3 prices, 3 deliveries, 6 reservations; nothing else
    assert products.render() == PRODUCTS
    # delivered again from the start (a lost checkpoint): nothing is counted twice
    run_projection(products.projection, store, config())  # type: ignore[arg-type]
    assert products.render() == PRODUCTS


def test_fulfilment_ships_what_payments_cover(make_store: StoreMaker) -> None:
    store = shop(make_store)
    fulfilment = Fulfilment(store)  # type: ignore[arg-type]
    run_projection(fulfilment, store, config())  # type: ignore[arg-type]
    shipped = [e.stream_id for e in store.read_all(event_types=["OrderShipped"])]  # type: ignore[attr-defined]
    assert shipped == ["order-1", "order-3", "order-4", "order-2"]
    assert fulfilment.refused == [("payment-2", "no order order-9")]


def test_reconciliation_flags_the_same_in_batch_and_as_a_projection(
    make_store: StoreMaker,
) -> None:
    store = shop(make_store)
    running = Reconciliation()
    run_projection(running, store, config(page_size=3))  # type: ignore[arg-type]
    batch = Reconciliation()
    for event in store.read_all():  # type: ignore[attr-defined]
        batch.apply(event)
    assert [str(f) for f in running.flags()] == FLAGS
    assert running.flags() == batch.flags()
    last = store.read_all()[-1].recorded_at  # type: ignore[attr-defined]
    assert [str(f) for f in running.as_of(last + timedelta(hours=24))][-1] == (
        "order-5    unpaid within 24h (placed 2026-01-03 21:00)"
    )


def test_reconciliation_is_unaffected_by_fulfilment_events(make_store: StoreMaker) -> None:
    store = shop(make_store)
    run_projection(Fulfilment(store), store, config())  # type: ignore[arg-type]
    check = Reconciliation()
    run_projection(check, store, config())  # type: ignore[arg-type]
    assert [str(f) for f in check.flags()] == FLAGS


def test_a_payment_flow_can_be_traced(make_store: StoreMaker) -> None:
    store = shop(make_store)
    run_projection(Fulfilment(store), store, config())  # type: ignore[arg-type]
    payment = store.read_all(event_types=["PaymentReceived"])[0]  # type: ignore[attr-defined]
    tree = causation_tree(store, payment.event_id)  # type: ignore[arg-type]
    assert tree.render(lambda e: f"{e.stream_id} {e.event_type}").splitlines() == [
        "payment-1 PaymentReceived",
        "├── order-1 OrderShipped",
        f"└── $receipts-fulfilment-{payment.event_id} CommandIssued",
    ]
    flow = events_of_correlation(store, payment.metadata.correlation_id)  # type: ignore[arg-type]
    assert [e.event_type for e in flow] == ["PaymentReceived", "OrderShipped", "CommandIssued"]


def test_a_continuous_view_reads_its_own_writes(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    products = Products()
    live = config(poll_interval=0.02)
    with running_projection(products.projection, store, live) as running:  # type: ignore[arg-type]
        execute(store, SetPrice(catalog=CATALOG, product="pot", price=1200))
        result = execute(store, ReceiveStock(stock=stock_of("pot"), quantity=2))
        assert result.last_position is not None
        assert running.wait_until(result.last_position, timeout=5)
        assert products.render() == "pot     1200  available  2"


def test_the_shop_rules() -> None:
    from eventcore import InMemoryEventStore

    store = InMemoryEventStore()
    ann, order = StreamId("cart-ann"), StreamId("order-1")
    checkout = PlaceOrder(order=order, cart=ann, catalog=CATALOG)
    with pytest.raises(BusinessRuleViolation, match="price must be positive"):
        execute(store, SetPrice(catalog=CATALOG, product="tea", price=0))
    execute(store, SetPrice(catalog=CATALOG, product="tea", price=450))
    assert execute(store, SetPrice(catalog=CATALOG, product="tea", price=450)).events == ()
    with pytest.raises(BusinessRuleViolation, match="quantity must be positive"):
        execute(store, ReceiveStock(stock=stock_of("tea"), quantity=0))
    execute(store, ReceiveStock(stock=stock_of("tea"), quantity=1))
    with pytest.raises(EmptyCart):
        execute(store, checkout)
    execute(store, AddToCart(cart=ann, product="tea", quantity=2))
    with pytest.raises(OutOfStock, match="2 × tea wanted, 1 in stock"):
        execute(store, checkout)
    execute(store, ReceiveStock(stock=stock_of("tea"), quantity=5))
    execute(store, AddToCart(cart=ann, product="scone"))
    with pytest.raises(UnknownProduct, match="no price for 'scone'"):
        execute(store, checkout)
    execute(store, SetPrice(catalog=CATALOG, product="scone", price=300))
    execute(store, ReceiveStock(stock=stock_of("scone"), quantity=1))
    placed = execute(store, checkout).events
    assert placed[0].event == OrderPlaced(order, "cart-ann", {"scone": 1, "tea": 2}, 1200)
    with pytest.raises(OrderAlreadyPlaced):
        execute(store, checkout)
    with pytest.raises(CartAlreadyCheckedOut):
        execute(store, AddToCart(cart=ann, product="tea"))
    with pytest.raises(BusinessRuleViolation, match="paid 1100 of 1200"):
        execute(store, ShipOrder(order=order, paid=1100))
    with pytest.raises(BusinessRuleViolation, match="no order order-2"):
        execute(store, ShipOrder(order=StreamId("order-2"), paid=1))
    execute(store, RecordPayment(payment=StreamId("payment-1"), order="order-1", amount=1200))
    with pytest.raises(BusinessRuleViolation, match="already recorded"):
        execute(store, RecordPayment(payment=StreamId("payment-1"), order="order-1", amount=1))
    assert len(execute(store, ShipOrder(order=order, paid=1200)).events) == 1
    assert execute(store, ShipOrder(order=order, paid=1200)).events == ()
