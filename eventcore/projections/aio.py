"""Projections for asyncio: the runner of :mod:`eventcore.projections.runner`, as a coroutine.

:func:`run_projection_async` drives the same sans-IO steps as
:func:`~eventcore.projections.run_projection` (:mod:`eventcore.projections.step`: the same
error policy, checkpoints, dead letters, leadership and transactional pages) against an
:class:`~eventcore.asyncstore.AsyncEventStore`. :func:`start_projection_async` runs one in
continuous mode as an asyncio task and returns an :class:`AsyncProjectionHandle`:
``await handle.stop()`` finishes the event in hand, saves the checkpoint and returns the
report (what an ASGI lifespan calls on shutdown).

Backends: a method that is a coroutine function is awaited (the PostgreSQL async
checkpoint and dead-letter stores); the in-memory backends are called directly (they never
block); any other blocking backend (SQLite's, the blocking PostgreSQL ones, leadership) runs
on one thread of the run's own, in order, so the event loop stays free. A transactional
projector's ``apply(event, tx)`` runs where its transaction lives: on that thread for a
blocking checkpoint store (``tx`` a ``sqlite3.Connection``), on the loop for an async one
(``tx`` a psycopg ``AsyncConnection``; ``apply`` may then be ``async def``). A plain
projector's ``apply`` runs on the loop and may be ``async def``.

Cancelling the task is safe: the events applied before the cancellation are counted and
their checkpoint saved (a transactional page is rolled back whole), so a restart neither
loses nor re-applies a checkpointed event.

>>> import asyncio
>>> from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, projector
>>> from eventcore.stores.memory import AsyncInMemoryEventStore
>>> seen = []
>>> @projector("seen")
... def remember(event):
...     seen.append(event.position)
>>> async def main():
...     async with AsyncInMemoryEventStore() as store:
...         config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.05)
...         handle = start_projection_async(remember, store, config)
...         caught_up = await handle.wait_until(0, timeout=5)
...         report = await handle.stop()
...         return caught_up, report.stopped_reason, handle.status
>>> asyncio.run(main())
(True, 'stopped', 'stopped')
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from eventcore._finish import Cancelled, complete, complete_quietly, finish
from eventcore.errors import ConfigurationError
from eventcore.events import RecordedEvent
from eventcore.projections.api import ProjectionReport, StopHandle
from eventcore.projections.checkpoints import InMemoryCheckpointStore
from eventcore.projections.config import ProjectionConfig
from eventcore.projections.dead_letters import InMemoryDeadLetterStore
from eventcore.projections.leadership import InProcessLeadership
from eventcore.projections.step import (
    STOP_CHECK,
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

__all__ = [
    "AsyncProjectionHandle",
    "ProjectionStatus",
    "run_projection_async",
    "start_projection_async",
]

T = TypeVar("T")

_INLINE = (InMemoryCheckpointStore, InMemoryDeadLetterStore, InProcessLeadership)
"""Backends whose blocking methods never wait: called on the loop directly."""


class _Backend:
    """Calls a backend's methods without blocking the loop: awaited if coroutine functions,
    directly for the in-memory backends, else on the run's thread."""

    def __init__(self, run: AsyncRun, target: Any) -> None:
        self.target = target
        self.inline = isinstance(target, _INLINE)
        self._run = run

    def is_async(self, method: str) -> bool:
        return inspect.iscoroutinefunction(getattr(self.target, method, None))

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        function = getattr(self.target, method)
        if inspect.iscoroutinefunction(function):
            return await function(*args, **kwargs)
        if self.inline:
            return function(*args, **kwargs)
        return await self._run.on_thread(function, *args, **kwargs)


class AsyncRun:
    """One call of :func:`run_projection_async`: the asyncio shell around
    :class:`~eventcore.projections.step.ProjectionSteps` (internal; the handle of
    :mod:`eventcore.projections.aio_handle` runs one as a task)."""

    def __init__(
        self,
        projector: Any,
        store: Any,
        config: ProjectionConfig,
        mode: Mode,
        stop: StopHandle,
        wake: asyncio.Event | None = None,
    ) -> None:
        if not isinstance(stop, StopHandle):
            raise ConfigurationError(f"stop must be a StopHandle, got {stop!r}")
        self.steps = ProjectionSteps(projector, config, mode, stop.checker())
        for method in ("read_all", "head"):
            if not inspect.iscoroutinefunction(getattr(store, method, None)):
                raise ConfigurationError(
                    f"store must be an AsyncEventStore (async read_all and head), got {store!r}; "
                    "for a blocking store use run_projection"
                )
        self.name = self.steps.name
        self.projector = projector
        self.store = store
        self.config = config
        self.stop = stop
        self.wake = wake
        self.progressed: asyncio.Event | None = None  # set after each checkpoint save
        self.checkpoints = _Backend(self, config.checkpoints)
        self.dead_letters = _Backend(self, config.dead_letters)
        self.leadership = _Backend(self, config.leadership)
        # An async checkpoint store (its save_in a coroutine) has async transactions too.
        self.tx_on_thread = self.steps.transactional and not self.checkpoints.is_async("save_in")
        if self.tx_on_thread and inspect.iscoroutinefunction(projector.apply):
            raise ConfigurationError(
                f"projector {self.name!r} has an async apply(), but its checkpoint store "
                f"{type(config.checkpoints).__name__} is a blocking one whose transaction runs "
                "on a thread: make apply() a plain function, or use an async checkpoint store "
                "(AsyncPostgresCheckpointStore)"
            )
        self._thread: ThreadPoolExecutor | None = None
        self._transactions: list[Any] = []

    # -- threads -----------------------------------------------------------------------------

    def on_thread(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
        """Run a blocking call on the run's thread (one, so calls keep their order and a
        transaction stays on the thread that opened it)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"eventcore-proj-{self.name}")
        call = functools.partial(function, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self._thread, call)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> ProjectionReport:
        steps = self.steps.run()
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
                    value = await self._perform(effect)
                except BaseException as exc:  # thrown into the steps, which decide
                    value, error = None, exc
        finally:
            steps.close()  # ends a page span the steps still hold, in this task's context
            if self._thread is not None:
                self._thread.shutdown(wait=False)

    async def _perform(self, effect: Any) -> Any:
        kind = type(effect)
        if kind is ApplyEvents:
            return await self._apply_events(effect)
        if kind is ReadPage:
            types = (
                None if effect.selector.event_types is None else list(effect.selector.event_types)
            )
            return await self.store.read_all(
                after=effect.after,
                limit=effect.limit,
                streams=effect.selector.streams,
                event_types=types,
            )
        if kind is SaveCheckpoint:
            await self.checkpoints.call("save", self.name, effect.position)
            self._progress()
            return None
        if kind is ReadHead:
            return await self.store.head()
        if kind is LoadCheckpoint:
            return await self.checkpoints.call("load", self.name)
        if kind is ApplyOne:
            return await self._apply_one(effect)
        if kind is BeginTransaction:
            return await self._begin()
        if kind is SaveInTransaction:
            return await self.checkpoints.call(
                "save_in", effect.tx, self.name, effect.position, expected=effect.expected
            )
        if kind is EndTransaction:
            return await self._end(effect)
        if kind is RecordDeadLetter:
            if effect.tx is not None:
                return await self.dead_letters.call("record_in", effect.tx, effect.letter)
            return await self.dead_letters.call("record", effect.letter)
        if kind is Sleep:
            return await self._sleep(effect.seconds)
        if kind is WaitForEvents:
            return await self._wait_for_events(effect)
        if kind is WaitForStop:
            return await self._wait_for_stop(effect.timeout)
        if kind is AcquireLeadership:
            return await self.leadership.call("acquire", self.name)
        if kind is ReleaseLeadership:
            return await self.leadership.call("release", self.name)
        if kind is HoldsLeadership:
            if not callable(getattr(self.config.leadership, "holds", None)):
                return None
            return bool(await self.leadership.call("holds", self.name))
        if kind is LeadershipHolder:
            if not callable(getattr(self.config.leadership, "holder", None)):
                return None
            return await self.leadership.call("holder", self.name)
        raise AssertionError(f"unknown effect {effect!r}")  # pragma: no cover

    def _progress(self) -> None:
        if self.progressed is not None:
            self.progressed.set()

    # -- applying ----------------------------------------------------------------------------

    async def _apply_events(self, effect: ApplyEvents) -> tuple[int, Exception | None]:
        if effect.tx is not None and self.tx_on_thread:
            return await self._apply_events_on_thread(effect)
        apply = self.projector.apply
        stopped = self.steps.stopped
        events = effect.events
        tx = effect.tx
        index = effect.start
        count = len(events)
        try:
            while index < count:
                if stopped():
                    break
                done = apply(events[index]) if tx is None else apply(events[index], tx)
                if done is not None and inspect.isawaitable(done):
                    await done
                index += 1
        except Exception as exc:  # the error policy decides what happens next
            return index, exc
        except BaseException as exc:
            raise Interrupted(index, exc) from exc
        return index, None

    async def _apply_events_on_thread(self, effect: ApplyEvents) -> tuple[int, Exception | None]:
        """A transactional page on a blocking backend: the whole loop in one hop."""
        apply = self.projector.apply
        stopped = self.steps.stopped
        abandoned = [False]
        progress = [effect.start]

        def loop() -> tuple[int, Exception | None]:
            events, tx = effect.events, effect.tx
            index, count = effect.start, len(events)
            try:
                while index < count and not abandoned[0]:
                    if stopped():
                        break
                    apply(events[index], tx)
                    index += 1
                    progress[0] = index
            except Exception as exc:
                return index, exc
            return index, None

        running = self.on_thread(loop)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError as exc:
            # The loop stops before its next event; the rollback that follows is queued on
            # the same thread, so it runs once the loop has ended.
            abandoned[0] = True
            raise Interrupted(progress[0], exc) from exc

    async def _apply_one(self, effect: ApplyOne) -> Exception | None:
        apply = self.projector.apply
        event: RecordedEvent = effect.event
        tx = effect.tx
        if tx is not None and self.tx_on_thread:
            savepoint = self.config.checkpoints.savepoint  # type: ignore[attr-defined]

            def attempt() -> Exception | None:
                try:
                    if effect.savepoint:
                        with savepoint(tx):
                            apply(event, tx)
                    else:
                        apply(event, tx)
                except Exception as exc:
                    return exc
                return None

            try:
                return await complete(self.on_thread(attempt))  # type: ignore[arg-type]
            except Cancelled as late:
                raise late.cancelled from None
        try:
            if tx is None:
                done = apply(event)
                if done is not None and inspect.isawaitable(done):
                    await done
            elif effect.savepoint:
                async with self.config.checkpoints.savepoint(tx):  # type: ignore[attr-defined]
                    done = apply(event, tx)
                    if done is not None and inspect.isawaitable(done):
                        await done
            else:
                done = apply(event, tx)
                if done is not None and inspect.isawaitable(done):
                    await done
        except Exception as exc:
            return exc
        return None

    # -- transactions ------------------------------------------------------------------------

    async def _begin(self) -> Any:
        checkpoints: Any = self.config.checkpoints
        if not self.tx_on_thread:
            manager = checkpoints.transaction()
            tx = await manager.__aenter__()
            self._transactions.append(manager)
            return tx
        manager = await self.on_thread(checkpoints.transaction)
        try:
            # Opening takes the database's write lock on the thread: let it end even if this
            # task is cancelled, and close it again in that case.
            tx = await complete(self.on_thread(manager.__enter__))  # type: ignore[arg-type]
        except Cancelled as late:
            error = late.cancelled
            await complete_quietly(
                self.on_thread(manager.__exit__, type(error), error, None)  # type: ignore[arg-type]
            )
            raise error from None
        self._transactions.append(manager)
        return tx

    async def _end(self, effect: EndTransaction) -> None:
        manager = self._transactions.pop()
        error = effect.error
        if not self.tx_on_thread:
            if error is None:
                # In this task (the transaction's context); the store's commit runs to its
                # end once sent.
                await manager.__aexit__(None, None, None)
                self._progress()
            elif not await manager.__aexit__(type(error), error, error.__traceback__):
                raise error
            return
        if error is None:
            await finish(self.on_thread(manager.__exit__, None, None, None))
            self._progress()
            return
        swallowed: list[bool] = []

        def roll_back() -> None:
            swallowed.append(bool(manager.__exit__(type(error), error, error.__traceback__)))

        await complete_quietly(self.on_thread(roll_back))  # type: ignore[arg-type]
        if not swallowed or not swallowed[0]:
            raise error

    # -- waiting -------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        sleep = self.config.sleep
        if sleep is time.sleep:
            await asyncio.sleep(seconds)
            return
        done = sleep(seconds)  # an injected sleep (tests record the delays)
        if done is not None and inspect.isawaitable(done):
            await done

    async def _wait_for_events(self, effect: WaitForEvents) -> None:
        waiter = getattr(self.store, "wait_for_events", None)
        if inspect.iscoroutinefunction(waiter):
            # A handle wakes the wait when stopped, so it need not be cut into slices.
            timeout = effect.timeout if self.wake is None else self.config.poll_interval
            await self._unless_woken(waiter(effect.after, timeout))
        else:
            await self._wait_for_stop(self.config.poll_interval)

    async def _wait_for_stop(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.stop.stopped:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await self._unless_woken(asyncio.sleep(min(remaining, STOP_CHECK)))
        return True

    async def _unless_woken(self, waiting: Awaitable[Any]) -> None:
        """Await ``waiting``, cut short when the handle is stopped."""
        if self.wake is None:
            await waiting
            return
        if self.wake.is_set():
            if inspect.iscoroutine(waiting):
                waiting.close()
            return
        work = asyncio.ensure_future(waiting)
        woken = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait((work, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, woken):
                if not task.done():
                    task.cancel()
            for task in (work, woken):
                with contextlib.suppress(BaseException):
                    await task
        if work.done() and not work.cancelled() and work.exception() is not None:
            raise work.exception()  # type: ignore[misc]


async def run_projection_async(
    projector: Any,
    store: Any,
    config: ProjectionConfig,
    *,
    mode: Mode = "batch",
    stop: StopHandle | None = None,
) -> ProjectionReport:
    """Run ``projector`` over the async ``store`` from its checkpoint; return what it did.

    The same behaviour as :func:`~eventcore.projections.run_projection` (modes, reports,
    errors), without blocking the event loop; see the module docstring for where each
    backend's calls run. ``stop`` may be stopped from any thread or task (in continuous
    mode it is noticed within 0.25 s; :func:`start_projection_async` stops at once).
    """
    return await AsyncRun(projector, store, config, mode, stop or StopHandle()).run()


# The handle lives in its own module (this one stays under 600 lines); re-exported here.
from eventcore.projections.aio_handle import (  # noqa: E402
    AsyncProjectionHandle,
    ProjectionStatus,
    start_projection_async,
)
