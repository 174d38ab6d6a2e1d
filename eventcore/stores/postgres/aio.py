"""The asyncio face of the PostgreSQL store, native: psycopg's ``AsyncConnection`` and
``AsyncConnectionPool``, the same plans, migrations, errors and guarantees as the blocking
store (one-round-trip append, commit-ordered gapless positions, LISTEN/NOTIFY wake-ups,
typed timeouts).

>>> # async with AsyncPostgresEventStore("postgresql://app@db/shop") as store:
>>> #     await store.append(...)

The store opens its pool on first use, on ``await store.open()`` or in ``async with``. An
append, once started, runs to its end: cancelling the awaiting task cannot turn a commit
into a reported failure (:mod:`eventcore._finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventcore._finish import finish
from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.errors import ConfigurationError, EventCoreError, StoreFailure
from eventcore.events import EventTypes, Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.retention.engine import run_retention_async, write_tombstone_async
from eventcore.selection import Selection, aiter_log
from eventcore.store import check_positive, check_wait_args
from eventcore.stores._verify import LogChecker
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.database_aio import (
    AsyncConnection,
    AsyncPostgresDatabase,
)
from eventcore.stores.postgres.operations import Operations
from eventcore.stores.postgres.schema import TRIGGERS, global_lock_text
from eventcore.tombstones import StreamClosure, StreamDeletion
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.retention import Archive, RetentionPolicy, RetentionReport
    from eventcore.tenants.aio import AsyncTenantStore

__all__ = [
    "AsyncConnection",
    "AsyncPostgresDatabase",
    "AsyncPostgresEventStore",
    "AsyncPostgresSession",
]

T = TypeVar("T")


class AsyncPostgresEventStore:
    """An event store in a PostgreSQL schema, for asyncio code.

    ``config``: an :class:`AsyncPostgresDatabase` (shared, not closed by :meth:`close`), or a
    :class:`PostgresConfig` or DSN (a database is opened on first use and closed by
    :meth:`close`).
    """

    def __init__(
        self,
        config: AsyncPostgresDatabase | PostgresConfig | str,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
    ) -> None:
        if isinstance(config, AsyncPostgresDatabase):
            self.database, self._owns = config, False
        elif isinstance(config, (PostgresConfig, str)):
            self.database, self._owns = AsyncPostgresDatabase(config), True
        else:
            raise ConfigurationError(
                "AsyncPostgresEventStore takes an AsyncPostgresDatabase, a PostgresConfig or a "
                f"DSN string, got {type(config).__name__}"
            )
        self.config = self.database.config
        self.types = events if isinstance(events, EventTypes) else EventTypes(events)
        self.operations = Operations(
            self.config.schema, self.types, clock, ids, self.config.page_size
        )

    def __repr__(self) -> str:
        schema = self.config.schema
        return f"AsyncPostgresEventStore({self.config.masked_dsn!r}, schema={schema!r})"

    async def open(self) -> AsyncPostgresEventStore:
        """Open the database now (it opens on first use otherwise)."""
        await self.database.open()
        return self

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        plan = self.operations.read_stream(stream_id, after_version)
        return await self.database.read("read_stream", plan)

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        return await self.database.read("read_streams", self.operations.read_streams(stream_ids))

    async def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[VersionedEvent]:
        """A stream's events and versions without their envelopes (what ``execute_async``
        folds), as :meth:`read_stream` reads it."""
        plan = self.operations.read_stream_events(stream_id, after_version)
        return await self.database.read("read_stream", plan)

    async def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        """Several whole streams as :meth:`read_stream_events` reads each, in one query."""
        plan = self.operations.read_streams_events(stream_ids)
        return await self.database.read("read_streams", plan)

    async def stream_version(self, stream_id: StreamId) -> int:
        plan = self.operations.stream_version(stream_id)
        return await self.database.read("stream_version", plan)

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        plan = self.operations.read_all(
            after=after, limit=limit, streams=streams, event_types=event_types
        )
        return await self.database.read("read_all", plan)

    def for_tenant(self, tenant: str) -> AsyncTenantStore:
        """This store as tenant ``tenant`` sees it (see :mod:`eventcore.tenants`)."""
        from eventcore.tenants.aio import AsyncTenantStore

        return AsyncTenantStore(self, tenant)

    async def read_retained(self, **kwargs: Any) -> list[RecordedEvent]:
        """``read_all`` without the retention check."""
        return await self.database.read("read_all", self.operations.read_retained(**kwargs))

    async def close_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Close a stream (see :meth:`PostgresEventStore.close_stream`)."""
        marker = StreamClosure(StreamId(stream_id), reason)
        return await write_tombstone_async(self, marker, expected_version)

    async def delete_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Delete a stream (see :meth:`PostgresEventStore.delete_stream`)."""
        marker = StreamDeletion(StreamId(stream_id), reason)
        return await write_tombstone_async(self, marker, expected_version)

    async def apply_retention(
        self, policies: Sequence[RetentionPolicy], *, archive: Archive | None
    ) -> RetentionReport:
        """Archive and remove what ``policies`` select (see :mod:`eventcore.retention`)."""
        clock = self.operations.clock
        return await run_retention_async(self, policies, archive, clock, self._remove)

    async def _remove(self, rows: Sequence[RawEvent], at: datetime) -> int:
        plan = self.operations.retention.remove_plan(rows, at)
        async with self.database.transaction("apply_retention") as conn:
            return await self.database.run_in(conn, "apply_retention", plan)

    async def retention_runs(self) -> list[tuple[int, int, datetime]]:
        return await self.database.read("retention_runs", self.operations.retention.runs_plan())

    async def head(self) -> int:
        return await self.database.read("head", self.operations.head())

    async def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        plan = self.operations.read_correlation(correlation_id)
        return await self.database.read("read_correlation", plan)

    async def read_event(self, event_id: UUID) -> RecordedEvent | None:
        return await self.database.read("read_event", self.operations.read_event(event_id))

    async def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        plan = self.operations.read_idempotent_write(key)
        return await self.database.read("read_idempotent_write", plan)

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
        plan = self.operations.list_streams(streams, after, limit)
        return await self.database.read("list_streams", plan)

    async def stats(self) -> StoreStats:
        await self.database.open()
        plan = self.operations.stats(self.database.schema_version)
        return await self.database.read("stats", plan)

    async def export_rows(self, *, after: int = 0, limit: int | None = None) -> list[RawEvent]:
        return await self.database.read("export", self.operations.export_rows(after, limit))

    async def stream_rows(
        self, stream_id: StreamId, *, after_version: int = 0, limit: int | None = None
    ) -> list[RawEvent]:
        """See :meth:`PostgresEventStore.stream_rows`."""
        plan = self.operations.stream_rows(stream_id, after_version, limit)
        return await self.database.read("stream_rows", plan)

    async def verify(
        self, *, page_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> list[LogProblem]:
        """See :meth:`PostgresEventStore.verify`."""
        check_positive("page_size", page_size)
        checker = LogChecker(text_envelope=False)
        after = 0
        while rows := await self.database.read(
            "verify", self.operations.verify_page(after, page_size)
        ):
            checker.check(rows)
            after = rows[-1][0]
            if progress is not None:
                progress(after)
        found = await self.database.read("verify", self.operations.triggers())
        checker.missing_triggers(found, TRIGGERS)
        return checker.problems

    async def import_rows(self, rows: Iterable[RawEvent]) -> int:
        plan = self.operations.import_rows(
            rows, global_lock_text(self.config.schema), self.config.channel
        )
        async with self.database.transaction("import") as conn:
            return await self.database.run_in(conn, "import", plan)

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append atomically in one round trip; runs to its end once started."""
        plan = self.operations.append(expected, events, metadata, idempotency_key)
        return await finish(self.database.write("append", plan))

    async def forget_idempotency_keys(self, *, before: datetime) -> int:
        plan = self.operations.forget_idempotency_keys(before)
        return await self.database.write("forget_idempotency_keys", plan)

    async def wait_for_events(self, after: int, timeout: float) -> bool:
        """Wait until an event after ``after`` exists (True) or ``timeout`` seconds pass;
        woken by LISTEN/NOTIFY, polling every ``config.poll_interval`` in any case."""
        check_wait_args(after, timeout)
        await self.database.open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        listener = self.database.listener()
        threshold = after
        while True:
            if await self.head() > after:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            step = min(remaining, self.config.poll_interval)
            if listener is None:
                await asyncio.sleep(step)
            elif await listener.wait_beyond(threshold, step):
                threshold = max(threshold, listener.latest)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncPostgresTransaction]:
        """As :meth:`PostgresEventStore.transaction`, for asyncio code."""
        async with self.database.transaction("transaction") as conn:
            handle = AsyncPostgresTransaction(self, conn)
            try:
                yield handle
            finally:
                handle.closed = True

    @contextlib.asynccontextmanager
    async def session(self, lock: Iterable[StreamId] = ()) -> AsyncIterator[AsyncPostgresSession]:
        """As :meth:`PostgresEventStore.session`, for asyncio code."""
        streams = sorted({StreamId(sid) for sid in lock})
        with contextlib.suppress(_RolledBack):
            async with self.database.transaction("session") as conn:
                if streams:
                    plan = self.operations.lock_streams(streams)
                    await self.database.run_in(conn, "lock streams", plan)
                session = AsyncPostgresSession(self, conn)
                yield session
                if session.failed:  # PostgreSQL aborted the transaction: roll it back quietly
                    raise _RolledBack

    async def close(self) -> None:
        """Close the database if this store opened it."""
        if self._owns:
            await self.database.close()

    async def __aenter__(self) -> AsyncPostgresEventStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncPostgresTransaction:
    """A transaction opened by :meth:`AsyncPostgresEventStore.transaction` (one append)."""

    def __init__(self, store: AsyncPostgresEventStore, conn: AsyncConnection) -> None:
        self.store = store
        self.connection = conn
        self.closed = False
        self.appended = False

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        if self.closed:
            raise StoreFailure("append", "the transaction has ended; open a new one")
        if self.appended:
            raise StoreFailure(
                "append",
                "this transaction has already appended; pass every event to one append() "
                "(it may span several streams)",
            )
        plan = self.store.operations.append(expected, events, metadata, idempotency_key)
        self.appended = True
        return await self.store.database.run_in(self.connection, "append", plan)


class AsyncPostgresSession:
    """Reads and one append inside :meth:`AsyncPostgresEventStore.session`."""

    def __init__(self, store: AsyncPostgresEventStore, conn: AsyncConnection) -> None:
        self.store = store
        self.types = store.types
        self._conn = conn
        self._appended = False
        self.failed = False

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        plan = self.store.operations.read_stream(stream_id, after_version)
        return await self.store.database.run_in(self._conn, "read_stream", plan)

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        plan = self.store.operations.read_streams(stream_ids)
        return await self.store.database.run_in(self._conn, "read_streams", plan)

    async def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[VersionedEvent]:
        plan = self.store.operations.read_stream_events(stream_id, after_version)
        return await self.store.database.run_in(self._conn, "read_stream", plan)

    async def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        plan = self.store.operations.read_streams_events(stream_ids)
        return await self.store.database.run_in(self._conn, "read_streams", plan)

    async def stream_version(self, stream_id: StreamId) -> int:
        plan = self.store.operations.stream_version(stream_id)
        return await self.store.database.run_in(self._conn, "stream_version", plan)

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        if self._appended:
            raise StoreFailure(
                "append", "this session has already appended; pass every event to one append()"
            )
        plan = self.store.operations.append(expected, events, metadata, idempotency_key)
        self._appended = True
        try:
            return await finish(self.store.database.run_in(self._conn, "append", plan))
        except EventCoreError:
            self.failed = True
            raise


class _RolledBack(Exception):
    """Leave a session whose append failed: rolled back, nothing raised."""
