"""A running asyncio projection: :func:`start_projection_async` and its handle.

Made for an ASGI lifespan: ``handle = start_projection_async(projector, store, config)`` on
startup, ``await handle.stop()`` on shutdown (see :mod:`eventcore.projections.aio`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

from eventcore.errors import ConfigurationError
from eventcore.projections.aio import AsyncRun
from eventcore.projections.api import ProjectionReport, StopHandle, check_projection_name
from eventcore.projections.config import ProjectionConfig

__all__ = ["AsyncProjectionHandle", "ProjectionStatus", "start_projection_async"]

ProjectionStatus = Literal["running", "stopping", "stopped", "failed", "cancelled"]
"""Where an :class:`AsyncProjectionHandle`'s task is."""


class AsyncProjectionHandle:
    """A projection running in continuous mode as an asyncio task.

    Made by :func:`start_projection_async`. ``await handle.stop()`` finishes the event in
    hand, saves the checkpoint and returns the report (raising the projection's error if it
    failed); ``await handle.wait()`` waits for the task; ``await handle.wait_until(p)`` is
    read-your-writes; ``handle.status`` says where it is. ``async with`` stops it on exit.
    """

    def __init__(self, projector: Any, store: Any, config: ProjectionConfig) -> None:
        self.name: str = check_projection_name(getattr(projector, "name", None))
        self.config = config
        self.stop_handle = StopHandle()
        self.report: ProjectionReport | None = None
        self.error: BaseException | None = None
        self._wake = asyncio.Event()
        self._run = AsyncRun(projector, store, config, "continuous", self.stop_handle, self._wake)
        self._run.progressed = self._progressed = asyncio.Event()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "start_projection_async() starts a task of the running event loop: call it "
                "from a coroutine (an ASGI lifespan, asyncio.run(main())), or use "
                "running_projection() from blocking code"
            ) from None
        self.task: asyncio.Task[ProjectionReport] = loop.create_task(
            self._main(), name=f"eventcore-projection-{self.name}"
        )

    async def _main(self) -> ProjectionReport:
        try:
            self.report = await self._run.run()
        except BaseException as exc:
            self.error = exc
            self._progressed.set()
            raise
        self._progressed.set()
        return self.report

    @property
    def status(self) -> ProjectionStatus:
        """``running``, ``stopping`` (asked to stop, not yet done), ``stopped``, ``failed``
        or ``cancelled``."""
        if not self.task.done():
            return "stopping" if self.stop_handle.stopped else "running"
        if self.task.cancelled():
            return "cancelled"
        return "failed" if self.task.exception() is not None else "stopped"

    @property
    def running(self) -> bool:
        """Whether the task is still running."""
        return not self.task.done()

    @property
    def position(self) -> int:
        """The last checkpoint this run saved (or loaded at the start; 0 before)."""
        return self._run.steps.saved or 0

    def request_stop(self) -> None:
        """Ask the projection to stop (returns at once; thread-safe only through
        ``loop.call_soon_threadsafe``, like every asyncio object)."""
        self.stop_handle.stop()
        self._wake.set()

    async def stop(self, timeout: float | None = 30.0) -> ProjectionReport | None:
        """Stop the projection and wait for it: the event in hand is finished and the
        checkpoint saved. Returns the report (None if it had been cancelled); raises the
        projection's error if it failed. After ``timeout`` seconds the task is cancelled
        (which is safe, see the module docstring)."""
        self.request_stop()
        if not self.task.done():
            done, _ = await asyncio.wait((self.task,), timeout=timeout)
            if not done:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self.task)
        return self._outcome()

    def cancel(self) -> None:
        """Cancel the task (no wait); ``await handle.wait()`` then raises CancelledError."""
        self.task.cancel()

    async def wait(self) -> ProjectionReport:
        """Wait for the task to end; its report, or the error it ended with."""
        return await asyncio.shield(self.task)

    def _outcome(self) -> ProjectionReport | None:
        if self.task.cancelled():
            return None
        error = self.task.exception()
        if error is not None:
            raise error
        return self.task.result()

    async def wait_until(self, position: int, timeout: float = 10.0) -> bool:
        """Wait until this projection's checkpoint reaches ``position`` (False after
        ``timeout``). If the projection has failed, raise its error instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.error is not None and not isinstance(self.error, asyncio.CancelledError):
                raise self.error
            if self.position >= position:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or self.task.done():
                return False
            self._progressed.clear()
            if self.position >= position:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progressed.wait(), min(remaining, 0.25))

    async def __aenter__(self) -> AsyncProjectionHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is not None:
            with contextlib.suppress(Exception):
                await self.stop()
            return
        await self.stop()

    def __repr__(self) -> str:
        return f"AsyncProjectionHandle({self.name!r}, {self.status})"


def start_projection_async(
    projector: Any, store: Any, config: ProjectionConfig
) -> AsyncProjectionHandle:
    """Start ``projector`` in continuous mode as a task of the running loop; return its
    handle (``await handle.stop()`` to stop it). Validates the projector and config now.

    In an ASGI lifespan::

        async def lifespan(app):
            handle = start_projection_async(balances, store, config)
            yield
            await handle.stop()
    """
    return AsyncProjectionHandle(projector, store, config)
