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
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from eventcore.errors import ConfigurationError, LeadershipUnavailable, StoreFailure
from eventcore.events import RecordedEvent
from eventcore.observability import points
from eventcore.projections.api import (
    ALL_EVENTS,
    DEFAULT_ERROR_POLICY,
    ErrorPolicy,
    EventSelector,
    ProjectionReport,
    StopHandle,
    StopReason,
    check_projection_name,
    is_transactional,
)
from eventcore.projections.checkpoints import (
    TransactionalCheckpointStore,
    wait_until,
)
from eventcore.projections.config import ProjectionConfig
from eventcore.projections.dead_letters import DeadLetter, same_database
from eventcore.projections.errors import ProjectionFailed
from eventcore.projections.leadership import Leadership
from eventcore.store import EventStore

__all__ = ["Mode", "ProjectionHandle", "run_projection", "running_projection"]

Mode = Literal["batch", "continuous"]
T = TypeVar("T")

_STOP_CHECK: Final = 0.25
"""The longest continuous mode waits for new events before looking at its stop handle."""


class _GiveUp(Exception):
    """The error policy says stop: raised out of the page, turned into ProjectionFailed."""

    def __init__(self, event: RecordedEvent, cause: Exception, attempts: int) -> None:
        super().__init__(str(cause))
        self.event = event
        self.cause = cause
        self.attempts = attempts


class _Redo(Exception):
    """``apply`` raised on a transactional page's fast path: roll back, redo carefully."""

    def __init__(self, event: RecordedEvent, error: Exception) -> None:
        super().__init__(str(error))
        self.event = event
        self.error = error


@dataclass
class _Counts:
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def add(self, other: _Counts) -> None:
        self.applied += other.applied
        self.skipped += other.skipped
        self.dead_lettered += other.dead_lettered
        self.retries += other.retries


class _Run:
    """One call of :func:`run_projection`."""

    def __init__(
        self,
        projector: Any,
        store: EventStore,
        config: ProjectionConfig,
        mode: Mode,
        stop: StopHandle,
    ) -> None:
        if not isinstance(config, ProjectionConfig):
            raise ConfigurationError(f"config must be a ProjectionConfig, got {config!r}")
        if mode not in ("batch", "continuous"):
            raise ConfigurationError(f"mode must be 'batch' or 'continuous', got {mode!r}")
        if not isinstance(stop, StopHandle):
            raise ConfigurationError(f"stop must be a StopHandle, got {stop!r}")
        for method in ("read_all", "head"):
            if not callable(getattr(store, method, None)):
                raise ConfigurationError(f"store must be an EventStore, got {store!r}")
        self.name = check_projection_name(getattr(projector, "name", None))
        if not callable(getattr(projector, "apply", None)):
            raise ConfigurationError(f"projector {self.name!r} has no apply() method")
        selector = getattr(projector, "selector", None)
        if selector is not None and not isinstance(selector, EventSelector):
            raise ConfigurationError(
                f"projector {self.name!r}: selector must be an EventSelector, got {selector!r}"
            )
        policy = getattr(projector, "error_policy", None) or DEFAULT_ERROR_POLICY
        if not isinstance(policy, ErrorPolicy):
            raise ConfigurationError(
                f"projector {self.name!r}: error_policy must be an ErrorPolicy, got {policy!r}"
            )
        if policy.then == "dead_letter" and config.dead_letters is None:
            raise ConfigurationError(
                f"projector {self.name!r} dead-letters failing events: set "
                "ProjectionConfig(dead_letters=...)"
            )
        self.transactional = is_transactional(projector)
        if self.transactional and not isinstance(config.checkpoints, TransactionalCheckpointStore):
            raise ConfigurationError(
                f"projector {self.name!r} is transactional: its checkpoints must live in the "
                "same database, in a SqliteCheckpointStore or PostgresCheckpointStore, not "
                f"{type(config.checkpoints).__name__}"
            )
        self.projector = projector
        self.store = store
        self.config = config
        self.mode = mode
        self.stop = stop
        self.selector = selector or ALL_EVENTS
        self.policy = policy
        self.counts = _Counts()
        self.position = 0
        self.saved: int | None = None

    # -- the run -------------------------------------------------------------------------

    def run(self) -> ProjectionReport:
        report: ProjectionReport | None = None
        try:
            report = self._run()
            return report
        except ProjectionFailed as exc:
            report = exc.report
            raise
        finally:
            if report is not None:
                points.projection_stopped(self.name, report)

    def _run(self) -> ProjectionReport:
        leadership = self.config.leadership
        if leadership is not None and not self._lead(leadership):
            self.saved = self._io("load checkpoint", self.config.checkpoints.load, self.name)
            return self.report("stopped")
        try:
            self.saved = self._io("load checkpoint", self.config.checkpoints.load, self.name)
            self.position = self.saved or 0
            points.projection_started(self.name, self.position, self.mode)
            if self.mode == "batch":
                self._drain(self._io("read head", self.store.head))
                return self.report("stopped" if self.stop.stopped else "caught_up")
            while not self.stop.stopped:
                head = self._io("read head", self.store.head)
                if head > self.position:
                    self._drain(head)
                else:
                    self._wait()
            return self.report("stopped")
        except _GiveUp as exc:
            cause = exc.cause
            raise ProjectionFailed(
                self.name,
                exc.event.position,
                cause,
                f"apply() raised {type(cause).__name__} on event {exc.event.event_type} of "
                f"stream {str(exc.event.stream_id)!r} after {exc.attempts} attempt"
                f"{'s' if exc.attempts != 1 else ''} and the error policy says stop; the "
                f"checkpoint stays at {self.saved or 0}, so a restart tries it again",
                self.report("failed"),
            ) from cause
        finally:
            if leadership is not None:
                leadership.release(self.name)
                points.leadership(self.name, "released")

    def report(self, reason: StopReason) -> ProjectionReport:
        c = self.counts
        return ProjectionReport(
            self.name,
            c.applied,
            c.skipped,
            c.dead_lettered,
            c.retries,
            self.saved or 0,
            reason,
        )

    def _lead(self, leadership: Leadership) -> bool:
        """Take the leadership (waiting if configured); False if stopped while waiting."""
        if self._io("acquire leadership", lambda: leadership.acquire(self.name)):
            points.leadership(self.name, "acquired")
            return True
        wait = self.config.wait_for_leadership
        if wait is False:
            raise LeadershipUnavailable(self.name, holder=_holder(leadership, self.name))
        points.leadership(self.name, "waiting", f"held by {_holder(leadership, self.name)}")
        deadline = None if wait is True else time.monotonic() + float(wait)
        while True:
            step = self.config.poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LeadershipUnavailable(
                        self.name,
                        f"waited {float(wait):g}s for it",
                        holder=_holder(leadership, self.name),
                    )
                step = min(step, remaining)
            if self.stop.wait(step):
                return False
            if self._io("acquire leadership", lambda: leadership.acquire(self.name)):
                points.leadership(self.name, "acquired")
                return True

    def _check_leadership(self) -> None:
        """Stop if the leadership was lost (a backend with ``holds(name)`` can tell: the
        PostgreSQL one when the connection holding its lock has died)."""
        holds = getattr(self.config.leadership, "holds", None)
        if callable(holds) and not holds(self.name):
            points.leadership(self.name, "lost", f"stopped at position {self.position}")
            raise LeadershipUnavailable(
                self.name,
                "this instance lost its leadership (the connection or file holding it is "
                f"gone) and stopped at position {self.position}, where its checkpoint is",
            )

    def _wait(self) -> None:
        """Wait for events after the current position, or poll_interval, or a stop."""
        waiter = getattr(self.store, "wait_for_events", None)
        if callable(waiter):
            # In slices, so that a stop request is noticed within _STOP_CHECK seconds.
            step = min(self.config.poll_interval, _STOP_CHECK)
            self._io("wait for events", waiter, self.position, step)
        else:
            self.stop.wait(self.config.poll_interval)

    def _drain(self, target: int) -> None:
        """Handle every selected event up to ``target``, one page at a time."""
        size = self.config.page_size
        while self.position < target and not self.stop.stopped:
            self._check_leadership()
            after = self.position
            page = self._io(f"read events after position {after}", self._read, after, size)
            events = page
            if page and (page[0].position <= after or page[-1].position > target):
                events = [e for e in page if after < e.position <= target]
            complete = len(page) < size or page[-1].position > target
            # A short page holds every selected event up to the head read before it
            # (positions are commit-ordered), so the checkpoint may move past the rest.
            end = target if complete else events[-1].position
            with points.page(self.name, events, end, target, self.config.clock):
                if self.transactional:
                    self._io("commit a page", self._page_in_transaction, events, end)
                else:
                    self._page(events, end)

    # -- pages -----------------------------------------------------------------------------

    def _page(self, events: list[RecordedEvent], end: int) -> None:
        apply = self.projector.apply
        stopped = self.stop._event.is_set  # the property's work, without a call per event
        counts = self.counts
        done = self.position  # the last event handled; kept in locals in the loop
        applied = 0
        try:
            try:
                for event in events:
                    if stopped():
                        break
                    try:
                        apply(event)
                    except Exception as exc:  # the error policy decides what happens next
                        self._handle(event, apply, counts, None, exc)
                    else:
                        applied += 1
                    done = event.position
                else:
                    done = end
            finally:
                counts.applied += applied
                self.position = done
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters more
                self.config.checkpoints.save(self.name, self.position)
                self.saved = self.position
            raise
        if self.position != self.saved:
            position = self.position
            self._io("save checkpoint", lambda: self.config.checkpoints.save(self.name, position))
            self.saved = position

    def _page_in_transaction(self, events: list[RecordedEvent], end: int) -> None:
        """Apply a page and save its checkpoint in one transaction, without savepoints. If
        an ``apply`` raises, roll it all back and redo the page carefully (a savepoint per
        event, the error policy per event, the failure as that event's first attempt)."""
        try:
            self._transaction(events, end, None)
        except _Redo as redo:
            self._transaction(events, end, redo)

    def _transaction(self, events: list[RecordedEvent], end: int, redo: _Redo | None) -> None:
        checkpoints: TransactionalCheckpointStore[Any] = self.config.checkpoints  # type: ignore[assignment]
        counts = _Counts()
        position = self.position
        # Events up to a redone failure were in hand when it happened: finish them.
        in_hand = 0 if redo is None else redo.event.position
        stopped: _GiveUp | None = None
        with checkpoints.transaction() as tx:
            savepoint = checkpoints.savepoint
            apply = self.projector.apply

            def apply_in_savepoint(event: RecordedEvent) -> None:
                with savepoint(tx):
                    apply(event, tx)

            try:
                for event in events:
                    if self.stop.stopped and event.position > in_hand:
                        break
                    if redo is None:
                        try:
                            apply(event, tx)
                        except Exception as exc:
                            raise _Redo(event, exc) from exc  # rolls the transaction back
                        counts.applied += 1
                    else:
                        failed = redo.error if event.position == in_hand else None
                        self._handle(event, apply_in_savepoint, counts, tx, failed)
                    position = event.position
                else:
                    position = end
            except _GiveUp as exc:
                stopped = exc
            if position != self.saved:
                checkpoints.save_in(tx, self.name, position, expected=self.saved)
        self.counts.add(counts)
        self.position = self.saved = position
        if stopped is not None:
            raise stopped

    def _handle(
        self,
        event: RecordedEvent,
        apply: Callable[[RecordedEvent], None],
        counts: _Counts,
        tx: Any,
        failed: Exception | None = None,
    ) -> None:
        """Apply one event under the error policy (retrying in place). ``failed``: the
        error of a first attempt already made."""
        attempts = 1
        error = _attempt(apply, event) if failed is None else failed
        while error is not None:
            points.projection_error(self.name, event, error, attempts)
            delay = self.policy.delay(attempts)
            if delay is None:
                then = self.policy.then
                if then == "skip":
                    counts.skipped += 1
                elif then == "dead_letter":
                    self._dead_letter(event, error, attempts, tx)
                    counts.dead_lettered += 1
                else:
                    raise _GiveUp(event, error, attempts) from error
                return
            counts.retries += 1
            self.config.sleep(delay)
            attempts += 1
            error = _attempt(apply, event)
        counts.applied += 1

    def _dead_letter(self, event: RecordedEvent, error: Exception, attempts: int, tx: Any) -> None:
        dead_letters = self.config.dead_letters
        assert dead_letters is not None  # checked when the run was set up
        letter = DeadLetter.for_failure(self.name, event, error, attempts, self.config.clock)
        points.dead_lettered(self.name, event, error, attempts)
        if tx is not None and same_database(self.config.checkpoints, dead_letters):
            dead_letters.record_in(tx, letter)  # type: ignore[attr-defined]
        else:
            self._io("record a dead letter", lambda: dead_letters.record(letter))

    def _read(self, after: int, size: int) -> list[RecordedEvent]:
        return self.selector.read(self.store, after=after, limit=size)

    def _io(self, operation: str, call: Callable[..., T], *args: Any) -> T:
        """Run a store operation, backing off on StoreFailure; give up after
        ``max_read_failures`` failures in a row."""
        failures = 0
        while True:
            try:
                return call(*args)
            except StoreFailure as exc:
                failures += 1
                if failures >= self.config.max_read_failures:
                    raise ProjectionFailed(
                        self.name,
                        self.position,
                        exc,
                        f"{operation} failed {failures} time{'s' if failures != 1 else ''} in a "
                        "row (max_read_failures); the checkpoint is saved up to here, so a "
                        "restart resumes after it",
                        self.report("failed"),
                    ) from exc
                points.projection_io_failed(self.name, operation, failures, self.position)
                self.config.sleep(self.config.backoff(failures))


def _attempt(apply: Callable[[RecordedEvent], None], event: RecordedEvent) -> Exception | None:
    """Call ``apply(event)``; the exception it raised, or None."""
    try:
        apply(event)
    except Exception as exc:
        return exc
    return None


def _holder(leadership: Leadership, name: str) -> str | None:
    describe = getattr(leadership, "holder", None)
    if not callable(describe):
        return None
    try:
        found = describe(name)
    except Exception:  # only for the message
        return None
    return None if found is None else str(found)


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
