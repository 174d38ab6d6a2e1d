"""Drive an asyncio store from blocking code: how one contract suite tests both faces.

:class:`LoopThread` runs an event loop in a thread of its own; :class:`SyncBridge` gives an
:class:`~eventcore.asyncstore.AsyncEventStore` the blocking :class:`~eventcore.store.EventStore`
interface by running each coroutine on that loop. The store contract
(:class:`~eventcore.testing.contract.EventStoreContract`) then runs unchanged against an async
store — eight threads appending at once become eight concurrent tasks on the loop::

    class TestMyAsyncStore(EventStoreContract):
        @pytest.fixture
        def make_store(self):
            loop = LoopThread()
            yield lambda **kwargs: SyncBridge.open(loop, lambda: MyAsyncStore(**kwargs))
            loop.close()

>>> from eventcore.stores.memory import AsyncInMemoryEventStore
>>> loop = LoopThread()
>>> store = SyncBridge.open(loop, AsyncInMemoryEventStore)
>>> store.head()
0
>>> store.close(); loop.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventcore.asyncstore import read_versioned_async, read_versioned_streams_async
from eventcore.events import Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.selection import Selection
from eventcore.types import StreamId

__all__ = ["LoopThread", "SyncBridge"]

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running in a daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="eventcore-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 120.0) -> T:
        """Run ``coroutine`` on the loop and block until it is done."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class SyncBridge:
    """The blocking store interface over an async store, on a :class:`LoopThread`."""

    def __init__(self, store: Any, loop: LoopThread) -> None:
        self.store = store
        self.types = store.types
        self._loop = loop

    @classmethod
    def open(cls, loop: LoopThread, factory: Callable[[], Any]) -> SyncBridge:
        """Build the async store on the loop (``factory`` may be a plain or async callable,
        and may return an awaitable: e.g. a store whose ``open()`` must be awaited)."""

        async def build() -> Any:
            made = factory()
            if inspect.isawaitable(made):
                made = await made
            return made

        return cls(loop.run(build()), loop)

    def __repr__(self) -> str:
        return f"SyncBridge({self.store!r})"

    def _run(self, awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        return self._loop.run(wrapped())

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        return iter(self._run(self.store.read_stream(stream_id, after_version=after_version)))

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        found: dict[StreamId, list[RecordedEvent]] = self._run(self.store.read_streams(stream_ids))
        return found

    # The fold reads (``read_stream_events``): the store's own, or its full reads.

    def read_stream_events(self, stream_id: StreamId, *, after_version: int = 0) -> Iterator[Any]:
        return iter(self._run(read_versioned_async(self.store, stream_id, after_version)))

    def read_streams_events(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, Sequence[Any]]:
        return dict(self._run(read_versioned_streams_async(self.store, stream_ids)))

    def stream_version(self, stream_id: StreamId) -> int:
        return self._run(self.store.stream_version(stream_id))  # type: ignore[no-any-return]

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        written: list[RecordedEvent] = self._run(
            self.store.append(expected, events, metadata=metadata, idempotency_key=idempotency_key)
        )
        return written

    def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        return self._run(self.store.read_idempotent_write(key))  # type: ignore[no-any-return]

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        found: list[RecordedEvent] = self._run(
            self.store.read_all(after=after, limit=limit, streams=streams, event_types=event_types)
        )
        return found

    def head(self) -> int:
        return self._run(self.store.head())  # type: ignore[no-any-return]

    def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        return self._run(self.store.read_correlation(correlation_id))

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        return self._run(self.store.read_event(event_id))  # type: ignore[no-any-return]

    def iter_all(self, **kwargs: Any) -> Iterator[RecordedEvent]:
        async def collect() -> list[RecordedEvent]:
            return [event async for event in self.store.iter_all(**kwargs)]

        return iter(self._loop.run(collect()))

    def list_streams(self, **kwargs: Any) -> list[StreamInfo]:
        return self._run(self.store.list_streams(**kwargs))

    def stats(self) -> StoreStats:
        return self._run(self.store.stats())  # type: ignore[no-any-return]

    def stream_rows(self, stream_id: Any, **kwargs: Any) -> list[RawEvent]:
        return self._run(self.store.stream_rows(stream_id, **kwargs))

    def verify(self, **kwargs: Any) -> list[LogProblem]:
        return self._run(self.store.verify(**kwargs))

    def export_rows(self, **kwargs: Any) -> list[RawEvent]:
        return self._run(self.store.export_rows(**kwargs))

    def import_rows(self, rows: Iterable[RawEvent]) -> int:
        return self._run(self.store.import_rows(rows))  # type: ignore[no-any-return]

    def wait_for_events(self, after: int, timeout: float) -> bool:
        return self._run(self.store.wait_for_events(after, timeout))  # type: ignore[no-any-return]

    def close_stream(self, stream_id: StreamId, **kwargs: Any) -> RecordedEvent:
        return self._run(self.store.close_stream(stream_id, **kwargs))  # type: ignore[no-any-return]

    def delete_stream(self, stream_id: StreamId, **kwargs: Any) -> RecordedEvent:
        return self._run(self.store.delete_stream(stream_id, **kwargs))  # type: ignore[no-any-return]

    def apply_retention(self, policies: Any, **kwargs: Any) -> Any:
        return self._run(self.store.apply_retention(policies, **kwargs))

    def read_retained(self, **kwargs: Any) -> list[RecordedEvent]:
        return self._run(self.store.read_retained(**kwargs))

    def retention_runs(self) -> Any:
        return self._run(self.store.retention_runs())

    @contextlib.contextmanager
    def session(self, lock: Iterable[StreamId] = ()) -> Iterator[_BridgedSession]:
        """The async store's session, served by one task on the loop (so that it is entered,
        used and left in one task, as asyncio code would)."""
        loop = self._loop.loop
        opened: concurrent.futures.Future[Any] = concurrent.futures.Future()
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()

        async def serve() -> None:
            try:
                manager = self.store.session(lock)
                session = await manager.__aenter__()
            except BaseException as exc:
                opened.set_exception(exc)
                raise
            opened.set_result(session)
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_exit(manager)
                while True:
                    request = await asyncio.to_thread(requests.get)
                    if isinstance(request, BaseException):
                        raise request  # the block raised: leave the session with it
                    if request is None:
                        return
                    done, call = request
                    try:
                        done.set_result(await call(session))
                    except BaseException as exc:  # handed to the blocking caller
                        done.set_exception(exc)

        served = asyncio.run_coroutine_threadsafe(serve(), loop)
        session = opened.result(120)  # raises the error of opening
        try:
            yield _BridgedSession(session, requests)
        except BaseException as exc:
            requests.put(exc)
            with contextlib.suppress(BaseException):
                served.result(120)
            raise
        requests.put(None)
        served.result(120)

    def close(self) -> None:
        self._run(self.store.close())

    def __enter__(self) -> SyncBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BridgedSession:
    """Each call is sent to the task serving the session, and waited for."""

    def __init__(self, session: Any, requests: queue.SimpleQueue[Any]) -> None:
        self.types = session.types
        self._requests = requests

    def _call(self, call: Callable[[Any], Awaitable[Any]]) -> Any:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._requests.put((done, call))
        return done.result(120)

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        return iter(self._call(lambda s: s.read_stream(stream_id, after_version=after_version)))

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        found: dict[StreamId, list[RecordedEvent]] = self._call(
            lambda s: s.read_streams(stream_ids)
        )
        return found

    def read_stream_events(self, stream_id: StreamId, *, after_version: int = 0) -> Iterator[Any]:
        return iter(self._call(lambda s: read_versioned_async(s, stream_id, after_version)))

    def read_streams_events(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, Sequence[Any]]:
        return dict(self._call(lambda s: read_versioned_streams_async(s, stream_ids)))

    def stream_version(self, stream_id: StreamId) -> int:
        return int(self._call(lambda s: s.stream_version(stream_id)))

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        written: list[RecordedEvent] = self._call(
            lambda s: s.append(expected, events, metadata=metadata, idempotency_key=idempotency_key)
        )
        return written
