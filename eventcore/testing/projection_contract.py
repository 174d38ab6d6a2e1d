"""The projection contract: checkpoints, leadership, dead letters and the runner, on one store.

Subclass :class:`ProjectionContract` and give it four fixtures, each returning a factory:

- ``make_store(**kwargs) -> EventStore``: a new handle on one fresh database per test
  (``events=`` goes to the store);
- ``make_checkpoints(store) -> CheckpointStore`` (every call: a handle on the same
  checkpoints);
- ``make_dead_letters(store) -> DeadLetterStore``;
- ``make_leadership(store) -> Leadership``: every call is a *new instance* competing for
  the same names (for an in-process backend, return the same object each time).

Test names carry the behaviour numbers of the EventCore contract (``b20`` … ``b27``).
Call ``pytest.register_assert_rewrite("eventcore.testing.projection_contract",
"eventcore.testing.projection_checkpoints")`` in your ``conftest.py`` for readable failures
(the checkpoint and leadership tests live in the second module).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from eventcore.errors import (
    ConfigurationError,
    LeadershipUnavailable,
    StoreFailure,
    ValidationError,
)
from eventcore.events import RecordedEvent
from eventcore.projections import (
    CheckpointStore,
    DeadLetterStore,
    ErrorPolicy,
    EventSelector,
    Leadership,
    ProjectionConfig,
    ProjectionFailed,
    StopHandle,
    retry_dead_letters,
    wait_until,
)
from eventcore.projections import running_projection as _running_projection
from eventcore.store import EventStore
from eventcore.testing.projection_boundaries import WriteBoundaryProjections
from eventcore.testing.projection_checkpoints import (
    CheckpointAndLeadershipContract,
    Factory,
    StoreFactory,
)
from eventcore.testing.projection_helpers import (
    EVENTS,
    FailingReads,
    Flagged,
    Noted,
    Recorder,
    append,
    fill,
)
from eventcore.types import StreamPattern, StreamPrefix

__all__ = ["EVENTS", "Factory", "Flagged", "Noted", "ProjectionContract", "StoreFactory"]


class ProjectionContract(WriteBoundaryProjections, CheckpointAndLeadershipContract):
    """Behaviour every projection backend must show. Subclass it; provide the fixtures
    described in the module docstring.

    ``run_projection`` and ``running_projection`` are the runner under test: the blocking
    one by default;
    :class:`~eventcore.testing.projection_bridge.AsyncProjectionBridge` puts the asyncio
    one behind the same signatures (``tests/projections/test_async_projection_contract.py``).
    """

    running_projection = staticmethod(_running_projection)

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError(f"{type(self).__name__} must define make_store")

    @pytest.fixture
    def make_checkpoints(self) -> Factory:
        raise NotImplementedError(f"{type(self).__name__} must define make_checkpoints")

    @pytest.fixture
    def make_dead_letters(self) -> Factory:
        raise NotImplementedError(f"{type(self).__name__} must define make_dead_letters")

    @pytest.fixture
    def make_leadership(self) -> Factory:
        raise NotImplementedError(f"{type(self).__name__} must define make_leadership")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> EventStore:
        return make_store(events=EVENTS)

    @pytest.fixture
    def checkpoints(self, store: EventStore, make_checkpoints: Factory) -> CheckpointStore:
        return make_checkpoints(store)  # type: ignore[no-any-return]

    @pytest.fixture
    def dead_letters(self, store: EventStore, make_dead_letters: Factory) -> DeadLetterStore:
        return make_dead_letters(store)  # type: ignore[no-any-return]

    @pytest.fixture
    def sleeps(self) -> list[float]:
        return []

    @pytest.fixture
    def config(
        self, checkpoints: CheckpointStore, dead_letters: DeadLetterStore, sleeps: list[float]
    ) -> ProjectionConfig:
        return ProjectionConfig(
            checkpoints,
            dead_letters=dead_letters,
            page_size=4,
            poll_interval=0.05,
            sleep=sleeps.append,
        )

    # -- the runner: batch ------------------------------------------------------------------

    def test_batch_drains_every_page(self, store: EventStore, config: ProjectionConfig) -> None:
        fill(store, 25)
        rec = Recorder()
        report = self.run_projection(rec, store, config)
        assert rec.positions == list(range(1, 26))
        assert (report.applied, report.last_position, report.stopped_reason) == (
            25,
            25,
            "caught_up",
        )
        assert config.checkpoints.load("rec") == 25

    def test_batch_stops_at_the_head_seen_at_the_start(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        fill(store, 6)
        rec = Recorder()
        inner = rec.apply

        def apply_and_write(event: RecordedEvent) -> None:
            inner(event)
            if event.position == 1:
                append(store, "late-1", 99)

        rec.apply = apply_and_write  # type: ignore[method-assign]
        self.run_projection(rec, store, config)
        assert rec.positions == [1, 2, 3, 4, 5, 6]
        assert config.checkpoints.load("rec") == 6
        self.run_projection(rec, store, config)
        assert rec.positions == [1, 2, 3, 4, 5, 6, 7]

    def test_a_second_run_resumes_after_the_checkpoint(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        fill(store, 5)
        rec = Recorder()
        self.run_projection(rec, store, config)
        fill(store, 3)
        report = self.run_projection(rec, store, config)
        assert rec.positions == list(range(1, 9))
        assert (report.applied, report.last_position) == (3, 8)

    def test_an_empty_store_is_caught_up_at_zero(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        report = self.run_projection(Recorder(), store, config)
        assert (report.applied, report.last_position, report.stopped_reason) == (0, 0, "caught_up")

    @pytest.mark.parametrize(
        ("selector", "streams"),
        [
            (EventSelector(streams=StreamPrefix("order-")), {"order-1", "order-22"}),
            (EventSelector(streams=StreamPattern("order-?")), {"order-1"}),
            (
                EventSelector(streams=StreamPattern("*-[0-9]")),
                {"order-1", "customer-7", "my-order-1"},
            ),
            (
                EventSelector(streams=(StreamPrefix("customer-"), StreamPattern("order-??"))),
                {"customer-7", "order-22"},
            ),
        ],
    )
    def test_selectors_filter_in_the_store_and_the_checkpoint_moves_past_the_rest(
        self,
        store: EventStore,
        config: ProjectionConfig,
        selector: EventSelector,
        streams: set[str],
    ) -> None:
        names = ["order-1", "order-22", "customer-7", "my-order-1", "other"]
        fill(store, 30, names)
        rec = Recorder(selector=selector)
        self.run_projection(rec, store, config)
        expected = [r.position for r in store.read_all() if r.stream_id in streams]
        assert rec.positions == expected
        assert config.checkpoints.load("rec") == 30

    def test_event_type_selector_by_class_and_name(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        for i in range(12):
            append(store, f"s-{i % 2}", i, Flagged if i % 3 == 0 else Noted)
        by_class = Recorder("by-class", selector=EventSelector(event_types=frozenset({Flagged})))
        by_name = Recorder("by-name", selector=EventSelector(event_types=frozenset({"Flagged"})))
        self.run_projection(by_class, store, config)
        self.run_projection(by_name, store, config)
        expected = [r.position for r in store.read_all() if r.event_type == "Flagged"]
        assert by_class.positions == by_name.positions == expected == [1, 4, 7, 10]
        assert config.checkpoints.load("by-class") == 12

    # -- the runner: continuous ---------------------------------------------------------------

    def test_continuous_follows_new_events_and_stops_cleanly(
        self, store: EventStore, make_store: StoreFactory, config: ProjectionConfig
    ) -> None:
        fill(store, 3)
        rec = Recorder()
        writer = make_store(events=EVENTS)
        with self.running_projection(rec, store, config) as handle:
            assert handle.wait_until(3, timeout=5)
            for i in range(10):
                last = append(writer, "live-1", i)
            assert handle.wait_until(last.position, timeout=5)
            assert wait_until(config.checkpoints, "rec", last.position, 5)
        assert not handle.running
        assert handle.report is not None
        assert (handle.report.stopped_reason, handle.report.applied) == ("stopped", 13)
        assert rec.positions == list(range(1, 14))
        assert config.checkpoints.load("rec") == 13

    def test_a_stop_finishes_the_event_in_hand_and_saves_the_checkpoint(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        fill(store, 10)
        stop = StopHandle()
        rec = Recorder()
        inner = rec.apply

        def apply_then_stop(event: RecordedEvent) -> None:
            if event.position == 3:
                stop.stop()
            inner(event)

        rec.apply = apply_then_stop  # type: ignore[method-assign]
        report = self.run_projection(rec, store, config, mode="continuous", stop=stop)
        assert rec.positions == [1, 2, 3]
        assert (report.stopped_reason, report.last_position) == ("stopped", 3)
        assert config.checkpoints.load("rec") == 3

    def test_stop_from_another_thread_returns_promptly(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        stop = StopHandle()
        results: list[Any] = []
        thread = threading.Thread(
            target=lambda: results.append(
                self.run_projection(Recorder(), store, config, mode="continuous", stop=stop)
            )
        )
        thread.start()
        time.sleep(0.1)
        started = time.monotonic()
        stop.stop()
        thread.join(5)
        assert not thread.is_alive()
        assert time.monotonic() - started < 2
        assert results[0].stopped_reason == "stopped"

    def test_wait_for_events(self, store: EventStore, make_store: StoreFactory) -> None:
        wait = getattr(store, "wait_for_events", None)
        if wait is None:
            pytest.skip("this store has no wait_for_events")
        append(store, "w-1", 0)
        assert wait(0, 1.0) is True
        started = time.monotonic()
        assert wait(1, 0.1) is False
        assert time.monotonic() - started >= 0.09
        writer = make_store(events=EVENTS)
        timer = threading.Timer(0.1, lambda: append(writer, "w-1", 1))
        timer.start()
        started = time.monotonic()
        assert wait(1, 5.0) is True
        assert time.monotonic() - started < 2.0
        timer.join()
        with pytest.raises(ValidationError):
            wait(-1, 1.0)

    # -- error policies ---------------------------------------------------------------------

    def test_a_poison_event_stops_the_projection_before_it(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        fill(store, 8)
        rec = Recorder(fail={5: -1})
        with pytest.raises(ProjectionFailed, match="'rec' stopped at position 5") as info:
            self.run_projection(rec, store, config)
        assert info.value.position == 5
        assert isinstance(info.value.__cause__, RuntimeError)
        assert info.value.report is not None and info.value.report.applied == 4
        assert rec.positions == [1, 2, 3, 4]
        assert config.checkpoints.load("rec") == 4
        rec.fail.clear()
        self.run_projection(rec, store, config)
        assert rec.positions == list(range(1, 9))

    def test_a_poison_event_can_be_skipped(
        self, store: EventStore, config: ProjectionConfig
    ) -> None:
        fill(store, 6)
        rec = Recorder(error_policy=ErrorPolicy.skip(), fail={2: -1, 5: -1})
        report = self.run_projection(rec, store, config)
        assert rec.positions == [1, 3, 4, 6]
        assert (report.applied, report.skipped) == (4, 2)
        assert config.checkpoints.load("rec") == 6

    def test_a_flaky_projector_succeeds_on_the_third_attempt_in_order(
        self, store: EventStore, config: ProjectionConfig, sleeps: list[float]
    ) -> None:
        fill(store, 5)
        rec = Recorder(error_policy=ErrorPolicy.retry(max_attempts=3), fail={3: 2})
        report = self.run_projection(rec, store, config)
        assert rec.positions == [1, 2, 3, 4, 5], "retries never break ordering"
        assert rec.attempts[3] == 3
        assert (report.applied, report.retries) == (5, 2)
        assert sleeps == [0.1, 0.2]

    def test_retries_exhausted_then_stop(
        self, store: EventStore, config: ProjectionConfig, sleeps: list[float]
    ) -> None:
        fill(store, 3)
        rec = Recorder(error_policy=ErrorPolicy.retry(max_attempts=4, max_delay=0.3), fail={2: -1})
        with pytest.raises(ProjectionFailed, match="after 4 attempts"):
            self.run_projection(rec, store, config)
        assert sleeps == [0.1, 0.2, 0.3]
        assert config.checkpoints.load("rec") == 1

    # -- dead letters -------------------------------------------------------------------------

    def test_dead_letters_record_list_and_go_on(
        self, store: EventStore, config: ProjectionConfig, dead_letters: DeadLetterStore
    ) -> None:
        fill(store, 6)
        policy = ErrorPolicy.retry(max_attempts=2, then="dead_letter")
        rec = Recorder(error_policy=policy, fail={2: -1, 4: -1})
        report = self.run_projection(rec, store, config)
        assert rec.positions == [1, 3, 5, 6]
        assert (report.applied, report.dead_lettered, report.last_position) == (4, 2, 6)
        letters = dead_letters.list("rec")
        assert [d.position for d in letters] == [2, 4]
        event = store.read_all(after=1, limit=1)[0]
        first = letters[0]
        assert (first.projection, first.event_id, first.stream_id, first.event_type) == (
            "rec",
            event.event_id,
            event.stream_id,
            "Noted",
        )
        assert first.error_type == "builtins.RuntimeError"
        assert first.message == "poison at 2 (attempt 2)"
        assert "RuntimeError: poison at 2" in first.traceback
        assert first.attempts == 2
        assert first.recorded_at.tzinfo is not None
        assert dead_letters.list("other") == []
        assert dead_letters.get("rec", 4) == letters[1]
        assert dead_letters.get("rec", 3) is None

    def test_dead_letters_retry_and_discard(
        self, store: EventStore, config: ProjectionConfig, dead_letters: DeadLetterStore
    ) -> None:
        fill(store, 9)
        rec = Recorder(error_policy=ErrorPolicy.dead_letter(), fail={2: -1, 5: -1, 8: -1})
        self.run_projection(rec, store, config)
        assert [d.position for d in dead_letters.list("rec")] == [2, 5, 8]
        rec.fail = {5: -1, 8: -1}
        outcome = retry_dead_letters(rec, store, dead_letters)
        assert outcome.applied == (2,)
        assert [d.position for d in outcome.failed] == [5]
        assert [d.position for d in outcome.held_back] == [8], "same stream as 5: held back"
        kept = dead_letters.get("rec", 5)
        assert kept is not None and kept.attempts == 2
        rec.fail = {}
        outcome = retry_dead_letters(rec, store, dead_letters, position=8)
        assert outcome.applied == (8,)
        assert rec.positions[-2:] == [2, 8], "dead-lettered events arrive out of order"
        assert dead_letters.discard("rec", 5) == 1
        assert dead_letters.list("rec") == []
        assert dead_letters.discard("rec") == 0
        assert config.checkpoints.load("rec") == 9, "retrying does not touch the checkpoint"

    def test_dead_letter_discard_all_of_one_projection(
        self, store: EventStore, config: ProjectionConfig, dead_letters: DeadLetterStore
    ) -> None:
        fill(store, 4)
        self.run_projection(
            Recorder("x", error_policy=ErrorPolicy.dead_letter(), fail={1: -1, 3: -1}),
            store,
            config,
        )
        self.run_projection(
            Recorder("y", error_policy=ErrorPolicy.dead_letter(), fail={2: -1}), store, config
        )
        assert dead_letters.discard("x") == 2
        assert [d.position for d in dead_letters.list("y")] == [2]

    def test_dead_lettering_needs_a_dead_letter_store(
        self, store: EventStore, checkpoints: CheckpointStore
    ) -> None:
        rec = Recorder(error_policy=ErrorPolicy.dead_letter())
        with pytest.raises(ConfigurationError, match="dead_letters"):
            self.run_projection(rec, store, ProjectionConfig(checkpoints))

    # -- read failures ------------------------------------------------------------------------

    def test_read_failures_back_off_and_recover(
        self, store: EventStore, config: ProjectionConfig, sleeps: list[float]
    ) -> None:
        fill(store, 5)
        flaky = FailingReads(store, failures=3)
        rec = Recorder()
        self.run_projection(rec, flaky, config)
        assert rec.positions == [1, 2, 3, 4, 5]
        assert sleeps == [0.1, 0.2, 0.4]

    def test_read_failures_give_up_with_a_clear_error(
        self, store: EventStore, config: ProjectionConfig, sleeps: list[float]
    ) -> None:
        fill(store, 9)
        rec = Recorder()
        self.run_projection(rec, store, config)
        fill(store, 2)
        broken = FailingReads(store, failures=1000)
        with pytest.raises(ProjectionFailed) as info:
            self.run_projection(rec, broken, config)
        error = info.value
        assert (error.projection, error.position) == ("rec", 9)
        assert "'rec'" in str(error) and "5 times in a row" in str(error)
        assert isinstance(error.__cause__, StoreFailure)
        assert broken.calls == 5
        assert sleeps == [0.1, 0.2, 0.4, 0.8]

    # -- leadership in the runner -------------------------------------------------------------

    def test_a_second_runner_is_refused(
        self, store: EventStore, config: ProjectionConfig, make_leadership: Factory
    ) -> None:
        holder: Leadership = make_leadership(store)
        assert holder.acquire("rec")
        runner = ProjectionConfig(config.checkpoints, leadership=make_leadership(store))
        with pytest.raises(LeadershipUnavailable, match="'rec' is already running"):
            self.run_projection(Recorder(), store, runner)
        holder.release("rec")
        assert self.run_projection(Recorder(), store, runner).stopped_reason == "caught_up"
        assert holder.acquire("rec"), "the runner released the leadership"
        holder.release("rec")

    def test_waiting_for_leadership(
        self, store: EventStore, config: ProjectionConfig, make_leadership: Factory
    ) -> None:
        fill(store, 2)
        holder: Leadership = make_leadership(store)
        assert holder.acquire("rec")
        bounded = ProjectionConfig(
            config.checkpoints,
            leadership=make_leadership(store),
            poll_interval=0.02,
            wait_for_leadership=0.1,
        )
        with pytest.raises(LeadershipUnavailable, match=r"waited 0\.1s"):
            self.run_projection(Recorder(), store, bounded)
        threading.Timer(0.1, lambda: holder.release("rec")).start()
        patient = ProjectionConfig(
            config.checkpoints,
            leadership=make_leadership(store),
            poll_interval=0.02,
            wait_for_leadership=True,
        )
        rec = Recorder()
        assert self.run_projection(rec, store, patient).applied == 2
