"""What the store contracts share: the event classes they write, state snapshots, and the
base class with the ``make_store`` and ``store`` fixtures (see :mod:`eventcore.testing.contract`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import pytest

from eventcore.events import RecordedEvent, event
from eventcore.store import EventStore
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = [
    "Address",
    "Currency",
    "Deposited",
    "DepositedInCents",
    "NotFrozen",
    "Opened",
    "RateChanged",
    "StoreContractBase",
    "StoreFactory",
    "Withdrawn",
]

StoreFactory = Callable[..., EventStore]
"""``make_store(**kwargs) -> EventStore``; kwargs (``events``, ``clock``, ``ids``) go to the
store's constructor."""


# -- event classes used by the contract (module level, so other processes can import them) --


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"


@dataclass(frozen=True)
class Address:
    city: str
    postcode: str | None = None


@dataclass(frozen=True)
class Opened:
    """An event with one field of (nearly) every supported type."""

    account: StreamId
    owner: str
    currency: Currency
    opened_at: datetime
    opened_on: date
    address: Address
    tags: list[str] = field(default_factory=list)
    limits: dict[str, Decimal] = field(default_factory=dict)
    pair: tuple[int, str] = (0, "")
    reference: UUID | None = None
    extra: Any = None


@dataclass(frozen=True)
class Deposited:
    account: StreamId
    amount: int


@dataclass(frozen=True)
class Withdrawn:
    account: StreamId
    amount: int


@dataclass(frozen=True)
class RateChanged:
    account: StreamId
    rate: float


@dataclass
class NotFrozen:
    """Deliberately mutable: a store must refuse it."""

    account: StreamId
    amount: int


@event(name="Deposited")
@dataclass(frozen=True)
class DepositedInCents:
    """Claims the stored type name ``Deposited`` but has other fields: old data cannot fit."""

    account: StreamId
    cents: int
    currency: Currency


A = StreamId("account-a")
B = StreamId("account-b")
C = StreamId("account-c")


def _opened(account: StreamId, **changes: Any) -> Opened:
    base = Opened(
        account=account,
        owner="Alice",
        currency=Currency.EUR,
        opened_at=datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        opened_on=date(2026, 3, 1),
        address=Address("Lyon", None),
        tags=["gold"],
        limits={"daily": Decimal("250.00")},
        pair=(7, "seven"),
        reference=UUID("12345678-1234-5678-1234-567812345678"),
        extra={"nested": [1, 2.5, None, True, "x"]},
    )
    return dataclasses.replace(base, **changes)


def _raw(value: object) -> Any:
    """Pass a deliberately wrong value past the type checker."""
    return value


@dataclass(frozen=True)
class _Snapshot:
    """Everything observable about a store: head, the global log and some streams."""

    head: int
    log: list[tuple[int, str, int, UUID]]
    streams: dict[str, tuple[int, list[tuple[int, UUID]]]]


def _state(store: EventStore, *streams: StreamId) -> _Snapshot:
    return _Snapshot(
        store.head(),
        [(r.position, r.stream_id, r.stream_version, r.event_id) for r in store.read_all()],
        {
            sid: (
                store.stream_version(sid),
                [(r.stream_version, r.event_id) for r in store.read_stream(sid)],
            )
            for sid in streams
        },
    )


def _ids(records: list[RecordedEvent]) -> list[tuple[str, int]]:
    return [(r.stream_id, r.stream_version) for r in records]


class StoreContractBase:
    """The fixtures and helpers of :class:`~eventcore.testing.contract.EventStoreContract`
    and its parts."""

    supports_reopen: ClassVar[bool] = True
    """Calling the factory again opens a second handle on the same data, with its own
    event registry built from the keyword arguments."""

    gapless_positions: ClassVar[bool] = True
    """Positions are exactly 1..head with no gaps."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError(
            f"{type(self).__name__} must define a make_store fixture returning "
            "a factory make_store(**kwargs) -> EventStore"
        )

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> EventStore:
        return make_store()

    @pytest.fixture
    def make_empty_store(self) -> StoreFactory:
        """A factory of stores on a *second*, empty database (for moving a log between
        two). Override it; by default the tests that need it are skipped."""

        def skip(**kwargs: Any) -> EventStore:
            pytest.skip(f"{type(self).__name__} defines no make_empty_store fixture")

        return skip

    def reopen(self, make_store: StoreFactory, **kwargs: Any) -> EventStore:
        """A second handle on the same data, or skip the test."""
        if not self.supports_reopen:
            pytest.skip(f"{type(self).__name__}: the store cannot open a second handle")
        return make_store(**kwargs)

    def assert_unchanged(self, store: EventStore, before: _Snapshot) -> None:
        """Fail if head, the global log or the streams in ``before`` changed."""
        after = _state(store, *(StreamId(s) for s in before.streams))
        assert after == before, "a failed write changed the store"

    def _streams(self, store: EventStore, *ids: str) -> None:
        sids = [StreamId(i) for i in ids]
        store.append(dict.fromkeys(sids, 0), [Deposited(s, 1) for s in sids])

    def _selected(self, store: EventStore, selector: StreamPrefix | StreamPattern) -> set[str]:
        return {r.stream_id for r in store.read_all(streams=selector)}
