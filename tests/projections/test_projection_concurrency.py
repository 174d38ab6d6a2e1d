"""Under 8 concurrent writers, a continuous projection ends with exactly the events written,
each applied once, in position order — on every store (on PostgreSQL, some writers commit
late through ``store.transaction()``)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventcore import InMemoryEventStore, SqliteEventStore, StreamId, VersionConflict
from eventcore.events import RecordedEvent
from eventcore.projections import (
    InMemoryCheckpointStore,
    ProjectionConfig,
    SqliteCheckpointStore,
    running_projection,
)
from eventcore.store import EventStore
from eventcore.testing.projection_contract import EVENTS, Flagged, Noted

WRITERS = 8
ROUNDS = 12

Opener = Callable[[], EventStore]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Opener, Any]]:
    opened: list[Any] = []
    if request.param == "memory":
        first = InMemoryEventStore(events=EVENTS)
        opened.append(first)
        yield "memory", lambda: first, InMemoryCheckpointStore()
    elif request.param == "sqlite":

        def open_sqlite() -> EventStore:
            opened.append(SqliteEventStore(tmp_path / "e.db", events=EVENTS, synchronous="NORMAL"))
            return opened[-1]  # type: ignore[no-any-return]

        reader = open_sqlite()
        checkpoints = SqliteCheckpointStore(reader)
        opened.append(checkpoints)
        yield "sqlite", open_sqlite, checkpoints
    else:
        pytest.importorskip("psycopg")
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
        from eventcore.stores.postgres.projections import PostgresCheckpointStore

        config = PostgresConfig(
            request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("postgres_schema"),
            pool_max=10,
            poll_interval=0.2,
        )
        shared = PostgresEventStore(config, events=EVENTS)
        opened.append(shared)
        yield "postgres", lambda: shared, PostgresCheckpointStore(shared)
    for thing in reversed(opened):
        thing.close()


def writer(
    backend: str,
    store: EventStore,
    n: int,
    written: list[RecordedEvent],
    errors: list[BaseException],
) -> None:
    rng = random.Random(n)
    own = StreamId(f"own-{n}")
    shared = StreamId("shared")
    try:
        for i in range(ROUNDS):
            if backend == "postgres" and n % 3 == 0 and i % 3 == 0:
                # A late commit: positions are taken at append, visible only at commit.
                with store.transaction() as tx:  # type: ignore[attr-defined]
                    events = tx.append({own: store.stream_version(own)}, [Noted(own, i)])
                    time.sleep(rng.uniform(0.005, 0.03))
            elif i % 4 == 3:
                while True:
                    try:
                        events = store.append(
                            {own: store.stream_version(own), shared: store.stream_version(shared)},
                            [Noted(own, i), Flagged(shared, n)],
                        )
                        break
                    except VersionConflict:
                        continue
            else:
                events = store.append({own: store.stream_version(own)}, [Noted(own, i)])
            written.extend(events)
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_eight_writers_and_a_continuous_projection(opener: tuple[str, Opener, Any]) -> None:
    backend, open_store, checkpoints = opener
    reader = open_store()
    seen: list[tuple[int, UUID]] = []

    class Collect:
        name = "collect"

        def apply(self, event: RecordedEvent) -> None:
            seen.append((event.position, event.event_id))

    written: list[RecordedEvent] = []
    errors: list[BaseException] = []
    config = ProjectionConfig(checkpoints, page_size=7, poll_interval=0.05)
    with running_projection(Collect(), reader, config) as handle:
        threads = [
            threading.Thread(target=writer, args=(backend, open_store(), n, written, errors))
            for n in range(WRITERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        head = reader.head()
        assert handle.wait_until(head, timeout=20)
    expected = sorted((e.position, e.event_id) for e in written)
    assert len(expected) == head >= WRITERS * ROUNDS
    assert seen == expected, "each event exactly once, in position order"
    assert [p for p, _ in seen] == list(range(1, head + 1))
    assert checkpoints.load("collect") == head
