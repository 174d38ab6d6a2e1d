"""Run the projection contract against the asyncio runner: one suite, two drivers.

:class:`AsyncProjectionBridge` gives :func:`~eventcore.projections.run_projection_async` and
:func:`~eventcore.projections.start_projection_async` the blocking signatures of
``run_projection`` and ``running_projection``, running them on a
:class:`~eventcore.testing.bridge.LoopThread`. The contract's tests keep their blocking
store (a :class:`~eventcore.testing.bridge.SyncBridge` over the async store) and backends;
the bridge hands the runner the async objects behind them:

- a ``SyncBridge`` store becomes its async store; any other blocking store (a fault-injecting
  wrapper) is served to the runner from a worker thread;
- a backend wrapped in :class:`Bridged` (an async checkpoint or dead-letter store made
  blocking for the test's own calls) becomes the async backend;
- a plain projector's ``apply`` is awaited from a worker thread (so a test's ``apply`` may
  write to the blocking store without blocking the loop); a transactional one runs where its
  transaction lives, as in production.

::

    class TestAsyncMemoryProjections(ProjectionContract):
        @pytest.fixture(autouse=True)
        def runner(self, loop):
            bridge = AsyncProjectionBridge(loop)
            self.run_projection = bridge.run_projection
            self.running_projection = bridge.running_projection
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from eventcore.events import RecordedEvent
from eventcore.projections.aio import AsyncProjectionHandle, run_projection_async
from eventcore.projections.api import ProjectionReport, StopHandle, is_transactional
from eventcore.projections.config import ProjectionConfig
from eventcore.testing.bridge import LoopThread, SyncBridge

__all__ = ["AsyncProjectionBridge", "BlockingStoreOnThreads", "Bridged"]


class Bridged:
    """An async object's coroutine methods, callable from blocking code (on ``loop``).
    ``target`` is the async object itself."""

    def __init__(self, loop: LoopThread, target: Any) -> None:
        self.target = target
        self.database_key = getattr(target, "database_key", None)
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run(attribute(*args, **kwargs))

        return call

    def __repr__(self) -> str:
        return f"Bridged({self.target!r})"


class BlockingStoreOnThreads:
    """A blocking store served as an async one: each call in a worker thread."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.types = store.types

    async def read_all(self, **kwargs: Any) -> list[RecordedEvent]:
        return await asyncio.to_thread(lambda: list(self.store.read_all(**kwargs)))

    async def head(self) -> int:
        return int(await asyncio.to_thread(self.store.head))

    async def wait_for_events(self, after: int, timeout: float) -> bool:
        waiter = getattr(self.store, "wait_for_events", None)
        if not callable(waiter):
            await asyncio.sleep(timeout)
            return False
        return bool(await asyncio.to_thread(waiter, after, timeout))


class _OnThreads:
    """A plain projector whose ``apply`` is awaited from a worker thread."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.selector = getattr(inner, "selector", None)
        self.error_policy = getattr(inner, "error_policy", None)

    async def apply(self, event: RecordedEvent) -> None:
        await asyncio.to_thread(self.inner.apply, event)


def _store(store: Any) -> Any:
    if isinstance(store, SyncBridge):
        return store.store
    return BlockingStoreOnThreads(store)


def _backend(backend: Any) -> Any:
    return backend.target if isinstance(backend, Bridged) else backend


def _config(config: ProjectionConfig) -> ProjectionConfig:
    return dataclasses.replace(
        config,
        checkpoints=_backend(config.checkpoints),
        dead_letters=_backend(config.dead_letters),
        leadership=_backend(config.leadership),
    )


def _projector(projector: Any) -> Any:
    if is_transactional(projector) or inspect.iscoroutinefunction(projector.apply):
        return projector
    return _OnThreads(projector)


class AsyncProjectionHandleBridge:
    """The blocking face of an :class:`~eventcore.projections.AsyncProjectionHandle`
    (what ``running_projection`` yields: ``wait_until``, ``running``, ``report``)."""

    def __init__(self, loop: LoopThread, handle: AsyncProjectionHandle) -> None:
        self.handle = handle
        self.name = handle.name
        self._loop = loop

    @property
    def running(self) -> bool:
        return self.handle.running

    @property
    def report(self) -> ProjectionReport | None:
        return self.handle.report

    @property
    def error(self) -> BaseException | None:
        return self.handle.error

    def wait_until(self, position: int, timeout: float = 10.0) -> bool:
        return self._loop.run(self.handle.wait_until(position, timeout), timeout + 30)

    def stop(self) -> None:
        self._loop.loop.call_soon_threadsafe(self.handle.request_stop)


class AsyncProjectionBridge:
    """``run_projection`` and ``running_projection`` over the asyncio runner."""

    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop

    def bridged(self, target: Any) -> Bridged:
        """``target`` (an async backend) with blocking methods, for the test's own calls."""
        return Bridged(self.loop, target)

    def run_projection(
        self,
        projector: Any,
        store: Any,
        config: ProjectionConfig,
        *,
        mode: str = "batch",
        stop: StopHandle | None = None,
    ) -> ProjectionReport:
        run = run_projection_async(
            _projector(projector),
            _store(store),
            _config(config),
            mode=mode,  # type: ignore[arg-type]
            stop=stop,
        )
        return self.loop.run(run)

    @contextlib.contextmanager
    def running_projection(
        self, projector: Any, store: Any, config: ProjectionConfig
    ) -> Iterator[AsyncProjectionHandleBridge]:
        async def start() -> AsyncProjectionHandle:
            return AsyncProjectionHandle(_projector(projector), _store(store), _config(config))

        handle = AsyncProjectionHandleBridge(self.loop, self.loop.run(start()))
        stop: Callable[[], Any] = lambda: self.loop.run(handle.handle.stop())  # noqa: E731
        try:
            yield handle
        except BaseException:
            with contextlib.suppress(BaseException):
                stop()
            raise
        stop()
