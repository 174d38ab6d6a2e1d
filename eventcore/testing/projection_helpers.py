"""Events, projectors and faulty stores used by the projection contract (importable by other
processes, so that a worker can read what the tests wrote)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eventcore.errors import StoreFailure
from eventcore.events import RecordedEvent
from eventcore.projections import ErrorPolicy, EventSelector
from eventcore.store import EventStore
from eventcore.testing.faults import StoreWrapper
from eventcore.types import StreamId

__all__ = ["EVENTS", "FailingReads", "Flagged", "Noted", "Recorder", "append", "fill"]


@dataclass(frozen=True)
class Noted:
    topic: StreamId
    n: int


@dataclass(frozen=True)
class Flagged:
    topic: StreamId
    n: int


EVENTS = [Noted, Flagged]


def append(store: EventStore, stream: str, n: int, cls: type = Noted) -> RecordedEvent:
    sid = StreamId(stream)
    return store.append({sid: store.stream_version(sid)}, [cls(sid, n)])[0]


def fill(store: EventStore, count: int, streams: Iterable[str] = ("a-1", "b-2", "c-3")) -> None:
    names = list(streams)
    for i in range(count):
        append(store, names[i % len(names)], i)


class Recorder:
    """A projector that records positions, failing as told: ``fail[position]`` is how many
    attempts at that position raise before one succeeds (-1: always)."""

    def __init__(
        self,
        name: str = "rec",
        *,
        selector: EventSelector | None = None,
        error_policy: ErrorPolicy | None = None,
        fail: dict[int, int] | None = None,
    ) -> None:
        self.name = name
        self.selector = selector
        self.error_policy = error_policy or ErrorPolicy.stop()
        self.fail = dict(fail or {})
        self.positions: list[int] = []
        self.attempts: dict[int, int] = {}
        self.lock = threading.Lock()

    def apply(self, event: RecordedEvent) -> None:
        with self.lock:
            tries = self.attempts[event.position] = self.attempts.get(event.position, 0) + 1
            left = self.fail.get(event.position, 0)
            if left == -1 or tries <= left:
                raise RuntimeError(f"poison at {event.position} (attempt {tries})")
            self.positions.append(event.position)


class FailingReads(StoreWrapper):
    """``read_all`` and ``head`` raise ``StoreFailure`` the first ``failures`` times."""

    def __init__(self, inner: EventStore, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures
        self.calls = 0

    def read_all(self, **kwargs: Any) -> list[RecordedEvent]:
        self.calls += 1
        if self.calls <= self.failures:
            try:
                raise ConnectionError("injected read failure")
            except ConnectionError as exc:
                raise StoreFailure("read_all", "injected read failure") from exc
        return self.inner.read_all(**kwargs)
