"""The effects the projection steps yield (:mod:`eventcore.projections.step`): what a shell
performs and what it sends back for each.

>>> ReadPage(EventSelector(), after=10, limit=500).limit
500
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventcore.events import RecordedEvent
from eventcore.projections.api import EventSelector
from eventcore.projections.dead_letters import DeadLetter

__all__ = [
    "AcquireLeadership",
    "ApplyEvents",
    "ApplyOne",
    "BeginTransaction",
    "EndTransaction",
    "HoldsLeadership",
    "LeadershipHolder",
    "LoadCheckpoint",
    "ReadHead",
    "ReadPage",
    "RecordDeadLetter",
    "ReleaseLeadership",
    "SaveCheckpoint",
    "SaveInTransaction",
    "Sleep",
    "StepEffect",
    "WaitForEvents",
    "WaitForStop",
]


@dataclass(frozen=True, slots=True)
class LoadCheckpoint:
    """Load the projection's checkpoint; send back ``int | None``."""


@dataclass(frozen=True, slots=True)
class AcquireLeadership:
    """``config.leadership.acquire(name)``; send back a bool."""


@dataclass(frozen=True, slots=True)
class ReleaseLeadership:
    """``config.leadership.release(name)``; send back None."""


@dataclass(frozen=True, slots=True)
class HoldsLeadership:
    """Whether this instance still leads; send back a bool, or None when the backend
    cannot tell (it has no ``holds``)."""


@dataclass(frozen=True, slots=True)
class LeadershipHolder:
    """A description of the holder, for a message; send back ``str | None``."""


@dataclass(frozen=True, slots=True)
class ReadHead:
    """The store's head position; send back an int."""


@dataclass(frozen=True, slots=True)
class ReadPage:
    """The first ``limit`` selected events after ``after`` (the projector's selector);
    send back a list of :class:`RecordedEvent`."""

    selector: EventSelector
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class ApplyEvents:
    """Apply ``events[start:]`` in order (``apply(event)``, or ``apply(event, tx)`` when
    ``tx`` is not None), checking for a stop before each; send back ``(index, error)``."""

    events: Sequence[RecordedEvent]
    start: int
    tx: Any


@dataclass(frozen=True, slots=True)
class ApplyOne:
    """Apply one event (in a savepoint of ``tx`` when ``savepoint``); send back the
    exception it raised, or None."""

    event: RecordedEvent
    tx: Any
    savepoint: bool


@dataclass(frozen=True, slots=True)
class SaveCheckpoint:
    """``checkpoints.save(name, position)``; send back None."""

    position: int


@dataclass(frozen=True, slots=True)
class BeginTransaction:
    """Open a transaction of the (transactional) checkpoint store; send back its handle."""


@dataclass(frozen=True, slots=True)
class SaveInTransaction:
    """``checkpoints.save_in(tx, name, position, expected=expected)``; send back None."""

    tx: Any
    position: int
    expected: int | None


@dataclass(frozen=True, slots=True)
class EndTransaction:
    """Commit ``tx`` (``error`` None) or roll it back because of ``error``; send back None
    (an error of the commit or rollback is thrown back instead)."""

    tx: Any
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class RecordDeadLetter:
    """Record ``letter``: inside ``tx`` (same database) or on its own (``tx`` None)."""

    letter: DeadLetter
    tx: Any


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (between attempts, or after a store failure); send back None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class WaitForEvents:
    """Wait up to ``timeout`` for an event after ``after`` (or for a stop); send back None."""

    after: int
    timeout: float


@dataclass(frozen=True, slots=True)
class WaitForStop:
    """Wait up to ``timeout`` for a stop request; send back whether one came."""

    timeout: float


StepEffect = (
    LoadCheckpoint
    | AcquireLeadership
    | ReleaseLeadership
    | HoldsLeadership
    | LeadershipHolder
    | ReadHead
    | ReadPage
    | ApplyEvents
    | ApplyOne
    | SaveCheckpoint
    | BeginTransaction
    | SaveInTransaction
    | EndTransaction
    | RecordDeadLetter
    | Sleep
    | WaitForEvents
    | WaitForStop
)
