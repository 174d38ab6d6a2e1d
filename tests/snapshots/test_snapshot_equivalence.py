"""Property: executing with snapshots gives exactly what a full replay gives.

Two stores receive the same random program — raw appends, links between streams (so
commands discover streams), commands over one to three streams with snapshot policies of
every 1, 3 or 7 events, and snapshot wipes. One store executes with a snapshot store, the
other without. Every command's recorded events (which carry the whole folded state, in fold
order) and the final logs must be identical, event ids and positions included.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trail_commands import (
    EVENTS,
    Linked,
    Noted,
    Observe,
    ObserveEvery1,
    ObserveEvery7,
    ObservePlain,
)

from eventcore import InMemoryEventStore, SeededIds, SqliteEventStore, StreamId, TickingClock
from eventcore.execution import execute
from eventcore.snapshots import InMemorySnapshotStore, SnapshotStore, SqliteSnapshotStore
from eventcore.store import EventStore

STREAMS = tuple(StreamId(f"s{i}") for i in range(4))
COMMANDS = (Observe, ObserveEvery1, ObserveEvery7, ObservePlain)

stream_index = st.integers(0, len(STREAMS) - 1)
appends = st.tuples(
    st.just("append"), stream_index, st.lists(st.integers(0, 99), min_size=1, max_size=6)
)
# A few stream combinations, so that the same snapshot id comes back often.
combos = st.sampled_from([[0], [1], [0, 1], [1, 0], [0, 1, 2], [2, 0, 1], [3, 3, 0]])
runs = st.tuples(st.just("run"), combos, st.integers(0, len(COMMANDS) - 1))
links = st.tuples(st.just("link"), stream_index, stream_index)
# Appends and runs dominate, so that snapshots exist and then some of their streams advance.
steps = st.one_of(appends, runs, appends, runs, links, st.tuples(st.just("wipe")))
programs = st.lists(steps, min_size=4, max_size=40)

property_settings = settings(
    derandomize=True,
    database=None,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _step(store: EventStore, snapshots: SnapshotStore | None, step: tuple[Any, ...]) -> Any:
    kind = step[0]
    if kind == "append":
        sid = STREAMS[step[1]]
        events = [Noted(sid, v) for v in step[2]]
        return store.append({sid: store.stream_version(sid)}, events)
    if kind == "link":
        sid, target = STREAMS[step[1]], STREAMS[step[2]]
        return store.append({sid: store.stream_version(sid)}, [Linked(sid, target)])
    if kind == "run":
        command = COMMANDS[step[2]](streams_=tuple(STREAMS[i] for i in step[1]))
        result = execute(store, command, snapshots=snapshots)
        return result.events, result.stream_versions
    if snapshots is not None:
        snapshots.clear()
    return None


def _log(store: EventStore) -> list[tuple[int, str, int, Any, Any]]:
    return [
        (r.position, r.stream_id, r.stream_version, r.event_id, r.event) for r in store.read_all()
    ]


@contextmanager
def _memory_pair() -> Iterator[tuple[EventStore, EventStore, SnapshotStore]]:
    def store() -> InMemoryEventStore:
        return InMemoryEventStore(events=EVENTS, clock=TickingClock(), ids=SeededIds(seed=3))

    yield store(), store(), InMemorySnapshotStore()


@contextmanager
def _sqlite_pair() -> Iterator[tuple[EventStore, EventStore, SnapshotStore]]:
    def store() -> SqliteEventStore:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        return SqliteEventStore(conn, events=EVENTS, clock=TickingClock(), ids=SeededIds(seed=3))

    plain, snapped = store(), store()
    try:
        yield plain, snapped, SqliteSnapshotStore(snapped)
    finally:
        plain.close()
        snapped.close()


def _check(program: list[tuple[Any, ...]], pair: Any) -> None:
    with pair() as (plain, snapped, snapshots):
        for step in program:
            assert _step(snapped, snapshots, step) == _step(plain, None, step), step
        assert _log(snapped) == _log(plain)


@property_settings
@given(programs)
def test_snapshots_change_nothing_but_the_cost_in_memory(program: list[tuple[Any, ...]]) -> None:
    _check(program, _memory_pair)


@settings(property_settings, max_examples=15)
@given(programs)
def test_snapshots_change_nothing_but_the_cost_on_sqlite(program: list[tuple[Any, ...]]) -> None:
    _check(program, _sqlite_pair)


@pytest.mark.parametrize("pair", [_memory_pair, _sqlite_pair])
def test_a_long_program_uses_snapshots_and_still_agrees(pair: Any) -> None:
    """A deterministic long run: the snapshot side must actually restore from snapshots."""
    program: list[tuple[Any, ...]] = []
    for i in range(40):
        program.append(("append", i % 4, [i, i + 1, i + 2]))
        if i % 9 == 4:
            program.append(("link", i % 4, (i + 1) % 4))
        program.append(("run", [i % 4, (i + 2) % 4], i % 3))
    with pair() as (plain, snapped, snapshots):
        loaded = 0
        for step in program:
            if step[0] == "run":
                command = COMMANDS[step[2]](streams_=tuple(STREAMS[i] for i in step[1]))
                with_snapshots = execute(snapped, command, snapshots=snapshots)
                full = execute(plain, command)
                assert with_snapshots.events == full.events
                assert with_snapshots.replay is not None
                loaded += with_snapshots.replay.loaded
            else:
                _step(snapped, snapshots, step)
                _step(plain, None, step)
        assert loaded > 20
        assert _log(snapped) == _log(plain)
