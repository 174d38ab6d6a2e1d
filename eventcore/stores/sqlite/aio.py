"""The asyncio face of the SQLite store: the same store, each connection in a thread of its own.

SQLite's API blocks, so an asyncio store must run it off the event loop. This one gives the
database's writer connection one dedicated thread and its reader connections a thread each,
and runs every operation of :class:`~eventcore.stores.sqlite.SqliteEventStore` — its
validation, its plan of statements, its row decoding — whole in that thread: one hop
between the loop and a thread per operation (an ``aiosqlite``-style driver hops once per
statement: six or more for an append). Durability is the blocking store's, because it is
the blocking store: ``BEGIN IMMEDIATE``, ``synchronous=FULL``, WAL.

An append, once started, runs to its end: if the awaiting task is cancelled meanwhile, a
write that committed still returns its result (see :mod:`eventcore._finish`).

>>> import asyncio
>>> async def main() -> int:
...     async with AsyncSqliteEventStore(":memory:") as store:
...         return await store.head()
>>> asyncio.run(main())
0
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from uuid import UUID

from eventcore._finish import Cancelled, complete, complete_quietly, finish
from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.events import EventTypes, Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.selection import Selection, aiter_log
from eventcore.store import check_wait_args
from eventcore.stores._notify import wait_for_head_async
from eventcore.stores.sqlite.database import SqliteDatabase, Synchronous
from eventcore.stores.sqlite.store import SqliteEventStore
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.retention import Archive, RetentionPolicy, RetentionReport
    from eventcore.tenants.aio import AsyncTenantStore

__all__ = ["AsyncSqliteEventStore"]

T = TypeVar("T")

_WAIT_POLL: Final = 0.05


class AsyncSession:
    """A blocking session whose calls run on one thread (the writer's), awaited."""

    def __init__(self, session: Any, thread: ThreadPoolExecutor) -> None:
        self.session = session
        self.types = session.types
        self._thread = thread

    async def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(call, *args, **kwargs))

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        def read() -> list[RecordedEvent]:
            return list(self.session.read_stream(stream_id, after_version=after_version))

        return await self._call(read)

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        return await self._call(self.session.read_streams, stream_ids)

    async def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[VersionedEvent]:
        def read() -> list[VersionedEvent]:
            return list(self.session.read_stream_events(stream_id, after_version=after_version))

        return await self._call(read)

    async def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        return await self._call(self.session.read_streams_events, stream_ids)

    async def stream_version(self, stream_id: StreamId) -> int:
        return await self._call(self.session.stream_version, stream_id)

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        call = functools.partial(
            self.session.append,
            expected,
            events,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )
        return await finish(asyncio.get_running_loop().run_in_executor(self._thread, call))


class AsyncSqliteEventStore:
    """An event store in an SQLite database, for asyncio code.

    Takes what :class:`~eventcore.stores.sqlite.SqliteEventStore` takes (a
    :class:`SqliteDatabase`, a path, ``":memory:"`` or a connection) and keeps its rules;
    ``store=`` serves an existing blocking store (blocking and asyncio code then share it).
    """

    def __init__(
        self,
        database: SqliteDatabase | str | os.PathLike[str] | sqlite3.Connection | None = None,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
        synchronous: Synchronous | None = None,
        busy_timeout: float | None = None,
        page_size: int = 1000,
        store: SqliteEventStore | None = None,
    ) -> None:
        if store is None:
            if database is None:
                raise TypeError("AsyncSqliteEventStore needs a database or store=")
            store = SqliteEventStore(
                database,
                events=events,
                clock=clock,
                ids=ids,
                synchronous=synchronous,
                busy_timeout=busy_timeout,
                page_size=page_size,
            )
            self._owns = True
        else:
            self._owns = False
        self.sync = store
        self.types = store.types
        self.database = store.database
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="eventcore-sqlite-writer")
        self._writes = asyncio.Lock()  # appends and sessions of this store take turns
        readers = self.database.max_readers if self.database.file else 1
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="eventcore-sqlite-reader")

    def __repr__(self) -> str:
        return f"AsyncSqliteEventStore({self.database.name!r})"

    async def _read(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(call, *args, **kwargs))

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        def read() -> list[RecordedEvent]:
            return list(self.sync.read_stream(stream_id, after_version=after_version))

        return await self._read(read)

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        return await self._read(self.sync.read_streams, stream_ids)

    async def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[VersionedEvent]:
        """A stream's events and versions without their envelopes (what ``execute_async``
        folds), as :meth:`read_stream` reads it."""

        def read() -> list[VersionedEvent]:
            return list(self.sync.read_stream_events(stream_id, after_version=after_version))

        return await self._read(read)

    async def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        """Several whole streams as :meth:`read_stream_events` reads each, in one query."""
        return await self._read(self.sync.read_streams_events, stream_ids)

    async def stream_version(self, stream_id: StreamId) -> int:
        return await self._read(self.sync.stream_version, stream_id)

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        return await self._read(
            self.sync.read_all, after=after, limit=limit, streams=streams, event_types=event_types
        )

    async def head(self) -> int:
        return await self._read(self.sync.head)

    async def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        return await self._read(self.sync.read_correlation, correlation_id)

    async def read_event(self, event_id: UUID) -> RecordedEvent | None:
        return await self._read(self.sync.read_event, event_id)

    async def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        return await self._read(self.sync.read_idempotent_write, key)

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
        return await self._read(self.sync.list_streams, streams=streams, after=after, limit=limit)

    async def stats(self) -> StoreStats:
        return await self._read(self.sync.stats)

    async def export_rows(self, *, after: int = 0, limit: int | None = None) -> list[RawEvent]:
        return await self._read(self.sync.export_rows, after=after, limit=limit)

    async def stream_rows(
        self, stream_id: StreamId, *, after_version: int = 0, limit: int | None = None
    ) -> list[RawEvent]:
        """See :meth:`SqliteEventStore.stream_rows`."""
        return await self._read(
            self.sync.stream_rows, stream_id, after_version=after_version, limit=limit
        )

    async def verify(
        self, *, page_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> list[LogProblem]:
        """See :meth:`SqliteEventStore.verify` (run on a reader thread)."""
        return await self._read(self.sync.verify, page_size=page_size, progress=progress)

    async def import_rows(self, rows: Iterable[RawEvent]) -> int:
        loop = asyncio.get_running_loop()
        async with self._writes:
            call = functools.partial(self.sync.import_rows, list(rows))
            return await finish(loop.run_in_executor(self._writer, call))

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append atomically on the writer's thread; runs to its end once started."""
        call = functools.partial(
            self.sync.append, expected, events, metadata=metadata, idempotency_key=idempotency_key
        )
        async with self._writes:
            return await finish(asyncio.get_running_loop().run_in_executor(self._writer, call))

    @contextlib.asynccontextmanager
    async def session(self, lock: Iterable[StreamId] = ()) -> AsyncIterator[AsyncSession]:
        """The asyncio form of :meth:`SqliteEventStore.session`: the transaction, its reads
        and its append all run on the writer's thread; this store's other appends wait."""
        loop = asyncio.get_running_loop()
        async with self._writes:
            cm = self.sync.session(lock)
            try:
                # Opening runs in the writer's thread and takes the file's write lock: let it
                # end even if this task is cancelled, and close it again in that case.
                session = await complete(loop.run_in_executor(self._writer, cm.__enter__))
            except Cancelled as late:
                await complete_quietly(
                    loop.run_in_executor(
                        self._writer, cm.__exit__, type(late.cancelled), late.cancelled, None
                    )
                )
                raise late.cancelled from None
            try:
                yield AsyncSession(session, self._writer)
            except BaseException as exc:
                await complete_quietly(
                    loop.run_in_executor(
                        self._writer, cm.__exit__, type(exc), exc, exc.__traceback__
                    )
                )
                raise
            else:
                await finish(loop.run_in_executor(self._writer, cm.__exit__, None, None, None))

    def for_tenant(self, tenant: str) -> AsyncTenantStore:
        """This store as tenant ``tenant`` sees it (see :mod:`eventcore.tenants`)."""
        from eventcore.tenants.aio import AsyncTenantStore

        return AsyncTenantStore(self, tenant)

    async def read_retained(self, **kwargs: Any) -> list[RecordedEvent]:
        """``read_all`` without the retention check (see ``SqliteEventStore``)."""
        return await self._read(functools.partial(self.sync.read_retained, **kwargs))

    async def _write(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        async with self._writes:
            work = functools.partial(call, *args, **kwargs)
            return await finish(loop.run_in_executor(self._writer, work))

    async def close_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Close a stream on the writer's thread (see :meth:`SqliteEventStore.close_stream`)."""
        return await self._write(
            self.sync.close_stream, stream_id, reason=reason, expected_version=expected_version
        )

    async def delete_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Delete a stream on the writer's thread (see :meth:`SqliteEventStore.delete_stream`)."""
        return await self._write(
            self.sync.delete_stream, stream_id, reason=reason, expected_version=expected_version
        )

    async def apply_retention(
        self, policies: Sequence[RetentionPolicy], *, archive: Archive | None
    ) -> RetentionReport:
        """Archive and remove what ``policies`` select, on the writer's thread."""
        return await self._write(self.sync.apply_retention, policies, archive=archive)

    async def retention_runs(self) -> list[tuple[int, int, datetime]]:
        return await self._read(self.sync.retention_runs)

    async def wait_for_events(self, after: int, timeout: float) -> bool:
        """Wait until an event after ``after`` exists (True) or ``timeout`` seconds pass;
        appends through this database wake the waiter at once, others are polled."""
        check_wait_args(after, timeout)
        notifier = self.database.notifier
        return await wait_for_head_async(self.head, notifier, after, timeout, _WAIT_POLL)

    async def close(self) -> None:
        """Finish the work in flight, then close the database if this store opened it."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        if self._owns:
            self.sync.close()

    async def __aenter__(self) -> AsyncSqliteEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
