"""retry_dead_letters: an event that was applied again is never applied a third time because
its dead letter could not be removed (issue 11, section 6)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventcore import InMemoryEventStore, RecordedEvent, StoreFailure, StreamId
from eventcore.projections.dead_letters import (
    DeadLetter,
    DeadLetterStore,
    InMemoryDeadLetterStore,
    retry_dead_letters,
)
from eventcore.projections.sqlite import SqliteDeadLetterStore


@dataclass(frozen=True)
class Paid:
    order: StreamId
    amount: int


class Ledger:
    """A plain projector that counts every application of every event."""

    name = "ledger"

    def __init__(self, failing: set[int] | None = None) -> None:
        self.applied: list[int] = []
        self.failing = failing or set()

    def apply(self, event: RecordedEvent) -> None:
        if event.position in self.failing:
            raise RuntimeError(f"cannot apply {event.position}")
        self.applied.append(event.position)


class FlakyDiscards:
    """A dead-letter store whose ``discard`` fails while ``broken`` is set (a lost
    connection, say); everything else passes through."""

    def __init__(self, inner: DeadLetterStore) -> None:
        self.inner = inner
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def discard(self, name: str, position: int | None = None) -> int:
        if self.broken:
            raise StoreFailure("discard dead letter", "the connection was lost")
        return self.inner.discard(name, position)


@pytest.fixture(params=["memory", "sqlite"])
def dead_letters(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FlakyDiscards]:
    inner: Any = (
        InMemoryDeadLetterStore()
        if request.param == "memory"
        else SqliteDeadLetterStore(tmp_path / "letters.db")
    )
    yield FlakyDiscards(inner)
    close = getattr(inner, "close", None)
    if close is not None:
        close()


def _quarantine(store: InMemoryEventStore, letters: FlakyDiscards, *amounts: int) -> None:
    for amount in amounts:
        sid = StreamId(f"order-{amount}")
        (rec,) = store.append({sid: 0}, [Paid(sid, amount)])
        letters.record(DeadLetter.for_failure("ledger", rec, RuntimeError("was down"), 3))


def test_a_failed_discard_after_a_successful_apply_stops_the_retry(
    dead_letters: FlakyDiscards,
) -> None:
    store = InMemoryEventStore()
    _quarantine(store, dead_letters, 10, 20)
    ledger = Ledger()
    dead_letters.broken = True
    with pytest.raises(StoreFailure) as info:
        retry_dead_letters(ledger, store, dead_letters)  # type: ignore[arg-type]
    text = str(info.value)
    assert "the event at position 1 of projection 'ledger' was applied" in text
    assert "Remove it with discard('ledger', 1)" in text
    assert isinstance(info.value.__cause__, StoreFailure)
    assert ledger.applied == [1]  # it stopped: position 2 was not touched
    (first, second) = dead_letters.list("ledger")
    assert (first.attempts, first.error_type, first.message) == (
        3,
        "builtins.RuntimeError",
        "was down",
    )
    assert second.attempts == 3  # the applied event is not recorded as a projector failure

    dead_letters.broken = False  # the store is back; the user does what the error says
    assert dead_letters.discard("ledger", 1) == 1
    outcome = retry_dead_letters(ledger, store, dead_letters)  # type: ignore[arg-type]
    assert outcome.applied == (2,) and ledger.applied == [1, 2]  # 1 was applied once
    assert dead_letters.list("ledger") == []


def test_the_message_names_what_was_already_done(dead_letters: FlakyDiscards) -> None:
    store = InMemoryEventStore()
    _quarantine(store, dead_letters, 10, 20)
    ledger = Ledger()

    class BreaksAfterOne(FlakyDiscards):
        def discard(self, name: str, position: int | None = None) -> int:
            self.broken = position == 2
            return super().discard(name, position)

    breaking = BreaksAfterOne(dead_letters.inner)
    with pytest.raises(StoreFailure, match=r"positions \[1\] were applied and removed before it"):
        retry_dead_letters(ledger, store, breaking)  # type: ignore[arg-type]
    assert ledger.applied == [1, 2]
    assert [letter.position for letter in breaking.list("ledger")] == [2]


def test_a_failed_apply_is_still_kept_with_the_new_error(dead_letters: FlakyDiscards) -> None:
    store = InMemoryEventStore()
    _quarantine(store, dead_letters, 10, 20)
    ledger = Ledger(failing={1})
    outcome = retry_dead_letters(ledger, store, dead_letters)  # type: ignore[arg-type]
    assert outcome.applied == (2,)
    (kept,) = outcome.failed
    assert (kept.position, kept.attempts, kept.message) == (1, 4, "cannot apply 1")
    assert dead_letters.list("ledger") == [kept]
