"""PostgreSQL ``read_all`` asks the retention horizon in the statement that reads the page:
every path (unfiltered, filtered, a zero limit, a page cut inside a write, an empty page)
still raises ``EventsRemoved`` exactly where the reference check (``check_horizon``) does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg")

from eventcore import EventsRemoved, StreamId, StreamPrefix
from eventcore.retention import KeepLast
from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
from eventcore.testing.contract import Deposited

A, B = StreamId("account-a"), StreamId("account-b")


@pytest.fixture
def store(postgres_dsn: str, postgres_schema: str) -> Iterator[PostgresEventStore]:
    opened = PostgresEventStore(
        PostgresConfig(postgres_dsn, schema=postgres_schema), events=[Deposited]
    )
    yield opened
    opened.close()


def test_every_read_all_path_refuses_a_read_from_before_removed_events(
    store: PostgresEventStore,
) -> None:
    for n in range(4):  # positions 1-4
        store.append({A: n}, [Deposited(A, n + 1)])
    store.append({B: 0}, [Deposited(B, 1), Deposited(B, 2)])  # positions 5-6, one write
    assert [r.position for r in store.read_all(after=4, limit=1)] == [5, 6]  # write end, joined
    store.apply_retention([KeepLast(StreamPrefix("account-a"), 1)], archive=None)  # 1-3 go
    reads = {
        "unfiltered": lambda after: store.read_all(after=after),
        "a page": lambda after: store.read_all(after=after, limit=2),
        "a zero limit": lambda after: store.read_all(after=after, limit=0),
        "by stream": lambda after: store.read_all(after=after, streams=StreamPrefix("account-")),
        "by type": lambda after: store.read_all(after=after, event_types=[Deposited]),
        "no types": lambda after: store.read_all(after=after, event_types=[]),
    }
    for name, read in reads.items():
        for after in (0, 2):
            with pytest.raises(EventsRemoved) as info:
                read(after)
            assert (info.value.after, info.value.horizon) == (after, 3), name
            assert info.value.removed_at is not None, name
    assert [r.position for r in store.read_all(after=3, limit=2)] == [4, 5, 6]  # cut write: 6
    only_b = store.read_all(after=3, streams=StreamPrefix("account-b"), limit=1)
    assert [r.position for r in only_b] == [5, 6]
    assert store.read_all(after=3, limit=0) == []
    assert store.read_all(after=6) == []  # an empty page past the head: no error
    assert store.read_all(after=60, limit=5) == []
