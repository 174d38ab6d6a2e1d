"""What a projection is: projectors, event selectors, error policies, reports, stop handles.

A *projector* turns events into a read model. It has a ``name`` (the key of its checkpoint,
its leadership and its dead letters) and an ``apply(event)`` method; optionally a
``selector`` (which events it wants, filtered in the database) and an ``error_policy``
(what to do when ``apply`` raises).

>>> seen = []
>>> @projector("audit", selector=EventSelector(streams=StreamPrefix("order-")))
... def audit(event: RecordedEvent) -> None:
...     seen.append(event.position)
>>> audit.name, audit.error_policy.max_attempts
('audit', 3)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from eventcore.errors import ConfigurationError, InvalidStreamSelector
from eventcore.events import RecordedEvent, event_info
from eventcore.retry import capped_backoff
from eventcore.store import EventStore, StreamSelector
from eventcore.types import StreamPattern, StreamPrefix

__all__ = [
    "DEFAULT_ERROR_POLICY",
    "ErrorPolicy",
    "EventSelector",
    "FunctionProjector",
    "FunctionTransactionalProjector",
    "GiveUp",
    "ProjectionReport",
    "Projector",
    "StopHandle",
    "StopReason",
    "TransactionalProjector",
    "is_transactional",
    "projector",
    "transactional_projector",
]

TxT_contra = TypeVar("TxT_contra", contravariant=True)

GiveUp = Literal["stop", "skip", "dead_letter"]
"""What happens to an event once its attempts are used up."""

StopReason = Literal["caught_up", "stopped", "failed"]
"""Why a run ended: batch mode reached the head it saw at the start, a stop was requested
(continuous mode, or while waiting for leadership), or it failed (the report attached to
:class:`~eventcore.errors.ProjectionFailed`)."""


# -- selecting events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventSelector:
    """Which events a projector receives, filtered by the store before the page limit.

    ``streams`` is a :class:`~eventcore.types.StreamPrefix`, a
    :class:`~eventcore.types.StreamPattern`, a tuple of them (an event matching any of
    them is selected) or ``None`` (every stream). ``event_types`` holds type names or event
    classes (``None``: every type). Both filters must match.

    >>> s = EventSelector(streams=(StreamPrefix("customer-"), StreamPattern("order-[0-9]*")),
    ...                   event_types={"OrderPlaced", "CustomerRegistered"})
    >>> len(s.stream_selectors), sorted(s.event_type_names())
    (2, ['CustomerRegistered', 'OrderPlaced'])
    """

    streams: StreamSelector | tuple[StreamSelector, ...] | None = None
    event_types: frozenset[str | type] | None = None

    def __post_init__(self) -> None:
        streams: Any = self.streams
        if isinstance(streams, (list, frozenset, set)):
            streams = tuple(streams)
        if isinstance(streams, tuple):
            if not streams:
                raise InvalidStreamSelector(
                    "EventSelector(streams=()) selects nothing; pass None for every stream"
                )
            for item in streams:
                _check_stream_selector(item)
            streams = tuple(dict.fromkeys(streams))
            if len(streams) == 1:
                streams = streams[0]
        elif streams is not None:
            _check_stream_selector(streams)
        object.__setattr__(self, "streams", streams)
        types: Any = self.event_types
        if types is not None:
            if isinstance(types, (str, type)):
                types = [types]
            if not isinstance(types, Iterable):
                raise ConfigurationError(
                    f"event_types must be names or event classes, got {type(types).__name__}"
                )
            types = frozenset(types)
            for item in types:
                if not isinstance(item, (str, type)):
                    raise ConfigurationError(
                        f"event_types must hold type names or event classes, got {item!r}"
                    )
            object.__setattr__(self, "event_types", types)

    @property
    def stream_selectors(self) -> tuple[StreamSelector | None, ...]:
        """The stream filters to read with: one per prefix or pattern (``(None,)`` for all)."""
        if isinstance(self.streams, tuple):
            return self.streams
        return (self.streams,)

    def event_type_names(self) -> frozenset[str] | None:
        """The selected type names (classes translated to their stored names), or None."""
        if self.event_types is None:
            return None
        return frozenset(
            t if isinstance(t, str) else event_info(t).type_name for t in self.event_types
        )

    def matches(self, event: RecordedEvent) -> bool:
        """Whether ``event`` is selected (the same test the stores apply in the database)."""
        names = self.event_type_names()
        if names is not None and event.event_type not in names:
            return False
        return any(s is None or s.matches(event.stream_id) for s in self.stream_selectors)

    def read(self, store: EventStore, *, after: int, limit: int) -> list[RecordedEvent]:
        """The first ``limit`` selected events after position ``after``, in position order,
        in one filtered ``read_all`` (several stream selectors are passed together, so the
        page, like every page, ends on a write boundary)."""
        types = None if self.event_types is None else list(self.event_types)
        streams = self.streams
        return store.read_all(after=after, limit=limit, streams=streams, event_types=types)


ALL_EVENTS = EventSelector()


def _check_stream_selector(item: object) -> None:
    if not isinstance(item, (StreamPrefix, StreamPattern)):
        raise InvalidStreamSelector(
            f"streams must be a StreamPrefix, a StreamPattern or a tuple of them, got "
            f"{type(item).__name__} {item!r}; wrap it, for example StreamPattern('order-*')"
        )


# -- error policies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """What the runner does when ``apply`` raises, for one event.

    The event is attempted up to ``max_attempts`` times, sleeping ``base_delay``,
    ``base_delay * multiplier``, … (capped at ``max_delay``) between attempts; then
    ``then`` decides: ``"stop"`` (raise :class:`~eventcore.errors.ProjectionFailed`; the
    checkpoint stays before the event, so a restart tries it again), ``"skip"`` (go on
    without it) or ``"dead_letter"`` (record it in the dead-letter store and go on).

    Retries happen in place: no later event is applied before the failing one is settled,
    so retrying never breaks ordering.

    >>> ErrorPolicy.retry(max_attempts=4, base_delay=0.1, max_delay=0.3).delays()
    [0.1, 0.2, 0.3]
    >>> ErrorPolicy.dead_letter().max_attempts
    1
    """

    max_attempts: int = 1
    base_delay: float = 0.1
    max_delay: float = 5.0
    multiplier: float = 2.0
    then: GiveUp = "stop"

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or self.max_attempts < 1
        ):
            raise ConfigurationError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(
                    f"{name} must be a finite number of seconds >= 0, got {value!r}"
                )
        if (
            isinstance(self.multiplier, bool)
            or not isinstance(self.multiplier, (int, float))
            or not math.isfinite(self.multiplier)
            or self.multiplier < 1
        ):
            raise ConfigurationError(f"multiplier must be a number >= 1, got {self.multiplier!r}")
        if self.then not in ("stop", "skip", "dead_letter"):
            raise ConfigurationError(
                f"then must be 'stop', 'skip' or 'dead_letter', got {self.then!r}"
            )

    @classmethod
    def retry(
        cls,
        max_attempts: int = 3,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        *,
        multiplier: float = 2.0,
        then: GiveUp = "stop",
    ) -> ErrorPolicy:
        """Try up to ``max_attempts`` times with capped exponential backoff, then ``then``."""
        return cls(max_attempts, base_delay, max_delay, multiplier, then)

    @classmethod
    def stop(cls) -> ErrorPolicy:
        """Stop the projection at the first failure (no retry)."""
        return cls(1, then="stop")

    @classmethod
    def skip(cls) -> ErrorPolicy:
        """Skip an event whose ``apply`` fails (no retry); it is counted in the report."""
        return cls(1, then="skip")

    @classmethod
    def dead_letter(cls) -> ErrorPolicy:
        """Quarantine an event whose ``apply`` fails (no retry) and go on."""
        return cls(1, then="dead_letter")

    def delay(self, failed_attempts: int) -> float | None:
        """Seconds to wait after ``failed_attempts`` failures, or None when they are used up."""
        if failed_attempts >= self.max_attempts:
            return None
        return capped_backoff(failed_attempts, self.base_delay, self.multiplier, self.max_delay)

    def delays(self) -> list[float]:
        """Every wait between attempts, in order."""
        return [d for n in range(1, self.max_attempts) if (d := self.delay(n)) is not None]


DEFAULT_ERROR_POLICY = ErrorPolicy.retry(max_attempts=3, base_delay=0.1, max_delay=5.0, then="stop")
"""Three attempts (100 ms, then 200 ms apart), then stop."""


# -- projectors ---------------------------------------------------------------------------------


@runtime_checkable
class Projector(Protocol):
    """Builds a read model from events. Delivery is **at least once**.

    Required: ``name`` (checkpoint, leadership and dead-letter key) and ``apply(event)``.
    Optional attributes read by the runner: ``selector`` (an :class:`EventSelector`;
    default every event) and ``error_policy`` (an :class:`ErrorPolicy`; default
    :data:`DEFAULT_ERROR_POLICY`).

    The checkpoint is saved after each page of events, separately from whatever ``apply``
    changes, so after a crash the events since the last save are delivered again: make
    ``apply`` idempotent (upsert by key, ignore positions already applied, see
    :mod:`eventcore.projections.idempotence`) or use a :class:`TransactionalProjector`.
    """

    @property
    def name(self) -> str: ...

    def apply(self, event: RecordedEvent) -> None: ...


@runtime_checkable
class TransactionalProjector(Protocol[TxT_contra]):
    """A projector whose writes commit together with its checkpoint: exactly-once effects.

    ``apply(event, tx)`` receives the open transaction of the checkpoint store — a
    ``sqlite3.Connection`` for :class:`~eventcore.projections.SqliteCheckpointStore`, a
    psycopg connection for the PostgreSQL one — and writes the read model through it. It
    must not commit or roll back: the runner does, once per page, after saving the
    checkpoint in the same transaction. A failed attempt leaves no trace: the runner
    applies a page without savepoints and, if an ``apply`` raises, rolls the page back and
    redoes it with each event in a savepoint (so ``apply`` may be called again for events
    whose writes were rolled back). Set ``transactional = True`` on the class (the
    :func:`transactional_projector` decorator does). On SQLite the transaction holds the
    database's write lock: do not append to the event store from ``apply``.
    """

    @property
    def name(self) -> str: ...

    @property
    def transactional(self) -> bool: ...

    def apply(self, event: RecordedEvent, tx: TxT_contra) -> None: ...


def is_transactional(p: object) -> bool:
    """Whether ``p`` is a transactional projector (``transactional = True``)."""
    return getattr(p, "transactional", False) is True


@dataclass(frozen=True, slots=True)
class FunctionProjector:
    """A projector made from a function by :func:`projector`; calling it applies."""

    name: str
    function: Callable[[RecordedEvent], None]
    selector: EventSelector | None = None
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY

    def __post_init__(self) -> None:
        _check_projector_fields(self.name, self.selector, self.error_policy)

    def apply(self, event: RecordedEvent) -> None:
        self.function(event)

    def __call__(self, event: RecordedEvent) -> None:
        self.function(event)


@dataclass(frozen=True, slots=True)
class FunctionTransactionalProjector:
    """A transactional projector made from a function by :func:`transactional_projector`."""

    name: str
    function: Callable[[RecordedEvent, Any], None]
    selector: EventSelector | None = None
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY
    transactional: Literal[True] = field(default=True, init=False)

    def __post_init__(self) -> None:
        _check_projector_fields(self.name, self.selector, self.error_policy)

    def apply(self, event: RecordedEvent, tx: Any) -> None:
        self.function(event, tx)

    def __call__(self, event: RecordedEvent, tx: Any) -> None:
        self.function(event, tx)


def projector(
    name: str,
    *,
    selector: EventSelector | None = None,
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY,
) -> Callable[[Callable[[RecordedEvent], None]], FunctionProjector]:
    """Turn a function ``(event) -> None`` into a :class:`Projector` named ``name``."""

    def wrap(function: Callable[[RecordedEvent], None]) -> FunctionProjector:
        return FunctionProjector(name, function, selector, error_policy)

    return wrap


def transactional_projector(
    name: str,
    *,
    selector: EventSelector | None = None,
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY,
) -> Callable[[Callable[[RecordedEvent, Any], None]], FunctionTransactionalProjector]:
    """Turn a function ``(event, tx) -> None`` into a :class:`TransactionalProjector`."""

    def wrap(function: Callable[[RecordedEvent, Any], None]) -> FunctionTransactionalProjector:
        return FunctionTransactionalProjector(name, function, selector, error_policy)

    return wrap


def _check_projector_fields(name: object, selector: object, policy: object) -> None:
    check_projection_name(name)
    if selector is not None and not isinstance(selector, EventSelector):
        raise ConfigurationError(f"selector must be an EventSelector or None, got {selector!r}")
    if not isinstance(policy, ErrorPolicy):
        raise ConfigurationError(f"error_policy must be an ErrorPolicy, got {policy!r}")


def check_projection_name(name: object) -> str:
    """A projection name is a non-empty str of at most 200 characters (it keys tables)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConfigurationError(
            f"a projection name must be a non-empty str of at most 200 characters, got {name!r}"
        )
    return name


# -- reports and stopping -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectionReport:
    """What one run did.

    ``applied`` counts successful ``apply`` calls, ``retries`` the failed attempts that
    were tried again, ``skipped`` and ``dead_lettered`` the events given up on.
    ``last_position`` is the checkpoint when the run ended (0 if none).
    """

    name: str
    applied: int
    skipped: int
    dead_lettered: int
    retries: int
    last_position: int
    stopped_reason: StopReason


class StopHandle:
    """Asks a running projection to stop; thread-safe, and may be called more than once.

    The runner finishes the event in hand, saves the checkpoint and returns within about
    ``poll_interval`` seconds.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        """Request the stop (returns at once; join the runner to wait for it)."""
        self._event.set()

    @property
    def stopped(self) -> bool:
        """Whether a stop was requested."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested or ``timeout`` passes; True if requested."""
        return self._event.wait(timeout)

    def checker(self) -> Callable[[], bool]:
        """A zero-argument test of :attr:`stopped`, cheap enough to call before every event."""
        return self._event.is_set

    def __repr__(self) -> str:
        return f"StopHandle(stopped={self.stopped})"
