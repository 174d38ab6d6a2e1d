"""A small shop: customers, orders and payments in separate streams, and read models across them.

Each customer, order and payment is its own stream (``customer-ada``, ``order-1``,
``payment-1``). Payments arrive from a bank feed, so a payment may name an order that does
not exist, pay twice, pay the wrong amount or come too late — the read models show it:

- :class:`OrderHistory` — every customer's orders with what was paid and whether they
  shipped, built by :func:`~eventcore.projections.compose.compose` from three small
  projectors, one per stream pattern (``customer-*``, ``order-*``, ``payment-*``);
- :class:`Reconciliation` — flags payments that match no open order and orders not paid
  within 24 hours, with a :class:`~eventcore.projections.windows.WithinWindow` on event
  time (deterministic: no wall clock);
- :class:`Fulfilment` — a process manager that ships an order once it is paid, through
  ``execute`` with causation tracked and exactly-once effects.

>>> from datetime import timedelta
>>> from eventcore import InMemoryEventStore, SeededIds, TickingClock
>>> store = InMemoryEventStore(clock=TickingClock(step=timedelta(hours=3)), ids=SeededIds(1))
>>> populate(store)
>>> history = OrderHistory()
>>> for event in store.read_all():
...     history.projection.apply(event)
>>> print(history.render())
Ada     order-1  total 30  paid 60  placed
Ada     order-3  total 20  paid 25  placed
Bob     order-2  total 50  paid 50  placed
Bob     order-4  total 40  paid 40  placed
Cy      order-5  total 10  paid  0  placed
>>> check = Reconciliation()
>>> for event in store.read_all():
...     check.apply(event)
>>> for flag in check.flags():
...     print(flag)
payment-2  payment for unknown order order-9
payment-3  duplicate payment for order-1
payment-4  paid 25 for order-3 of 20
order-2    unpaid within 24h (placed 2026-01-01 18:00)
payment-6  late payment for order-2
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    "EVENTS",
    "CustomerRegistered",
    "Flag",
    "Fulfilment",
    "OrderHistory",
    "OrderLine",
    "OrderPlaced",
    "OrderShipped",
    "PaymentReceived",
    "PlaceOrder",
    "Reconciliation",
    "RecordPayment",
    "RegisterCustomer",
    "ShipOrder",
    "populate",
]


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRegistered:
    customer: StreamId
    name: str


@dataclass(frozen=True)
class OrderPlaced:
    order: StreamId
    customer: str  # the customer's stream id, as a plain reference
    total: int


@dataclass(frozen=True)
class OrderShipped:
    order: StreamId


@dataclass(frozen=True)
class PaymentReceived:
    """The bank says ``amount`` was paid with ``order`` as its reference (maybe a wrong one)."""

    payment: StreamId
    order: str
    amount: int


EVENTS: tuple[type, ...] = (
    CustomerRegistered,
    OrderPlaced,
    OrderShipped,
    PaymentReceived,
    CommandIssued,  # the receipts Fulfilment writes: a reader of the whole log needs it too
)


# -- commands -------------------------------------------------------------------------------


class RegisterCustomer(Command[bool]):
    customer: StreamId = stream()
    name: str

    def initial_state(self) -> bool:
        return False

    def apply(self, registered: bool, event: Any) -> bool:
        return registered or isinstance(event, CustomerRegistered)

    def handle(self, registered: bool) -> list[object]:
        require(not registered, f"{self.customer} is already registered")
        return [CustomerRegistered(self.customer, self.name)]


@dataclass(frozen=True)
class _Seen:
    """What a command folding an order or customer stream knows."""

    customer: bool = False
    placed: OrderPlaced | None = None
    shipped: bool = False


def _fold(seen: _Seen, event: Any) -> _Seen:
    match event:
        case CustomerRegistered():
            return _Seen(True, seen.placed, seen.shipped)
        case OrderPlaced():
            return _Seen(seen.customer, event, seen.shipped)
        case OrderShipped():
            return _Seen(seen.customer, seen.placed, True)
    return seen


class PlaceOrder(Command[_Seen]):
    """Place a new order for a registered customer (the customer stream is read, not written)."""

    order: StreamId = stream()
    customer: StreamId = stream()
    total: int

    def initial_state(self) -> _Seen:
        return _Seen()

    def apply(self, seen: _Seen, event: Any) -> _Seen:
        return _fold(seen, event)

    def handle(self, seen: _Seen) -> list[object]:
        require(seen.customer, f"no customer {self.customer}")
        require(seen.placed is None, f"{self.order} already exists")
        require(self.total > 0, "total must be positive")
        return [OrderPlaced(self.order, self.customer, self.total)]


class RecordPayment(Command[bool]):
    """Record a payment as the bank reported it; the order reference is not checked here."""

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


class ShipOrder(Command[_Seen]):
    """Ship a paid order; shipping twice is a no-op (the command is idempotent too)."""

    order: StreamId = stream()
    paid: int

    def initial_state(self) -> _Seen:
        return _Seen()

    def apply(self, seen: _Seen, event: Any) -> _Seen:
        return _fold(seen, event)

    def handle(self, seen: _Seen) -> list[object]:
        require(seen.placed is not None, f"no order {self.order}")
        assert seen.placed is not None
        if seen.shipped:
            return []
        require(
            self.paid >= seen.placed.total,
            f"{self.order} is paid {self.paid} of {seen.placed.total}",
        )
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


# -- a read model composed of three projectors -------------------------------------------------


@dataclass
class OrderLine:
    order: str
    customer: str
    total: int
    paid: int = 0
    status: str = "placed"


@dataclass
class OrderHistory:
    """Every customer's orders: names from ``customer-*``, orders from ``order-*``, amounts
    paid from ``payment-*``. :attr:`projection` is the one projector to run; it is composed
    of one small projector per stream pattern. Each part ignores positions it has applied,
    so a redelivered event changes nothing."""

    names: dict[str, str] = field(default_factory=dict)
    orders: dict[str, OrderLine] = field(default_factory=dict)
    unknown_payments: list[str] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def part(name: str, pattern: str, handler: Any) -> FunctionProjector:
            def apply(event: RecordedEvent) -> None:
                if event.position > self._seen.get(name, 0):
                    handler(event.event)
                    self._seen[name] = event.position

            selector = EventSelector(streams=StreamPattern(pattern))
            return FunctionProjector(f"order-history/{name}", apply, selector)

        view = compose(
            "order-history",
            part("customers", "customer-*", self._customer),
            part("orders", "order-*", self._order),
            part("payments", "payment-*", self._payment),
        )
        assert isinstance(view, Composite)
        self.projection: Composite = view

    def _customer(self, event: Any) -> None:
        if isinstance(event, CustomerRegistered):
            self.names[event.customer] = event.name

    def _order(self, event: Any) -> None:
        if isinstance(event, OrderPlaced):
            self.orders[event.order] = OrderLine(event.order, event.customer, event.total)
        elif isinstance(event, OrderShipped) and event.order in self.orders:
            self.orders[event.order].status = "shipped"

    def _payment(self, event: Any) -> None:
        if not isinstance(event, PaymentReceived):
            return
        line = self.orders.get(event.order)
        if line is None:
            self.unknown_payments.append(event.payment)
        else:
            line.paid += event.amount

    def of(self, customer: str) -> list[OrderLine]:
        """One customer's orders, in order id order."""
        return sorted((o for o in self.orders.values() if o.customer == customer), key=_key)

    def render(self) -> str:
        """One line per order, grouped by customer name."""
        rows = sorted(
            self.orders.values(), key=lambda o: (self.names.get(o.customer, "?"), o.order)
        )
        return "\n".join(
            f"{self.names.get(o.customer, '?'):<7} {o.order:<8} total {o.total:>2}  "
            f"paid {o.paid:>2}  {o.status}"
            for o in rows
        )


def _key(line: OrderLine) -> str:
    return line.order


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


def populate(store: EventStore) -> None:
    """Write the shop's story (13 commands). With ``TickingClock(step=timedelta(hours=3))``
    order-2 stays unpaid past its 24 hours and is paid late."""
    steps: list[Command[Any]] = [
        RegisterCustomer(customer=StreamId("customer-ada"), name="Ada"),
        RegisterCustomer(customer=StreamId("customer-bob"), name="Bob"),
        PlaceOrder(order=StreamId("order-1"), customer=StreamId("customer-ada"), total=30),
        PlaceOrder(order=StreamId("order-2"), customer=StreamId("customer-bob"), total=50),
        RecordPayment(payment=StreamId("payment-1"), order=StreamId("order-1"), amount=30),
        PlaceOrder(order=StreamId("order-3"), customer=StreamId("customer-ada"), total=20),
        RecordPayment(payment=StreamId("payment-2"), order=StreamId("order-9"), amount=15),
        RecordPayment(payment=StreamId("payment-3"), order=StreamId("order-1"), amount=30),
        PlaceOrder(order=StreamId("order-4"), customer=StreamId("customer-bob"), total=40),
        RecordPayment(payment=StreamId("payment-4"), order=StreamId("order-3"), amount=25),
        RecordPayment(payment=StreamId("payment-5"), order=StreamId("order-4"), amount=40),
        RegisterCustomer(customer=StreamId("customer-cy"), name="Cy"),
        PlaceOrder(order=StreamId("order-5"), customer=StreamId("customer-cy"), total=10),
        RecordPayment(payment=StreamId("payment-6"), order=StreamId("order-2"), amount=50),
    ]
    for command in steps:
        execute(store, command)
