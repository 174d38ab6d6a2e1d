"""Commands whose state is the exact order of the events they folded (``apply`` does not
commute), with discovery through ``Linked`` events: if a snapshot restores or replays
anything in the wrong order, the state differs from a full replay."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from eventcore import Command, StreamId, stream
from eventcore.snapshots import SnapshotPolicy
from eventcore.store import EventStore
from eventcore.testing import StoreWrapper


@dataclass(frozen=True)
class Noted:
    stream: StreamId
    value: int


@dataclass(frozen=True)
class Linked:
    """Makes a command that reads ``stream`` read ``target`` too (discovery)."""

    __event_stream__ = "stream"
    stream: StreamId
    target: StreamId


@dataclass(frozen=True)
class Observed:
    """What a command saw: its whole state, written back so that two runs can be compared."""

    stream: StreamId
    trail: tuple[str, ...]


EVENTS = (Noted, Linked, Observed)


@dataclass(frozen=True)
class Trail:
    """The state: every event folded so far, in order."""

    seen: tuple[str, ...] = ()
    links: tuple[StreamId, ...] = ()


def fold(state: Trail, event: object) -> Trail:
    match event:
        case Noted(stream, value):
            return Trail((*state.seen, f"{stream}:{value}"), state.links)
        case Linked(stream, target):
            return Trail((*state.seen, f"{stream}->{target}"), (*state.links, target))
        case Observed(stream, trail):
            return Trail((*state.seen, f"{stream}:saw{len(trail)}"), state.links)
    return state


class Observe(Command[Trail]):
    """Reads its streams (and the ones they link to), then records what it saw.

    Its subclasses fold alike, so they share its snapshots: every policy says ``name``.
    """

    streams_: tuple[StreamId, ...] = stream()
    snapshot = SnapshotPolicy(every=3, name="observe")

    def initial_state(self) -> Trail:
        return Trail()

    def apply(self, state: Trail, event: object) -> Trail:
        return fold(state, event)

    def discover_streams(self, state: Trail) -> Iterable[StreamId]:
        return state.links

    def handle(self, state: Trail) -> list[object]:
        return [Observed(self.streams_[0], state.seen)]


class ObserveEvery1(Observe):
    snapshot = SnapshotPolicy(every=1, name="observe")


class ObserveEvery7(Observe):
    snapshot = SnapshotPolicy(every=7, name="observe")


class ObservePlain(Observe):
    """No snapshot policy: always a full replay."""

    snapshot = None


class Reads(StoreWrapper):
    """Records every stream read: (stream, after_version, events returned)."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner)
        self.log: list[tuple[str, int, int]] = []

    def read_stream(self, stream_id: StreamId, *, after_version: int = 0) -> Iterator[Any]:
        events = list(self.inner.read_stream(stream_id, after_version=after_version))
        self.log.append((str(stream_id), after_version, len(events)))
        return iter(events)
