"""The event store protocol, and the validation every store shares before it writes.

Every store offers the same five operations; the contract suite in
:mod:`eventcore.testing.contract` holds each store to them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable
from uuid import UUID

from eventcore.clock import Clock, IdFactory
from eventcore.errors import (
    ConfigurationError,
    InvalidStreamSelector,
    UndeclaredStream,
    ValidationError,
)
from eventcore.events import (
    EventInfo,
    EventTypes,
    Metadata,
    RecordedEvent,
    VersionedEvent,
    stream_of,
    trusted_metadata,
)
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.selection import Selection
from eventcore.tombstones import MARKERS, check_write
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = [
    "MAX_POSITION",
    "MAX_WAIT",
    "EventLookups",
    "EventStore",
    "LiveEventStore",
    "PendingEvent",
    "StreamSelector",
    "check_read_args",
    "prepare_append",
    "read_streams",
    "read_versioned",
    "read_versioned_streams",
]

StreamSelector = StreamPrefix | StreamPattern

MAX_POSITION: Final = 2**63 - 1
"""The largest position, version or count any store can hold (PostgreSQL ``bigint``, SQLite
``INTEGER``). Every integer argument of a store is checked against ``0..MAX_POSITION`` before
any database work, so each store gives the same :class:`~eventcore.errors.ValidationError`."""

MAX_WAIT: Final = float(min(threading.TIMEOUT_MAX, 365 * 24 * 3600.0))
"""The longest ``wait_for_events`` timeout, in seconds (a year; a longer wait is a loop)."""


def check_count(name: str, value: object, what: str = "an int") -> int:
    """``value`` if it is an int in ``0..MAX_POSITION`` (not a bool), else ValidationError
    naming ``name``.

    >>> check_count("after", 2**63)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eventcore.errors.ValidationError: after must be an int from 0 to 9223372036854775807 ...
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(
            f"{name} must be {what} from 0 to {MAX_POSITION} (2**63 - 1), got "
            f"{type(value).__name__} {value!r}"
        )
    if not 0 <= value <= MAX_POSITION:
        shown = repr(value) if abs(value) < 10**30 else f"an int of {len(str(abs(value)))} digits"
        raise ValidationError(
            f"{name} must be {what} from 0 to {MAX_POSITION} (2**63 - 1), got {shown}; "
            "no store holds positions or versions outside that range"
        )
    return int(value)


@runtime_checkable
class EventStore(Protocol):
    """What ``execute`` and projections need from a store.

    The bundled stores also offer two indexed lookups, used by
    :mod:`eventcore.projections.correlation` (which falls back to scanning ``read_all`` for a
    store without them; :class:`EventLookups` names the pair):

    - ``read_correlation(correlation_id: UUID) -> list[RecordedEvent]``: every event whose
      metadata carries that correlation id, in position order — one business flow, however
      many streams and commands it spans;
    - ``read_event(event_id: UUID) -> RecordedEvent | None``: one event by its id, or None.

    They also read several whole streams in one query, used by ``execute`` for a command's
    declared streams (which reads them one by one from a store without it;
    :func:`read_streams` does either):

    - ``read_streams(stream_ids: Iterable[StreamId]) -> dict[StreamId, list[RecordedEvent]]``:
      every given stream (duplicates once), each with all its events in version order, as
      ``read_stream`` reads it (an empty list for a stream that does not exist).

    The SQL stores also read a stream for a command's fold without decoding the envelopes,
    used by ``execute`` (which uses ``read_stream`` / ``read_streams`` for a store without
    them; :func:`read_versioned` and :func:`read_versioned_streams` do either):

    - ``read_stream_events(stream_id, *, after_version=0) -> Iterator[VersionedEvent]`` and
      ``read_streams_events(stream_ids) -> dict[StreamId, list[VersionedEvent]]``: each
      event and its stream version, as ``read_stream`` / ``read_streams`` read them (the same
      errors for the columns read, ``StreamDeleted`` for a deleted stream), without the id,
      time and metadata, which a fold never sees. The contract
      (:mod:`eventcore.testing.contract_fold`) compares them with the full reads.

    They also offer live delivery, used by the projection runner in continuous mode (which
    polls ``head`` for a store without it; :class:`LiveEventStore` names it):

    - ``wait_for_events(after: int, timeout: float) -> bool``: block until an event after
      position ``after`` exists (True) or ``timeout`` seconds pass (False). Memory and
      SQLite wake waiters in the same process at once and poll for other processes;
      PostgreSQL uses LISTEN/NOTIFY with polling as the fallback.

    And tombstones, retention and tenants (:mod:`eventcore.tombstones`,
    :mod:`eventcore.retention`, :mod:`eventcore.tenants`): ``close_stream``,
    ``delete_stream``, ``apply_retention``, ``read_retained``, ``retention_runs`` and
    ``for_tenant``.
    """

    types: EventTypes

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        """Events of one stream in version order, lazily, those after ``after_version``.
        A missing stream reads as empty."""
        ...

    def stream_version(self, stream_id: StreamId) -> int:
        """The number of events in the stream (0 when it does not exist)."""
        ...

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        """Append atomically: every stream in ``expected`` must be at exactly that version
        (read-only participants too), every event must belong to one of them, and either all
        events are written or none. Raises ``VersionConflict`` listing every stale stream.

        With ``idempotency_key`` (see :mod:`eventcore.idempotency`) a key already used for
        the same request writes nothing and returns the events first written with it; one
        used for another request raises ``IdempotencyConflict``."""
        ...

    def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        """The write recorded under an idempotency key, or None if it was never used."""
        ...

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        """Events with position > ``after`` in position order, filtered (in the database,
        before the limit) by stream prefixes or patterns (an event matching any of them) and
        by event types. A page never ends inside an atomic write: when ``limit`` would cut
        one, the page goes on to that write's last selected event."""
        ...

    def head(self) -> int:
        """The highest global position written so far (0 for an empty store)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class EventLookups(Protocol):
    """The two indexed lookups the bundled stores offer besides :class:`EventStore`."""

    def read_correlation(self, correlation_id: UUID) -> list[RecordedEvent]:
        """Every event whose metadata carries ``correlation_id``, in position order."""
        ...

    def read_event(self, event_id: UUID) -> RecordedEvent | None:
        """The event with this id, or None."""
        ...


@runtime_checkable
class LiveEventStore(Protocol):
    """A store that can wait for new events (all bundled stores)."""

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until an event after position ``after`` exists (True) or ``timeout``
        seconds pass (False). A wake-up is a hint: callers read to see what arrived."""
        ...


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event validated and encoded, waiting for its stream version and position."""

    stream_id: StreamId
    event: object
    info: EventInfo
    data: str
    event_id: UUID
    recorded_at: datetime


def prepare_append(
    types: EventTypes,
    expected: Mapping[StreamId, int],
    events: Sequence[object],
    metadata: Metadata | None,
    clock: Clock,
    ids: IdFactory,
) -> tuple[dict[StreamId, int], list[PendingEvent], Metadata]:
    """Check and encode a write before any database work, so bad input writes nothing.

    Returns the expected versions (keys validated), the encoded events and the metadata to
    stamp (with a correlation id: the one given, or the first event's id).
    """
    if not isinstance(expected, Mapping):
        raise ValidationError(
            f"expected versions must be a mapping of stream id to version, got "
            f"{type(expected).__name__}"
        )
    checked: dict[StreamId, int] = {}
    for sid, version in expected.items():
        stream_id = StreamId(sid)
        check_count(f"expected version for {str(stream_id)!r}", version)
        if stream_id in checked and checked[stream_id] != version:
            raise ValidationError(
                f"stream {stream_id!r} appears twice with different expected versions "
                f"({checked[stream_id]} and {version})"
            )
        checked[stream_id] = version
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise ValidationError(f"events must be a list, got {type(events).__name__}")
    metadata = metadata if metadata is not None else Metadata()
    if not isinstance(metadata, Metadata):
        raise ValidationError(f"metadata must be a Metadata, got {type(metadata).__name__}")
    # An id factory with a ``many(n)`` method (uuid7 has one) serves a whole write at once;
    # any other is called once per event. The clock is read once per event.
    many = getattr(ids, "many", None)
    encode = types.encode
    staged: list[tuple[StreamId, object, EventInfo, str, Any, Any]] = []
    marked = False  # a tombstone in the write: check that nothing follows it
    for evt in events:
        info, data = encode(evt)
        if info.type_name in MARKERS:
            marked = True
        target = getattr(evt, info.stream_field)
        if type(target) is not StreamId:
            target = stream_of(evt)
        if target not in checked:
            raise UndeclaredStream(target, info.type_name, checked)
        staged.append(
            (
                target,
                evt,
                info,
                data,
                None if many is not None else ids(),
                clock(),
            )
        )
    if not staged:
        return checked, [], metadata
    if marked:
        check_write((item[0], item[2].type_name) for item in staged)
    event_ids = many(len(staged)) if many is not None else [item[4] for item in staged]
    pending = [
        PendingEvent(target, evt, info, data, event_id, at)
        for (target, evt, info, data, _, at), event_id in zip(staged, event_ids, strict=True)
    ]
    if metadata.correlation_id is None:
        # The parts come from a checked Metadata: no need to check them again.
        metadata = trusted_metadata(pending[0].event_id, metadata.causation_id, metadata.custom)
    return checked, pending, metadata


def read_streams(
    store: EventStore, stream_ids: Iterable[StreamId]
) -> dict[StreamId, list[RecordedEvent]]:
    """Several whole streams: with the store's ``read_streams`` when it has one (one query),
    else with one ``read_stream`` per stream."""
    method = getattr(store, "read_streams", None)
    if method is not None:
        found: dict[StreamId, list[RecordedEvent]] = method(stream_ids)
        return found
    return {StreamId(sid): list(store.read_stream(sid)) for sid in stream_ids}


def read_versioned(
    store: EventStore, stream_id: StreamId, after_version: int = 0
) -> Iterable[VersionedEvent | RecordedEvent]:
    """One stream for a command's fold: the store's ``read_stream_events`` (events and
    versions, no envelopes) when it has one, else ``read_stream``."""
    read = getattr(store, "read_stream_events", None) or store.read_stream
    # after_version only when there is one, as execute always called read_stream
    found: Iterable[VersionedEvent | RecordedEvent] = (
        read(stream_id, after_version=after_version) if after_version else read(stream_id)
    )
    return found


def read_versioned_streams(
    store: EventStore, stream_ids: Iterable[StreamId]
) -> Mapping[StreamId, Sequence[VersionedEvent | RecordedEvent]]:
    """Several whole streams for a command's fold: ``read_streams_events`` when the store
    has it, else :func:`read_streams`."""
    method = getattr(store, "read_streams_events", None)
    if method is not None:
        found: Mapping[StreamId, Sequence[VersionedEvent]] = method(stream_ids)
        return found
    return read_streams(store, stream_ids)


def unique_stream_ids(stream_ids: Iterable[StreamId]) -> list[StreamId]:
    """Validated stream ids, duplicates dropped, in the order given."""
    if isinstance(stream_ids, (str, bytes)):
        raise ValidationError(
            f"stream_ids must be a list of stream ids, got the single {type(stream_ids).__name__} "
            f"{stream_ids!r}"
        )
    return list(dict.fromkeys(StreamId(sid) for sid in stream_ids))


def check_read_args(
    types: EventTypes,
    after: int,
    limit: int | None,
    streams: StreamSelector | None,
    event_types: Iterable[str | type] | None,
) -> frozenset[str] | None:
    """Validate ``read_all`` arguments; return the event type names to filter on."""
    check_count("after", after, "a position")
    if limit is not None:
        check_count("limit", limit, "None or an int")
    if streams is not None and not isinstance(streams, (StreamPrefix, StreamPattern)):
        raise InvalidStreamSelector(
            f"streams must be a StreamPrefix or StreamPattern, got {type(streams).__name__} "
            f"{streams!r}; wrap it, for example StreamPattern('customer-*')"
        )
    if event_types is None:
        return None
    if isinstance(event_types, (str, type)):
        event_types = [event_types]
    return types.names_for(event_types)


def check_after_version(after_version: int) -> None:
    """Validate ``read_stream``'s ``after_version``."""
    check_count("after_version", after_version)


def check_wait_args(after: object, timeout: object) -> None:
    """Validate ``wait_for_events`` arguments: a position, and a finite number of seconds
    from 0 to :data:`MAX_WAIT` (NaN and infinity are refused: no store could honour them
    the same way)."""
    check_count("after", after, "a position")
    check_timeout(timeout, "to wait longer, call wait_for_events in a loop")


def check_timeout(timeout: object, hint: str = "to wait longer, wait in a loop") -> float:
    """``timeout`` as a float if it is a finite number of seconds from 0 to :data:`MAX_WAIT`,
    else ValidationError (NaN, infinity, bools and negatives are refused).

    >>> check_timeout(float("nan"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eventcore.errors.ValidationError: timeout must be a finite number of seconds ...
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 <= timeout <= MAX_WAIT
    ):
        raise ValidationError(
            f"timeout must be a finite number of seconds from 0 to {MAX_WAIT:g}, got "
            f"{timeout!r}; {hint}"
        )
    return float(timeout)


def check_uuid(name: str, value: object) -> UUID:
    """Validate an event or correlation id argument."""
    if not isinstance(value, UUID):
        raise ValidationError(f"{name} must be a UUID, got {type(value).__name__} {value!r}")
    return value


def check_positive(name: str, value: object) -> None:
    """Validate a count in a store's configuration (such as ``page_size``): 1 to
    :data:`MAX_POSITION`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_POSITION:
        raise ConfigurationError(
            f"{name} must be a positive int of at most {MAX_POSITION} (2**63 - 1), got {value!r}"
        )
