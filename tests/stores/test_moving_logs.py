"""A log moved between stores through JSON Lines reads back the same events: ids, positions,
versions, times, metadata and atomic writes (memory -> SQLite -> PostgreSQL -> memory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore import InMemoryEventStore, Metadata, SqliteEventStore, StreamId
from eventcore.raw import RawEvent
from eventcore.testing.contract import Deposited, Opened, Withdrawn
from eventcore.testing.contract_base import _opened

EVENTS = [Deposited, Withdrawn, Opened]


def _fill(store: Any) -> None:
    accounts = [StreamId(f"acct-{n}") for n in range(5)]
    versions = dict.fromkeys(accounts, 0)
    for n, sid in enumerate(accounts):
        store.append({sid: 0}, [_opened(sid, extra={"n": n, "z": -0.0, "big": 1e16})])
        versions[sid] = 1
    for n in range(40):
        a, b = accounts[n % 5], accounts[(n + 2) % 5]
        meta = Metadata(custom={"round": n, "note": "x\x00y"}) if n % 3 == 0 else None
        written = store.append(
            {a: versions[a], b: versions[b]}, [Withdrawn(a, n), Deposited(b, n)], metadata=meta
        )
        for rec in written:
            versions[rec.stream_id] = rec.stream_version


def _through_file(rows: list[RawEvent], path: Path) -> list[RawEvent]:
    path.write_text("".join(row.to_json_line() + "\n" for row in rows), encoding="utf-8")
    return [RawEvent.from_json_line(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture
def postgres_store(postgres_dsn: str, postgres_schema: str) -> Iterator[Any]:
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    store = PostgresEventStore(PostgresConfig(postgres_dsn, schema=postgres_schema), events=EVENTS)
    yield store
    store.close()


def test_memory_sqlite_postgres_and_back(tmp_path: Path, postgres_store: Any) -> None:
    memory = InMemoryEventStore(events=EVENTS)
    _fill(memory)
    expected = memory.read_all()
    sqlite = SqliteEventStore(tmp_path / "moved.db", events=EVENTS)
    back = InMemoryEventStore(events=EVENTS)
    try:
        for source, target in ((memory, sqlite), (sqlite, postgres_store), (postgres_store, back)):
            moved = 0
            after = 0
            while True:  # page by page, as a resumable export would
                page = source.export_rows(after=after, limit=7)
                if not page:
                    break
                moved += target.import_rows(_through_file(page, tmp_path / "page.jsonl"))
                after = page[-1].position
            assert moved == len(expected)
            assert target.read_all() == expected
            assert target.export_rows() == memory.export_rows()
        assert [e.position for e in back.read_all(limit=6)] == [1, 2, 3, 4, 5, 6, 7]
        assert back.read_correlation(expected[5].metadata.correlation_id) == [
            e for e in expected if e.metadata.correlation_id == expected[5].metadata.correlation_id
        ]
    finally:
        sqlite.close()
