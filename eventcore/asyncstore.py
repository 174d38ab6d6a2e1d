"""The asyncio face of an event store: the operations and semantics of
:class:`~eventcore.store.EventStore`, as coroutines.

Every operation means exactly what its blocking counterpart means (the same contract suite
runs against both, through :class:`eventcore.testing.SyncBridge`). The bundled async stores
run the same plans as the blocking ones (:mod:`eventcore.stores._plan`), so they cannot
drift apart:

- :class:`~eventcore.stores.memory.AsyncInMemoryEventStore`;
- :class:`~eventcore.stores.sqlite.AsyncSqliteEventStore` (each connection has a thread of
  its own; one hop per operation, not per statement);
- :class:`~eventcore.stores.postgres.AsyncPostgresEventStore` (psycopg's
  ``AsyncConnection`` and ``AsyncConnectionPool``; LISTEN/NOTIFY wake-ups).

>>> import asyncio
>>> from dataclasses import dataclass
>>> from eventcore import StreamId
>>> from eventcore.stores.memory import AsyncInMemoryEventStore
>>> @dataclass(frozen=True)
... class Pinged:
...     host: StreamId
>>> async def main() -> list[int]:
...     async with AsyncInMemoryEventStore() as store:
...         written = await store.append({StreamId("h"): 0}, [Pinged(StreamId("h"))])
...         return [e.position for e in written]
>>> asyncio.run(main())
[1]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from eventcore.events import EventTypes, Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.selection import Selection
from eventcore.types import StreamId

__all__ = ["AsyncEventStore"]


@runtime_checkable
class AsyncEventStore(Protocol):
    """What ``execute_async`` and async projections need from a store."""

    types: EventTypes

    async def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        """Events of one stream in version order, those after ``after_version``."""
        ...

    async def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]:
        """Several whole streams (duplicates once), each as ``read_stream`` reads it."""
        ...

    async def stream_version(self, stream_id: StreamId) -> int: ...

    async def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]: ...

    async def read_idempotent_write(self, key: str) -> RecordedWrite | None: ...

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]: ...

    async def head(self) -> int: ...

    async def wait_for_events(self, after: int, timeout: float) -> bool: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> None: ...


async def read_versioned_async(
    store: Any, stream_id: StreamId, after_version: int = 0
) -> list[VersionedEvent | RecordedEvent]:
    """:func:`eventcore.store.read_versioned` for an asyncio store (or session): its
    ``read_stream_events`` when it has one, else ``read_stream``."""
    read = getattr(store, "read_stream_events", None) or store.read_stream
    return list(await read(stream_id, after_version=after_version))


async def read_versioned_streams_async(
    store: Any, stream_ids: Iterable[StreamId]
) -> Mapping[StreamId, Sequence[VersionedEvent | RecordedEvent]]:
    """:func:`eventcore.store.read_versioned_streams` for an asyncio store (or session)."""
    read = getattr(store, "read_streams_events", None) or store.read_streams
    found: Mapping[StreamId, Sequence[VersionedEvent | RecordedEvent]] = await read(stream_ids)
    return found
