"""Process managers: commands issued because of events, with causation and exactly-once effects."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from multistream_support import BACKENDS, StoreMaker, open_stores

from eventcore import (
    BusinessRuleViolation,
    Command,
    ConfigurationError,
    DefinitionError,
    InMemoryEventStore,
    SqliteEventStore,
    StreamId,
    execute,
    require,
    stream,
)
from eventcore.examples.shop import (
    EVENTS,
    Fulfilment,
    OrderShipped,
    PaymentReceived,
    populate,
)
from eventcore.projections import ProjectionConfig, run_projection
from eventcore.projections.api import ErrorPolicy, EventSelector
from eventcore.projections.checkpoints import InMemoryCheckpointStore
from eventcore.projections.correlation import causation_chain, causation_tree
from eventcore.projections.dead_letters import InMemoryDeadLetterStore
from eventcore.projections.errors import ProjectionFailed
from eventcore.projections.process import (
    CommandIssued,
    ProcessManager,
    execute_once,
    receipt_stream,
)
from eventcore.projections.sqlite import SqliteCheckpointStore
from eventcore.store import EventStore


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    yield from open_stores(request, tmp_path, request.param)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so no error policy catches it."""


def count(store: EventStore, event_type: str) -> int:
    return len(store.read_all(event_types=[event_type]))


def shipped_orders(store: EventStore) -> list[str]:
    return sorted(e.stream_id for e in store.read_all(event_types=[OrderShipped]))


# -- the shop's fulfilment, run by the runner ------------------------------------------------


def test_fulfilment_ships_each_paid_order_once(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    head = store.head()
    fulfilment = Fulfilment(store)
    config = ProjectionConfig(InMemoryCheckpointStore(), page_size=2)
    report = run_projection(fulfilment, store, config)
    assert report.applied == 6 and report.last_position >= head
    assert shipped_orders(store) == ["order-1", "order-2", "order-3", "order-4"]
    assert count(store, "CommandIssued") == 5  # payment-2 was refused: no receipt
    assert fulfilment.refused == [("payment-2", "no order order-9")]
    assert (fulfilment.issued, fulfilment.duplicates, fulfilment.rejections) == (5, 0, 1)
    # a full replay from position 0 (a rebuild, or a lost checkpoint) changes nothing
    again = Fulfilment(store)
    run_projection(again, store, ProjectionConfig(InMemoryCheckpointStore()))
    assert (again.issued, again.duplicates) == (0, 5)
    assert shipped_orders(store) == ["order-1", "order-2", "order-3", "order-4"]


def test_issued_commands_carry_causation_and_correlation(make_store: StoreMaker) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    run_projection(Fulfilment(store), store, ProjectionConfig(InMemoryCheckpointStore()))
    payment = next(e for e in store.read_all(event_types=[PaymentReceived]))
    shipped = next(e for e in store.read_all(event_types=[OrderShipped]))
    assert shipped.metadata.causation_id == payment.event_id
    assert shipped.metadata.correlation_id == payment.metadata.correlation_id
    assert shipped.metadata.custom == {"process": "fulfilment", "step": 0}
    assert [e.event_type for e in causation_chain(store, shipped.event_id)] == [
        "PaymentReceived",
        "OrderShipped",
    ]
    tree = causation_tree(store, payment.event_id)
    assert [e.event_type for e in tree.walk()] == [
        "PaymentReceived",
        "OrderShipped",
        "CommandIssued",
    ]
    receipt = tree.children[1].event.event
    assert receipt == CommandIssued(
        receipt_stream("fulfilment", payment.event_id),
        "fulfilment",
        payment.event_id,
        0,
        "ShipOrder",
    )


# -- crashes and redelivery ------------------------------------------------------------------


class CrashingCheckpoints(InMemoryCheckpointStore):
    """Dies on the first save: the commands ran, the checkpoint did not move."""

    def __init__(self) -> None:
        super().__init__()
        self.crash = True

    def save(self, name: str, position: int) -> None:
        if self.crash:
            self.crash = False
            raise Crash("killed before the checkpoint was saved")
        super().save(name, position)


def test_crash_between_execute_and_checkpoint_has_no_duplicate_effect(
    make_store: StoreMaker,
) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    checkpoints = CrashingCheckpoints()
    config = ProjectionConfig(checkpoints)
    with pytest.raises(Crash):
        run_projection(Fulfilment(store), store, config)
    assert checkpoints.load("fulfilment") is None
    assert len(shipped_orders(store)) == 4  # every effect happened before the crash
    restarted = Fulfilment(make_store(events=EVENTS))  # a new process: a new handle
    report = run_projection(restarted, store, config)
    assert report.applied == 6  # every payment was delivered again ...
    assert (restarted.issued, restarted.duplicates) == (0, 5)  # ... and nothing ran twice
    assert shipped_orders(store) == ["order-1", "order-2", "order-3", "order-4"]
    assert count(store, "CommandIssued") == 5


class DiesOnAppend:
    """A store that dies just before the n-th append of an event of type ``kind``."""

    def __init__(self, inner: EventStore, kind: type, n: int) -> None:
        self._inner, self._kind, self._left = inner, kind, n
        self.types = inner.types

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def append(self, expected: Any, events: Any, **kwargs: Any) -> Any:
        if any(isinstance(e, self._kind) for e in events):
            self._left -= 1
            if self._left == 0:
                raise Crash("killed in the middle of an event's commands")
        return self._inner.append(expected, events, **kwargs)


@dataclass(frozen=True)
class Requested:
    job: StreamId


@dataclass(frozen=True)
class Billed:
    account: StreamId
    job: str


@dataclass(frozen=True)
class Notified:
    inbox: StreamId
    job: str


class Bill(Command[None]):
    account: StreamId = stream()
    job: str

    def initial_state(self) -> None:
        return None

    def apply(self, state: None, event: Any) -> None:
        return None

    def handle(self, state: None) -> list[object]:  # not idempotent on its own
        return [Billed(self.account, self.job)]


class Notify(Command[None]):
    inbox: StreamId = stream()
    job: str

    def initial_state(self) -> None:
        return None

    def apply(self, state: None, event: Any) -> None:
        return None

    def handle(self, state: None) -> list[object]:
        return [Notified(self.inbox, self.job)]


class Billing(ProcessManager):
    name = "billing"
    selector = EventSelector(event_types=frozenset({Requested}))

    def react(self, event: Any) -> Iterator[Command[Any]]:
        job = event.event.job
        yield Bill(account=StreamId("account-1"), job=job)
        yield Notify(inbox=StreamId("inbox-1"), job=job)


def test_crash_between_two_commands_of_one_event_runs_only_the_missing_one(
    make_store: StoreMaker,
) -> None:
    store = make_store()
    for n in range(3):
        store.append({StreamId(f"job-{n}"): 0}, [Requested(StreamId(f"job-{n}"))])
    checkpoints = InMemoryCheckpointStore()
    dying = DiesOnAppend(store, Notified, 2)  # dies before notifying about job-1
    with pytest.raises(Crash):
        run_projection(Billing(dying), dying, ProjectionConfig(checkpoints))  # type: ignore[arg-type]
    assert [e.event.job for e in store.read_all(event_types=[Billed])] == ["job-0", "job-1"]
    assert [e.event.job for e in store.read_all(event_types=[Notified])] == ["job-0"]
    billing = Billing(store)
    run_projection(billing, store, ProjectionConfig(checkpoints))
    assert [e.event.job for e in store.read_all(event_types=[Billed])] == [
        "job-0",
        "job-1",
        "job-2",
    ]
    assert [e.event.job for e in store.read_all(event_types=[Notified])] == [
        "job-0",
        "job-1",
        "job-2",
    ]
    # the runner saved the checkpoint after job-0 on the way down; job-1 is delivered again
    assert (billing.issued, billing.duplicates) == (3, 1)


def test_a_runner_retry_after_a_failure_mid_event_does_not_repeat_effects() -> None:
    store = InMemoryEventStore()
    store.append({StreamId("job-1"): 0}, [Requested(StreamId("job-1"))])

    class Flaky:
        def __init__(self, inner: EventStore) -> None:
            self._inner, self.types, self.failed = inner, inner.types, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        def append(self, expected: Any, events: Any, **kwargs: Any) -> Any:
            if not self.failed and any(isinstance(e, Notified) for e in events):
                self.failed = True
                raise RuntimeError("mail server down")
            return self._inner.append(expected, events, **kwargs)

    flaky = Flaky(store)
    billing = Billing(flaky)  # type: ignore[arg-type]
    billing.error_policy = ErrorPolicy.retry(max_attempts=2, base_delay=0)
    report = run_projection(billing, flaky, ProjectionConfig(InMemoryCheckpointStore()))  # type: ignore[arg-type]
    assert report.retries == 1
    assert count(store, "Billed") == 1 and count(store, "Notified") == 1
    assert (billing.issued, billing.duplicates) == (2, 1)


def test_two_instances_racing_on_the_same_events_apply_each_effect_once(
    make_store: StoreMaker,
) -> None:
    store = make_store(events=EVENTS)
    populate(store)
    managers = [Fulfilment(make_store(events=EVENTS)) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(manager: Fulfilment) -> None:
        try:
            barrier.wait()
            run_projection(manager, manager.store, ProjectionConfig(InMemoryCheckpointStore()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert shipped_orders(store) == ["order-1", "order-2", "order-3", "order-4"]
    assert count(store, "CommandIssued") == 5
    assert sum(m.issued for m in managers) == 5
    assert sum(m.duplicates for m in managers) == 5


CHILD = textwrap.dedent(
    """
    import os, sys
    from eventcore import SqliteEventStore
    from eventcore.examples.shop import EVENTS, Fulfilment
    from eventcore.projections import ProjectionConfig, run_projection
    from eventcore.projections.sqlite import SqliteCheckpointStore

    path, die_after = sys.argv[1], int(sys.argv[2])
    store = SqliteEventStore(path, events=EVENTS)

    class Dying:
        def __init__(self, inner):
            self.inner, self.types, self.appends = inner, inner.types, 0
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def append(self, *args, **kwargs):
            written = self.inner.append(*args, **kwargs)
            self.appends += 1
            if self.appends == die_after:
                os._exit(3)  # the process dies: no cleanup, no checkpoint save
            return written

    dying = Dying(store)
    run_projection(Fulfilment(dying), dying, ProjectionConfig(SqliteCheckpointStore(path)))
    """
)


def test_a_killed_process_restarts_without_duplicate_effects(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    store = SqliteEventStore(path, events=EVENTS)
    try:
        populate(store)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), "3"], env=env, capture_output=True, timeout=60
        )
        assert child.returncode == 3, child.stderr.decode()
        checkpoints = SqliteCheckpointStore(path)
        assert checkpoints.load("fulfilment") is None
        assert len(shipped_orders(store)) == 2  # order-1, then order-3 (payment-3 was a no-op)
        restarted = Fulfilment(store)
        run_projection(restarted, store, ProjectionConfig(checkpoints))
        assert shipped_orders(store) == ["order-1", "order-2", "order-3", "order-4"]
        assert count(store, "CommandIssued") == 5
        assert (restarted.issued, restarted.duplicates) == (2, 3)
    finally:
        store.close()


# -- refusals, configuration, and managers without receipts ----------------------------------


class Strict(Fulfilment):
    name = "strict-fulfilment"

    def rejected(self, event: Any, command: Command[Any], error: BusinessRuleViolation) -> None:
        ProcessManager.rejected(self, event, command, error)


def test_a_refused_command_goes_to_the_error_policy_by_default() -> None:
    store = InMemoryEventStore(events=EVENTS)
    populate(store)
    stop = Strict(store)
    stop.error_policy = ErrorPolicy.stop()
    with pytest.raises(ProjectionFailed, match="no order order-9"):
        run_projection(stop, store, ProjectionConfig(InMemoryCheckpointStore()))
    quarantine = Strict(store)
    quarantine.name = "quarantine"
    quarantine.error_policy = ErrorPolicy.dead_letter()
    letters = InMemoryDeadLetterStore()
    config = ProjectionConfig(InMemoryCheckpointStore(), dead_letters=letters)
    report = run_projection(quarantine, store, config)
    assert report.dead_lettered == 1
    assert [d.stream_id for d in letters.list("quarantine")] == ["payment-2"]


class Marked(Command[frozenset[str]]):
    """Idempotent by its own stream: it folds the jobs already billed."""

    account: StreamId = stream()
    job: str

    def initial_state(self) -> frozenset[str]:
        return frozenset()

    def apply(self, billed: frozenset[str], event: Any) -> frozenset[str]:
        return billed | {event.job}

    def handle(self, billed: frozenset[str]) -> list[object]:
        return [] if self.job in billed else [Billed(self.account, self.job)]


class PlainBilling(ProcessManager):
    name = "plain-billing"
    receipts = False

    def react(self, event: Any) -> list[Command[Any]]:
        if isinstance(event.event, Requested):
            return [Marked(account=StreamId("account-1"), job=event.event.job)]
        return []


def test_without_receipts_the_command_must_be_idempotent_itself() -> None:
    store = InMemoryEventStore()
    req = store.append({StreamId("job-1"): 0}, [Requested(StreamId("job-1"))])[0]
    manager = PlainBilling(store)
    manager.apply(req)
    manager.apply(req)  # delivered twice
    assert count(store, "Billed") == 1
    assert count(store, "CommandIssued") == 0
    billed = store.read_all(event_types=[Billed])[0]
    assert billed.metadata.causation_id == req.event_id
    assert manager.issued == 2  # both ran; the second decided nothing


def test_execute_once_reports_duplicates() -> None:
    store = InMemoryEventStore()
    req = store.append({StreamId("job-1"): 0}, [Requested(StreamId("job-1"))])[0]
    bill = Bill(account=StreamId("account-1"), job="job-1")
    first = execute_once(store, bill, trigger=req, process="p")
    second = execute_once(store, bill, trigger=req, process="p")
    other_step = execute_once(store, bill, trigger=req, process="p", step=1)
    assert not first.duplicate and first.result is not None
    assert [e.event_type for e in first.result.events] == ["Billed", "CommandIssued"]
    assert second.duplicate and second.result is None
    assert not other_step.duplicate
    assert count(store, "Billed") == 2
    with pytest.raises(ConfigurationError, match="not a Command"):
        execute_once(store, "bill", trigger=req, process="p")  # type: ignore[arg-type]


def test_process_manager_definition_errors() -> None:
    store = InMemoryEventStore()

    class Nameless(ProcessManager):
        pass

    class BadName(ProcessManager):
        name = "bad*name"

    class ReturnsNone(ProcessManager):
        name = "none"

        def react(self, event: Any) -> Any:
            return None

    with pytest.raises(DefinitionError, match="needs a name"):
        Nameless(store)
    with pytest.raises(DefinitionError, match="cannot be part of a stream id"):
        BadName(store)
    req = store.append({StreamId("job-1"): 0}, [Requested(StreamId("job-1"))])[0]
    with pytest.raises(DefinitionError, match="returned None"):
        ReturnsNone(store).apply(req)
    with pytest.raises(NotImplementedError, match="react"):
        ProcessManager.react(ReturnsNone(store), req)
    assert "issued=0" in repr(ReturnsNone(store))


def test_a_command_rule_that_depends_on_state_is_decided_once() -> None:
    """Once a receipt exists the decision is final, even if the state later changes."""

    @dataclass(frozen=True)
    class Opened:
        door: StreamId

    class Open(Command[bool]):
        door: StreamId = stream()

        def initial_state(self) -> bool:
            return False

        def apply(self, is_open: bool, event: Any) -> bool:
            return True

        def handle(self, is_open: bool) -> list[object]:
            require(not is_open, "already open")
            return [Opened(self.door)]

    class Doorman(ProcessManager):
        name = "doorman"

        def react(self, event: Any) -> list[Command[Any]]:
            return [Open(door=StreamId("door-1"))] if isinstance(event.event, Requested) else []

    store = InMemoryEventStore()
    req = store.append({StreamId("job-1"): 0}, [Requested(StreamId("job-1"))])[0]
    doorman = Doorman(store)
    doorman.apply(req)
    doorman.apply(req)  # the receipt answers before the rule is even asked
    assert count(store, "Opened") == 1 and doorman.rejections == 0
    execute(store, Bill(account=StreamId("account-2"), job="x"))  # unrelated writes are fine


class Watching(ProcessManager):
    """No selector: sees every event; records what ``react`` was called with."""

    name = "watch"

    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self.seen: list[tuple[str, str]] = []

    def react(self, event: Any) -> Iterator[Command[Any]]:
        self.seen.append((event.event_type, str(event.stream_id)))
        if isinstance(event.event, Requested):
            yield Bill(account=StreamId("account-1"), job=event.event.job)


class WatchingToo(Watching):
    name = "watch-too"  # its receipt streams start with "$receipts-watch-"


def test_a_manager_without_selector_does_not_react_to_its_own_receipts(
    make_store: StoreMaker,
) -> None:
    store = make_store()
    store.append({StreamId("job-1"): 0}, [Requested(StreamId("job-1"))])
    too, watch = WatchingToo(store), Watching(store)
    too_config = ProjectionConfig(InMemoryCheckpointStore())
    watch_config = ProjectionConfig(InMemoryCheckpointStore())
    run_projection(too, store, too_config)
    run_projection(watch, store, watch_config)
    run_projection(too, store, too_config)  # now reads its own receipt and watch's events
    run_projection(watch, store, watch_config)  # and watch its own receipt
    receipts = store.read_all(event_types=[CommandIssued])
    assert [r.event.process for r in receipts] == ["watch-too", "watch"]
    own_too, own_watch = (str(r.stream_id) for r in receipts)
    assert count(store, "Billed") == 2
    seen_by_watch = {sid for _, sid in watch.seen}
    seen_by_too = {sid for _, sid in too.seen}
    assert watch.seen[-1] == ("Billed", "account-1")  # the last event before its receipt
    assert own_watch not in seen_by_watch and own_too not in seen_by_too
    # another manager's receipts are events like any other, even under a similar name
    assert own_too in seen_by_watch and own_watch in seen_by_too
