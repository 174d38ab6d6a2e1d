"""Sessions: read, decide and append in one write transaction, with no writer in between.

Optimistic execution reads, decides and appends, and checks at the append that no stream
moved: under contention (many commands on a few hot streams) most attempts conflict and
retry. A *session* takes the streams first instead: ``store.session(lock=streams)`` opens
one write transaction in which no other writer can change those streams until it ends —
on SQLite the whole file (its one write lock), in memory the whole store, on PostgreSQL the
streams given (advisory locks in the append's sorted order, so sessions never deadlock).
Reads inside it see the latest state; its one append is version-checked like any other (a
stream that was not locked — one the command discovers as it reads — may still conflict);
it commits when the block ends and rolls back if the block raises.

>>> from dataclasses import dataclass
>>> from eventcore import InMemoryEventStore, StreamId
>>> @dataclass(frozen=True)
... class Counted:
...     counter: StreamId
>>> store = InMemoryEventStore()
>>> c = StreamId("c")
>>> with store.session(lock=[c]) as session:
...     version = session.stream_version(c)
...     _ = session.append({c: version}, [Counted(c)])
>>> store.head()
1

``execute(store, command, concurrency="pessimistic")`` runs each attempt in a session that
locks the command's declared streams.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from eventcore.events import EventTypes, Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.types import StreamId

__all__ = ["SessionStore", "StoreSession"]


@runtime_checkable
class StoreSession(Protocol):
    """The reads and the one append of a session (see the module docstring)."""

    types: EventTypes

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]: ...

    def read_streams(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[RecordedEvent]]: ...

    def stream_version(self, stream_id: StreamId) -> int: ...

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]: ...


@runtime_checkable
class SessionStore(Protocol):
    """A store that can open sessions (all bundled stores)."""

    def session(self, lock: Iterable[StreamId] = ()) -> AbstractContextManager[StoreSession]:
        """A write transaction in which nothing else writes the ``lock`` streams."""
        ...
