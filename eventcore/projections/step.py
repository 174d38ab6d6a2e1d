"""The projection runner as a pure state machine (sans-IO), shared by both runners.

:class:`ProjectionSteps` holds what one run knows (projector, policy, position, counts) and
:meth:`ProjectionSteps.run` is a generator: it *yields* effects — read the head, read a
page, apply events, save the checkpoint, open and end a transaction, record a dead letter,
sleep, wait — and a shell performs each one and sends the result back (or throws the error
it raised into the generator). It returns the :class:`~eventcore.projections.ProjectionReport`.
:func:`eventcore.projections.run_projection` is the blocking shell;
:func:`eventcore.projections.run_projection_async` the asyncio one. Every rule of a run —
the error policy, the backoff on store failures, leadership, where the checkpoint may move,
the transactional fast path and its careful redo — lives here once, so a fix lands in both.
So do the run's log records, page spans and metrics
(:mod:`eventcore.observability.points`, called where each decision is made): the only side
effects of the steps, as in the command pipeline.

>>> from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, projector
>>> @projector("noop")
... def noop(event): ...
>>> steps = ProjectionSteps(noop, ProjectionConfig(InMemoryCheckpointStore()), "batch")
>>> run = steps.run()
>>> next(run)
LoadCheckpoint()
>>> run.send(None)
ReadHead()
>>> try:
...     run.send(0)
... except StopIteration as done:
...     print(done.value.stopped_reason, done.value.last_position)
caught_up 0

The effects are frozen dataclasses in :mod:`eventcore.projections.effects`. A shell applies
a page with :class:`ApplyEvents` (its own tight loop, checking for a stop
before each event) and answers ``(index, error)``: the index of the first event not applied
and the exception it raised (None when the page ended or a stop was asked for). If it is
interrupted by a ``BaseException`` (a cancelled task, ``KeyboardInterrupt``) after applying
some events, it raises :class:`Interrupted` so the step counts them before re-raising.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from eventcore.errors import ConfigurationError, LeadershipUnavailable, StoreFailure
from eventcore.events import RecordedEvent
from eventcore.observability import points
from eventcore.projections.api import (
    ALL_EVENTS,
    DEFAULT_ERROR_POLICY,
    ErrorPolicy,
    EventSelector,
    ProjectionReport,
    StopReason,
    check_projection_name,
    is_transactional,
)
from eventcore.projections.config import ProjectionConfig
from eventcore.projections.dead_letters import DeadLetter, same_database
from eventcore.projections.effects import (
    AcquireLeadership,
    ApplyEvents,
    ApplyOne,
    BeginTransaction,
    EndTransaction,
    HoldsLeadership,
    LeadershipHolder,
    LoadCheckpoint,
    ReadHead,
    ReadPage,
    RecordDeadLetter,
    ReleaseLeadership,
    SaveCheckpoint,
    SaveInTransaction,
    Sleep,
    StepEffect,
    WaitForEvents,
    WaitForStop,
)
from eventcore.projections.errors import ProjectionFailed

__all__ = [
    "AcquireLeadership",
    "ApplyEvents",
    "ApplyOne",
    "BeginTransaction",
    "EndTransaction",
    "HoldsLeadership",
    "Interrupted",
    "LeadershipHolder",
    "LoadCheckpoint",
    "Mode",
    "ProjectionSteps",
    "ReadHead",
    "ReadPage",
    "RecordDeadLetter",
    "ReleaseLeadership",
    "SaveCheckpoint",
    "SaveInTransaction",
    "Sleep",
    "StepEffect",
    "WaitForEvents",
    "WaitForStop",
]

Mode = Literal["batch", "continuous"]

STOP_CHECK: Final = 0.25
"""The longest continuous mode waits for new events before looking at its stop handle."""


Steps = Generator[StepEffect, Any, Any]

_LOAD: Final = LoadCheckpoint()
_HEAD: Final = ReadHead()
_ACQUIRE: Final = AcquireLeadership()
_RELEASE: Final = ReleaseLeadership()
_HOLDS: Final = HoldsLeadership()
_HOLDER: Final = LeadershipHolder()
_BEGIN: Final = BeginTransaction()


class Interrupted(BaseException):
    """Raised by a shell out of :class:`ApplyEvents` when a ``BaseException`` (a cancelled
    task, ``KeyboardInterrupt``) arrived after ``done`` events were applied; the step counts
    them, saves the checkpoint and re-raises ``cause``."""

    def __init__(self, done: int, cause: BaseException) -> None:
        super().__init__(done, cause)
        self.done = done
        self.cause = cause


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


class ProjectionSteps:
    """One run of a projector: validated now, driven by a shell through :meth:`run`.

    ``stopped`` is a zero-argument test of the stop request (checked between pages and
    before waits; the shell checks it between events).
    """

    def __init__(
        self,
        projector: Any,
        config: ProjectionConfig,
        mode: Mode,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        if not isinstance(config, ProjectionConfig):
            raise ConfigurationError(f"config must be a ProjectionConfig, got {config!r}")
        if mode not in ("batch", "continuous"):
            raise ConfigurationError(f"mode must be 'batch' or 'continuous', got {mode!r}")
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
        if self.transactional and not all(
            callable(getattr(config.checkpoints, m, None))
            for m in ("transaction", "savepoint", "save_in")
        ):
            raise ConfigurationError(
                f"projector {self.name!r} is transactional: its checkpoints must live in the "
                "same database, in a SqliteCheckpointStore or PostgresCheckpointStore (or their "
                f"async forms), not {type(config.checkpoints).__name__}"
            )
        self.projector = projector
        self.config = config
        self.mode = mode
        self.stopped = stopped
        self.selector = selector or ALL_EVENTS
        self.policy = policy
        self.counts = _Counts()
        self.position = 0
        self.saved: int | None = None

    # -- the run -------------------------------------------------------------------------

    def run(self) -> Generator[StepEffect, Any, ProjectionReport]:
        """The whole run, as effects; returns the report (raises as ``run_projection``).

        Logs the start and the end of the run (:mod:`eventcore.observability.points`;
        logging and metrics are the only side effects of the steps), the end also when a
        :class:`ProjectionFailed` carries its report."""
        report: ProjectionReport | None = None
        try:
            report = yield from self._run()
            return report
        except ProjectionFailed as exc:
            report = exc.report
            raise
        finally:
            if report is not None:
                points.projection_stopped(self.name, report)

    def _run(self) -> Generator[StepEffect, Any, ProjectionReport]:
        leadership = self.config.leadership is not None
        if leadership and not (yield from self._lead()):
            self.saved = yield from self._io("load checkpoint", _LOAD)
            return self.report("stopped")
        try:
            self.saved = yield from self._io("load checkpoint", _LOAD)
            self.position = self.saved or 0
            points.projection_started(self.name, self.position, self.mode)
            if self.mode == "batch":
                yield from self._drain((yield from self._io("read head", _HEAD)))
                report = self.report("stopped" if self.stopped() else "caught_up")
            else:
                while not self.stopped():
                    head = yield from self._io("read head", _HEAD)
                    if head > self.position:
                        yield from self._drain(head)
                    else:
                        step = min(self.config.poll_interval, STOP_CHECK)
                        yield from self._io("wait for events", WaitForEvents(self.position, step))
                report = self.report("stopped")
        except GeneratorExit:
            raise
        except _GiveUp as exc:
            cause = exc.cause
            failed = ProjectionFailed(
                self.name,
                exc.event.position,
                cause,
                f"apply() raised {type(cause).__name__} on event {exc.event.event_type} of "
                f"stream {str(exc.event.stream_id)!r} after {exc.attempts} attempt"
                f"{'s' if exc.attempts != 1 else ''} and the error policy says stop; the "
                f"checkpoint stays at {self.saved or 0}, so a restart tries it again",
                self.report("failed"),
            )
            if leadership:
                yield from self._release()
            raise failed from cause
        except BaseException:
            if leadership:
                yield from self._release()
            raise
        if leadership:
            yield from self._release()
        return report

    def _release(self) -> Steps:
        yield _RELEASE
        points.leadership(self.name, "released")

    def report(self, reason: StopReason) -> ProjectionReport:
        c = self.counts
        return ProjectionReport(
            self.name, c.applied, c.skipped, c.dead_lettered, c.retries, self.saved or 0, reason
        )

    def _lead(self) -> Steps:
        """Take the leadership (waiting if configured); False if stopped while waiting."""
        if (yield from self._io("acquire leadership", _ACQUIRE)):
            points.leadership(self.name, "acquired")
            return True
        wait = self.config.wait_for_leadership
        if wait is False:
            raise LeadershipUnavailable(self.name, holder=(yield from self._holder()))
        if points.LEADERSHIP.isEnabledFor(logging.INFO):  # the holder only for the log
            points.leadership(self.name, "waiting", f"held by {(yield from self._holder())}")
        deadline = None if wait is True else time.monotonic() + float(wait)
        while True:
            step = self.config.poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LeadershipUnavailable(
                        self.name,
                        f"waited {float(wait):g}s for it",
                        holder=(yield from self._holder()),
                    )
                step = min(step, remaining)
            if (yield WaitForStop(step)):
                return False
            if (yield from self._io("acquire leadership", _ACQUIRE)):
                points.leadership(self.name, "acquired")
                return True

    def _holder(self) -> Steps:
        try:
            found = yield _HOLDER
        except Exception:  # only for the message
            return None
        return None if found is None else str(found)

    def _check_leadership(self) -> Steps:
        """Stop if the leadership was lost (a backend with ``holds(name)`` can tell: the
        PostgreSQL one when the connection holding its lock has died)."""
        if (yield _HOLDS) is False:
            points.leadership(self.name, "lost", f"stopped at position {self.position}")
            raise LeadershipUnavailable(
                self.name,
                "this instance lost its leadership (the connection or file holding it is "
                f"gone) and stopped at position {self.position}, where its checkpoint is",
            )

    def _drain(self, target: int) -> Steps:
        """Handle every selected event up to ``target``, one page at a time."""
        size = self.config.page_size
        leadership = self.config.leadership is not None
        while self.position < target and not self.stopped():
            if leadership:
                yield from self._check_leadership()
            after = self.position
            page = yield from self._io(
                f"read events after position {after}", ReadPage(self.selector, after, size)
            )
            events = page
            if page and (page[0].position <= after or page[-1].position > target):
                events = [e for e in page if after < e.position <= target]
            complete = len(page) < size or page[-1].position > target
            # A short page holds every selected event up to the head read before it
            # (positions are commit-ordered), so the checkpoint may move past the rest.
            end = target if complete else events[-1].position
            # Held open across the page's effects: every way out of the generator (a stop,
            # an error or a cancellation thrown in, close()) exits it here.
            with points.page(self.name, events, end, target, self.config.clock):
                if self.transactional:
                    yield from self._retrying(
                        "commit a page", functools.partial(self._page_in_transaction, events, end)
                    )
                else:
                    yield from self._page(events, end)

    # -- pages -----------------------------------------------------------------------------

    def _page(self, events: Sequence[RecordedEvent], end: int) -> Steps:
        counts = self.counts
        done = self.position  # the last event handled
        count = len(events)
        start = 0
        try:
            try:
                while True:
                    try:
                        index, error = yield ApplyEvents(events, start, None)
                    except Interrupted as cut:
                        counts.applied += cut.done - start
                        if cut.done > start:
                            done = events[cut.done - 1].position
                        raise cut.cause from None
                    counts.applied += index - start
                    if index > start:
                        done = events[index - 1].position
                    if error is None:
                        if index == count:
                            done = end
                        break
                    event = events[index]
                    yield from self._handle(event, None, counts, error, savepoint=False)
                    done = event.position
                    start = index + 1
                    if start == count:
                        done = end
                        break
                    if self.stopped():
                        break
            finally:
                self.position = done
        except GeneratorExit:
            raise
        except BaseException:
            try:  # the original error matters more
                yield SaveCheckpoint(self.position)
                self.saved = self.position
            except Exception:  # best effort
                pass
            raise
        if self.position != self.saved:
            yield from self._io("save checkpoint", SaveCheckpoint(self.position))
            self.saved = self.position

    def _page_in_transaction(self, events: Sequence[RecordedEvent], end: int) -> Steps:
        """Apply a page and save its checkpoint in one transaction, without savepoints. If
        an ``apply`` raises, roll it all back and redo the page carefully (a savepoint per
        event, the error policy per event, the failure as that event's first attempt)."""
        try:
            yield from self._transaction(events, end, None)
        except _Redo as redo:
            yield from self._transaction(events, end, redo)

    def _transaction(self, events: Sequence[RecordedEvent], end: int, redo: _Redo | None) -> Steps:
        counts = _Counts()
        position = self.position
        # Events up to a redone failure were in hand when it happened: finish them.
        in_hand = 0 if redo is None else redo.event.position
        stopped: _GiveUp | None = None
        tx = yield _BEGIN
        try:
            try:
                if redo is None:
                    try:
                        index, error = yield ApplyEvents(events, 0, tx)
                    except Interrupted as cut:
                        raise cut.cause from None  # rolled back below: nothing counts
                    if error is not None:
                        raise _Redo(events[index], error) from error  # rolls back
                    counts.applied += index
                    if index == len(events):
                        position = end
                    elif index:
                        position = events[index - 1].position
                else:
                    for event in events:
                        if self.stopped() and event.position > in_hand:
                            break
                        failed = redo.error if event.position == in_hand else None
                        yield from self._handle(event, tx, counts, failed, savepoint=True)
                        position = event.position
                    else:
                        position = end
            except _GiveUp as exc:
                stopped = exc
            if position != self.saved:
                yield SaveInTransaction(tx, position, self.saved)
        except GeneratorExit:
            raise
        except BaseException as exc:
            yield EndTransaction(tx, exc)
            raise
        yield EndTransaction(tx, None)
        self.counts.add(counts)
        self.position = self.saved = position
        if stopped is not None:
            raise stopped

    def _handle(
        self,
        event: RecordedEvent,
        tx: Any,
        counts: _Counts,
        failed: Exception | None,
        *,
        savepoint: bool,
    ) -> Steps:
        """Apply one event under the error policy (retrying in place). ``failed``: the
        error of a first attempt already made."""
        attempts = 1
        error = (yield ApplyOne(event, tx, savepoint)) if failed is None else failed
        while error is not None:
            points.projection_error(self.name, event, error, attempts)
            delay = self.policy.delay(attempts)
            if delay is None:
                then = self.policy.then
                if then == "skip":
                    counts.skipped += 1
                elif then == "dead_letter":
                    yield from self._dead_letter(event, error, attempts, tx)
                    counts.dead_lettered += 1
                else:
                    raise _GiveUp(event, error, attempts) from error
                return
            counts.retries += 1
            yield Sleep(delay)
            attempts += 1
            error = yield ApplyOne(event, tx, savepoint)
        counts.applied += 1

    def _dead_letter(self, event: RecordedEvent, error: Exception, attempts: int, tx: Any) -> Steps:
        letter = DeadLetter.for_failure(self.name, event, error, attempts, self.config.clock)
        points.dead_lettered(self.name, event, error, attempts)
        if tx is not None and same_database(self.config.checkpoints, self.config.dead_letters):
            yield RecordDeadLetter(letter, tx)
        else:
            yield from self._io("record a dead letter", RecordDeadLetter(letter, None))

    # -- store failures --------------------------------------------------------------------

    def _io(self, operation: str, effect: StepEffect) -> Steps:
        """Perform ``effect``, backing off on StoreFailure; give up after
        ``max_read_failures`` failures in a row."""
        failures = 0
        while True:
            try:
                return (yield effect)
            except StoreFailure as exc:
                failures += 1
                yield from self._back_off(operation, failures, exc)

    def _retrying(self, operation: str, steps: Callable[[], Steps]) -> Steps:
        """:meth:`_io` for a sequence of effects (a transactional page), redone whole."""
        failures = 0
        while True:
            try:
                return (yield from steps())
            except StoreFailure as exc:
                failures += 1
                yield from self._back_off(operation, failures, exc)

    def _back_off(self, operation: str, failures: int, exc: StoreFailure) -> Steps:
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
        yield Sleep(self.config.backoff(failures))
