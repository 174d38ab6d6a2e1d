"""The projection runner's building blocks: policies, selectors, configuration, helpers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from eventcore import InMemoryEventStore, StreamId, StreamPattern, StreamPrefix
from eventcore.errors import (
    ConfigurationError,
    InvalidStreamSelector,
    LeadershipUnavailable,
    ValidationError,
)
from eventcore.events import RecordedEvent
from eventcore.projections import (
    DEFAULT_ERROR_POLICY,
    ErrorPolicy,
    EventSelector,
    IdempotentProjector,
    InMemoryCheckpointStore,
    InMemorySeenPositions,
    InProcessLeadership,
    ProjectionConfig,
    ProjectionFailed,
    ProjectionReport,
    StopHandle,
    idempotency_key,
    is_transactional,
    projection_lag,
    projector,
    run_projection,
    running_projection,
    transactional_projector,
    wait_until,
)


@dataclass(frozen=True)
class Noted:
    topic: StreamId
    n: int


def fill(store: InMemoryEventStore, count: int, stream: str = "t-1") -> list[RecordedEvent]:
    sid = StreamId(stream)
    out: list[RecordedEvent] = []
    for i in range(count):
        out += store.append({sid: store.stream_version(sid)}, [Noted(sid, i)])
    return out


# -- error policies ----------------------------------------------------------------------------


def test_default_policy_is_three_attempts_then_stop() -> None:
    assert ErrorPolicy.retry(3, 0.1, 5.0, then="stop") == DEFAULT_ERROR_POLICY
    assert DEFAULT_ERROR_POLICY.delays() == [0.1, 0.2]


def test_backoff_is_capped() -> None:
    policy = ErrorPolicy.retry(max_attempts=8, base_delay=1.0, max_delay=5.0)
    assert policy.delays() == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert policy.delay(8) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": True},
        {"base_delay": -1},
        {"max_delay": float("nan")},
        {"multiplier": 0.5},
        {"then": "explode"},
    ],
)
def test_bad_policies_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ErrorPolicy(**kwargs)


def test_single_attempt_policies() -> None:
    assert [ErrorPolicy.stop().then, ErrorPolicy.skip().then, ErrorPolicy.dead_letter().then] == [
        "stop",
        "skip",
        "dead_letter",
    ]
    assert ErrorPolicy.skip().delays() == []


# -- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["order-", ["order-"], 42, ()])
def test_stream_selectors_must_be_wrapped(bad: object) -> None:
    with pytest.raises(InvalidStreamSelector):
        EventSelector(streams=bad)  # type: ignore[arg-type]


def test_selector_normalises_its_arguments() -> None:
    single = EventSelector(streams=(StreamPrefix("a-"),), event_types="Noted")  # type: ignore[arg-type]
    assert single.streams == StreamPrefix("a-")
    assert single.event_types == frozenset({"Noted"})
    listed = EventSelector(streams=[StreamPrefix("a-"), StreamPrefix("a-")])  # type: ignore[arg-type]
    assert listed.streams == StreamPrefix("a-")
    with pytest.raises(ConfigurationError):
        EventSelector(event_types=frozenset({3}))  # type: ignore[arg-type]


def test_selector_matches_like_the_store_filters() -> None:
    store = InMemoryEventStore()
    for name in ["order-1", "order-22", "customer-7", "other"]:
        fill(store, 2, name)
    selector = EventSelector(
        streams=(StreamPattern("order-?"), StreamPrefix("customer-")), event_types={Noted}
    )
    by_matching = [e.position for e in store.read_all() if selector.matches(e)]
    assert by_matching == [e.position for e in selector.read(store, after=0, limit=100)]
    assert by_matching == [1, 2, 5, 6]
    assert [e.position for e in selector.read(store, after=1, limit=2)] == [2, 5]
    assert not EventSelector(event_types=frozenset({"Other"})).matches(store.read_all()[0])


# -- projectors and configuration ----------------------------------------------------------------


def test_projector_decorator() -> None:
    seen: list[int] = []

    @projector("p", error_policy=ErrorPolicy.skip())
    def p(event: RecordedEvent) -> None:
        seen.append(event.position)

    store = InMemoryEventStore()
    fill(store, 2)
    p(store.read_all()[0])
    assert seen == [1]
    assert (p.name, p.selector, p.error_policy) == ("p", None, ErrorPolicy.skip())
    assert not is_transactional(p)

    @transactional_projector("t")
    def t(event: RecordedEvent, tx: Any) -> None:
        pass

    assert is_transactional(t)
    with pytest.raises(ConfigurationError):
        projector("")(lambda e: None)
    with pytest.raises(ConfigurationError):
        projector("x", selector="order-")(lambda e: None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"page_size": 0},
        {"poll_interval": 0},
        {"max_read_failures": 0},
        {"read_backoff": (2.0, 1.0)},
        {"read_backoff": 1.0},
        {"wait_for_leadership": -1},
        {"leadership": object()},
        {"dead_letters": object()},
    ],
)
def test_bad_configurations_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ProjectionConfig(InMemoryCheckpointStore(), **changes)
    with pytest.raises(ConfigurationError, match="CheckpointStore"):
        ProjectionConfig(object())  # type: ignore[arg-type]


def test_bad_runs_are_rejected() -> None:
    store = InMemoryEventStore()
    config = ProjectionConfig(InMemoryCheckpointStore())

    class Nameless:
        def apply(self, event: RecordedEvent) -> None:
            pass

    with pytest.raises(ConfigurationError, match="name"):
        run_projection(Nameless(), store, config)
    with pytest.raises(ConfigurationError, match="mode"):
        run_projection(projector("p")(lambda e: None), store, config, mode="forever")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="transactional"):
        run_projection(transactional_projector("t")(lambda e, tx: None), store, config)
    with pytest.raises(ConfigurationError, match="EventStore"):
        run_projection(projector("p")(lambda e: None), object(), config)  # type: ignore[arg-type]


# -- continuous mode in a thread ------------------------------------------------------------------


def test_running_projection_raises_the_projection_error_on_exit() -> None:
    store = InMemoryEventStore()
    fill(store, 3)

    @projector("bad", error_policy=ErrorPolicy.stop())
    def bad(event: RecordedEvent) -> None:
        if event.position == 2:
            raise KeyError("missing")

    config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.02)
    with pytest.raises(ProjectionFailed, match="position 2"):  # noqa: SIM117
        with running_projection(bad, store, config) as handle:
            with pytest.raises(ProjectionFailed):
                handle.wait_until(3, timeout=5)
    assert handle.error is not None and not handle.running
    assert config.checkpoints.load("bad") == 1


def test_running_projection_lets_the_block_error_through() -> None:
    store = InMemoryEventStore()
    config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.02)
    with pytest.raises(ZeroDivisionError):  # noqa: SIM117
        with running_projection(projector("p")(lambda e: None), store, config) as handle:
            assert repr(handle) == "ProjectionHandle('p', running)"
            raise ZeroDivisionError
    assert not handle.running


def test_read_your_writes() -> None:
    store = InMemoryEventStore()
    totals: dict[str, int] = {}

    @projector("totals")
    def add(event: RecordedEvent) -> None:
        totals[event.stream_id] = totals.get(event.stream_id, 0) + event.event.n

    checkpoints = InMemoryCheckpointStore()
    config = ProjectionConfig(checkpoints, poll_interval=1.0)
    with running_projection(add, store, config):
        written = fill(store, 4)
        assert wait_until(checkpoints, "totals", written[-1].position, 5)
        assert totals == {"t-1": 0 + 1 + 2 + 3}
        assert projection_lag(store, checkpoints, "totals") == 0
    assert wait_until(checkpoints, "totals", 99, 0.05) is False


def test_wait_for_leadership_can_be_stopped() -> None:
    store = InMemoryEventStore()
    leadership = InProcessLeadership()
    assert leadership.acquire("p")
    stop = StopHandle()
    config = ProjectionConfig(
        InMemoryCheckpointStore(),
        leadership=leadership,
        wait_for_leadership=True,
        poll_interval=0.02,
    )
    threading.Timer(0.1, stop.stop).start()
    report = run_projection(projector("p")(lambda e: None), store, config, stop=stop)
    assert report == ProjectionReport("p", 0, 0, 0, 0, 0, "stopped")
    with pytest.raises(LeadershipUnavailable, match="another runner in this process"):
        run_projection(
            projector("p")(lambda e: None),
            store,
            ProjectionConfig(InMemoryCheckpointStore(), leadership=leadership),
        )


def test_a_store_without_wait_for_events_is_polled() -> None:
    from eventcore.testing.faults import StoreWrapper

    store = InMemoryEventStore()
    seen: list[int] = []
    config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.02)
    with running_projection(
        projector("p")(lambda e: seen.append(e.position)), StoreWrapper(store), config
    ) as h:
        time.sleep(0.05)
        fill(store, 2)
        assert h.wait_until(2, 5)
    assert seen == [1, 2]


# -- idempotence helpers ------------------------------------------------------------------------


def test_idempotent_projector_skips_positions_already_applied() -> None:
    store = InMemoryEventStore()
    events = fill(store, 3)
    applied: list[int] = []
    inner = projector("p", error_policy=ErrorPolicy.skip())(lambda e: applied.append(e.position))
    guarded = IdempotentProjector(inner, InMemorySeenPositions(keep=2))
    for event in events + events[1:]:
        guarded.apply(event)
    assert applied == [1, 2, 3]
    assert guarded.error_policy == ErrorPolicy.skip()
    guarded.apply(events[0])  # forgotten: keep=2
    assert applied == [1, 2, 3, 1]
    assert idempotency_key("p", events[0]) == f"p:{events[0].event_id}"
    with pytest.raises(ConfigurationError):
        IdempotentProjector(transactional_projector("t")(lambda e, tx: None))


def test_in_memory_checkpoints_validate_and_reset() -> None:
    checkpoints = InMemoryCheckpointStore()
    checkpoints.save("p", 3)
    checkpoints.reset("p")
    assert checkpoints.load("p") is None
    with pytest.raises(ValidationError):
        checkpoints.load("")
    with pytest.raises(ValidationError):
        wait_until(checkpoints, "p", 1, -1)


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), True, "1", 10.0**9])
def test_wait_until_refuses_timeouts_no_wait_could_honour(timeout: object) -> None:
    with pytest.raises(ValidationError, match="finite number of seconds"):
        wait_until(InMemoryCheckpointStore(), "p", 1, timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("position", [-1, 2**63, True, 1.0])
def test_checkpoint_positions_are_bounded_like_store_positions(position: object) -> None:
    checkpoints = InMemoryCheckpointStore()
    with pytest.raises(ValidationError, match="checkpoint position"):
        checkpoints.save("p", position)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="checkpoint position"):
        wait_until(checkpoints, "p", position, 0)  # type: ignore[arg-type]
    assert checkpoints.load("p") is None
