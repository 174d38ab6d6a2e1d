"""A small, deterministic shop log for the notebook helper tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from eventcore import InMemoryEventStore, Metadata, SeededIds, StreamId, TickingClock


@dataclass(frozen=True)
class ItemAdded:
    cart: StreamId
    sku: str
    quantity: int


@dataclass(frozen=True)
class Address:
    city: str


@dataclass(frozen=True)
class OrderPlaced:
    order: StreamId
    cart: str
    total: int
    ship_to: Address


@dataclass(frozen=True)
class StockReserved:
    stock: StreamId
    order: str
    quantity: int


@dataclass(frozen=True)
class PaymentCaptured:
    payment: StreamId
    order: str
    amount: int


CART, OTHER_CART = StreamId("cart-1"), StreamId("cart-2")
ORDER, PAYMENT = StreamId("order-1"), StreamId("payment-1")
TEA, POT = StreamId("stock-tea"), StreamId("stock-pot")
FLOW = uuid.UUID(int=1)


@dataclass
class Shop:
    store: InMemoryEventStore
    order_placed_id: uuid.UUID


def make_shop() -> Shop:
    """Seven events in six streams; positions 1, 3, 4, 5, 6, 7 share correlation FLOW.

    Causation: 1 -> 3 -> 4 -> (5, 6, 7); position 2 is another customer's, correlated with
    itself (the store's default).
    """
    store = InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=5))
    first = store.append({CART: 0}, [ItemAdded(CART, "tea", 2)], metadata=Metadata(FLOW))
    store.append({OTHER_CART: 0}, [ItemAdded(OTHER_CART, "mug", 1)])
    second = store.append(
        {CART: 1}, [ItemAdded(CART, "pot", 1)], metadata=Metadata(FLOW, first[0].event_id)
    )
    placed = store.append(
        {ORDER: 0},
        [OrderPlaced(ORDER, "cart-1", 30, Address("Oslo"))],
        metadata=Metadata(FLOW, second[0].event_id),
    )
    cause = placed[0].event_id
    store.append(
        {TEA: 0, POT: 0},
        [StockReserved(TEA, "order-1", 2), StockReserved(POT, "order-1", 1)],
        metadata=Metadata(FLOW, cause),
    )
    store.append(
        {PAYMENT: 0},
        [PaymentCaptured(PAYMENT, "order-1", 30)],
        metadata=Metadata(FLOW, cause, {"provider": "acme"}),
    )
    return Shop(store, cause)


def cart_fold(state: dict[str, int], event: object) -> dict[str, int]:
    """Quantities per ``cart:sku`` (other events leave the state alone)."""
    if isinstance(event, ItemAdded):
        key = f"{event.cart}:{event.sku}"
        return {**state, key: state.get(key, 0) + event.quantity}
    return state
