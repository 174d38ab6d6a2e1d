"""Composition: one projection made of several, and projections consuming another's output."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from multistream_support import BACKENDS, StoreMaker, open_stores

from eventcore import (
    ConcurrencyError,
    ConfigurationError,
    DefinitionError,
    InMemoryEventStore,
    RecordedEvent,
    RetryAttempt,
    RetryPolicy,
    SqliteEventStore,
    StreamId,
    StreamPattern,
    StreamPrefix,
)
from eventcore.projections import ProjectionConfig, run_projection, running_projection
from eventcore.projections.api import (
    ErrorPolicy,
    EventSelector,
    FunctionProjector,
    projector,
    transactional_projector,
)
from eventcore.projections.checkpoints import InMemoryCheckpointStore
from eventcore.projections.compose import (
    Composite,
    Emitter,
    TransactionalComposite,
    compose,
    emitter,
    union_selector,
)
from eventcore.projections.correlation import causation_chain
from eventcore.projections.sqlite import SqliteCheckpointStore
from eventcore.store import EventStore


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    yield from open_stores(request, tmp_path, request.param)


@dataclass(frozen=True)
class Sold:
    shop: StreamId
    day: str
    amount: int


@dataclass(frozen=True)
class Refunded:
    shop: StreamId
    day: str
    amount: int


@dataclass(frozen=True)
class DayTotal:
    """Derived: one per sale, into ``daily-<day>``."""

    daily: StreamId
    shop: str
    amount: int


def sell(store: EventStore, shop: str, day: str, amount: int, cls: type = Sold) -> None:
    sid = StreamId(shop)
    store.append({sid: store.stream_version(sid)}, [cls(sid, day, amount)])


def recorder(name: str, seen: list[tuple[str, int]], **kwargs: Any) -> FunctionProjector:
    @projector(name, **kwargs)
    def record(event: RecordedEvent) -> None:
        seen.append((name, event.position))

    return record


# -- compose -----------------------------------------------------------------------------------


def test_compose_fans_each_event_to_the_projectors_that_select_it(make_store: StoreMaker) -> None:
    store = make_store()
    sell(store, "shop-1", "mon", 5)
    sell(store, "kiosk-1", "mon", 7)
    sell(store, "shop-2", "tue", 1, Refunded)
    store.append({StreamId("other"): 0}, [Sold(StreamId("other"), "mon", 1)])
    seen: list[tuple[str, int]] = []
    view = compose(
        "sales",
        recorder("shops", seen, selector=EventSelector(streams=StreamPrefix("shop-"))),
        recorder("kiosks", seen, selector=EventSelector(streams=StreamPattern("kiosk-*"))),
        recorder(
            "refunds",
            seen,
            selector=EventSelector(
                streams=StreamPrefix("shop-"), event_types=frozenset({Refunded})
            ),
        ),
    )
    assert view.selector == EventSelector(streams=(StreamPrefix("shop-"), StreamPattern("kiosk-*")))
    checkpoints = InMemoryCheckpointStore()
    report = run_projection(view, store, ProjectionConfig(checkpoints, page_size=2))
    assert seen == [("shops", 1), ("kiosks", 2), ("shops", 3), ("refunds", 3)]
    assert report.applied == 3  # "other" was not even read
    assert checkpoints.load("sales") == store.head()
    assert checkpoints.load("shops") is None  # one checkpoint: the composite's


def test_a_failing_part_is_retried_alone() -> None:
    store = InMemoryEventStore()
    sell(store, "shop-1", "mon", 5)
    seen: list[tuple[str, int]] = []
    failures = [RuntimeError("once")]

    @projector("flaky")
    def flaky(event: RecordedEvent) -> None:
        if failures:
            raise failures.pop()
        seen.append(("flaky", event.position))

    view = compose("view", recorder("steady", seen), flaky)
    view.error_policy = ErrorPolicy.retry(max_attempts=2, base_delay=0)
    report = run_projection(view, store, ProjectionConfig(InMemoryCheckpointStore()))
    assert report.retries == 1
    assert seen == [("steady", 1), ("flaky", 1)]  # steady was not applied twice


def test_a_part_failing_on_a_dead_lettered_event_is_remembered() -> None:
    seen: list[tuple[str, int]] = []
    calls = {"n": 0}

    @projector("picky")
    def picky(event: RecordedEvent) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("poison")

    store = InMemoryEventStore()
    sell(store, "shop-1", "mon", 5)
    view = compose("view", recorder("steady", seen), picky)
    assert isinstance(view, Composite)
    event = store.read_all()[0]
    with pytest.raises(ValueError):
        view.apply(event)
    view.apply(event)  # replayed later, say by retry_dead_letters
    assert seen == [("steady", 1)]


def test_union_selector() -> None:
    a = EventSelector(streams=StreamPrefix("a-"))
    b = EventSelector(streams=StreamPattern("b-*"), event_types=frozenset({"X"}))
    types_only = EventSelector(event_types=frozenset({Sold}))
    assert union_selector([]) is None
    assert union_selector([a, None]) is None
    assert union_selector([EventSelector()]) is None
    both = union_selector([a, b])
    assert both is not None
    assert both.stream_selectors == (StreamPrefix("a-"), StreamPattern("b-*"))
    assert both.event_types is None
    mixed = union_selector([b, types_only])
    assert mixed is not None
    assert mixed.streams is None and mixed.event_type_names() == {"X", "Sold"}


def test_compose_checks_its_parts() -> None:
    @transactional_projector("tx")
    def tx_part(event: RecordedEvent, tx: Any) -> None:
        pass

    plain = recorder("plain", [])
    with pytest.raises(ConfigurationError, match="at least one"):
        compose("empty")
    with pytest.raises(ConfigurationError, match="no apply"):
        compose("bad", object())
    with pytest.raises(ConfigurationError, match="mixes transactional"):
        compose("mixed", plain, tx_part)
    with pytest.raises(ConfigurationError, match="projection name"):
        compose("", plain)
    with pytest.raises(ConfigurationError, match="EventSelector"):

        class Odd:
            name = "odd"
            selector = "order-*"

            def apply(self, event: RecordedEvent) -> None:
                pass

        compose("odd", Odd())
    assert "'plain'" in repr(compose("ok", plain))


def test_transactional_parts_commit_with_one_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    store = SqliteEventStore(path)
    sell(store, "shop-1", "mon", 5)
    sell(store, "shop-1", "mon", 7)
    sell(store, "shop-2", "tue", 1, Refunded)

    @transactional_projector("sales", selector=EventSelector(event_types=frozenset({Sold})))
    def sales(event: RecordedEvent, tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS sales (day TEXT PRIMARY KEY, total INT)")
        tx.execute(
            "INSERT INTO sales VALUES (?, ?) ON CONFLICT (day) DO UPDATE SET total = total + ?",
            (event.event.day, event.event.amount, event.event.amount),
        )

    @transactional_projector("refunds", selector=EventSelector(event_types=frozenset({Refunded})))
    def refunds(event: RecordedEvent, tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS refunds (day TEXT, amount INT)")
        tx.execute("INSERT INTO refunds VALUES (?, ?)", (event.event.day, event.event.amount))

    view = compose("money", sales, refunds)
    assert isinstance(view, TransactionalComposite)
    checkpoints = SqliteCheckpointStore(store)
    run_projection(view, store, ProjectionConfig(checkpoints))
    run_projection(view, store, ProjectionConfig(checkpoints))  # nothing new: no double count
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT day, total FROM sales").fetchall() == [("mon", 12)]
        assert conn.execute("SELECT day, amount FROM refunds").fetchall() == [("tue", 1)]
    finally:
        conn.close()
        store.close()


# -- one projection consuming another's output --------------------------------------------------


class DailyTotals(Emitter):
    name = "daily-totals"
    selector = EventSelector(streams=StreamPrefix("shop-"), event_types=frozenset({Sold}))

    def derive(self, event: RecordedEvent) -> list[object]:
        sale = event.event
        return [DayTotal(StreamId(f"daily-{sale.day}"), sale.shop, sale.amount)]


def test_a_downstream_projection_consumes_derived_streams(make_store: StoreMaker) -> None:
    store = make_store()
    for shop, day, amount in [("shop-1", "mon", 5), ("shop-2", "mon", 7), ("shop-1", "tue", 2)]:
        sell(store, shop, day, amount)
    totals: dict[str, int] = {}

    @projector("report", selector=EventSelector(streams=StreamPattern("daily-*")))
    def report(event: RecordedEvent) -> None:
        totals[event.stream_id] = totals.get(event.stream_id, 0) + event.event.amount

    upstream = DailyTotals(store)
    config = ProjectionConfig(InMemoryCheckpointStore(), page_size=2)
    run_projection(upstream, store, config)
    run_projection(report, store, config)
    assert totals == {"daily-mon": 12, "daily-tue": 2}
    assert upstream.emitted == 3
    derived = store.read_all(streams=StreamPrefix("daily-"))
    source = store.read_all(event_types=[Sold])
    assert [d.metadata.causation_id for d in derived] == [s.event_id for s in source]
    chain = causation_chain(store, derived[-1].event_id)
    assert [e.event_type for e in chain] == ["Sold", "DayTotal"]


def test_a_redelivered_source_event_emits_once(make_store: StoreMaker) -> None:
    store = make_store()
    sell(store, "shop-1", "mon", 5)
    source = store.read_all()[0]
    upstream = DailyTotals(store)
    upstream.apply(source)
    DailyTotals(make_store()).apply(source)  # another handle, after a crash
    upstream.apply(source)
    assert [e.event.amount for e in store.read_all(streams=StreamPrefix("daily-"))] == [5]
    assert (upstream.emitted, upstream.duplicates) == (1, 1)


def test_the_two_stages_run_continuously_side_by_side() -> None:
    store = InMemoryEventStore()
    totals: dict[str, int] = {}

    @projector("report", selector=EventSelector(streams=StreamPattern("daily-*")))
    def report(event: RecordedEvent) -> None:
        totals[event.stream_id] = totals.get(event.stream_id, 0) + event.event.amount

    up_config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.01)
    down_config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.01)
    with (
        running_projection(DailyTotals(store), store, up_config) as up,
        running_projection(report, store, down_config) as down,
    ):
        for amount in (1, 2, 3):
            sell(store, "shop-1", "wed", amount)
        assert up.wait_until(store.head(), timeout=5)
        assert down.wait_until(store.head(), timeout=5)
    assert totals == {"daily-wed": 6}


def test_emitter_function_form_and_errors() -> None:
    store = InMemoryEventStore()
    sell(store, "shop-1", "mon", 5)

    @emitter("echo", store=store, selector=EventSelector(event_types=frozenset({Sold})))
    def echo(event: RecordedEvent) -> list[object]:
        return [DayTotal(StreamId("echo-1"), event.event.shop, event.event.amount)]

    assert echo.name == "echo" and echo.selector is not None
    run_projection(echo, store, ProjectionConfig(InMemoryCheckpointStore()))
    assert store.stream_version(StreamId("echo-1")) == 1
    assert "emitted=1" in repr(echo)

    @emitter("quiet", store=store)
    def quiet(event: RecordedEvent) -> list[object]:
        return []

    quiet.apply(store.read_all()[0])
    assert quiet.emitted == 0

    @emitter("selfish", store=store)
    def selfish(event: RecordedEvent) -> list[object]:
        return [DayTotal(StreamId(f"$receipts-selfish-{event.event_id}"), "x", 1)]

    with pytest.raises(DefinitionError, match="own receipt stream"):
        selfish.apply(store.read_all()[0])
    with pytest.raises(DefinitionError, match="cannot be part of a stream id"):
        emitter("bad?", store=store)(quiet)
    with pytest.raises(ConfigurationError, match="max_conflicts"):
        DailyTotals(store, max_conflicts=0)
    with pytest.raises(ConfigurationError, match="not both"):
        DailyTotals(store, max_conflicts=2, retry=RetryPolicy())
    with pytest.raises(ConfigurationError, match="retry must be a RetryPolicy"):
        DailyTotals(store, retry=3)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError):
        Emitter.derive(echo, store.read_all()[0])


def test_an_emitter_gives_up_after_max_conflicts() -> None:
    inner = InMemoryEventStore()
    sell(inner, "shop-1", "mon", 5)

    class Busy:
        """Another writer always gets to the output stream first."""

        def __init__(self) -> None:
            self.types = inner.types

        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        def append(self, expected: Any, events: Any, **kwargs: Any) -> Any:
            sell(inner, "daily-mon", "mon", 0, Sold)  # moves daily-mon
            return inner.append(expected, events, **kwargs)

    busy = DailyTotals(Busy(), max_conflicts=3)  # type: ignore[arg-type]
    with pytest.raises(ConcurrencyError, match="gave up after 3 attempts"):
        busy.apply(inner.read_all()[0])


class _Contended:
    """A store where another writer moves the output stream before the first ``times``
    appends (``times=None``: before every one)."""

    def __init__(self, inner: InMemoryEventStore, times: int | None = None) -> None:
        self.inner, self.times, self.types = inner, times, inner.types

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append(self, expected: Any, events: Any, **kwargs: Any) -> Any:
        if self.times is None or self.times > 0:
            self.times = None if self.times is None else self.times - 1
            sell(self.inner, "daily-mon", "mon", 0, Sold)
        return self.inner.append(expected, events, **kwargs)


def test_an_emitter_backs_off_between_conflicts_with_its_retry_policy() -> None:
    """It used to retry at once, up to 20 times in a tight loop."""
    inner = InMemoryEventStore()
    sell(inner, "shop-1", "mon", 5)
    waits: list[RetryAttempt] = []
    policy = RetryPolicy(
        max_retries=3, base_delay=0.001, max_delay=0.01, jitter=0.0, on_retry=waits.append
    )
    busy = DailyTotals(_Contended(inner), retry=policy)  # type: ignore[arg-type]
    with pytest.raises(ConcurrencyError, match="gave up after 4 attempts"):
        busy.apply(inner.read_all()[0])
    assert [(w.attempt, w.delay) for w in waits] == [(1, 0.001), (2, 0.002), (3, 0.004)]
    assert waits[0].streams[1] == "daily-mon" and waits[0].conflicts[0].stream_id == "daily-mon"

    waits.clear()
    lucky = DailyTotals(_Contended(inner, times=2), retry=policy)  # type: ignore[arg-type]
    lucky.apply(inner.read_all()[0])
    assert lucky.emitted == 1 and [w.attempt for w in waits] == [1, 2]


def test_an_emitter_passes_over_its_own_receipts() -> None:
    """Like a process manager: a receipt is bookkeeping, not a fact to derive from (an
    emitter reading every event used to derive from each receipt it wrote, and so on)."""
    store = InMemoryEventStore()
    sell(store, "shop-1", "mon", 5)
    seen: list[str] = []

    @emitter("everything", store=store)
    def everything(event: RecordedEvent) -> list[object]:
        seen.append(event.event_type)
        if isinstance(event.event, DayTotal):
            return []
        return [DayTotal(StreamId(f"total-{event.position}"), "any", 1)]

    everything.apply(store.read_all()[0])
    written = store.read_all(after=1)
    receipt = next(r for r in written if r.stream_id.startswith("$receipts-everything-"))
    everything.apply(receipt)
    assert seen == ["Sold"] and everything.emitted == 1

    @emitter("other", store=store)
    def other(event: RecordedEvent) -> list[object]:
        seen.append(f"other saw {event.event_type}")
        return []

    other.apply(receipt)  # another emitter's receipt is an ordinary event to it
    assert seen[-1] == "other saw CommandIssued"
    run_projection(everything, store, ProjectionConfig(InMemoryCheckpointStore()))
    assert everything.emitted == 1 and everything.duplicates == 1  # the sale, redelivered
