"""Tombstones and retention racing writers. Closing a stream while others append to it:
whatever the interleaving, the closure is the stream's last event and every refused write
is a VersionConflict or a StreamClosed (never a half-written write). Retention while
writers append: nothing unarchived is lost, the archive and the live rows restore a whole
log. Bounded: at most 7 threads, a fixed number of attempts each."""

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


def test_retention_while_writers_append_loses_nothing(store: Any, tmp_path: Path) -> None:
    from eventcore import InMemoryEventStore
    from eventcore.retention import DirectoryArchive, KeepLast, restore
    from eventcore.types import StreamPrefix

    archive = DirectoryArchive(tmp_path / "archive")
    streams = [StreamId(f"account-{n}") for n in range(4)]
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def writer(sid: StreamId) -> None:
        start.wait(10)
        try:
            for n in range(12):
                store.append({sid: n}, [Deposited(sid, n)])
        except BaseException as exc:  # pragma: no cover - the failure we look for
            errors.append(exc)

    def retainer() -> None:
        start.wait(10)
        try:
            for _ in range(3):
                store.apply_retention([KeepLast(StreamPrefix("account-"), 2)], archive=archive)
        except BaseException as exc:  # pragma: no cover - the failure we look for
            errors.append(exc)

    running = [threading.Thread(target=writer, args=(sid,)) for sid in streams]
    running.append(threading.Thread(target=retainer))
    for t in running:
        t.start()
    for t in running:
        t.join(60)
    assert not any(t.is_alive() for t in running) and errors == []
    for sid in streams:
        assert store.stream_version(sid) == 12
        assert [e.stream_version for e in store.read_stream(sid)][-2:] == [11, 12]
    copy = InMemoryEventStore(events=[Deposited])
    assert restore(archive, into=copy, live=store) == 48
    assert [e.position for e in copy.read_all()] == list(range(1, 49))
