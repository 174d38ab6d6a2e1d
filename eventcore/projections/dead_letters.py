"""Dead letters: events a projector could not apply, quarantined so the projection goes on.

With ``ErrorPolicy.dead_letter()`` (or ``retry(..., then="dead_letter")``) a failing event is
recorded — projection, position, event id, stream, type, error type, message, traceback,
attempts, time — and processing continues past it. Later, after fixing the projector (or the
data it depends on), :func:`retry_dead_letters` replays the quarantined events into it, or
``discard`` drops them.

**Ordering.** A dead-lettered event is out of order when it is retried: later events of the
same stream were applied before it. Projectors that need per-stream order should stop on
errors (the default) rather than dead-letter, or tolerate late events (for example by
keeping the highest ``stream_version`` applied per stream). Within one retry call,
letters are replayed in position order, and once one fails, the later letters of the same
stream are held back.
"""

from __future__ import annotations

import builtins
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventcore.clock import Clock, system_clock
from eventcore.errors import ConfigurationError, StoreFailure
from eventcore.events import RecordedEvent
from eventcore.projections.api import is_transactional
from eventcore.projections.checkpoints import (
    CheckpointStore,
    TransactionalCheckpointStore,
    check_name,
    check_position,
)
from eventcore.store import EventStore

__all__ = [
    "DeadLetter",
    "DeadLetterRetry",
    "DeadLetterStore",
    "InMemoryDeadLetterStore",
    "retry_dead_letters",
]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One quarantined event and why it failed."""

    projection: str
    position: int
    event_id: UUID
    stream_id: str
    event_type: str
    error_type: str
    message: str
    traceback: str
    attempts: int
    recorded_at: datetime

    @classmethod
    def for_failure(
        cls,
        projection: str,
        event: RecordedEvent,
        error: BaseException,
        attempts: int,
        clock: Clock = system_clock,
    ) -> DeadLetter:
        """The dead letter describing ``error``, raised by the last of ``attempts``."""
        return cls(
            projection=projection,
            position=event.position,
            event_id=event.event_id,
            stream_id=str(event.stream_id),
            event_type=event.event_type,
            error_type=f"{type(error).__module__}.{type(error).__qualname__}",
            message=str(error),
            traceback="".join(traceback.format_exception(error)),
            attempts=attempts,
            recorded_at=clock(),
        )

    def failed_again(self, error: BaseException, clock: Clock = system_clock) -> DeadLetter:
        """This letter after one more failed attempt, raising ``error``."""
        return replace(
            self,
            error_type=f"{type(error).__module__}.{type(error).__qualname__}",
            message=str(error),
            traceback="".join(traceback.format_exception(error)),
            attempts=self.attempts + 1,
            recorded_at=clock(),
        )


@runtime_checkable
class DeadLetterStore(Protocol):
    """Where dead letters are kept, keyed by (projection, position)."""

    def record(self, letter: DeadLetter) -> None:
        """Store ``letter``, replacing one for the same projection and position."""
        ...

    def list(self, name: str) -> builtins.list[DeadLetter]:
        """The dead letters of projection ``name``, in position order."""
        ...

    def get(self, name: str, position: int) -> DeadLetter | None:
        """The dead letter of ``name`` at ``position``, if there is one."""
        ...

    def discard(self, name: str, position: int | None = None) -> int:
        """Drop the letter at ``position`` (every letter of ``name`` when None); return
        how many were dropped."""
        ...


class InMemoryDeadLetterStore:
    """Dead letters in process memory (thread-safe)."""

    def __init__(self) -> None:
        self._letters: dict[tuple[str, int], DeadLetter] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryDeadLetterStore({len(self._letters)} letters)"

    def record(self, letter: DeadLetter) -> None:
        if not isinstance(letter, DeadLetter):
            raise ConfigurationError(f"record() takes a DeadLetter, got {letter!r}")
        with self._lock:
            self._letters[(letter.projection, letter.position)] = letter

    def list(self, name: str) -> builtins.list[DeadLetter]:
        check_name(name)
        with self._lock:
            return sorted(
                (v for (n, _), v in self._letters.items() if n == name), key=lambda d: d.position
            )

    def names(self) -> dict[str, int]:
        """The projections that have dead letters, name to how many, in name order."""
        with self._lock:
            counts: dict[str, int] = {}
            for n, _ in self._letters:
                counts[n] = counts.get(n, 0) + 1
        return dict(sorted(counts.items()))

    def get(self, name: str, position: int) -> DeadLetter | None:
        with self._lock:
            return self._letters.get((check_name(name), check_position(position)))

    def discard(self, name: str, position: int | None = None) -> int:
        check_name(name)
        with self._lock:
            keys = [
                k
                for k in self._letters
                if k[0] == name and (position is None or k[1] == check_position(position))
            ]
            for key in keys:
                del self._letters[key]
            return len(keys)


@dataclass(frozen=True, slots=True)
class DeadLetterRetry:
    """The outcome of :func:`retry_dead_letters`: the positions applied (and removed), the
    letters that failed again (kept, with the new error), and those held back because an
    earlier letter of their stream failed."""

    applied: tuple[int, ...]
    failed: tuple[DeadLetter, ...]
    held_back: tuple[DeadLetter, ...]


def same_database(a: object, b: object) -> bool:
    """Whether two SQL-backed components write to the same database (so one transaction
    can cover both)."""
    key_a = getattr(a, "database_key", None)
    return key_a is not None and key_a == getattr(b, "database_key", None)


def retry_dead_letters(
    projector: Any,
    store: EventStore,
    dead_letters: DeadLetterStore,
    *,
    position: int | None = None,
    checkpoints: CheckpointStore | None = None,
    clock: Clock = system_clock,
) -> DeadLetterRetry:
    """Replay quarantined events of ``projector.name`` into ``projector``, one attempt each.

    Each event is re-read from ``store`` by position. A success removes the letter; a
    failure keeps it with the new error and one more attempt. If the letter of an event
    that was applied cannot be removed, the retry stops with
    :class:`~eventcore.errors.StoreFailure` naming the position (the letter is left as it
    was, not counted as a failure of the projector). ``position`` limits the
    retry to one letter. A transactional projector needs ``checkpoints`` (the
    transactional checkpoint store): the event is applied in one of its transactions and,
    when the dead letters live in the same database, removed in the same transaction.
    The projection's checkpoint is not touched.
    """
    name = check_name(projector.name)
    tx_store: TransactionalCheckpointStore[Any] | None = None
    if is_transactional(projector):
        if not isinstance(checkpoints, TransactionalCheckpointStore):
            raise ConfigurationError(
                f"projection {name!r} is transactional: pass checkpoints= a transactional "
                "checkpoint store (SqliteCheckpointStore or PostgresCheckpointStore) to retry "
                "its dead letters"
            )
        tx_store = checkpoints
    if position is None:
        letters = dead_letters.list(name)
    else:
        one = dead_letters.get(name, position)
        letters = [] if one is None else [one]
    applied: list[int] = []
    failed: list[DeadLetter] = []
    held: list[DeadLetter] = []
    blocked: set[str] = set()
    for letter in letters:
        if letter.stream_id in blocked:
            held.append(letter)
            continue
        try:
            event = _reread(store, letter)
            if tx_store is not None:
                discarded = _apply_in_transaction(projector, event, tx_store, dead_letters, letter)
            else:
                projector.apply(event)
                discarded = False
        except Exception as exc:
            again = letter.failed_again(exc, clock)
            dead_letters.record(again)
            failed.append(again)
            blocked.add(letter.stream_id)
            continue
        if not discarded:
            _discard_applied(dead_letters, letter, applied)
        applied.append(letter.position)
    return DeadLetterRetry(tuple(applied), tuple(failed), tuple(held))


def _apply_in_transaction(
    projector: Any,
    event: RecordedEvent,
    checkpoints: TransactionalCheckpointStore[Any],
    dead_letters: DeadLetterStore,
    letter: DeadLetter,
) -> bool:
    """Apply in one transaction of ``checkpoints``; True when the letter was removed in it
    (the dead letters live in the same database)."""
    shared = same_database(checkpoints, dead_letters)
    with checkpoints.transaction() as tx:
        projector.apply(event, tx)
        if shared:
            discard_in: Callable[[Any, str, int], int] = dead_letters.discard_in  # type: ignore[attr-defined]
            discard_in(tx, letter.projection, letter.position)
    return shared


def _discard_applied(
    dead_letters: DeadLetterStore, letter: DeadLetter, applied: builtins.list[int]
) -> None:
    """Remove the letter of an event that was just applied. A failure here is not a
    failure of the projector (recording it as one would make the next retry apply the event
    again): the retry stops and says what to remove."""
    try:
        dead_letters.discard(letter.projection, letter.position)
    except Exception as exc:
        done = f"; positions {applied} were applied and removed before it" if applied else ""
        raise StoreFailure(
            "retry dead letters",
            f"the event at position {letter.position} of projection {letter.projection!r} was "
            f"applied, but its dead letter could not be removed ({type(exc).__name__}: {exc})"
            f"{done}. Remove it with discard({letter.projection!r}, {letter.position}) once "
            "the dead-letter store works again, or the next retry applies the event again",
        ) from exc


class _EventGone(LookupError):
    pass


def _reread(store: EventStore, letter: DeadLetter) -> RecordedEvent:
    found = store.read_all(after=letter.position - 1, limit=1)
    if not found or found[0].position != letter.position:
        raise _EventGone(f"no event at position {letter.position} in the store any more")
    event = found[0]
    if event.event_id != letter.event_id:
        raise _EventGone(
            f"the event at position {letter.position} is {event.event_id}, not the dead-lettered "
            f"{letter.event_id}: is this the right store?"
        )
    return event
