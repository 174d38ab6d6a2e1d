"""The asyncio face of the in-memory store: the same log and rules, awaited.

Nothing it does blocks the event loop; ``wait_for_events`` awaits a wake-up from any handle
of the log, blocking or asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.events import EventTypes, Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.selection import Selection, aiter_log
from eventcore.store import check_wait_args
from eventcore.stores.memory import InMemoryEventStore
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.retention import Archive, RetentionPolicy, RetentionReport
    from eventcore.tenants.aio import AsyncTenantStore

__all__ = ["AsyncInMemoryEventStore", "AsyncSession"]


class AsyncSession:
    """A blocking session seen from asyncio: the same reads and one append, awaited. Its
    calls run on the caller's thread (for sessions whose work does not block)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.types = session.types

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        return list(self.session.read_stream(stream_id, after_version=after_version))

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        found: dict[StreamId, list[RecordedEvent]] = self.session.read_streams(stream_ids)
        return found

    async def stream_version(self, stream_id: StreamId) -> int:
        return int(self.session.stream_version(stream_id))

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        written: list[RecordedEvent] = self.session.append(
            expected, events, metadata=metadata, idempotency_key=idempotency_key
        )
        return written


class AsyncInMemoryEventStore:
    """The asyncio face of :class:`InMemoryEventStore`: the same log and rules; nothing it
    does blocks the event loop (``wait_for_events`` awaits a wake-up from any handle).

    ``AsyncInMemoryEventStore(store=InMemoryEventStore(...))`` serves an existing log, so
    blocking and asyncio code can share one.
    """

    def __init__(
        self,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
        store: InMemoryEventStore | None = None,
    ) -> None:
        self.sync = (
            store if store is not None else InMemoryEventStore(events=events, clock=clock, ids=ids)
        )
        self.types = self.sync.types

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    def reopen(self, **kwargs: Any) -> AsyncInMemoryEventStore:
        """A second handle on the same events (see :meth:`InMemoryEventStore.reopen`)."""
        return AsyncInMemoryEventStore(store=self.sync.reopen(**kwargs))

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        return list(self.sync.read_stream(stream_id, after_version=after_version))

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        return self.sync.read_streams(stream_ids)

    async def stream_version(self, stream_id: StreamId) -> int:
        return self.sync.stream_version(stream_id)

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        async with self.sync.shared_log.async_writes:
            return self.sync.append(
                expected, events, metadata=metadata, idempotency_key=idempotency_key
            )

    @contextlib.asynccontextmanager
    async def session(self, lock: Iterable[StreamId] = ()) -> AsyncIterator[AsyncSession]:
        """The asyncio form of :meth:`InMemoryEventStore.session`: other asyncio appends
        through this log wait until it ends (blocking handles too)."""
        async with self.sync.shared_log.async_writes:
            with self.sync.session(lock) as session:
                yield AsyncSession(session)

    async def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        return self.sync.read_idempotent_write(key)

    async def iter_all(
        self,
        *,
        after: int = 0,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """Every selected event after ``after``, a page (whole writes) at a time."""
        async for event in aiter_log(
            self.read_all,
            after=after,
            streams=streams,
            event_types=event_types,
            page_size=page_size,
        ):
            yield event

    async def list_streams(
        self, *, streams: Selection = None, after: str = "", limit: int | None = None
    ) -> list[StreamInfo]:
        return self.sync.list_streams(streams=streams, after=after, limit=limit)

    async def stats(self) -> StoreStats:
        return self.sync.stats()

    async def export_rows(self, *, after: int = 0, limit: int | None = None) -> list[RawEvent]:
        return self.sync.export_rows(after=after, limit=limit)

    async def stream_rows(
        self, stream_id: StreamId, *, after_version: int = 0, limit: int | None = None
    ) -> list[RawEvent]:
        """See :meth:`InMemoryEventStore.stream_rows`."""
        return self.sync.stream_rows(stream_id, after_version=after_version, limit=limit)

    async def verify(
        self, *, page_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> list[LogProblem]:
        """See :meth:`InMemoryEventStore.verify`."""
        return self.sync.verify(page_size=page_size, progress=progress)

    async def import_rows(self, rows: Iterable[RawEvent]) -> int:
        async with self.sync.shared_log.async_writes:
            return self.sync.import_rows(rows)

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        return self.sync.read_all(
            after=after, limit=limit, streams=streams, event_types=event_types
        )

    def for_tenant(self, tenant: str) -> AsyncTenantStore:
        """This store as tenant ``tenant`` sees it (see :mod:`eventcore.tenants`)."""
        from eventcore.tenants.aio import AsyncTenantStore

        return AsyncTenantStore(self, tenant)

    async def read_retained(self, **kwargs: Any) -> list[RecordedEvent]:
        """``read_all`` without the retention check (see ``InMemoryEventStore``)."""
        return self.sync.read_retained(**kwargs)

    async def close_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Close a stream (see :meth:`InMemoryEventStore.close_stream`)."""
        async with self.sync.shared_log.async_writes:
            return self.sync.close_stream(
                stream_id, reason=reason, expected_version=expected_version
            )

    async def delete_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Delete a stream (see :meth:`InMemoryEventStore.delete_stream`)."""
        async with self.sync.shared_log.async_writes:
            return self.sync.delete_stream(
                stream_id, reason=reason, expected_version=expected_version
            )

    async def apply_retention(
        self, policies: Sequence[RetentionPolicy], *, archive: Archive | None
    ) -> RetentionReport:
        """Archive and remove what ``policies`` select (see :mod:`eventcore.retention`)."""
        async with self.sync.shared_log.async_writes:
            return self.sync.apply_retention(policies, archive=archive)

    async def retention_runs(self) -> list[tuple[int, int, datetime]]:
        return self.sync.retention_runs()

    async def head(self) -> int:
        return self.sync.head()

    async def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        return self.sync.read_correlation(correlation_id)

    async def read_event(self, event_id: UUID) -> RecordedEvent | None:
        return self.sync.read_event(event_id)

    async def wait_for_events(self, after: int, timeout: float) -> bool:
        """Wait until an event after ``after`` exists (True) or ``timeout`` seconds pass."""
        check_wait_args(after, timeout)
        shared = self.sync.shared_log
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        entry = (loop, woken)
        deadline = loop.time() + timeout
        with shared.lock:
            shared.async_waiters.add(entry)
        try:
            while True:
                woken.clear()
                if self.sync.head() > after:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), remaining)
        finally:
            with shared.lock:
                shared.async_waiters.discard(entry)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> AsyncInMemoryEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
