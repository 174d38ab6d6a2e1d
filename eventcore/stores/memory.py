"""An in-memory event store: thread-safe, for tests, notebooks and prototypes.

Events are encoded on append exactly as the SQL stores encode them (so a bad field fails
here too) and decoded once, so the stored copy shares nothing with the caller's objects.
Events whose classes are immutable all the way down are handed to every reader as they are;
an event holding a list, a dict or an ``Any`` value, and metadata with custom data, are
decoded afresh for each read (and for the value ``append`` returns), as an SQL store does,
so no reader can change what another sees.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Opened:
...     account: StreamId
>>> store = InMemoryEventStore()
>>> [e.stream_version for e in store.append({StreamId("a"): 0}, [Opened(StreamId("a"))])]
[1]
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.errors import Conflict, IdempotencyConflict, StoreFailure, VersionConflict
from eventcore.events import EventTypes, Metadata, RecordedEvent, loads_json
from eventcore.idempotency import IdempotencyKey, RecordedWrite, append_key
from eventcore.idempotency import idempotency_key as idempotency_key_of
from eventcore.raw import LogProblem, RawEvent, StoreStats, StreamInfo
from eventcore.selection import Selection, iter_log, selectors
from eventcore.store import (
    check_after_version,
    check_positive,
    check_read_args,
    check_uuid,
    check_wait_args,
    prepare_append,
    unique_stream_ids,
)
from eventcore.stores._verify import LogChecker
from eventcore.stores.memory_log import Log as SharedLog
from eventcore.stores.memory_log import Stored as _Stored
from eventcore.stores.memory_rows import export_rows, import_rows
from eventcore.tombstones import StreamClosure, StreamDeletion
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.retention import Archive, RetentionPolicy, RetentionReport
    from eventcore.tenants.store import TenantStore

__all__ = ["AsyncInMemoryEventStore", "AsyncSession", "InMemoryEventStore"]


class InMemoryEventStore:
    """Keeps every event in process memory; nothing survives the process."""

    def __init__(
        self,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock = system_clock,
        ids: IdFactory = uuid7,
    ) -> None:
        self.types = events if isinstance(events, EventTypes) else EventTypes(events)
        self._clock = clock
        self._ids = ids
        self._shared = SharedLog()
        self._lock = self._shared.lock
        self._log = self._shared.events
        self._streams = self._shared.streams

    @property
    def shared_log(self) -> SharedLog:
        """The log this handle shares with its other handles and its asyncio face."""
        return self._shared

    def reopen(
        self,
        *,
        events: Iterable[type] | EventTypes = (),
        clock: Clock | None = None,
        ids: IdFactory | None = None,
    ) -> InMemoryEventStore:
        """A second handle on the same events with its own event-type registry — what
        opening the same SQLite file again gives. Events written through another handle are
        decoded with this handle's classes (an unknown type raises DeserializationError)."""
        other = InMemoryEventStore(events=events, clock=clock or self._clock, ids=ids or self._ids)
        other._shared = self._shared
        other._lock, other._log, other._streams = self._lock, self._log, self._streams
        return other

    def _view(self, records: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """The records as this handle's registry reads them, each reader with its own copy
        of anything mutable inside its event (as every read of an SQL store decodes afresh).
        Metadata is shared: ``Metadata.custom`` is frozen all the way down."""
        out = list(records)
        shared = self._shared
        mine = len(shared.writers) == 1 and self.types in shared.writers
        fresh = shared.mutable_types
        if mine and not fresh:
            return out  # all written here, all immutable: the stored records are the answer
        stored = shared.stored
        for i, rec in enumerate(out):
            raw = stored[rec.position - 1]
            if raw.writer is not self.types or rec.event_type in fresh:
                where = f" at position {rec.position} (stream {str(rec.stream_id)!r})"
                event = self.types.decode(rec.event_type, raw.schema_version, raw.data, where)
                out[i] = replace(rec, event=event)
        return out

    def __repr__(self) -> str:
        return f"InMemoryEventStore(events={len(self._log)}, streams={len(self._streams)})"

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        sid = StreamId(stream_id)
        check_after_version(after_version)
        with self._lock:
            self._shared.check_deleted(sid, after_version)
            events = self._live(self._streams.get(sid, ())[after_version:])
        return iter(self._view(events))

    def _live(self, records: Sequence[RecordedEvent]) -> Sequence[RecordedEvent]:
        """``records`` without those retention removed (call with the lock held)."""
        removed = self._shared.removed
        return [r for r in records if r.position not in removed] if removed else records

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        """Several whole streams at once (duplicates once), as ``read_stream`` reads each;
        an empty list for a stream that does not exist."""
        ids = unique_stream_ids(stream_ids)
        with self._lock:
            for sid in ids:
                self._shared.check_deleted(sid)
            found = [list(self._live(self._streams.get(sid, ()))) for sid in ids]  # copied
        return {sid: self._view(events) for sid, events in zip(ids, found, strict=True)}

    def stream_version(self, stream_id: StreamId) -> int:
        with self._lock:
            return len(self._streams.get(StreamId(stream_id), ()))

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        staged = self._stage(expected, events, metadata, idempotency_key)
        with self._lock:
            recorded, commit = staged()
            if commit is not None:
                commit()
        return self._view(recorded)  # the writer's copy is not the stored one

    def _stage(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        metadata: Metadata | None,
        idempotency_key: str | IdempotencyKey | None,
    ) -> Callable[[], tuple[list[RecordedEvent], Callable[[], None] | None]]:
        """Check and encode a write now; return what, called under the lock, checks the
        key and the versions and gives the recorded events and the function that adds them
        to the log (None when the key was used before: the events are the original ones)."""
        checked, pending, meta = prepare_append(
            self.types, expected, events, metadata, self._clock, self._ids
        )
        key = None if idempotency_key is None else append_key(idempotency_key, pending)
        # The stored event is a decoded copy: exactly what a SQL store would read back.
        # Metadata needs no copy: building it froze (and so copied) the caller's custom dict.
        copies = [p.info.codec.decode(loads_json(p.data)) for p in pending]
        shared = self._shared

        def check() -> tuple[list[RecordedEvent], Callable[[], None] | None]:
            if key is not None and key.key in shared.keys:
                known, first, last = shared.keys[key.key]
                if known != key.fingerprint:
                    raise IdempotencyConflict(key.key, known, key.fingerprint)
                return self._log[first - 1 : last], None
            shared.refuse_tombstoned((p.stream_id, p.info.type_name) for p in pending)
            conflicts = [
                Conflict(sid, version, len(self._streams.get(sid, ())))
                for sid, version in checked.items()
                if len(self._streams.get(sid, ())) != version
            ]
            if conflicts:
                raise VersionConflict(conflicts)
            recorded: list[RecordedEvent] = []
            versions = dict(checked)
            position = len(self._log)
            for p, decoded in zip(pending, copies, strict=True):
                versions[p.stream_id] += 1
                position += 1
                recorded.append(
                    RecordedEvent(
                        position,
                        p.stream_id,
                        versions[p.stream_id],
                        p.info.type_name,
                        decoded,
                        p.event_id,
                        p.recorded_at,
                        meta,
                    )
                )

            def commit() -> None:
                if not recorded:
                    return
                shared.writers.add(self.types)
                shared.mutable_types.update(
                    p.info.type_name for p in pending if not p.info.codec.shareable
                )
                if key is not None:
                    shared.keys[key.key] = (key.fingerprint, recorded[0].position, position)
                for rec, p in zip(recorded, pending, strict=True):
                    self._streams.setdefault(rec.stream_id, []).append(rec)
                    shared.stored.append(_Stored(p.data, p.info.version, self.types))
                    shared.write_end.append(position)
                    shared.by_id[rec.event_id] = rec
                    if meta.correlation_id is not None:
                        shared.by_correlation.setdefault(meta.correlation_id, []).append(rec)
                self._log.extend(recorded)
                shared.record_tombstones(recorded)
                shared.wake()

            return recorded, commit

        return check

    @contextlib.contextmanager
    def session(self, lock: Iterable[StreamId] = ()) -> Iterator[_Session]:
        """A write transaction over the whole store: no other writer until it ends; its
        append reaches the log when the block ends (nothing if it raises). See
        :mod:`eventcore.session`."""
        for sid in lock:
            StreamId(sid)
        with self._lock:
            session = _Session(self)
            yield session
            session.commit()

    def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        """The write recorded under idempotency ``key`` (its fingerprint and events), or
        None if the key was never used."""
        checked = idempotency_key_of(key, "-").key
        with self._lock:
            found = self._shared.keys.get(checked)
            if found is None:
                return None
            known, first, last = found
            records = self._log[first - 1 : last]
        events = tuple(self._view(records))
        return RecordedWrite(checked, known, events, events[0].recorded_at if events else None)

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """Events after position ``after`` in position order, filtered before the limit; a
        page never ends inside an atomic write (it goes on to the write's last selected
        event). Paging costs the page, not the log before it. Raises ``EventsRemoved`` when
        retention removed events after ``after`` (see :meth:`read_retained`)."""
        check_read_args(self.types, after, limit, None, None)
        with self._lock:
            runs = list(self._shared.runs)
        check_horizon(after, runs)
        return self.read_retained(
            after=after, limit=limit, streams=streams, event_types=event_types
        )

    def read_retained(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """``read_all`` without the retention check: what is left, removed events skipped."""
        chosen = selectors(streams)
        names = check_read_args(self.types, after, limit, None, event_types)
        out: list[RecordedEvent] = []
        if limit == 0:
            return out
        log, ends, removed = self._log, self._shared.write_end, self._shared.removed
        with self._lock:
            index, size, stop = after, len(log), None  # position n lives at index n - 1
            while index < size:
                rec = log[index]
                index += 1
                if stop is not None and index > stop:
                    break
                if removed and rec.position in removed:
                    continue
                if chosen is not None and not any(s.matches(rec.stream_id) for s in chosen):
                    continue
                if names is not None and rec.event_type not in names:
                    continue
                out.append(rec)
                if stop is None and limit is not None and len(out) >= limit:
                    stop = ends[index - 1]
                    if stop <= index:
                        break
        return self._view(out)

    def head(self) -> int:
        with self._lock:
            return len(self._log)

    def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        """Every event stamped with ``correlation_id``, in position order (a dict index)."""
        key = check_uuid("correlation_id", correlation_id)
        with self._lock:
            found = list(self._shared.by_correlation.get(key, ()))
        return self._view(found)

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        """The event with this id, or None."""
        key = check_uuid("event_id", event_id)
        with self._lock:
            found = self._shared.by_id.get(key)
        return None if found is None else self._view([found])[0]

    # -- operations ------------------------------------------------------------------------

    def iter_all(
        self,
        *,
        after: int = 0,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
        page_size: int = 1000,
    ) -> Iterator[RecordedEvent]:
        """Every selected event after ``after``, in position order, lazily, a page (whole
        writes) at a time."""
        return iter_log(
            self.read_all,
            after=after,
            streams=streams,
            event_types=event_types,
            page_size=page_size,
        )

    def list_streams(
        self, *, streams: Selection = None, after: str = "", limit: int | None = None
    ) -> list[StreamInfo]:
        """The streams (filtered by prefixes or patterns) in stream-id order, after the id
        ``after``: each with its version and first and last positions and times."""
        chosen = selectors(streams)
        check_read_args(self.types, 0, limit, None, None)
        with self._lock:
            ids = sorted(
                sid
                for sid in self._streams
                if sid > after and (chosen is None or any(s.matches(sid) for s in chosen))
            )[:limit]
            found = [self._live(self._streams[sid]) for sid in ids]
        return [
            StreamInfo(
                sid,
                recs[-1].stream_version,
                recs[0].position,
                recs[-1].position,
                recs[0].recorded_at,
                recs[-1].recorded_at,
            )
            for sid, recs in zip(ids, found, strict=True)
        ]

    def stats(self) -> StoreStats:
        """Kind, schema version (0: memory has none), head, events and streams."""
        with self._lock:
            events = len(self._log) - len(self._shared.removed)
            return StoreStats("memory", 0, len(self._log), events, len(self._streams))

    def export_rows(self, *, after: int = 0, limit: int | None = None) -> list[RawEvent]:
        """Stored events after ``after``, undecoded (whole writes; see :mod:`eventcore.raw`)."""
        check_read_args(self.types, after, limit, None, None)
        return export_rows(self._shared, after, limit)

    def stream_rows(
        self, stream_id: StreamId, *, after_version: int = 0, limit: int | None = None
    ) -> list[RawEvent]:
        """The stored rows of one stream after ``after_version``, undecoded, in version order (at
        most ``limit``): what ``eventcore show`` prints, without the event classes."""
        sid = StreamId(stream_id)
        check_after_version(after_version)
        check_read_args(self.types, 0, limit, None, None)
        with self._lock:
            positions = [r.position for r in self._streams.get(sid, ())[after_version:]]
        if limit is not None:
            positions = positions[:limit]
        return [self.export_rows(after=p - 1, limit=1)[0] for p in positions]

    def verify(
        self, *, page_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> list[LogProblem]:
        """Check the log as :meth:`SqliteEventStore.verify` does (memory has no triggers):
        ``[]`` when positions, versions and rows are sound."""
        check_positive("page_size", page_size)
        checker = LogChecker(text_envelope=True)
        after = 0
        while rows := self.export_rows(after=after, limit=page_size):
            checker.check(
                [
                    (
                        r.position,
                        str(r.stream_id),
                        r.stream_version,
                        r.event_type,
                        r.schema_version,
                        r.data,
                        str(r.event_id),
                        r.recorded_at.isoformat(),
                        r.metadata,
                        r.write_end,
                    )
                    for r in rows
                ]
            )
            after = rows[-1].position
            if progress is not None:
                progress(after)
        return checker.problems

    def import_rows(self, rows: Iterable[RawEvent]) -> int:
        """Add rows exported from a store after this store's head, exactly, decoded with
        this store's event classes (an unknown type raises ``DeserializationError``); rows
        that do not continue the log raise ``ValidationError``. Nothing is written then."""
        return import_rows(self._shared, self.types, rows)

    def for_tenant(self, tenant: str) -> TenantStore:
        """This store as tenant ``tenant`` sees it: only the tenant's streams, for every
        read and write (see :mod:`eventcore.tenants`)."""
        from eventcore.tenants.store import TenantStore

        return TenantStore(self, tenant)

    # -- tombstones and retention ------------------------------------------------------------

    def close_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Close a stream: append a :class:`~eventcore.tombstones.StreamClosure`; every later
        event for it raises ``StreamClosed``. Returns the closing event."""
        return write_tombstone(self, StreamClosure(StreamId(stream_id), reason), expected_version)

    def delete_stream(
        self, stream_id: StreamId, *, reason: str = "", expected_version: int | None = None
    ) -> RecordedEvent:
        """Delete a stream: append a :class:`~eventcore.tombstones.StreamDeletion`; reads of
        it then raise ``StreamDeleted`` (saying when), appends ``StreamDeleted`` too."""
        return write_tombstone(self, StreamDeletion(StreamId(stream_id), reason), expected_version)

    def apply_retention(
        self, policies: Sequence[RetentionPolicy], *, archive: Archive | None = None
    ) -> RetentionReport:
        """Remove the events ``policies`` select (each stream keeps its last event), after
        writing them to ``archive``; see :mod:`eventcore.retention`."""
        return run_retention(self, policies, archive, self._clock, self._remove)

    def _remove(self, rows: Sequence[RawEvent], at: datetime) -> int:
        shared = self._shared
        with self._lock:
            gone = [p for p in (r.position for r in rows) if p not in shared.removed]
            for position in gone:
                rec = self._log[position - 1]
                shared.removed.add(position)
                shared.by_id.pop(rec.event_id, None)
                cid = rec.metadata.correlation_id
                if cid is not None and cid in shared.by_correlation:
                    kept = [r for r in shared.by_correlation[cid] if r.position != position]
                    shared.by_correlation[cid] = kept
            if gone:
                shared.runs.append((min(gone), max(gone), at))
        return len(gone)

    def retention_runs(self) -> list[tuple[int, int, datetime]]:
        """Each retention run: its first and last removed positions and when it ran."""
        with self._lock:
            return list(self._shared.runs)

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until an event after position ``after`` exists (True) or ``timeout``
        seconds pass (False); woken at once by appends through any handle of this log."""
        check_wait_args(after, timeout)
        with self._shared.changed:
            return self._shared.changed.wait_for(lambda: len(self._log) > after, timeout)

    def close(self) -> None:
        """Nothing to release; present so every store can be closed the same way."""

    def __enter__(self) -> InMemoryEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Session:
    """Reads and one append inside :meth:`InMemoryEventStore.session` (the lock is held)."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store
        self.types = store.types
        self._pending: Callable[[], None] | None = None
        self._appended = False

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        return self.store.read_stream(stream_id, after_version=after_version)

    def read_streams(self, stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]:
        return self.store.read_streams(stream_ids)

    def stream_version(self, stream_id: StreamId) -> int:
        return self.store.stream_version(stream_id)

    def append(
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
        recorded, self._pending = self.store._stage(expected, events, metadata, idempotency_key)()
        self._appended = True
        if self._pending is None:  # the key was used before: the stored original
            return self.store._view(recorded)
        return copy.deepcopy(recorded)  # not yet stored; the caller's copy is its own

    def commit(self) -> None:
        if self._pending is not None:
            self._pending()
            self._pending = None


# The asyncio face lives in its own module; importable from here as before.
from eventcore.retention.engine import check_horizon, run_retention, write_tombstone  # noqa: E402
from eventcore.stores.memory_aio import AsyncInMemoryEventStore, AsyncSession  # noqa: E402
