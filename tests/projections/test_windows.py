"""Temporal windows: tumbling, sliding and WithinWindow, on event time only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore import (
    ConfigurationError,
    InMemoryEventStore,
    Metadata,
    RecordedEvent,
    StreamId,
    TickingClock,
    ValidationError,
)
from eventcore.projections import ProjectionConfig, run_projection
from eventcore.projections.checkpoints import InMemoryCheckpointStore
from eventcore.projections.windows import (
    Expired,
    Unmatched,
    WithinWindow,
    sliding,
    tumbling,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Placed:
    order: StreamId


@dataclass(frozen=True)
class Paid:
    payment: StreamId
    order: str


@dataclass(frozen=True)
class Noise:
    topic: StreamId


def rec(position: int, when: datetime, event: Any = None) -> RecordedEvent:
    event = event if event is not None else Noise(StreamId("noise"))
    return RecordedEvent(
        position,
        StreamId("s"),
        position,
        type(event).__name__,
        event,
        UUID(int=position),
        when,
        Metadata(),
    )


def at(*hours: float) -> list[RecordedEvent]:
    return [rec(i + 1, T0 + h * HOUR) for i, h in enumerate(hours)]


def positions(windows: Any) -> list[tuple[str, list[int]]]:
    return [(w.start.strftime("%d %H:%M"), [e.position for e in w]) for w in windows]


# -- tumbling and sliding ------------------------------------------------------------------------


def test_tumbling_windows_are_aligned_and_disjoint() -> None:
    events = at(0, 0.5, 0.99, 1, 3.5, 3.2)
    assert positions(tumbling(events, HOUR)) == [
        ("02 09:00", [1, 2, 3]),
        ("02 10:00", [4]),
        ("02 12:00", [5, 6]),  # input order kept inside a window
    ]
    assert positions(tumbling(events, HOUR, include_empty=True))[2] == ("02 11:00", [])
    days = tumbling(events, timedelta(days=1))
    assert [(w.start, w.end, len(w)) for w in days] == [
        (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC), 6)
    ]
    shifted = tumbling(events, HOUR, origin=T0 + timedelta(minutes=30))
    assert positions(shifted) == [
        ("02 08:30", [1]),
        ("02 09:30", [2, 3, 4]),
        ("02 11:30", [6]),
        ("02 12:30", [5]),
    ]
    assert tumbling([], HOUR) == []


def test_sliding_windows_overlap() -> None:
    events = at(0, 0.5, 1.2)
    windows = sliding(events, size=HOUR, step=timedelta(minutes=30))
    assert positions(windows) == [
        ("02 08:30", [1]),
        ("02 09:00", [1, 2]),
        ("02 09:30", [2, 3]),
        ("02 10:00", [3]),
    ]
    assert all(w.end - w.start == HOUR for w in windows)


def test_sliding_with_a_step_longer_than_the_size_leaves_gaps() -> None:
    windows = sliding(at(0, 0.5, 1.4), size=timedelta(minutes=20), step=HOUR)
    assert positions(windows) == [("02 09:00", [1])]


def test_windows_can_use_a_time_from_the_event() -> None:
    events = at(0, 1, 2)
    business = {1: T0 + 5 * HOUR, 2: T0, 3: T0 + 5.5 * HOUR}
    windows = tumbling(events, HOUR, time=lambda e: business[e.position])
    assert positions(windows) == [("02 09:00", [2]), ("02 14:00", [1, 3])]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: tumbling([], timedelta(0)), ConfigurationError, "size must be a positive"),
        (lambda: sliding([], HOUR, -HOUR), ConfigurationError, "step must be a positive"),
        (lambda: tumbling([], HOUR, origin=datetime(2026, 1, 1)), ValidationError, "origin"),
        (
            lambda: tumbling(at(0), HOUR, time=lambda e: datetime(2026, 1, 1)),
            ValidationError,
            "position 1 must be a timezone-aware",
        ),
    ],
)
def test_window_arguments_are_checked(call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


@settings(derandomize=True, database=None, max_examples=60)
@given(
    st.lists(st.integers(0, 10_000), max_size=30),
    st.integers(1, 500),
    st.integers(1, 500),
)
def test_sliding_puts_each_event_in_every_window_covering_it(
    minutes: list[int], size: int, step: int
) -> None:
    events = [rec(i + 1, T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
    windows = sliding(events, timedelta(minutes=size), timedelta(minutes=step))
    for e in events:
        covering = [w for w in windows if w.start <= e.recorded_at < w.end]
        holding = [w for w in windows if e in w.events]
        assert covering == holding
    assert [w.start for w in windows] == sorted({w.start for w in windows})
    tumbled = tumbling(events, timedelta(minutes=size))
    assert sorted(e.position for w in tumbled for e in w) == [e.position for e in events]


# -- WithinWindow ---------------------------------------------------------------------------


def order(position: int, hours: float, oid: str) -> RecordedEvent:
    return rec(position, T0 + hours * HOUR, Placed(StreamId(oid)))


def pay(position: int, hours: float, oid: str) -> RecordedEvent:
    return rec(position, T0 + hours * HOUR, Paid(StreamId(f"payment-{position}"), oid))


def window() -> WithinWindow:
    return WithinWindow(
        "payment-follows-order",
        opens=Placed,
        closes=Paid,
        key=lambda e: str(e.order),
        within=timedelta(hours=24),
    )


def test_matched_expired_and_unmatched() -> None:
    w = window().feed(
        [
            order(1, 0, "o-1"),
            order(2, 1, "o-2"),
            pay(3, 3, "o-1"),  # in time
            pay(4, 4, "o-9"),  # no such order
            pay(5, 5, "o-1"),  # a second payment
            order(6, 10, "o-3"),
            rec(7, T0 + 25.5 * HOUR),  # time passes: o-2's deadline (25:00) is behind us
            pay(8, 26, "o-2"),  # too late
            pay(9, 34, "o-3"),  # exactly at the deadline: in time
        ]
    )
    assert [(m.key, m.elapsed) for m in w.matched] == [("o-1", 3 * HOUR), ("o-3", 24 * HOUR)]
    assert w.expired == [Expired("o-2", order(2, 1, "o-2"), T0 + 25 * HOUR)]
    assert [(u.key, u.reason) for u in w.unmatched] == [
        ("o-9", "never opened"),
        ("o-1", "already matched"),
        ("o-2", "too late"),
    ]
    assert w.pending == {}
    assert w.watermark == T0 + 34 * HOUR
    assert "matched=2" in repr(w)


def test_advance_to_expires_what_history_leaves_open() -> None:
    w = window().feed([order(1, 0, "o-1"), order(2, 5, "o-2")])
    assert w.expired == []
    assert [x.key for x in w.advance_to(T0 + 24.5 * HOUR)] == ["o-1"]
    assert w.advance_to(T0) == []  # the watermark never goes back
    assert w.watermark == T0 + 24.5 * HOUR
    assert list(w.pending) == ["o-2"]
    with pytest.raises(ValidationError, match="timezone-aware"):
        w.advance_to(datetime(2026, 1, 1))


def test_a_second_open_for_the_same_key_is_ignored() -> None:
    w = window().feed([order(1, 0, "o-1"), order(2, 20, "o-1"), pay(3, 30, "o-1")])
    assert [x.key for x in w.expired] == ["o-1"]
    assert [u.reason for u in w.unmatched] == ["too late"]


def test_window_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="name"):
        WithinWindow("", opens=Placed, closes=Paid, key=str, within=HOUR)
    with pytest.raises(ConfigurationError, match="within must be"):
        WithinWindow("w", opens=Placed, closes=Paid, key=str, within=timedelta(0))
    with pytest.raises(ConfigurationError, match="both open and close"):
        WithinWindow("w", opens=[Placed, "Paid"], closes=Paid, key=str, within=HOUR)
    with pytest.raises(ConfigurationError, match="at least one"):
        WithinWindow("w", opens=[], closes=Paid, key=str, within=HOUR)
    w = WithinWindow("w", opens="Placed", closes=(Paid,), key=str, within=HOUR)
    assert w.selector.event_type_names() == {"Placed", "Paid"}


def scenario() -> tuple[InMemoryEventStore, list[tuple[str, str]]]:
    """An order every 5 hours, most paid 7 hours later; every 3rd order never paid."""
    store = InMemoryEventStore(clock=TickingClock(T0, timedelta(hours=1)))
    steps: list[tuple[str, str]] = []
    for n in range(12):
        steps.append(("order", f"o-{n}"))
        if n % 3 != 2:
            steps.append(("pay", f"o-{n}"))
    steps.append(("pay", "o-99"))
    # interleave with noise so times advance between business events
    for kind, oid in steps:
        for _ in range(2):
            store.append(
                {StreamId("noise"): store.stream_version(StreamId("noise"))},
                [Noise(StreamId("noise"))],
            )
        if kind == "order":
            store.append({StreamId(oid): 0}, [Placed(StreamId(oid))])
        else:
            pid = StreamId(f"payment-{store.head() + 1}")
            store.append({pid: 0}, [Paid(pid, oid)])
    return store, steps


def summary(w: WithinWindow) -> tuple[Any, ...]:
    return (
        [(m.key, m.opened.position, m.closed.position) for m in w.matched],
        [(x.key, x.deadline) for x in w.expired],
        [(u.key, u.reason) for u in w.unmatched],
        sorted(w.pending),
    )


@pytest.mark.parametrize("page_size", [1, 3, 500])
def test_the_same_flags_in_batch_and_as_a_projection(page_size: int) -> None:
    store, _ = scenario()
    batch = window().feed(store.read_all())
    running = window()
    config = ProjectionConfig(InMemoryCheckpointStore(), page_size=page_size)
    report = run_projection(running, store, config)
    assert report.applied == len(store.read_all(event_types=["Placed", "Paid"]))
    assert summary(running) == summary(batch)
    # noise moves the batch's watermark sooner, but a window can only close with a later
    # business event, which moves the watermark itself first: the flags are the same
    filtered = window().feed(store.read_all(event_types=["Placed", "Paid"]))
    assert summary(filtered) == summary(batch)
    assert [u.reason for u in batch.unmatched] == ["never opened"]


def test_reasons_are_reported_with_unmatched_type() -> None:
    w = window().feed([pay(1, 0, "o-1")])
    assert w.unmatched == [Unmatched("o-1", pay(1, 0, "o-1"), "never opened")]
