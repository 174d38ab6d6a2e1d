"""The projection runner: read pages after the checkpoint, apply, save, repeat.

``run_projection(projector, store, config)`` in **batch** mode drains every page up to the
head seen at the start and returns; in **continuous** mode it then follows new events
(woken by the store's ``wait_for_events`` where it has one, polling otherwise) until a
:class:`~eventcore.projections.StopHandle` is stopped. ``running_projection`` runs it in a
background thread for the length of a ``with`` block.

Each page is handled in position order: every event is applied under the projector's
:class:`~eventcore.projections.ErrorPolicy`, then the checkpoint is saved once for the
page. For a plain projector the checkpoint is saved after its effects (at-least-once: a
crash re-delivers at most one page). For a transactional projector the page's writes and
the checkpoint commit in one transaction (exactly-once effects); the page is applied
without savepoints and, only if an ``apply`` raises, rolled back and redone with a
savepoint per event.

The rules of a run live in :mod:`eventcore.projections.step` (sans-IO), shared with the
asyncio runner (:mod:`eventcore.projections.aio`); this module performs its effects.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from eventcore.errors import ConfigurationError
from eventcore.projections.api import (
    ProjectionReport,
    StopHandle,
    check_projection_name,
)
from eventcore.projections.checkpoints import (
    TransactionalCheckpointStore,
    wait_until,
)
from eventcore.projections.config import ProjectionConfig
from eventcore.projections.leadership import Leadership
from eventcore.projections.step import (
    AcquireLeadership,
    ApplyEvents,
    ApplyOne,
    BeginTransaction,
    EndTransaction,
    HoldsLeadership,
    Interrupted,
    LeadershipHolder,
    LoadCheckpoint,
    Mode,
    ProjectionSteps,
    ReadHead,
    ReadPage,
    RecordDeadLetter,
    ReleaseLeadership,
    SaveCheckpoint,
    SaveInTransaction,
    Sleep,
    WaitForEvents,
    WaitForStop,
)
from eventcore.store import EventStore

__all__ = ["Mode", "ProjectionHandle", "run_projection", "running_projection"]

T = TypeVar("T")


class _Run:
    """One call of :func:`run_projection`: the blocking shell around
    :class:`~eventcore.projections.step.ProjectionSteps`."""

    def __init__(
        self,
        projector: Any,
        store: EventStore,
        config: ProjectionConfig,
        mode: Mode,
        stop: StopHandle,
    ) -> None:
        if not isinstance(stop, StopHandle):
            raise ConfigurationError(f"stop must be a StopHandle, got {stop!r}")
        self.steps = ProjectionSteps(projector, config, mode, stop.checker())
        for method in ("read_all", "head"):
            if not callable(getattr(store, method, None)):
                raise ConfigurationError(f"store must be an EventStore, got {store!r}")
        if self.steps.transactional and not isinstance(
            config.checkpoints, TransactionalCheckpointStore
        ):
            raise ConfigurationError(
                f"projector {self.steps.name!r} is transactional: its checkpoints must live in "
                "the same database, in a SqliteCheckpointStore or PostgresCheckpointStore, not "
                f"{type(config.checkpoints).__name__}"
            )
        self.name = self.steps.name
        self.projector = projector
        self.store = store
        self.config = config
        self.stop = stop
        self._transactions: list[Any] = []
        self._perform: dict[type, Callable[[Any], Any]] = {
            LoadCheckpoint: lambda e: config.checkpoints.load(self.name),
            SaveCheckpoint: lambda e: config.checkpoints.save(self.name, e.position),
            ReadHead: lambda e: store.head(),
            ReadPage: lambda e: e.selector.read(store, after=e.after, limit=e.limit),
            ApplyEvents: self._apply_events,
            ApplyOne: self._apply_one,
            BeginTransaction: self._begin,
            EndTransaction: self._end,
            SaveInTransaction: lambda e: self._tx_checkpoints.save_in(
                e.tx, self.name, e.position, expected=e.expected
            ),
            RecordDeadLetter: self._record,
            Sleep: lambda e: config.sleep(e.seconds),
            WaitForEvents: self._wait,
            WaitForStop: lambda e: stop.wait(e.timeout),
            AcquireLeadership: lambda e: self._leadership.acquire(self.name),
            ReleaseLeadership: lambda e: self._leadership.release(self.name),
            HoldsLeadership: self._holds,
            LeadershipHolder: self._holder,
        }

    @property
    def _leadership(self) -> Leadership:
        leadership = self.config.leadership
        assert leadership is not None  # the steps ask only when there is one
        return leadership

    @property
    def _tx_checkpoints(self) -> TransactionalCheckpointStore[Any]:
        return self.config.checkpoints  # type: ignore[return-value]

    def run(self) -> ProjectionReport:
        steps = self.steps.run()
        perform = self._perform
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = steps.send(value) if error is None else steps.throw(error)
                except StopIteration as done:
                    report: ProjectionReport = done.value
                    return report
                error = None
                try:
                    value = perform[type(effect)](effect)
                except BaseException as exc:  # thrown into the steps, which decide
                    value, error = None, exc
        finally:
            steps.close()  # ends a page span the steps still hold, here and now

    # -- effects ---------------------------------------------------------------------------

    def _apply_events(self, effect: ApplyEvents) -> tuple[int, Exception | None]:
        apply = self.projector.apply
        stopped = self.steps.stopped
        events = effect.events
        tx = effect.tx
        index = effect.start
        count = len(events)
        try:
            if tx is None:
                while index < count:
                    if stopped():
                        break
                    apply(events[index])
                    index += 1
            else:
                while index < count:
                    if stopped():
                        break
                    apply(events[index], tx)
                    index += 1
        except Exception as exc:  # the error policy decides what happens next
            return index, exc
        except BaseException as exc:
            raise Interrupted(index, exc) from exc
        return index, None

    def _apply_one(self, effect: ApplyOne) -> Exception | None:
        apply = self.projector.apply
        event, tx = effect.event, effect.tx
        try:
            if tx is None:
                apply(event)
            elif effect.savepoint:
                with self._tx_checkpoints.savepoint(tx):
                    apply(event, tx)
            else:
                apply(event, tx)
        except Exception as exc:
            return exc
        return None

    def _begin(self, effect: BeginTransaction) -> Any:
        manager = self._tx_checkpoints.transaction()
        tx = manager.__enter__()
        self._transactions.append(manager)
        return tx

    def _end(self, effect: EndTransaction) -> None:
        manager = self._transactions.pop()
        error = effect.error
        if error is None:
            manager.__exit__(None, None, None)
        elif not manager.__exit__(type(error), error, error.__traceback__):
            raise error

    def _record(self, effect: RecordDeadLetter) -> None:
        dead_letters = self.config.dead_letters
        assert dead_letters is not None  # checked when the run was set up
        if effect.tx is not None:
            dead_letters.record_in(effect.tx, effect.letter)  # type: ignore[attr-defined]
        else:
            dead_letters.record(effect.letter)

    def _wait(self, effect: WaitForEvents) -> None:
        """Wait for events after the current position, or poll_interval, or a stop."""
        waiter = getattr(self.store, "wait_for_events", None)
        if callable(waiter):
            # In slices, so that a stop request is noticed within STOP_CHECK seconds.
            waiter(effect.after, effect.timeout)
        else:
            self.stop.wait(self.config.poll_interval)

    def _holds(self, effect: HoldsLeadership) -> bool | None:
        holds = getattr(self.config.leadership, "holds", None)
        return bool(holds(self.name)) if callable(holds) else None

    def _holder(self, effect: LeadershipHolder) -> object:
        describe = getattr(self.config.leadership, "holder", None)
        return describe(self.name) if callable(describe) else None


def run_projection(
    projector: Any,
    store: EventStore,
    config: ProjectionConfig,
    *,
    mode: Mode = "batch",
    stop: StopHandle | None = None,
) -> ProjectionReport:
    """Run ``projector`` over ``store`` from its checkpoint; return what it did.

    ``mode="batch"`` handles every selected event up to the head at the start (all
    pages) and returns with ``stopped_reason="caught_up"``. ``mode="continuous"`` keeps
    following new events until ``stop.stop()`` is called, then finishes the event in hand,
    saves the checkpoint and returns with ``stopped_reason="stopped"``.

    Raises :class:`~eventcore.errors.LeadershipUnavailable` when another instance leads
    (unless ``config.wait_for_leadership``), and
    :class:`~eventcore.projections.ProjectionFailed` when the error policy says stop or the
    store keeps failing; the checkpoint then covers everything handled before.
    """
    return _Run(projector, store, config, mode, stop or StopHandle()).run()


class ProjectionHandle:
    """A projection running in continuous mode in a background thread.

    Made by :func:`running_projection`; use :meth:`wait_until` for read-your-writes.
    """

    def __init__(self, projector: Any, store: EventStore, config: ProjectionConfig) -> None:
        self.name: str = check_projection_name(getattr(projector, "name", None))
        self.config = config
        self.stop_handle = StopHandle()
        self.report: ProjectionReport | None = None
        self.error: BaseException | None = None
        run = _Run(projector, store, config, "continuous", self.stop_handle)  # validates now
        self._thread = threading.Thread(
            target=self._main, args=(run,), name=f"eventcore-projection-{self.name}", daemon=True
        )

    def _main(self, run: _Run) -> None:
        try:
            self.report = run.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the background thread is still running."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the projection to stop (returns at once)."""
        self.stop_handle.stop()

    def join(self, timeout: float | None = None) -> ProjectionReport | None:
        """Wait for the thread to end; its report (None if it failed or is still running)."""
        self._thread.join(timeout)
        return self.report

    def wait_until(self, position: int, timeout: float = 10.0) -> bool:
        """Wait until the checkpoint reaches ``position`` (False after ``timeout``). If the
        projection has failed, raise its error instead of waiting."""
        deadline = time.monotonic() + timeout
        while True:
            if self.error is not None:
                raise self.error
            remaining = deadline - time.monotonic()
            step = max(0.0, min(0.05, remaining))
            if wait_until(self.config.checkpoints, self.name, position, step):
                return True
            if remaining <= 0 or not self.running:
                if self.error is not None:
                    raise self.error
                return False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ProjectionHandle({self.name!r}, {state})"


@contextlib.contextmanager
def running_projection(
    projector: Any,
    store: EventStore,
    config: ProjectionConfig,
    *,
    join_timeout: float | None = 30.0,
) -> Iterator[ProjectionHandle]:
    """Run ``projector`` continuously in a background thread while the block runs.

    On exit the projection is stopped (the event in hand is finished and the checkpoint
    saved) and the thread joined. If the projection failed, its error is raised on exit
    (unless the block itself raised). ``join_timeout`` bounds the wait for the thread.
    """
    handle = ProjectionHandle(projector, store, config)
    handle.start()
    try:
        yield handle
    except BaseException:
        handle.stop()
        handle.join(join_timeout)
        raise
    handle.stop()
    handle.join(join_timeout)
    if handle.error is not None:
        raise handle.error
