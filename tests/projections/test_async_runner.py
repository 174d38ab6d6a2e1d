"""The asyncio runner beyond the contract: the handle's life cycle, async projectors, bad
input, and live delivery woken by LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from eventcore.errors import ConfigurationError
from eventcore.events import RecordedEvent
from eventcore.projections import (
    ErrorPolicy,
    InMemoryCheckpointStore,
    ProjectionConfig,
    ProjectionFailed,
    run_projection_async,
    start_projection_async,
)
from eventcore.stores.memory import AsyncInMemoryEventStore, InMemoryEventStore
from eventcore.testing.projection_helpers import EVENTS, Noted
from eventcore.types import StreamId


async def _append(store: Any, stream: str, n: int) -> RecordedEvent:
    sid = StreamId(stream)
    written = await store.append({sid: await store.stream_version(sid)}, [Noted(sid, n)])
    return written[0]  # type: ignore[no-any-return]


class Seen:
    def __init__(self, name: str = "seen", fail_at: int | None = None) -> None:
        self.name = name
        self.error_policy = ErrorPolicy.stop()
        self.positions: list[int] = []
        self.fail_at = fail_at

    async def apply(self, event: RecordedEvent) -> None:
        await asyncio.sleep(0)
        if event.position == self.fail_at:
            raise RuntimeError(f"poison at {event.position}")
        self.positions.append(event.position)


def test_a_handle_follows_live_events_and_stops_at_once() -> None:
    async def main() -> None:
        async with AsyncInMemoryEventStore(events=EVENTS) as store:
            for i in range(3):
                await _append(store, "a-1", i)
            checkpoints = InMemoryCheckpointStore()
            seen = Seen()
            # A long poll interval: the handle's stop wakes the wait, it does not poll.
            config = ProjectionConfig(checkpoints, poll_interval=30.0)
            async with start_projection_async(seen, store, config) as handle:
                assert handle.status == "running"
                assert await handle.wait_until(3, timeout=5)
                last = await _append(store, "b-2", 9)
                assert await handle.wait_until(last.position, timeout=5)
                started = time.monotonic()
                report = await handle.stop()
                assert time.monotonic() - started < 2
            assert report is not None and report.stopped_reason == "stopped"
            assert (report.applied, report.last_position) == (4, 4)
            assert handle.status == "stopped" and not handle.running
            assert seen.positions == [1, 2, 3, 4]
            assert checkpoints.load("seen") == 4
            assert repr(handle) == "AsyncProjectionHandle('seen', stopped)"

    asyncio.run(main())


def test_a_failed_projection_raises_from_stop_wait_and_wait_until() -> None:
    async def main() -> None:
        async with AsyncInMemoryEventStore(events=EVENTS) as store:
            for i in range(4):
                await _append(store, "a-1", i)
            checkpoints = InMemoryCheckpointStore()
            config = ProjectionConfig(checkpoints, poll_interval=0.05)
            handle = start_projection_async(Seen(fail_at=3), store, config)
            with pytest.raises(ProjectionFailed, match="stopped at position 3"):
                await handle.wait_until(4, timeout=5)
            assert handle.status == "failed"
            with pytest.raises(ProjectionFailed):
                await handle.wait()
            with pytest.raises(ProjectionFailed):
                await handle.stop()
            assert checkpoints.load("seen") == 2

    asyncio.run(main())


def test_a_blocking_store_or_a_bad_config_is_refused_before_anything_runs() -> None:
    async def main() -> None:
        config = ProjectionConfig(InMemoryCheckpointStore())
        with pytest.raises(ConfigurationError, match="AsyncEventStore"):
            await run_projection_async(Seen(), InMemoryEventStore(), config)
        with pytest.raises(ConfigurationError, match="config must be a ProjectionConfig"):
            await run_projection_async(Seen(), AsyncInMemoryEventStore(), object())  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="transactional"):
            tx = Seen()
            tx.transactional = True  # type: ignore[attr-defined]
            start_projection_async(tx, AsyncInMemoryEventStore(), config)

    asyncio.run(main())
    with pytest.raises(ConfigurationError, match="running event loop"):
        start_projection_async(Seen(), AsyncInMemoryEventStore(), config_outside_a_loop())


def config_outside_a_loop() -> ProjectionConfig:
    return ProjectionConfig(InMemoryCheckpointStore())


def test_postgres_live_delivery_is_woken_by_notify(postgres_dsn: str, postgres_schema: str) -> None:
    """Both poll intervals are 30 s: an event reaching the projection within seconds was
    delivered by LISTEN/NOTIFY."""
    from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig
    from eventcore.stores.postgres.projections_aio import AsyncPostgresCheckpointStore

    pg = PostgresConfig(postgres_dsn, schema=postgres_schema, poll_interval=30.0)

    async def main() -> None:
        async with (
            AsyncPostgresEventStore(pg, events=EVENTS) as store,
            AsyncPostgresEventStore(pg, events=EVENTS) as writer,
        ):
            checkpoints = AsyncPostgresCheckpointStore(store)
            seen = Seen()
            config = ProjectionConfig(checkpoints, poll_interval=30.0)  # type: ignore[arg-type]
            async with start_projection_async(seen, store, config) as handle:
                assert await handle.wait_until(0, timeout=5)
                await asyncio.sleep(0.2)  # the runner is now waiting for events
                started = time.monotonic()
                written = await _append(writer, "live-1", 1)
                assert await handle.wait_until(written.position, timeout=10)
                assert time.monotonic() - started < 5
            assert seen.positions == [written.position]
            assert await checkpoints.load("seen") == written.position

    asyncio.run(main())


def test_sqlite_transactional_poison_is_dead_lettered_in_the_page_transaction(
    tmp_path: Any,
) -> None:
    """The careful redo on the runner's thread: each event in a savepoint, the poison's
    writes rolled back alone, its dead letter and the checkpoint in the same commit."""
    import sqlite3

    from eventcore.projections import SqliteCheckpointStore, SqliteDeadLetterStore
    from eventcore.stores.sqlite import AsyncSqliteEventStore

    class Model:
        name = "model"
        transactional = True
        error_policy = ErrorPolicy.dead_letter()

        def apply(self, event: RecordedEvent, tx: sqlite3.Connection) -> None:
            tx.execute("INSERT INTO model_rows (position) VALUES (?)", (event.position,))
            if event.position == 3:
                raise RuntimeError("poison at 3")

    async def main() -> None:
        async with AsyncSqliteEventStore(tmp_path / "events.db", events=EVENTS) as store:
            for i in range(5):
                await _append(store, "a-1", i)
            checkpoints = SqliteCheckpointStore(store.sync)
            letters = SqliteDeadLetterStore(store.sync)
            with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as conn:
                conn.execute("CREATE TABLE model_rows (position INTEGER NOT NULL)")
            config = ProjectionConfig(checkpoints, dead_letters=letters, page_size=10)
            report = await run_projection_async(Model(), store, config)
            assert (report.applied, report.dead_lettered, report.last_position) == (4, 1, 5)
            with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as conn:
                rows = [r[0] for r in conn.execute("SELECT position FROM model_rows ORDER BY 1")]
            assert rows == [1, 2, 4, 5]
            assert [d.position for d in letters.list("model")] == [3]
            assert checkpoints.load("model") == 5

    asyncio.run(main())


def test_postgres_async_transactional_poison_is_dead_lettered_in_the_page_transaction(
    postgres_dsn: str, postgres_schema: str
) -> None:
    """The same on AsyncConnection: async apply, async savepoints, record_in."""
    from eventcore.projections import AsyncPostgresCheckpointStore, AsyncPostgresDeadLetterStore
    from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

    pg = PostgresConfig(postgres_dsn, schema=postgres_schema)
    table = f'"{postgres_schema}".model_rows'

    class Model:
        name = "model"
        transactional = True
        error_policy = ErrorPolicy.retry(max_attempts=2, base_delay=0.0, then="dead_letter")

        async def apply(self, event: RecordedEvent, tx: Any) -> None:
            await tx.execute(f"INSERT INTO {table} (position) VALUES (%s)", (event.position,))
            if event.position == 3:
                raise RuntimeError("poison at 3")

    async def main() -> None:
        async with AsyncPostgresEventStore(pg, events=EVENTS) as store:
            for i in range(5):
                await _append(store, "a-1", i)
            checkpoints = AsyncPostgresCheckpointStore(store)
            letters = AsyncPostgresDeadLetterStore(store)
            async with store.database.connection("test") as conn:
                await conn.execute(f"CREATE TABLE {table} (position bigint NOT NULL)")
            config = ProjectionConfig(
                checkpoints,  # type: ignore[arg-type]
                dead_letters=letters,  # type: ignore[arg-type]
                page_size=10,
            )
            report = await run_projection_async(Model(), store, config)
            assert (report.applied, report.dead_lettered, report.retries) == (4, 1, 1)
            async with store.database.connection("test") as conn:
                cursor = await conn.execute(f"SELECT position FROM {table} ORDER BY 1")
                assert [r[0] for r in await cursor.fetchall()] == [1, 2, 4, 5]
            found = await letters.list("model")
            assert [(d.position, d.attempts) for d in found] == [(3, 2)]
            assert await letters.discard("model", 3) == 1
            assert await checkpoints.load("model") == 5

    asyncio.run(main())
