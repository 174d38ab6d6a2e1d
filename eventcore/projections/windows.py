"""Time windows over events: tumbling and sliding groups, and "B must follow A within T".

Everything here decides by **event time** — ``recorded_at`` by default, or any aware
datetime a ``time=`` function takes from the event — never by the wall clock, so the same
events always give the same windows and the same flags, whether they are grouped in one
batch over history or fed one by one to a running projection.

>>> from datetime import UTC, datetime, timedelta
>>> from eventcore import InMemoryEventStore, StreamId, TickingClock
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Clicked:
...     page: StreamId
>>> store = InMemoryEventStore(clock=TickingClock(step=timedelta(minutes=25)))
>>> _ = store.append({StreamId("page-1"): 0}, [Clicked(StreamId("page-1"))] * 6)
>>> for w in tumbling(store.read_all(), timedelta(hours=1)):
...     print(w.start.time(), w.end.time(), len(w))
09:00:00 10:00:00 3
10:00:00 11:00:00 2
11:00:00 12:00:00 1
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Self

from eventcore.errors import ConfigurationError, ValidationError
from eventcore.events import RecordedEvent, event_info
from eventcore.projections.api import DEFAULT_ERROR_POLICY, ErrorPolicy, EventSelector

__all__ = [
    "EPOCH",
    "Expired",
    "Matched",
    "Unmatched",
    "Window",
    "WithinWindow",
    "recorded_at",
    "sliding",
    "tumbling",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""The default origin of windows: hour and day windows start on the hour and at midnight UTC."""

EventTime = Callable[[RecordedEvent], datetime]


def recorded_at(event: RecordedEvent) -> datetime:
    """The default event time: when the store recorded the event."""
    return event.recorded_at


@dataclass(frozen=True, slots=True)
class Window:
    """The events whose time falls in ``[start, end)``, in the order they were given."""

    start: datetime
    end: datetime
    events: tuple[RecordedEvent, ...]

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[RecordedEvent]:
        return iter(self.events)


def tumbling(
    events: Iterable[RecordedEvent],
    size: timedelta,
    *,
    origin: datetime = EPOCH,
    time: EventTime = recorded_at,
    include_empty: bool = False,
) -> list[Window]:
    """Group events into back-to-back windows of ``size`` aligned on ``origin``.

    Every event lands in exactly one window. Windows come in time order; within a window
    events keep their input order (position order for a store's events). Empty windows
    between the first and the last are included only with ``include_empty=True``.
    """
    _check_span("size", size)
    _check_time("origin", origin)
    groups: dict[int, list[RecordedEvent]] = {}
    for e in events:
        groups.setdefault((_time_of(time, e) - origin) // size, []).append(e)
    if not groups:
        return []
    slots = range(min(groups), max(groups) + 1) if include_empty else sorted(groups)
    return [
        Window(origin + k * size, origin + (k + 1) * size, tuple(groups.get(k, ()))) for k in slots
    ]


def sliding(
    events: Iterable[RecordedEvent],
    size: timedelta,
    step: timedelta,
    *,
    origin: datetime = EPOCH,
    time: EventTime = recorded_at,
) -> list[Window]:
    """Windows of ``size`` starting every ``step`` (from ``origin``); an event belongs to
    every window that covers its time, so with ``step < size`` windows overlap.

    Only windows holding at least one event are returned, in time order.
    """
    _check_span("size", size)
    _check_span("step", step)
    _check_time("origin", origin)
    groups: dict[int, list[RecordedEvent]] = {}
    for e in events:
        offset = _time_of(time, e) - origin
        last = offset // step  # the latest window starting at or before the event
        first = (offset - size) // step + 1  # the earliest window still covering it
        for k in range(first, last + 1):
            groups.setdefault(k, []).append(e)
    return [
        Window(origin + k * step, origin + k * step + size, tuple(groups[k]))
        for k in sorted(groups)
    ]


# -- "B must follow A within T" ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matched:
    """An opening event and the closing event that came in time."""

    key: Hashable
    opened: RecordedEvent
    closed: RecordedEvent
    elapsed: timedelta


@dataclass(frozen=True, slots=True)
class Expired:
    """An opening event whose window passed with no closing event: flag it."""

    key: Hashable
    opened: RecordedEvent
    deadline: datetime


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A closing event that closed nothing. ``reason`` is ``"never opened"``,
    ``"too late"`` (its window had expired) or ``"already matched"`` (a duplicate)."""

    key: Hashable
    event: RecordedEvent
    reason: str


class WithinWindow:
    """Correlate events that must follow each other within a time span, by a shared key.

    An *opening* event (say ``OrderPlaced``) starts a window of ``within`` for its key; a
    *closing* event (``PaymentReceived``) with the same key closes it — a :class:`Matched`.
    A window whose deadline passes with no close becomes :class:`Expired` (the order is
    flagged); a close that finds no open window is :class:`Unmatched`.

    Time is the **event time** of the events seen: each event moves the watermark (the
    latest time seen; it never goes back) and every open window whose deadline is before the
    watermark expires. A close exactly at the deadline is in time. No wall clock is read,
    so feeding the same events gives the same result, in one batch (:meth:`feed`) or one by
    one as a projector (:meth:`apply`, with ``name`` and ``selector`` for the runner). At the
    end of history, :meth:`advance_to` moves the watermark to a time you choose ("as of now").

    ``key`` receives the domain event (``record.event``) and returns the value both kinds
    share, for example ``lambda e: e.order``.
    """

    def __init__(
        self,
        name: str,
        *,
        opens: type | str | Iterable[type | str],
        closes: type | str | Iterable[type | str],
        key: Callable[[Any], Hashable],
        within: timedelta,
        time: EventTime = recorded_at,
        error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"a window needs a non-empty name, got {name!r}")
        _check_span("within", within)
        self.name = name
        self.within = within
        self._key = key
        self._time = time
        self._opens = _type_names(opens, "opens")
        self._closes = _type_names(closes, "closes")
        if self._opens & self._closes:
            raise ConfigurationError(
                f"{sorted(self._opens & self._closes)} cannot both open and close a window"
            )
        self.selector = EventSelector(event_types=self._opens | self._closes)
        self.error_policy = error_policy
        self.watermark: datetime | None = None
        self.pending: dict[Hashable, RecordedEvent] = {}
        self.matched: list[Matched] = []
        self.expired: list[Expired] = []
        self.unmatched: list[Unmatched] = []
        self._deadlines: list[tuple[datetime, int, Hashable]] = []
        self._closed: dict[Hashable, str] = {}  # key -> "matched" | "expired"
        self._seq = 0

    def __repr__(self) -> str:
        return (
            f"WithinWindow({self.name!r}, pending={len(self.pending)}, "
            f"matched={len(self.matched)}, expired={len(self.expired)}, "
            f"unmatched={len(self.unmatched)})"
        )

    def feed(self, events: Iterable[RecordedEvent]) -> Self:
        """Apply every event in order (a batch over history); returns ``self``."""
        for e in events:
            self.apply(e)
        return self

    def apply(self, event: RecordedEvent) -> None:
        """Advance the watermark to the event's time, expire what is overdue, then open or
        close the event's window. Events of other types only move the watermark."""
        when = _time_of(self._time, event)
        self.advance_to(when)
        if event.event_type in self._opens:
            key = self._key(event.event)
            if key not in self.pending and key not in self._closed:
                self.pending[key] = event
                heapq.heappush(self._deadlines, (when + self.within, self._seq, key))
                self._seq += 1
        elif event.event_type in self._closes:
            key = self._key(event.event)
            opened = self.pending.pop(key, None)
            if opened is not None:
                self._closed[key] = "matched"
                elapsed = when - _time_of(self._time, opened)
                self.matched.append(Matched(key, opened, event, elapsed))
            else:
                state = self._closed.get(key)
                reason = {"matched": "already matched", "expired": "too late"}.get(
                    state or "", "never opened"
                )
                self.unmatched.append(Unmatched(key, event, reason))

    def advance_to(self, now: datetime) -> list[Expired]:
        """Move the watermark to ``now`` (if later) and expire every window whose deadline is
        before it. Returns the windows expired by this call."""
        _check_time("now", now)
        if self.watermark is None or now > self.watermark:
            self.watermark = now
        newly: list[Expired] = []
        while self._deadlines and self._deadlines[0][0] < self.watermark:
            deadline, _, key = heapq.heappop(self._deadlines)
            opened = self.pending.pop(key, None)
            if opened is None:  # closed in time already
                continue
            self._closed[key] = "expired"
            newly.append(Expired(key, opened, deadline))
        self.expired.extend(newly)
        return newly


def _type_names(value: type | str | Iterable[type | str], what: str) -> frozenset[str]:
    items = [value] if isinstance(value, (type, str)) else list(value)
    names = frozenset(i if isinstance(i, str) else event_info(i).type_name for i in items)
    if not names:
        raise ConfigurationError(f"{what} needs at least one event type")
    return names


def _check_span(name: str, value: object) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigurationError(f"{name} must be a positive timedelta, got {value!r}")


def _check_time(name: str, value: object) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(f"{name} must be a timezone-aware datetime, got {value!r}")


def _time_of(time: EventTime, event: RecordedEvent) -> datetime:
    when = time(event)
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValidationError(
            f"the time of the event at position {event.position} must be a timezone-aware "
            f"datetime, got {when!r}"
        )
    return when
