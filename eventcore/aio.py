"""``execute_async``: an asyncio shell over the same sans-IO command pipeline.

It drives :func:`eventcore.pipeline.command_pipeline` exactly as :func:`eventcore.execute`
does, awaiting each effect instead of blocking. A store whose methods are coroutines
(an *async store*) is awaited directly; a synchronous store runs in a worker thread, so the
event loop is never blocked.

>>> import asyncio
>>> from dataclasses import dataclass
>>> from eventcore import Command, InMemoryEventStore, StreamId, stream
>>> @dataclass(frozen=True)
... class Pinged:
...     target: StreamId
>>> class Ping(Command[int]):
...     target: StreamId = stream()
...     def initial_state(self) -> int:
...         return 0
...     def apply(self, count: int, event: Pinged) -> int:
...         return count + 1
...     def handle(self, count: int) -> list[Pinged]:
...         return [Pinged(self.target)]
>>> store = InMemoryEventStore()
>>> result = asyncio.run(execute_async(store, Ping(target="host-1")))
>>> result.positions
(1,)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from eventcore.commands import Command
from eventcore.errors import StoreError
from eventcore.events import Metadata
from eventcore.execution import start_pipeline
from eventcore.pipeline import (
    AppendEvents,
    ExecutionResult,
    ReadStream,
    ReadStreams,
    Sleep,
)
from eventcore.retry import RetryPolicy

if TYPE_CHECKING:  # the snapshot package is imported only when snapshots are used
    from eventcore.snapshots.replay import SnapshotEffect

__all__ = ["execute_async"]

_DEFAULT_RETRY = RetryPolicy()


async def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if inspect.iscoroutinefunction(method):
        return await method(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)


async def execute_async(
    store: Any,
    command: Command[Any],
    *,
    retry: RetryPolicy = _DEFAULT_RETRY,
    metadata: Metadata | Mapping[str, Any] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    snapshots: Any = None,
) -> ExecutionResult:
    """The asyncio counterpart of :func:`eventcore.execute`, with the same semantics.

    ``snapshots`` is a snapshot store whose methods are coroutines or blocking calls (run
    in a worker thread).
    """
    pipeline = start_pipeline("execute_async", command, retry, metadata, snapshots)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            effect = pipeline.throw(to_throw) if to_throw is not None else pipeline.send(to_send)
        except StopIteration as done:
            result: ExecutionResult = done.value
            return result
        to_send, to_throw = None, None
        try:
            if isinstance(effect, ReadStreams):
                to_send = await _read_many(store, effect)
            elif isinstance(effect, ReadStream):
                to_send = await _read(store, effect)
            elif isinstance(effect, AppendEvents):
                to_send = await _call(
                    store.append, effect.expected, effect.events, metadata=effect.metadata
                )
            elif isinstance(effect, Sleep):
                if retry.on_retry is not None:
                    retry.on_retry(effect.retry)
                await sleep(effect.seconds)
            else:  # LoadSnapshot or SaveSnapshot: only the snapshot strategy yields others
                to_send = await _perform_snapshot_effect(snapshots, effect)
        except StoreError as exc:
            to_throw = exc


async def _perform_snapshot_effect(snapshots: Any, effect: SnapshotEffect) -> Any:
    from eventcore.snapshots.store import perform_async

    return await perform_async(snapshots, effect)


async def _read_many(store: Any, effect: ReadStreams) -> dict[Any, list[Any]]:
    method = getattr(store, "read_streams", None)
    if method is None:
        return {sid: await _read(store, ReadStream(sid)) for sid in effect.stream_ids}
    if inspect.iscoroutinefunction(method):
        return dict(await method(effect.stream_ids))
    return dict(await asyncio.to_thread(method, effect.stream_ids))


async def _read(store: Any, effect: ReadStream) -> list[Any]:
    method = store.read_stream
    args: tuple[Any, ...] = (effect.stream_id,)
    kwargs = {"after_version": effect.after_version} if effect.after_version else {}
    if inspect.isasyncgenfunction(method):
        return [event async for event in method(*args, **kwargs)]
    if inspect.iscoroutinefunction(method):
        return list(await method(*args, **kwargs))
    return await asyncio.to_thread(lambda: list(method(*args, **kwargs)))
