"""A tenant's view of a store: every read, write, session and tombstone confined to the
tenant's streams (``@<tenant>/...`` in the store), the prefix invisible to the tenant.

>>> from dataclasses import dataclass
>>> from eventcore.stores.memory import InMemoryEventStore
>>> @dataclass(frozen=True)
... class Noted:
...     topic: StreamId
...     text: str
>>> shared = InMemoryEventStore()
>>> acme, beta = TenantStore(shared, "acme"), TenantStore(shared, "beta")
>>> _ = acme.append({StreamId("notes"): 0}, [Noted(StreamId("notes"), "acme's")])
>>> [(e.stream_id, e.event.text) for e in acme.read_all()], beta.read_all()
([(StreamId('notes'), "acme's")], [])
>>> [e.stream_id for e in shared.read_all()]
[StreamId('@acme/notes')]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventcore.events import Metadata, RecordedEvent, VersionedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.raw import StreamInfo
from eventcore.selection import Selection, iter_log, selectors
from eventcore.store import read_versioned, read_versioned_streams, unique_stream_ids
from eventcore.tenants.scope import TenantScope
from eventcore.types import StreamId

__all__ = ["TenantSession", "TenantStore"]


class TenantStore:
    """``store`` as tenant ``tenant`` sees it (see the module docstring).

    Offers what ``execute``, projections and snapshots use — ``read_stream``,
    ``read_streams``, ``stream_version``, ``append``, ``session``, ``read_all``, ``iter_all``,
    ``head``, ``wait_for_events``, ``read_event``, ``read_correlation``,
    ``read_idempotent_write``, ``list_streams``, ``close_stream`` and ``delete_stream`` —
    each confined to the tenant. ``head`` and positions are the store's (global) ones.
    Whole-store operations (export, import, retention) stay on the store itself.
    """

    def __init__(self, store: Any, tenant: str) -> None:
        self.scope = TenantScope(tenant)
        self.tenant = self.scope.tenant
        self.store = store
        self.types = store.types

    def __repr__(self) -> str:
        return f"TenantStore({self.store!r}, tenant={self.tenant!r})"

    # -- reads ---------------------------------------------------------------------------

    def _out(self, records: Iterable[RecordedEvent]) -> list[RecordedEvent]:
        scope = self.scope
        return [scope.record_out(r) for r in records if scope.owns(r.stream_id)]

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        inner = self.scope.inner(stream_id)
        return iter(self._out(self.store.read_stream(inner, after_version=after_version)))

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        ids = unique_stream_ids(stream_ids)
        found = _read_streams(self.store, [self.scope.inner(s) for s in ids])
        return {sid: self._out(found[self.scope.inner(sid)]) for sid in ids}

    def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[VersionedEvent]:
        """What ``execute`` folds (see :class:`~eventcore.store.EventStore`): the store's
        fold read of the tenant's stream, each event's stream field without the prefix."""
        found = read_versioned(self.store, self.scope.inner(stream_id), after_version)
        return iter(self.scope.versioned_out(found))

    def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        ids = unique_stream_ids(stream_ids)
        found = read_versioned_streams(self.store, [self.scope.inner(s) for s in ids])
        return {sid: self.scope.versioned_out(found.get(self.scope.inner(sid), ())) for sid in ids}

    def stream_version(self, stream_id: StreamId) -> int:
        return int(self.store.stream_version(self.scope.inner(stream_id)))

    def _selection(self, streams: Selection) -> tuple[Any, ...]:
        chosen = selectors(streams)
        if chosen is None:
            return (self.scope.everything(),)
        return tuple(self.scope.selector(s) for s in chosen)

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """The tenant's events after ``after`` (global positions), filtered in the store."""
        found = self.store.read_all(
            after=after, limit=limit, streams=self._selection(streams), event_types=event_types
        )
        return self._out(found)

    def read_retained(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """``read_all`` without the retention check (see :mod:`eventcore.retention`)."""
        found = self.store.read_retained(
            after=after, limit=limit, streams=self._selection(streams), event_types=event_types
        )
        return self._out(found)

    def iter_all(
        self,
        *,
        after: int = 0,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
        page_size: int = 1000,
    ) -> Iterator[RecordedEvent]:
        return iter_log(
            self.read_all,
            after=after,
            streams=streams,
            event_types=event_types,
            page_size=page_size,
        )

    def head(self) -> int:
        """The store's head (positions are global)."""
        return int(self.store.head())

    def wait_for_events(self, after: int, timeout: float) -> bool:
        return bool(self.store.wait_for_events(after, timeout))

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        found = self.store.read_event(event_id)
        out = self._out([found] if found is not None else [])
        return out[0] if out else None

    def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        return self._out(self.store.read_correlation(correlation_id))

    def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        found: RecordedWrite | None = self.store.read_idempotent_write(self.scope.key(key))
        if found is None:
            return None
        return RecordedWrite(
            key, found.fingerprint, tuple(self._out(found.events)), found.recorded_at
        )

    def list_streams(
        self, *, streams: Selection = None, after: str = "", limit: int | None = None
    ) -> list[StreamInfo]:
        start = self.scope.prefix + after if after else ""
        found = self.store.list_streams(streams=self._selection(streams), after=start, limit=limit)
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

    # -- writes --------------------------------------------------------------------------

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

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append to the tenant's streams only: every stream id (expected, and each event's
        stream field) is moved into the tenant's namespace first."""
        written = self.store.append(
            self._expected(expected),
            self._events(events),
            metadata=metadata,
            idempotency_key=self._key(idempotency_key),
        )
        return self._out(written)

    @contextlib.contextmanager
    def session(self, lock: Iterable[StreamId] = ()) -> Iterator[TenantSession]:
        """The store's session, confined to the tenant (see :mod:`eventcore.session`)."""
        with self.store.session([self.scope.inner(s) for s in lock]) as session:
            yield TenantSession(self, session)

    def close_stream(self, stream_id: StreamId, **kwargs: Any) -> RecordedEvent:
        """Close one of the tenant's streams (see :mod:`eventcore.tombstones`)."""
        return self.scope.record_out(self.store.close_stream(self.scope.inner(stream_id), **kwargs))

    def delete_stream(self, stream_id: StreamId, **kwargs: Any) -> RecordedEvent:
        """Delete one of the tenant's streams (see :mod:`eventcore.tombstones`)."""
        found = self.store.delete_stream(self.scope.inner(stream_id), **kwargs)
        return self.scope.record_out(found)

    def close(self) -> None:
        """Nothing to release: the store belongs to whoever made the view."""

    def __enter__(self) -> TenantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TenantSession:
    """A store session seen through a :class:`TenantStore`."""

    def __init__(self, view: TenantStore, session: Any) -> None:
        self._view = view
        self._session = session
        self.types = session.types

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        inner = self._view.scope.inner(stream_id)
        found = self._session.read_stream(inner, after_version=after_version)
        return iter(self._view._out(found))

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        ids = unique_stream_ids(stream_ids)
        scope = self._view.scope
        found = _read_streams(self._session, [scope.inner(s) for s in ids])
        return {sid: self._view._out(found[scope.inner(sid)]) for sid in ids}

    def read_stream_events(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[VersionedEvent]:
        scope = self._view.scope
        found = read_versioned(self._session, scope.inner(stream_id), after_version)
        return iter(scope.versioned_out(found))

    def read_streams_events(
        self, stream_ids: Iterable[StreamId]
    ) -> dict[StreamId, list[VersionedEvent]]:
        ids = unique_stream_ids(stream_ids)
        scope = self._view.scope
        found = read_versioned_streams(self._session, [scope.inner(s) for s in ids])
        return {sid: scope.versioned_out(found.get(scope.inner(sid), ())) for sid in ids}

    def stream_version(self, stream_id: StreamId) -> int:
        return int(self._session.stream_version(self._view.scope.inner(stream_id)))

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        view = self._view
        written = self._session.append(
            view._expected(expected),
            view._events(events),
            metadata=metadata,
            idempotency_key=view._key(idempotency_key),
        )
        return view._out(written)


def _read_streams(store: Any, ids: list[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
    method = getattr(store, "read_streams", None)
    if method is not None:
        found: dict[StreamId, list[RecordedEvent]] = method(ids)
        return found
    return {sid: list(store.read_stream(sid)) for sid in ids}
