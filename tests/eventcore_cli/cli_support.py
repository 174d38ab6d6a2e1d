"""A small domain for the ``eventcore`` command's tests: events, a log writer, a projector
for ``dead-letters retry``, and raw-row writers for ``verify`` and the 100k round trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from eventcore import RecordedEvent, SeededIds, StreamId, TickingClock
from eventcore.events import Metadata
from eventcore.raw import RawEvent


@dataclass(frozen=True)
class Deposited:
    account: StreamId
    amount: int


@dataclass(frozen=True)
class Withdrawn:
    account: StreamId
    amount: int


EVENTS = [Deposited, Withdrawn]


def clock_and_ids() -> dict[str, Any]:
    return {"clock": TickingClock(), "ids": SeededIds(seed=7)}


def fill(store: Any) -> None:
    """Six events on three accounts, one write of two events (positions 3-4)."""
    a, b, c = StreamId("account-a"), StreamId("account-b"), StreamId("order-1")
    store.append({a: 0}, [Deposited(a, 10)])
    store.append({b: 0}, [Deposited(b, 20)])
    store.append({a: 1, b: 1}, [Withdrawn(a, 5), Deposited(b, 5)])  # one write
    store.append({c: 0}, [Deposited(c, 1)], metadata=Metadata(custom={"by": "ops"}))
    store.append({a: 2}, [Deposited(a, 7)])


class Ledger:
    """A projector that fails on the events listed in ``FAILING`` (retry tests)."""

    name = "ledger"
    FAILING: ClassVar[set[int]] = set()

    def __init__(self) -> None:
        self.applied: list[int] = []

    def apply(self, event: RecordedEvent) -> None:
        if event.position in Ledger.FAILING:
            raise RuntimeError(f"cannot apply {event.position}")
        self.applied.append(event.position)


def raw_log(count: int, streams: int = 1000) -> list[RawEvent]:
    """``count`` raw rows on ``streams`` streams, one event per write (fast to import)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    meta = Metadata().to_json()
    versions = [0] * streams
    rows = []
    for position in range(1, count + 1):
        n = position % streams
        versions[n] += 1
        rows.append(
            RawEvent(
                position,
                f"account-{n}",
                versions[n],
                "Deposited",
                1,
                f'{{"account":"account-{n}","amount":{position}}}',
                UUID(int=position),
                start + timedelta(seconds=position),
                meta,
                position,
            )
        )
    return rows
