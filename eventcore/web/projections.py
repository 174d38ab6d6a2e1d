"""Read models a service runs for its lifetime: a small protocol and two adapters.

A service starts its projections when it starts and stops them when it stops, and a query
may wait until a read model has reached a position (read-your-writes). Anything with these
four coroutines can be a service projection. :class:`AsyncProjection` runs the asyncio
runner (:func:`~eventcore.projections.start_projection_async`) as a task of the service's
loop, over an async store (the default for a service); :class:`ThreadedProjection` runs the
blocking runner (:class:`~eventcore.projections.ProjectionHandle`) in its thread and
awaits it without blocking the event loop (for a blocking store or backend).

>>> import asyncio
>>> from eventcore import InMemoryEventStore
>>> from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, projector
>>> seen = []
>>> @projector("seen")
... def remember(event):
...     seen.append(event.event_type)
>>> config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.05)
>>> async def main() -> tuple[bool, int]:
...     projection = ThreadedProjection(remember, InMemoryEventStore(), config)
...     await projection.start()
...     reached = await projection.wait_until(0, timeout=1.0)
...     await projection.stop()
...     return reached, await projection.position()
>>> asyncio.run(main())
(True, 0)
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

from eventcore.errors import ConfigurationError
from eventcore.projections.aio_handle import AsyncProjectionHandle, start_projection_async
from eventcore.projections.checkpoints import InMemoryCheckpointStore
from eventcore.projections.config import ProjectionConfig
from eventcore.projections.runner import ProjectionHandle
from eventcore.store import EventStore

__all__ = ["AsyncProjection", "ServiceProjection", "ThreadedProjection"]

_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.02


@runtime_checkable
class ServiceProjection(Protocol):
    """A read model kept up to date while the service runs."""

    @property
    def name(self) -> str:
        """The projection's name (what queries wait on)."""
        ...

    async def start(self) -> None:
        """Start following the log (called once, at service start-up)."""
        ...

    async def stop(self) -> None:
        """Stop, saving the checkpoint; raise the projection's error if it had failed."""
        ...

    async def position(self) -> int:
        """The position the read model has dealt with (0 before the first event)."""
        ...

    async def wait_until(self, position: int, timeout: float) -> bool:
        """True once the read model has dealt with ``position``; False after ``timeout``
        seconds. Raises the projection's error if it has failed."""
        ...


class ThreadedProjection:
    """A blocking projection run in a background thread for the service's lifetime.

    ``store`` is the blocking store the projector reads (for the bundled async stores:
    ``async_store.sync`` for memory and SQLite, a :class:`PostgresEventStore` on the same
    config for PostgreSQL). ``close_store=True`` closes it after the projection stopped.
    """

    def __init__(
        self,
        projector: Any,
        store: EventStore,
        config: ProjectionConfig,
        *,
        join_timeout: float = 30.0,
        close_store: bool = False,
    ) -> None:
        if not isinstance(config, ProjectionConfig):
            raise ConfigurationError(
                f"config must be a ProjectionConfig, got {type(config).__name__}"
            )
        self._projector = projector
        self._store = store
        self._config = config
        self._join_timeout = join_timeout
        self._close_store = close_store
        self._handle: ProjectionHandle | None = None
        self._name: str = ProjectionHandle(projector, store, config).name  # validates now

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        state = "running" if self._handle is not None and self._handle.running else "stopped"
        return f"ThreadedProjection({self._name!r}, {state})"

    async def start(self) -> None:
        if self._handle is not None and self._handle.running:
            raise ConfigurationError(f"projection {self._name!r} is already running")
        self._handle = ProjectionHandle(self._projector, self._store, self._config)
        self._handle.start()

    async def stop(self) -> None:
        handle = self._handle
        try:
            if handle is not None:
                handle.stop()
                await asyncio.to_thread(handle.join, self._join_timeout)
                if handle.error is not None:
                    raise handle.error
        finally:
            if self._close_store:
                close = getattr(self._store, "close", None)
                if callable(close):
                    await asyncio.to_thread(close)

    async def position(self) -> int:
        checkpoints = self._config.checkpoints
        if isinstance(checkpoints, InMemoryCheckpointStore):
            found = checkpoints.load(self._name)
        else:
            found = await asyncio.to_thread(checkpoints.load, self._name)
        return found or 0

    async def wait_until(self, position: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = _FIRST_PAUSE
        while True:
            handle = self._handle
            if handle is not None and handle.error is not None:
                raise handle.error
            if await self.position() >= position:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or handle is None or not handle.running:
                return False
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _LONGEST_PAUSE)


class AsyncProjection:
    """A projection run as an asyncio task of the service's loop, over an async store.

    >>> from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, projector
    >>> from eventcore.stores.memory_aio import AsyncInMemoryEventStore
    >>> count = projector("count")(lambda event: None)
    >>> config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.05)
    >>> async def main() -> tuple[bool, int, str]:
    ...     projection = AsyncProjection(count, AsyncInMemoryEventStore(), config)
    ...     await projection.start()
    ...     reached = await projection.wait_until(0, timeout=1.0)
    ...     await projection.stop()
    ...     return reached, await projection.position(), repr(projection)
    >>> asyncio.run(main())
    (True, 0, "AsyncProjection('count', stopped)")
    """

    def __init__(
        self, projector: Any, store: Any, config: ProjectionConfig, *, stop_timeout: float = 30.0
    ) -> None:
        if not isinstance(config, ProjectionConfig):
            raise ConfigurationError(
                f"config must be a ProjectionConfig, got {type(config).__name__}"
            )
        self._projector = projector
        self._store = store
        self._config = config
        self._stop_timeout = stop_timeout
        self._handle: AsyncProjectionHandle | None = None
        self._name: str = ProjectionHandle(projector, getattr(store, "sync", store), config).name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        state = "running" if self._handle is not None and self._handle.running else "stopped"
        return f"AsyncProjection({self._name!r}, {state})"

    async def start(self) -> None:
        if self._handle is not None and self._handle.running:
            raise ConfigurationError(f"projection {self._name!r} is already running")
        self._handle = start_projection_async(self._projector, self._store, self._config)

    async def stop(self) -> None:
        if self._handle is not None:
            await self._handle.stop(timeout=self._stop_timeout)

    async def position(self) -> int:
        if self._handle is not None:
            return self._handle.position
        checkpoints = self._config.checkpoints
        load = checkpoints.load
        found = await load(self._name) if asyncio.iscoroutinefunction(load) else load(self._name)
        return int(found or 0)

    async def wait_until(self, position: int, timeout: float) -> bool:
        if self._handle is None:
            return await self.position() >= position
        return await self._handle.wait_until(position, timeout)
