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
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from eventcore import checks as dev_checks
from eventcore._finish import finish
from eventcore.commands import Command
from eventcore.errors import StoreError
from eventcore.events import Metadata
from eventcore.execution import (
    Concurrency,
    append_options,
    choose_concurrency,
    execute,
    start_pipeline,
)
from eventcore.idempotency import IdempotencyKey
from eventcore.observability import points
from eventcore.pipeline import (
    AppendEvents,
    ExecutionResult,
    LookupWrite,
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
    idempotency_key: str | IdempotencyKey | None = None,
    concurrency: Concurrency | None = None,
    checks: bool | None = None,
) -> ExecutionResult:
    """The asyncio counterpart of :func:`eventcore.execute`, with the same semantics.

    ``store`` is an asyncio store (:class:`~eventcore.asyncstore.AsyncEventStore`) or a
    blocking one, whose calls then run in worker threads. ``snapshots`` is a snapshot store
    whose methods are coroutines or blocking calls.

    **Cancellation** never reports a committed write as failed: once the append has been
    sent, it runs to its end; if the task is cancelled meanwhile and the append committed,
    the command returns its result (the cancellation came too late to undo it); if it
    failed, the cancellation is raised. Cancelled before the append, nothing was written
    and ``CancelledError`` is raised. With an ``idempotency_key``, retrying a cancelled
    command is harmless either way. ``checks``: as for ``execute`` (:mod:`eventcore.checks`).
    """
    if checks or (checks is None and dev_checks.ENABLED):
        await dev_checks.check_command_async(store, command)
    if points.ACTIVE is not None:  # the OpenTelemetry span and metrics (instrument())
        return await points.ACTIVE.execute_async(  # type: ignore[no-any-return]
            command,
            metadata,
            lambda meta: _execute_async(
                store, command, retry, meta, sleep, snapshots, idempotency_key, concurrency
            ),
        )
    return await _execute_async(
        store, command, retry, metadata, sleep, snapshots, idempotency_key, concurrency
    )


async def _execute_async(
    store: Any,
    command: Command[Any],
    retry: RetryPolicy,
    metadata: Metadata | Mapping[str, Any] | None,
    sleep: Callable[[float], Awaitable[None]],
    snapshots: Any,
    idempotency_key: str | IdempotencyKey | None,
    concurrency: Concurrency | None,
) -> ExecutionResult:
    pipeline = start_pipeline(
        "execute_async", command, retry, metadata, snapshots, idempotency_key=idempotency_key
    )
    mode = choose_concurrency(store, command, concurrency)
    if mode == "pessimistic" and not _is_async(getattr(store, "session", None)):
        # A blocking store's session belongs to one thread: run the whole command there.
        call = functools.partial(
            execute,
            store,
            command,
            retry=retry,
            metadata=metadata,
            snapshots=snapshots,
            idempotency_key=idempotency_key,
            concurrency=mode,
        )
        return await finish(asyncio.get_running_loop().run_in_executor(None, call))
    sessions = _AsyncSessions(store, command, mode)
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            try:
                if to_throw is not None:
                    effect = pipeline.throw(to_throw)
                else:
                    effect = pipeline.send(to_send)
            except StopIteration as done:
                await sessions.end()
                result: ExecutionResult = done.value
                return result
            to_send, to_throw = None, None
            try:
                if isinstance(effect, ReadStreams):
                    to_send = await _read_many(await sessions.target(), effect)
                elif isinstance(effect, ReadStream):
                    to_send = await _read(await sessions.target(), effect)
                elif isinstance(effect, AppendEvents):
                    target = await sessions.target()
                    to_send = await finish(
                        _call(
                            target.append, effect.expected, effect.events, **append_options(effect)
                        )
                    )
                    await sessions.end()
                elif isinstance(effect, LookupWrite):
                    to_send = await _call(store.read_idempotent_write, effect.key)
                elif isinstance(effect, Sleep):
                    if retry.on_retry is not None:
                        retry.on_retry(effect.retry)
                    await sleep(effect.seconds)
                else:  # LoadSnapshot or SaveSnapshot: only the snapshot strategy yields others
                    to_send = await _perform_snapshot_effect(snapshots, effect)
            except StoreError as exc:
                await sessions.end(exc)
                to_throw = exc
    except BaseException as exc:
        await sessions.end(exc)
        raise


class _AsyncSessions:
    """:class:`eventcore.execution._Sessions` for an asyncio store."""

    def __init__(self, store: Any, command: Command[Any], mode: Concurrency) -> None:
        self.store = store
        self.lock = command.streams()
        self.pessimistic = mode == "pessimistic"
        self.manager: Any = None
        self.session: Any = None

    async def target(self) -> Any:
        if not self.pessimistic:
            return self.store
        if self.manager is None:
            manager = self.store.session(lock=self.lock)
            self.session = await manager.__aenter__()
            self.manager = manager  # only once entered: a failed entry has nothing to leave
        return self.session

    async def end(self, error: BaseException | None = None) -> None:
        manager, self.manager, self.session = self.manager, None, None
        if manager is None:
            return
        if error is None:
            await manager.__aexit__(None, None, None)
        else:
            await manager.__aexit__(type(error), error, error.__traceback__)


def _is_async(method: Any) -> bool:
    return method is not None and (
        inspect.iscoroutinefunction(method)
        or inspect.isasyncgenfunction(getattr(method, "__wrapped__", None))
    )


async def _perform_snapshot_effect(snapshots: Any, effect: SnapshotEffect) -> Any:
    from eventcore.snapshots.store import perform_async

    return await perform_async(snapshots, effect)


# The fold needs each event and its version only: a store that reads them without their
# envelopes (``read_stream_events``, ``read_streams_events``: the SQL stores) is asked so.


async def _read_many(store: Any, effect: ReadStreams) -> dict[Any, list[Any]]:
    method = getattr(store, "read_streams_events", None) or getattr(store, "read_streams", None)
    if method is None:
        return {sid: await _read(store, ReadStream(sid)) for sid in effect.stream_ids}
    if inspect.iscoroutinefunction(method):
        return dict(await method(effect.stream_ids))
    return dict(await asyncio.to_thread(method, effect.stream_ids))


async def _read(store: Any, effect: ReadStream) -> list[Any]:
    method = getattr(store, "read_stream_events", None) or store.read_stream
    args: tuple[Any, ...] = (effect.stream_id,)
    kwargs = {"after_version": effect.after_version} if effect.after_version else {}
    if inspect.isasyncgenfunction(method):
        return [event async for event in method(*args, **kwargs)]
    if inspect.iscoroutinefunction(method):
        return list(await method(*args, **kwargs))
    return await asyncio.to_thread(lambda: list(method(*args, **kwargs)))
