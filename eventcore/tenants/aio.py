"""A tenant's view of an asyncio store: :class:`~eventcore.tenants.TenantStore` for
``AsyncInMemoryEventStore``, ``AsyncSqliteEventStore`` and ``AsyncPostgresEventStore``.

>>> import asyncio
>>> from dataclasses import dataclass
>>> from eventcore.stores.memory import AsyncInMemoryEventStore
>>> @dataclass(frozen=True)
... class Noted:
...     topic: StreamId
>>> async def main() -> list[str]:
...     shared = AsyncInMemoryEventStore()
...     acme = shared.for_tenant("acme")
...     await acme.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
...     return [e.stream_id for e in await shared.read_all()] + [
...         e.stream_id for e in await acme.read_all()]
>>> asyncio.run(main())
[StreamId('@acme/t'), StreamId('t')]
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventcore.asyncstore import read_versioned_async, read_versioned_streams_async
from eventcore.events import Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.raw import StreamInfo
from eventcore.selection import Selection, aiter_log, selectors
from eventcore.store import unique_stream_ids
from eventcore.tenants.scope import TenantScope
from eventcore.types import StreamId

__all__ = ["AsyncTenantSession", "AsyncTenantStore"]


class AsyncTenantStore:
    """``store`` (an asyncio store) as tenant ``tenant`` sees it; the same operations as
    :class:`~eventcore.tenants.TenantStore`, awaited."""

    def __init__(self, store: Any, tenant: str) -> None:
        self.scope = TenantScope(tenant)
        self.tenant = self.scope.tenant
        self.store = store
        self.types = store.types

    def __repr__(self) -> str:
        return f"AsyncTenantStore({self.store!r}, tenant={self.tenant!r})"

    def _out(self, records: Iterable[RecordedEvent]) -> list[RecordedEvent]:
        scope = self.scope
        return [scope.record_out(r) for r in records if scope.owns(r.stream_id)]

    def _selection(self, streams: Selection) -> tuple[Any, ...]:
        chosen = selectors(streams)
        if chosen is None:
            return (self.scope.everything(),)
        return tuple(self.scope.selector(s) for s in chosen)

    def _expected(self, expected: Mapping[StreamId, int]) -> Mapping[StreamId, int]:
        if not isinstance(expected, Mapping):
            return expected  # the store explains the mistake
        return {self.scope.inner(sid): version for sid, version in expected.items()}

    def _events(self, events: Sequence[object]) -> Sequence[object]:
        if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
            return events  # the store explains the mistake
        return [self.scope.event_in(e) for e in events]

    def _key(self, key: str | IdempotencyKey | None) -> str | IdempotencyKey | None:
        if key is None:
            return None
        if isinstance(key, IdempotencyKey):
            return IdempotencyKey(self.scope.key(key.key), key.fingerprint)
        return self.scope.key(key)

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        inner = self.scope.inner(stream_id)
        return self._out(await self.store.read_stream(inner, after_version=after_version))

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        ids = unique_stream_ids(stream_ids)
        found = await self.store.read_streams([self.scope.inner(s) for s in ids])
        return {sid: self._out(found[self.scope.inner(sid)]) for sid in ids}

    async def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[VersionedEvent]:
        """What ``execute_async`` folds: the store's fold read of the tenant's stream (its
        full read if it has none), each event's stream field without the prefix."""
        inner = self.scope.inner(stream_id)
        return self.scope.versioned_out(
            await read_versioned_async(self.store, inner, after_version)
        )

    async def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        ids = unique_stream_ids(stream_ids)
        found = await read_versioned_streams_async(self.store, [self.scope.inner(s) for s in ids])
        return {sid: self.scope.versioned_out(found.get(self.scope.inner(sid), ())) for sid in ids}

    async def stream_version(self, stream_id: StreamId) -> int:
        return int(await self.store.stream_version(self.scope.inner(stream_id)))

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        found = await self.store.read_all(
            after=after, limit=limit, streams=self._selection(streams), event_types=event_types
        )
        return self._out(found)

    async def read_retained(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """``read_all`` without the retention check (see :mod:`eventcore.retention`)."""
        found = await self.store.read_retained(
            after=after, limit=limit, streams=self._selection(streams), event_types=event_types
        )
        return self._out(found)

    async def iter_all(
        self,
        *,
        after: int = 0,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        async for event in aiter_log(
            self.read_all,
            after=after,
            streams=streams,
            event_types=event_types,
            page_size=page_size,
        ):
            yield event

    async def head(self) -> int:
        return int(await self.store.head())

    async def wait_for_events(self, after: int, timeout: float) -> bool:
        return bool(await self.store.wait_for_events(after, timeout))

    async def read_event(self, event_id: UUID) -> RecordedEvent | None:
        found = await self.store.read_event(event_id)
        out = self._out([found] if found is not None else [])
        return out[0] if out else None

    async def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        return self._out(await self.store.read_correlation(correlation_id))

    async def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        found: RecordedWrite | None = await self.store.read_idempotent_write(self.scope.key(key))
        if found is None:
            return None
        events = tuple(self._out(found.events))
        return RecordedWrite(key, found.fingerprint, events, found.recorded_at)

    async def list_streams(
        self, *, streams: Selection = None, after: str = "", limit: int | None = None
    ) -> list[StreamInfo]:
        start = self.scope.prefix + after if after else ""
        found = await self.store.list_streams(
            streams=self._selection(streams), after=start, limit=limit
        )
        scope = self.scope
        return [
            StreamInfo(
                scope.outer(i.stream_id),
                i.version,
                i.first_position,
                i.last_position,
                i.first_recorded_at,
                i.last_recorded_at,
            )
            for i in found
            if scope.owns(i.stream_id)
        ]

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        written = await self.store.append(
            self._expected(expected),
            self._events(events),
            metadata=metadata,
            idempotency_key=self._key(idempotency_key),
        )
        return self._out(written)

    @contextlib.asynccontextmanager
    async def session(self, lock: Iterable[StreamId] = ()) -> AsyncIterator[AsyncTenantSession]:
        async with self.store.session([self.scope.inner(s) for s in lock]) as session:
            yield AsyncTenantSession(self, session)

    async def close_stream(self, stream_id: StreamId, **kwargs: Any) -> RecordedEvent:
        found = await self.store.close_stream(self.scope.inner(stream_id), **kwargs)
        return self.scope.record_out(found)

    async def delete_stream(self, stream_id: StreamId, **kwargs: Any) -> RecordedEvent:
        found = await self.store.delete_stream(self.scope.inner(stream_id), **kwargs)
        return self.scope.record_out(found)

    async def close(self) -> None:
        """Nothing to release: the store belongs to whoever made the view."""


class AsyncTenantSession:
    """An asyncio store session seen through an :class:`AsyncTenantStore`."""

    def __init__(self, view: AsyncTenantStore, session: Any) -> None:
        self._view = view
        self._session = session
        self.types = session.types

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        inner = self._view.scope.inner(stream_id)
        return self._view._out(await self._session.read_stream(inner, after_version=after_version))

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        ids = unique_stream_ids(stream_ids)
        scope = self._view.scope
        found = await self._session.read_streams([scope.inner(s) for s in ids])
        return {sid: self._view._out(found[scope.inner(sid)]) for sid in ids}

    async def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[VersionedEvent]:
        scope = self._view.scope
        found = await read_versioned_async(self._session, scope.inner(stream_id), after_version)
        return scope.versioned_out(found)

    async def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        ids = unique_stream_ids(stream_ids)
        scope = self._view.scope
        found = await read_versioned_streams_async(self._session, [scope.inner(s) for s in ids])
        return {sid: scope.versioned_out(found.get(scope.inner(sid), ())) for sid in ids}

    async def stream_version(self, stream_id: StreamId) -> int:
        return int(await self._session.stream_version(self._view.scope.inner(stream_id)))

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        view = self._view
        written = await self._session.append(
            view._expected(expected),
            view._events(events),
            metadata=metadata,
            idempotency_key=view._key(idempotency_key),
        )
        return view._out(written)
