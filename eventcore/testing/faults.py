"""Stores that misbehave on purpose, to test retries and error handling without threads.

Each wrapper implements the store protocol around a real store and injects a fault *instead
of* calling it, so nothing is written when a fault is injected:

- :class:`ConflictInjectingStore` makes the first ``conflicts`` appends fail with a
  :class:`~eventcore.errors.VersionConflict`, then behaves normally;
- :class:`ChaosStore` injects conflicts and failures at random, with a seed;
- :class:`InterleavingStore` runs your code just before each append, so another writer can
  really change a stream between a command's read and its write;
- :class:`LostAcknowledgementStore` lets the first ``losses`` appends **commit** and then
  fails them with :class:`~eventcore.errors.StoreFailure`, as when the connection drops
  after ``COMMIT`` (the caller cannot tell; an idempotency key makes the retry harmless);
- :class:`StoreWrapper` delegates everything: subclass it for spies and faults of your own.

>>> from dataclasses import dataclass
>>> from eventcore import InMemoryEventStore, StreamId
>>> @dataclass(frozen=True)
... class Opened:
...     account: StreamId
>>> store = ConflictInjectingStore(InMemoryEventStore(), conflicts=1)
>>> store.append({StreamId("a"): 0}, [Opened(StreamId("a"))])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
eventcore.errors.VersionConflict: version conflict on 'a': expected version 0, found 1; ...
>>> [e.stream_version for e in store.append({StreamId("a"): 0}, [Opened(StreamId("a"))])]
[1]
>>> store.injected
1
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Self

from eventcore.clock import system_clock, uuid7
from eventcore.errors import ConfigurationError, Conflict, StoreFailure, VersionConflict
from eventcore.events import Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.selection import Selection
from eventcore.store import EventStore, prepare_append
from eventcore.types import StreamId

__all__ = [
    "ChaosStore",
    "ConflictInjectingStore",
    "InjectedFault",
    "InterleavingStore",
    "LostAcknowledgementStore",
    "StoreWrapper",
]


class InjectedFault(ConnectionError):
    """The synthetic driver error kept as ``__cause__`` of an injected :class:`StoreFailure`."""


class StoreWrapper:
    """Delegates the whole store protocol to ``inner``. Subclass it and override one
    operation to build a spy or a fault of your own; ``inner`` is the wrapped store."""

    def __init__(self, inner: EventStore) -> None:
        if not isinstance(inner, EventStore):
            raise ConfigurationError(
                f"{type(self).__name__} wraps an event store, got {type(inner).__name__}"
            )
        self.inner = inner
        self.types = inner.types

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        return self.inner.read_stream(stream_id, after_version=after_version)

    def stream_version(self, stream_id: StreamId) -> int:
        return self.inner.stream_version(stream_id)

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        return self.inner.append(
            expected, events, metadata=metadata, idempotency_key=idempotency_key
        )

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        return self.inner.read_all(
            after=after, limit=limit, streams=streams, event_types=event_types
        )

    def head(self) -> int:
        return self.inner.head()

    def read_idempotent_write(self, key: str) -> RecordedWrite | None:
        return self.inner.read_idempotent_write(key)

    def close(self) -> None:
        """Close the wrapped store."""
        self.inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _validated(
        self, expected: Mapping[StreamId, int], events: Sequence[object], metadata: Metadata | None
    ) -> dict[StreamId, int]:
        """Check a write exactly as a real store would before it could conflict, so a bad
        write still raises its own error (``UndeclaredStream``, ``SerializationError``...)."""
        checked, _, _ = prepare_append(self.types, expected, events, metadata, system_clock, uuid7)
        return checked


def _conflict_for(checked: Mapping[StreamId, int]) -> VersionConflict:
    """A realistic conflict: every stream of the write moved one version past what was read."""
    return VersionConflict(Conflict(sid, version, version + 1) for sid, version in checked.items())


class ConflictInjectingStore(StoreWrapper):
    """Make the first ``conflicts`` appends raise :class:`VersionConflict`, then delegate.

    The write is validated first (a bad write raises its own error and uses up nothing);
    a write with no streams at all cannot conflict and is always delegated. The injected
    conflict reports every stream of the write at one version past the expected one.
    ``injected`` counts the conflicts raised so far, ``remaining`` those still to come.
    """

    def __init__(self, inner: EventStore, conflicts: int = 1) -> None:
        super().__init__(inner)
        if not isinstance(conflicts, int) or isinstance(conflicts, bool) or conflicts < 0:
            raise ConfigurationError(f"conflicts must be an int >= 0, got {conflicts!r}")
        self.remaining = conflicts
        self.injected = 0
        self._lock = threading.Lock()

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        checked = self._validated(expected, events, metadata)
        with self._lock:
            inject = bool(checked) and self.remaining > 0
            if inject:
                self.remaining -= 1
                self.injected += 1
        if inject:
            raise _conflict_for(checked)
        return self.inner.append(
            expected, events, metadata=metadata, idempotency_key=idempotency_key
        )

    def __repr__(self) -> str:
        return (
            f"ConflictInjectingStore({self.inner!r}, injected={self.injected}, "
            f"remaining={self.remaining})"
        )


class ChaosStore(StoreWrapper):
    """Inject faults at random, reproducibly (``random.Random(seed)``).

    Each append fails with :class:`StoreFailure` with probability ``failure_rate``, else
    with :class:`VersionConflict` with probability ``conflict_rate``; each read
    (``read_stream``, ``stream_version``, ``read_all``, ``head``) fails with probability
    ``failure_rate``. An injected failure names the operation and keeps a synthetic
    :class:`InjectedFault` as ``__cause__``, like a real driver error. Counters:
    ``conflicts_injected``, ``failures_injected`` and ``calls`` (operations seen).
    """

    def __init__(
        self,
        inner: EventStore,
        *,
        conflict_rate: float = 0.0,
        failure_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(inner)
        for name, rate in (("conflict_rate", conflict_rate), ("failure_rate", failure_rate)):
            if (
                not isinstance(rate, (int, float))
                or isinstance(rate, bool)
                or not math.isfinite(rate)
                or not 0 <= rate <= 1
            ):
                raise ConfigurationError(f"{name} must be a probability in [0, 1], got {rate!r}")
        if conflict_rate + failure_rate > 1:
            raise ConfigurationError(
                f"conflict_rate + failure_rate must be at most 1, got {conflict_rate} + "
                f"{failure_rate}"
            )
        self.conflict_rate = float(conflict_rate)
        self.failure_rate = float(failure_rate)
        self.seed = seed
        self.conflicts_injected = 0
        self.failures_injected = 0
        self.calls = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _draw(self, can_conflict: bool) -> str | None:
        """Return ``"failure"``, ``"conflict"`` or None for one operation."""
        with self._lock:
            self.calls += 1
            roll = self._rng.random()
            if roll < self.failure_rate:
                self.failures_injected += 1
                return "failure"
            if can_conflict and roll < self.failure_rate + self.conflict_rate:
                self.conflicts_injected += 1
                return "conflict"
        return None

    def _fail(self, operation: str) -> None:
        if self._draw(can_conflict=False) == "failure":
            _raise_failure(operation, self.failures_injected)

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        self._fail("read_stream")
        return super().read_stream(stream_id, after_version=after_version)

    def stream_version(self, stream_id: StreamId) -> int:
        self._fail("stream_version")
        return super().stream_version(stream_id)

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        self._fail("read_all")
        return super().read_all(after=after, limit=limit, streams=streams, event_types=event_types)

    def head(self) -> int:
        self._fail("head")
        return super().head()

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        checked = self._validated(expected, events, metadata)
        fault = self._draw(can_conflict=bool(checked))
        if fault == "failure":
            _raise_failure("append", self.failures_injected)
        if fault == "conflict":
            raise _conflict_for(checked)
        return self.inner.append(
            expected, events, metadata=metadata, idempotency_key=idempotency_key
        )

    def __repr__(self) -> str:
        return (
            f"ChaosStore({self.inner!r}, conflict_rate={self.conflict_rate}, "
            f"failure_rate={self.failure_rate}, seed={self.seed})"
        )


def _raise_failure(operation: str, number: int) -> None:
    cause = InjectedFault(f"chaos: simulated connection loss #{number}")
    raise StoreFailure(operation, f"injected by ChaosStore ({cause})") from cause


AppendHook = Callable[[EventStore, int], None]
"""Called with the wrapped store and the 1-based number of the append about to run."""


class InterleavingStore(StoreWrapper):
    """Run ``before_append(inner, n)`` just before the n-th append (1-based) is delegated.

    The hook writes through ``inner`` (not through this wrapper), as another process would,
    so the command's write really finds a stream that moved:

    >>> from dataclasses import dataclass
    >>> from eventcore import InMemoryEventStore, StreamId
    >>> @dataclass(frozen=True)
    ... class Noted:
    ...     stream: StreamId
    >>> def sneak_in(inner: EventStore, n: int) -> None:
    ...     if n == 1:
    ...         inner.append({StreamId("b"): 0}, [Noted(StreamId("b"))])
    >>> store = InterleavingStore(InMemoryEventStore(), before_append=sneak_in)
    >>> store.append({StreamId("a"): 0, StreamId("b"): 0}, [Noted(StreamId("a"))])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eventcore.errors.VersionConflict: version conflict on 'b': expected version 0, found 1; ...
    """

    def __init__(self, inner: EventStore, before_append: AppendHook) -> None:
        super().__init__(inner)
        if not callable(before_append):
            raise ConfigurationError(
                f"before_append must be callable, got {type(before_append).__name__}"
            )
        self.before_append = before_append
        self.appends = 0
        self._lock = threading.Lock()

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        with self._lock:
            self.appends += 1
            number = self.appends
        self.before_append(self.inner, number)
        return self.inner.append(
            expected, events, metadata=metadata, idempotency_key=idempotency_key
        )

    def __repr__(self) -> str:
        return f"InterleavingStore({self.inner!r}, appends={self.appends})"


class LostAcknowledgementStore(StoreWrapper):
    """The first ``losses`` appends commit in the inner store, then raise
    :class:`~eventcore.errors.StoreFailure` instead of returning: the acknowledgement of a
    commit was lost. ``committed`` keeps what each lost append really wrote.

    >>> from dataclasses import dataclass
    >>> from eventcore import InMemoryEventStore, StoreFailure, StreamId
    >>> @dataclass(frozen=True)
    ... class Paid:
    ...     order: StreamId
    >>> store = LostAcknowledgementStore(InMemoryEventStore(), losses=1)
    >>> try:
    ...     store.append({StreamId("o"): 0}, [Paid(StreamId("o"))], idempotency_key="pay-o")
    ... except StoreFailure as lost:
    ...     print(lost.operation, store.inner.head())
    append 1
    >>> [e.position for e in store.append({StreamId("o"): 0}, [Paid(StreamId("o"))],
    ...                                   idempotency_key="pay-o")]
    [1]
    """

    def __init__(self, inner: EventStore, losses: int = 1) -> None:
        super().__init__(inner)
        if isinstance(losses, bool) or not isinstance(losses, int) or losses < 0:
            raise ConfigurationError(f"losses must be an int >= 0, got {losses!r}")
        self.remaining = losses
        self.committed: list[list[RecordedEvent]] = []
        self._lock = threading.Lock()

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
        idempotency_key: str | IdempotencyKey | None = None,
    ) -> list[RecordedEvent]:
        written = self.inner.append(
            expected, events, metadata=metadata, idempotency_key=idempotency_key
        )
        with self._lock:
            lose = self.remaining > 0
            if lose:
                self.remaining -= 1
                self.committed.append(written)
        if lose:
            failure = StoreFailure(
                "append",
                "lost the connection after COMMIT (injected): the write may or may not have "
                "committed; read the streams to find out, or retry with the same "
                "idempotency key",
            )
            raise failure from InjectedFault("connection reset after COMMIT")
        return written

    def __repr__(self) -> str:
        return f"LostAcknowledgementStore({self.inner!r}, remaining={self.remaining})"
