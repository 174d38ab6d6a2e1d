"""The course's shop: the domain of notebooks 05-12, as one module.

Each thing that changes on its own is a small stream; prices are integers in cents:

- ``catalog``: :class:`PriceSet` (:class:`SetPrice`);
- ``stock-<product>``: :class:`StockReceived` (:class:`ReceiveStock`), :class:`StockReserved`;
- ``cart-<customer>``: :class:`ItemAdded` (:class:`AddToCart`), :class:`CartCheckedOut`;
- ``order-<n>``: :class:`OrderPlaced` (:class:`PlaceOrder`), :class:`OrderShipped`
  (:class:`ShipOrder`);
- ``payment-<n>``: :class:`PaymentReceived` (:class:`RecordPayment`).

Notebooks 05 and 06 build the commands in view; this module holds the same code, so later
notebooks import it. :class:`PlaceOrder` reads the cart, the catalog (read only) and the
order stream, *discovers* the stock stream of every product in the cart, and writes the
order, the reservations and the checkout in one atomic append.

Payments arrive from the bank: :class:`RecordPayment` records what the bank reports, so a
payment may name an order that does not exist, pay twice, pay the wrong amount or come late.
Read models and reactions across the streams (notebooks 09 and 10):

- :class:`Products` — price and units available per product, :func:`~eventcore.projections.
  compose.compose`\\ d from a catalog projector and a ``stock-*`` projector;
- :class:`Fulfilment` — a process manager that ships an order once a payment covers it;
- :class:`Reconciliation` — flags payments that match no open order and orders not paid
  within 24 hours, with a :class:`~eventcore.projections.windows.WithinWindow` on event time.

>>> from datetime import timedelta
>>> from eventcore import InMemoryEventStore, SeededIds, TickingClock
>>> store = InMemoryEventStore(clock=TickingClock(step=timedelta(hours=2)), ids=SeededIds(1))
>>> populate(store)
>>> products = Products()
>>> for event in store.read_all():
...     products.projection.apply(event)
>>> print(products.render())
kettle  2500  available  3
mug      800  available  2
tea      450  available 14
>>> check = Reconciliation()
>>> for event in store.read_all():
...     check.apply(event)
>>> for flag in check.flags():
...     print(flag)
payment-2  payment for unknown order order-9
payment-3  duplicate payment for order-1
order-2    unpaid within 24h (placed 2026-01-02 11:00)
payment-4  paid 1000 for order-3 of 900
payment-6  late payment for order-2
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from eventcore.commands import Command, require, stream
from eventcore.errors import BusinessRuleViolation
from eventcore.events import RecordedEvent
from eventcore.execution import execute
from eventcore.projections.api import EventSelector, FunctionProjector
from eventcore.projections.compose import Composite, compose
from eventcore.projections.process import CommandIssued, ProcessManager
from eventcore.projections.windows import Expired, Matched, Unmatched, WithinWindow
from eventcore.store import EventStore
from eventcore.types import StreamId, StreamPattern

__all__ = [
    "CATALOG",
    "EVENTS",
    "AddToCart",
    "CartAlreadyCheckedOut",
    "CartCheckedOut",
    "Checkout",
    "EmptyCart",
    "Flag",
    "Fulfilment",
    "ItemAdded",
    "OrderAlreadyPlaced",
    "OrderPlaced",
    "OrderShipped",
    "OutOfStock",
    "PaymentReceived",
    "PlaceOrder",
    "PriceSet",
    "Products",
    "ReceiveStock",
    "Reconciliation",
    "RecordPayment",
    "SetPrice",
    "ShipOrder",
    "StockReceived",
    "StockReserved",
    "UnknownProduct",
    "fold_checkout",
    "populate",
    "product_of",
    "stock_of",
]

CATALOG = StreamId("catalog")
"""The one stream of prices."""


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceSet:
    catalog: StreamId
    product: str
    price: int  # in cents


@dataclass(frozen=True)
class ItemAdded:
    cart: StreamId
    product: str
    quantity: int


@dataclass(frozen=True)
class CartCheckedOut:
    cart: StreamId
    order: str


@dataclass(frozen=True)
class StockReceived:
    stock: StreamId
    quantity: int


@dataclass(frozen=True)
class StockReserved:
    stock: StreamId
    order: str
    quantity: int


@dataclass(frozen=True)
class OrderPlaced:
    order: StreamId
    cart: str
    lines: dict[str, int]  # product -> quantity
    total: int  # in cents


@dataclass(frozen=True)
class PaymentReceived:
    """The bank says ``amount`` cents were paid with ``order`` as the reference (maybe a
    wrong one)."""

    payment: StreamId
    order: str
    amount: int


@dataclass(frozen=True)
class OrderShipped:
    order: StreamId


EVENTS: tuple[type, ...] = (
    PriceSet,
    StockReceived,
    ItemAdded,
    CartCheckedOut,
    OrderPlaced,
    StockReserved,
    PaymentReceived,
    OrderShipped,
    CommandIssued,  # the receipts Fulfilment writes: a reader of the whole log needs it too
)


def stock_of(product: str) -> StreamId:
    """The stock stream of a product: ``stock-tea``."""
    return StreamId(f"stock-{product}")


def product_of(stock: str) -> str:
    """The product of a stock stream: ``tea``."""
    return stock.removeprefix("stock-")


# -- refusals -------------------------------------------------------------------------------


class EmptyCart(BusinessRuleViolation):
    """There is nothing to order."""


class CartAlreadyCheckedOut(BusinessRuleViolation):
    """This cart became an order already."""


class OrderAlreadyPlaced(BusinessRuleViolation):
    """An order with this id exists."""


class UnknownProduct(BusinessRuleViolation):
    """The catalog has no price for a product in the cart."""


class OutOfStock(BusinessRuleViolation):
    """Not enough units of a product to reserve."""

    def __init__(self, product: str, available: int, wanted: int) -> None:
        super().__init__(f"{wanted} × {product} wanted, {available} in stock")
        self.product, self.available, self.wanted = product, available, wanted


# -- the state commands decide on ---------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    """What the shop's commands need to know, folded from every stream they read."""

    lines: dict[str, int] = field(default_factory=dict)  # from the cart
    checked_out: bool = False  # from the cart
    prices: dict[str, int] = field(default_factory=dict)  # from the catalog
    available: dict[str, int] = field(default_factory=dict)  # from the stock streams
    order: OrderPlaced | None = None  # from the order stream
    shipped: bool = False  # from the order stream


def _count(counts: dict[str, int], key: str, change: int) -> dict[str, int]:
    return {**counts, key: counts.get(key, 0) + change}


def fold_checkout(state: Checkout, event: Any) -> Checkout:
    """One step of every shop command's fold: each event type comes from one kind of stream."""
    match event:
        case ItemAdded(product=product, quantity=quantity):
            return replace(state, lines=_count(state.lines, product, quantity))
        case CartCheckedOut():
            return replace(state, checked_out=True)
        case PriceSet(product=product, price=price):
            return replace(state, prices={**state.prices, product: price})
        case StockReceived(stock=stock, quantity=quantity):
            return replace(state, available=_count(state.available, product_of(stock), quantity))
        case StockReserved(stock=stock, quantity=quantity):
            return replace(state, available=_count(state.available, product_of(stock), -quantity))
        case OrderPlaced():
            return replace(state, order=event)
        case OrderShipped():
            return replace(state, shipped=True)
    return state


class ShopCommand(Command[Checkout]):
    """Every shop command folds into a :class:`Checkout` with :func:`fold_checkout`."""

    __abstract__ = True

    def initial_state(self) -> Checkout:
        return Checkout()

    def apply(self, state: Checkout, event: Any) -> Checkout:
        return fold_checkout(state, event)


# -- commands -------------------------------------------------------------------------------


class SetPrice(Command[dict[str, int]]):
    """Set a product's price in the catalog; setting the same price again records nothing."""

    catalog: StreamId = stream()
    product: str
    price: int

    def initial_state(self) -> dict[str, int]:
        return {}

    def apply(self, prices: dict[str, int], event: Any) -> dict[str, int]:
        return {**prices, event.product: event.price} if isinstance(event, PriceSet) else prices

    def handle(self, prices: dict[str, int]) -> list[object]:
        require(self.price > 0, "price must be positive")
        if prices.get(self.product) == self.price:
            return []  # unchanged: nothing to record
        return [PriceSet(self.catalog, self.product, self.price)]


class ReceiveStock(ShopCommand):
    """Units of a product arrive at the warehouse."""

    stock: StreamId = stream()
    quantity: int

    def handle(self, state: Checkout) -> list[object]:
        require(self.quantity > 0, "quantity must be positive")
        return [StockReceived(self.stock, self.quantity)]


class AddToCart(ShopCommand):
    cart: StreamId = stream()
    product: str
    quantity: int = 1

    def handle(self, state: Checkout) -> list[object]:
        require(self.quantity > 0, "quantity must be positive")
        require(
            not state.checked_out, CartAlreadyCheckedOut(f"{self.cart} was checked out already")
        )
        return [ItemAdded(self.cart, self.product, self.quantity)]


class PlaceOrder(ShopCommand):
    """Check out a cart: reserve the stock of every product and record the order, at the
    catalog's prices, in one atomic write (notebooks 05 and 06)."""

    order: StreamId = stream()
    cart: StreamId = stream()
    catalog: StreamId = stream()  # read only: prices

    def discover_streams(self, state: Checkout) -> list[StreamId]:
        return [stock_of(product) for product in sorted(state.lines)]  # named by the cart

    def handle(self, state: Checkout) -> list[object]:
        require(state.order is None, OrderAlreadyPlaced(f"{self.order} exists already"))
        require(
            not state.checked_out, CartAlreadyCheckedOut(f"{self.cart} was checked out already")
        )
        require(state.lines, EmptyCart(f"{self.cart} is empty"))
        lines = dict(sorted(state.lines.items()))
        for product, quantity in lines.items():
            require(product in state.prices, UnknownProduct(f"no price for {product!r}"))
            available = state.available.get(product, 0)
            require(available >= quantity, OutOfStock(product, available, quantity))
        total = sum(state.prices[p] * q for p, q in lines.items())
        return [
            OrderPlaced(self.order, self.cart, lines, total),
            *[StockReserved(stock_of(p), self.order, q) for p, q in lines.items()],
            CartCheckedOut(self.cart, self.order),
        ]


class RecordPayment(Command[bool]):
    """Record a payment as the bank reported it. The order reference is not checked here: the
    money arrived, whatever it says (the reconciliation looks at it)."""

    payment: StreamId = stream()
    order: str
    amount: int

    def initial_state(self) -> bool:
        return False

    def apply(self, recorded: bool, event: Any) -> bool:
        return True

    def handle(self, recorded: bool) -> list[object]:
        require(not recorded, f"{self.payment} is already recorded")
        return [PaymentReceived(self.payment, self.order, self.amount)]


class ShipOrder(ShopCommand):
    """Ship an order that ``paid`` cents cover; shipping twice records nothing."""

    order: StreamId = stream()
    paid: int

    def handle(self, state: Checkout) -> list[object]:
        require(state.order is not None, f"no order {self.order}")
        assert state.order is not None
        if state.shipped:
            return []
        total = state.order.total
        require(self.paid >= total, f"{self.order} is paid {self.paid} of {total}")
        return [OrderShipped(self.order)]


# -- a process manager ----------------------------------------------------------------------


class Fulfilment(ProcessManager):
    """Ships an order when a payment for it arrives; a refusal (unknown order, underpaid)
    is noted in :attr:`refused` and left to the reconciliation."""

    name = "fulfilment"
    selector = EventSelector(event_types=frozenset({PaymentReceived}))

    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self.refused: list[tuple[str, str]] = []

    def react(self, event: RecordedEvent) -> list[Command[Any]]:
        payment = event.event
        if not isinstance(payment, PaymentReceived):
            return []
        return [ShipOrder(order=StreamId(payment.order), paid=payment.amount)]

    def rejected(
        self, event: RecordedEvent, command: Command[Any], error: BusinessRuleViolation
    ) -> None:
        self.refused.append((str(event.stream_id), str(error)))


# -- a read model composed of two projectors ------------------------------------------------


@dataclass
class Products:
    """What the shop sells: each product's price (from ``catalog``) and the units available
    (from every ``stock-*`` stream). :attr:`projection` is the one projector to run,
    composed of one small projector per kind of stream. Each part remembers the last global
    position it applied and ignores an event at or below it, so a redelivered event changes
    nothing."""

    prices: dict[str, int] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def part(name: str, streams: Any, handler: Any) -> FunctionProjector:
            def apply(event: RecordedEvent) -> None:
                if event.position > self._seen.get(name, 0):
                    handler(event.event)
                    self._seen[name] = event.position

            return FunctionProjector(f"products/{name}", apply, EventSelector(streams=streams))

        view = compose(
            "products",
            part("prices", StreamPattern(CATALOG), self._price),
            part("stock", StreamPattern("stock-*"), self._stock),
        )
        assert isinstance(view, Composite)
        self.projection: Composite = view

    def _price(self, event: Any) -> None:
        if isinstance(event, PriceSet):
            self.prices[event.product] = event.price

    def _stock(self, event: Any) -> None:
        if isinstance(event, StockReceived):
            self.available = _count(self.available, product_of(event.stock), event.quantity)
        elif isinstance(event, StockReserved):
            self.available = _count(self.available, product_of(event.stock), -event.quantity)

    def render(self) -> str:
        """One line per product, by name."""
        names = sorted(set(self.prices) | set(self.available))
        return "\n".join(
            f"{name:<7} {self.prices.get(name, 0):>4}  available {self.available.get(name, 0):>2}"
            for name in names
        )


# -- reconciliation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flag:
    """Something the reconciliation wants a person to look at; ``at`` is the event time it
    became true (an unpaid order's deadline, or the payment's time)."""

    at: datetime
    position: int
    subject: str
    problem: str

    def __str__(self) -> str:
        return f"{self.subject:<10} {self.problem}"


_REASONS = {
    "never opened": "payment for unknown order {order}",
    "already matched": "duplicate payment for {order}",
    "too late": "late payment for {order}",
}


class Reconciliation:
    """Pairs each order with its payment within ``within`` (24 hours) of event time.

    Flags: payments for unknown orders, duplicate and late payments, wrong amounts, and
    orders still unpaid when their 24 hours have passed (decided by the time of later
    events, or by :meth:`as_of`). Run it as a projector, or feed it history in a batch: the
    flags are the same.
    """

    name = "reconciliation"

    def __init__(self, *, within: timedelta = timedelta(hours=24)) -> None:
        self.window = WithinWindow(
            self.name,
            opens=OrderPlaced,
            closes=PaymentReceived,
            key=_order_of,
            within=within,
        )
        self.selector = self.window.selector

    def apply(self, event: RecordedEvent) -> None:
        self.window.apply(event)

    def as_of(self, now: datetime) -> list[Flag]:
        """The flags once every window due before ``now`` has expired."""
        self.window.advance_to(now)
        return self.flags()

    def flags(self) -> list[Flag]:
        """Every flag, in the order of the event that raised it."""
        found = [_flag(m) for m in self.window.matched if m.closed.event.amount != _total(m)]
        found += [_flag(x) for x in self.window.expired]
        found += [_flag(u) for u in self.window.unmatched]
        return sorted(found, key=lambda f: (f.at, f.position))


def _order_of(event: Any) -> str:
    return str(event.order)


def _total(m: Matched) -> int:
    total: int = m.opened.event.total
    return total


def _flag(item: Matched | Expired | Unmatched) -> Flag:
    if isinstance(item, Matched):
        payment = item.closed
        return Flag(
            payment.recorded_at,
            payment.position,
            str(payment.stream_id),
            f"paid {payment.event.amount} for {item.key} of {_total(item)}",
        )
    if isinstance(item, Expired):
        placed = item.opened.recorded_at.strftime("%Y-%m-%d %H:%M")
        problem = f"unpaid within 24h (placed {placed})"
        return Flag(item.deadline, item.opened.position, str(item.key), problem)
    problem = _REASONS[item.reason].format(order=item.key)
    return Flag(item.event.recorded_at, item.event.position, str(item.event.stream_id), problem)


# -- a scenario -----------------------------------------------------------------------------


def _checkout(customer: str, order: str, items: dict[str, int]) -> list[Command[Any]]:
    cart = StreamId(f"cart-{customer}")
    adds: list[Command[Any]] = [
        AddToCart(cart=cart, product=p, quantity=q) for p, q in items.items()
    ]
    return [*adds, PlaceOrder(order=StreamId(order), cart=cart, catalog=CATALOG)]


def _pay(payment: str, order: str, amount: int) -> RecordPayment:
    return RecordPayment(payment=StreamId(payment), order=order, amount=amount)


def story() -> list[Command[Any]]:
    """The commands :func:`populate` executes, in order."""
    return [
        SetPrice(catalog=CATALOG, product="tea", price=450),
        SetPrice(catalog=CATALOG, product="mug", price=800),
        SetPrice(catalog=CATALOG, product="kettle", price=2500),
        ReceiveStock(stock=stock_of("tea"), quantity=20),
        ReceiveStock(stock=stock_of("mug"), quantity=5),
        ReceiveStock(stock=stock_of("kettle"), quantity=4),
        *_checkout("ada", "order-1", {"tea": 2, "mug": 1}),
        *_checkout("bob", "order-2", {"kettle": 1}),
        _pay("payment-1", "order-1", 1700),
        *_checkout("cy", "order-3", {"tea": 2}),
        _pay("payment-2", "order-9", 1500),
        _pay("payment-3", "order-1", 1700),
        *_checkout("dee", "order-4", {"mug": 2}),
        _pay("payment-4", "order-3", 1000),
        _pay("payment-5", "order-4", 1600),
        *_checkout("eve", "order-5", {"tea": 2}),
        _pay("payment-6", "order-2", 2500),
    ]


def populate(store: EventStore) -> None:
    """Write the shop's story: prices, stock, five checkouts and six payments from the bank.
    With ``TickingClock(step=timedelta(hours=2))`` order-2 stays unpaid past its 24 hours
    and is paid late."""
    for command in story():
        execute(store, command)
