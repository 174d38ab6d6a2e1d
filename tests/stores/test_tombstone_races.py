"""Closing a stream while others append to it: whatever the interleaving, the closure is
the stream's last event and every refused write is a VersionConflict or a StreamClosed
(never a half-written write). Bounded: 6 writer threads, 15 attempts each."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore import SqliteEventStore, StreamId
from eventcore.errors import StreamClosed, VersionConflict
from eventcore.testing.contract import Deposited
from eventcore.tombstones import CLOSURE

A = StreamId("account-a")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        with SqliteEventStore(tmp_path / "race.db", events=[Deposited]) as s:
            yield s
        return
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("postgres_schema")
    with PostgresEventStore(
        PostgresConfig(dsn, schema=schema, pool_max=8), events=[Deposited]
    ) as s:
        yield s


def test_a_close_racing_appends_ends_the_stream(store: Any) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(7)

    def writer() -> None:
        start.wait(10)
        for _ in range(15):
            try:
                store.append({A: store.stream_version(A)}, [Deposited(A, 1), Deposited(A, 2)])
                result = "written"
            except VersionConflict:
                result = "conflict"
            except StreamClosed:
                result = "closed"
            with lock:
                outcomes.append(result)

    def closer() -> None:
        start.wait(10)
        for _ in range(15):  # retried on conflicts with the writers
            try:
                store.close_stream(A, expected_version=store.stream_version(A))
                return
            except VersionConflict:
                continue
        store.close_stream(A)  # without an expected version: locks the stream in a session

    threads: list[Callable[[], None]] = [writer] * 6 + [closer]
    running = [threading.Thread(target=t) for t in threads]
    for t in running:
        t.start()
    for t in running:
        t.join(60)
    assert not any(t.is_alive() for t in running)
    events = list(store.read_stream(A))
    assert events[-1].event_type == CLOSURE
    assert [e.event_type for e in events].count(CLOSURE) == 1
    assert [e.stream_version for e in events] == list(range(1, len(events) + 1))
    assert (len(events) - 1) == 2 * outcomes.count("written")  # whole writes only
    assert set(outcomes) <= {"written", "conflict", "closed"}
    assert len(outcomes) == 6 * 15
