"""Tombstones and retention seen from commands and projections: a command on a deleted
stream is told so (never retried), a projection reacts to the deletion event, and a
projection whose checkpoint lies before removed events stops with ``EventsRemoved`` unless it
reads through ``skipping_removed`` on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore import InMemoryEventStore, SeededIds, SqliteEventStore, StreamId, TickingClock
from eventcore.errors import EventsRemoved, StreamClosed, StreamDeleted
from eventcore.execution import execute
from eventcore.projections import (
    InMemoryCheckpointStore,
    ProjectionConfig,
    projector,
    run_projection,
)
from eventcore.retention import KeepLast, skipping_removed
from eventcore.tombstones import StreamDeletion
from eventcore.types import StreamPrefix
from tests.bank import EVENTS, Deposit, MoneyDeposited

ALICE = StreamId("account-alice")
BOB = StreamId("account-bob")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    clock, ids = TickingClock(), SeededIds(7)
    if request.param == "memory":
        yield InMemoryEventStore(events=EVENTS, clock=clock, ids=ids)
    else:
        with SqliteEventStore(tmp_path / "bank.db", events=EVENTS, clock=clock, ids=ids) as s:
            yield s


def test_a_command_on_a_deleted_stream_is_told_when(store: Any) -> None:
    execute(store, Deposit(account=ALICE, amount=5))
    deleted = store.delete_stream(ALICE, reason="customer left")
    with pytest.raises(StreamDeleted) as info:
        execute(store, Deposit(account=ALICE, amount=5))
    assert info.value.closed_at == deleted.recorded_at
    assert "customer left" in str(info.value)


def test_a_command_on_a_closed_stream_is_refused_not_retried(store: Any) -> None:
    execute(store, Deposit(account=ALICE, amount=5))
    store.close_stream(ALICE)
    head = store.head()
    with pytest.raises(StreamClosed):
        execute(store, Deposit(account=ALICE, amount=5))
    assert store.head() == head


def test_a_projection_reacts_to_the_deletion_event(store: Any) -> None:
    balances: dict[str, int] = {}

    @projector("balances")
    def follow(event: Any) -> None:
        match event.event:
            case MoneyDeposited(account=account, amount=amount):
                balances[account] = balances.get(account, 0) + amount
            case StreamDeletion(stream=gone):
                balances.pop(gone, None)

    config = ProjectionConfig(InMemoryCheckpointStore())
    execute(store, Deposit(account=ALICE, amount=5))
    execute(store, Deposit(account=BOB, amount=7))
    run_projection(follow, store, config)
    assert balances == {ALICE: 5, BOB: 7}
    store.delete_stream(ALICE)
    report = run_projection(follow, store, config)
    assert report.applied == 1
    assert balances == {BOB: 7}


def test_a_checkpoint_before_removed_events_stops_the_projection(store: Any) -> None:
    for amount in (1, 2, 3):
        execute(store, Deposit(account=ALICE, amount=amount))
    seen: list[int] = []

    @projector("seen")
    def follow(event: Any) -> None:
        seen.append(event.position)

    store.apply_retention([KeepLast(StreamPrefix("account-"), 1)], archive=None)
    with pytest.raises(EventsRemoved) as info:
        run_projection(follow, store, ProjectionConfig(InMemoryCheckpointStore()))
    assert (info.value.after, info.value.horizon) == (0, 2)
    assert seen == []
    report = run_projection(
        follow,
        skipping_removed(store),
        ProjectionConfig(InMemoryCheckpointStore()),
    )
    assert (report.applied, seen) == (1, [3])
