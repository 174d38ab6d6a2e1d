"""Pure helpers over recorded events: collect, filter, replay and follow causation.

Nothing here needs pandas, matplotlib or ipywidgets; the plots, the DataFrame and the
explorer are thin layers over these functions.

>>> from dataclasses import dataclass
>>> from eventcore import InMemoryEventStore, SeededIds, StreamId, TickingClock
>>> @dataclass(frozen=True)
... class Added:
...     cart: StreamId
...     sku: str
>>> store = InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=1))
>>> a, b = StreamId("cart-a"), StreamId("cart-b")
>>> _ = store.append({a: 0}, [Added(a, "tea")])
>>> _ = store.append({b: 0}, [Added(b, "mug")])
>>> _ = store.append({a: 1}, [Added(a, "pot")])
>>> [e.position for e in filter_events(store, streams=a)]
[1, 3]
>>> state_at(store, 2, lambda skus, e: [*skus, e.sku], [])
['tea', 'mug']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from uuid import UUID

from eventcore.errors import ValidationError
from eventcore.events import RecordedEvent, event_info
from eventcore.pipeline import ExecutionResult
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = [
    "EventSource",
    "StreamFilter",
    "TypeFilter",
    "causation_links",
    "collect",
    "filter_events",
    "in_correlation",
    "resolve_correlation",
    "short_id",
    "state_at",
]

S = TypeVar("S")

EventSource = Any
"""A store (anything with ``read_all``), an :class:`~eventcore.ExecutionResult`, one
:class:`~eventcore.RecordedEvent` or an iterable of them."""

StreamFilter = StreamPrefix | StreamPattern | str | Iterable[str] | None
"""``None`` (every stream), a :class:`StreamPrefix`, a :class:`StreamPattern`, one stream id,
or a collection of stream ids."""

TypeFilter = str | type | Iterable[str | type] | None
"""``None`` (every type), one event type name or class, or a collection of them."""

SHORT_ID_LENGTH = 8


def short_id(value: UUID | None) -> str | None:
    """The last 8 hex digits of an id: enough to tell ids apart in a table, short enough to
    read. ``None`` stays ``None``.

    >>> short_id(UUID(int=0x2A))
    '0000002a'
    """
    return None if value is None else value.hex[-SHORT_ID_LENGTH:]


def collect(
    source: EventSource,
    stream: str | None = None,
    *,
    streams: StreamFilter = None,
    event_types: TypeFilter = None,
) -> list[RecordedEvent]:
    """The recorded events of ``source``, in position order, filtered.

    ``source`` is a store (read with ``read_all``, or ``read_stream`` when ``stream`` is
    given), an :class:`~eventcore.ExecutionResult`, a :class:`~eventcore.RecordedEvent` or an
    iterable of them. A prefix or pattern in ``streams`` and the ``event_types`` are passed to
    the store, which filters in the database.
    """
    if hasattr(source, "read_all") and hasattr(source, "read_stream"):
        if stream is not None:
            events: list[RecordedEvent] = list(source.read_stream(StreamId(stream)))
        elif isinstance(streams, (StreamPrefix, StreamPattern)):
            events = list(source.read_all(streams=streams, event_types=_type_list(event_types)))
        else:
            events = list(source.read_all(event_types=_type_list(event_types)))
    elif stream is not None:
        raise ValidationError(
            f"a stream id ({stream!r}) can only be read from a store, not from "
            f"{type(source).__name__}; pass the store, or use streams= to filter"
        )
    elif isinstance(source, ExecutionResult):
        events = list(source.events)
    elif isinstance(source, RecordedEvent):
        events = [source]
    elif isinstance(source, Iterable) and not isinstance(source, (str, bytes, Mapping)):
        events = list(source)
        for item in events:
            if not isinstance(item, RecordedEvent):
                raise ValidationError(
                    f"expected RecordedEvent items, got {type(item).__name__}; read them from "
                    "a store (store.read_all()) or take result.events"
                )
    else:
        raise ValidationError(
            f"cannot read events from {type(source).__name__}; pass a store, an "
            "ExecutionResult, a RecordedEvent or a list of them"
        )
    events.sort(key=lambda e: e.position)
    return filter_events(events, streams=streams, types=event_types)


def _type_list(types: TypeFilter) -> list[str | type] | None:
    if types is None:
        return None
    if isinstance(types, (str, type)):
        return [types]
    return list(types)


def _type_names(types: TypeFilter) -> frozenset[str] | None:
    selected = _type_list(types)
    if selected is None:
        return None
    return frozenset(t if isinstance(t, str) else event_info(t).type_name for t in selected)


def _stream_test(streams: StreamFilter) -> Callable[[StreamId], bool] | None:
    if streams is None:
        return None
    if isinstance(streams, (StreamPrefix, StreamPattern)):
        return streams.matches
    if isinstance(streams, str):
        only = StreamId(streams)
        return lambda sid: sid == only
    chosen = frozenset(StreamId(s) for s in streams)
    return lambda sid: sid in chosen


def filter_events(
    events: EventSource,
    streams: StreamFilter = None,
    types: TypeFilter = None,
) -> list[RecordedEvent]:
    """The events whose stream and type are selected, in position order.

    ``streams``: ``None`` (all), a :class:`StreamPrefix`, a :class:`StreamPattern`, one stream
    id or a collection of ids. ``types``: ``None`` (all), one type name or class, or a
    collection of them. An empty collection selects nothing.
    """
    if not isinstance(events, list) or not all(isinstance(e, RecordedEvent) for e in events):
        events = collect(events)
    stream_ok = _stream_test(streams)
    names = _type_names(types)
    return sorted(
        (
            e
            for e in events
            if (stream_ok is None or stream_ok(e.stream_id))
            and (names is None or e.event_type in names)
        ),
        key=lambda e: e.position,
    )


def state_at(
    events: EventSource,
    position: int | None,
    fold: Callable[[S, Any], S],
    initial: S,
) -> S:
    """Replay: fold every event at or before ``position`` (all of them for ``None``) into
    ``initial``, in position order. ``fold(state, event)`` receives the domain event, as a
    command's ``apply`` does. Position 0 gives ``initial`` back."""
    state = initial
    for recorded in collect(events):
        if position is not None and recorded.position > position:
            break
        state = fold(state, recorded.event)
    return state


def resolve_correlation(events: Iterable[RecordedEvent], correlation_id: UUID | str) -> UUID:
    """The correlation id meant by ``correlation_id``: a UUID, its text, or the last hex
    digits of one (as :func:`short_id` shows them) that match exactly one correlation id."""
    if isinstance(correlation_id, UUID):
        return correlation_id
    text = str(correlation_id).strip().lower()
    try:
        return UUID(text)
    except ValueError:
        pass
    known = sorted(
        {e.metadata.correlation_id for e in events if e.metadata.correlation_id is not None},
        key=str,
    )
    digits = text.replace("-", "")
    matches = [c for c in known if digits and c.hex.endswith(digits)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(str(short_id(c)) for c in known) or "none"
    what = "several" if matches else "no"
    raise ValidationError(
        f"{what} correlation ids end with {correlation_id!r}; the events carry: {shown}. "
        "Pass the full UUID or more of its digits"
    )


def in_correlation(events: EventSource, correlation_id: UUID | str) -> list[RecordedEvent]:
    """The events of one business flow (same ``metadata.correlation_id``), in position order."""
    recorded = collect(events)
    wanted = resolve_correlation(recorded, correlation_id)
    return [e for e in recorded if e.metadata.correlation_id == wanted]


def causation_links(events: Iterable[RecordedEvent]) -> list[tuple[RecordedEvent, RecordedEvent]]:
    """``(cause, effect)`` pairs: ``effect.metadata.causation_id`` is ``cause.event_id``.

    Only links between the given events are returned (sorted by the effect's position, then
    the cause's); an event whose causation is not among them is a root.
    """
    recorded = list(events)
    by_id = {e.event_id: e for e in recorded}
    links = [
        (by_id[e.metadata.causation_id], e)
        for e in recorded
        if e.metadata.causation_id is not None
        and e.metadata.causation_id in by_id
        and e.metadata.causation_id != e.event_id
    ]
    return sorted(links, key=lambda pair: (pair[1].position, pair[0].position))
