"""An async projection cancelled at every await point neither loses nor re-applies a
checkpointed event (issue 12).

Each case starts a batch run on 10 events (pages of 3), lets the event loop run ``k``
steps, cancels the task, then runs again to the end. After the cancelled run, every event
up to its checkpoint was applied (nothing lost); the second run applies only events after
that checkpoint (nothing checkpointed applied twice); together they cover every event. For
a transactional projector the read model holds each event up to the checkpoint exactly
once after the cancel, and each event exactly once at the end. ``k`` grows until the run
finishes before the cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore.events import RecordedEvent
from eventcore.projections import (
    InMemoryCheckpointStore,
    ProjectionConfig,
    SqliteCheckpointStore,
    run_projection_async,
)
from eventcore.stores.memory import AsyncInMemoryEventStore
from eventcore.stores.sqlite import AsyncSqliteEventStore
from eventcore.testing.projection_helpers import EVENTS, Noted
from eventcore.types import StreamId

EVENT_COUNT = 10
MAX_STEPS = 3000


async def _fill(store: Any) -> None:
    for i in range(EVENT_COUNT):
        sid = StreamId(f"s-{i % 3}")
        await store.append({sid: await store.stream_version(sid)}, [Noted(sid, i)])


class AsyncCheckpoints:
    """In-memory checkpoints behind real awaits (each call yields to the loop)."""

    def __init__(self) -> None:
        self.inner = InMemoryCheckpointStore()

    async def load(self, name: str) -> int | None:
        await asyncio.sleep(0)
        return self.inner.load(name)

    async def save(self, name: str, position: int) -> None:
        await asyncio.sleep(0)
        self.inner.save(name, position)


class AsyncRecorder:
    name = "rec"

    def __init__(self) -> None:
        self.runs: list[list[int]] = []

    async def apply(self, event: RecordedEvent) -> None:
        await asyncio.sleep(0)
        self.runs[-1].append(event.position)


async def _cancel_after(steps: int, run: Awaitable[Any]) -> bool:
    """Run ``run``, cancel it after ``steps`` loop steps; True if it finished first."""
    task = asyncio.ensure_future(run)
    for _ in range(steps):
        if task.done():
            break
        await asyncio.sleep(0)
    finished = task.done()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return False
    return finished


def test_a_plain_projector_cancelled_anywhere_loses_and_repeats_nothing_checkpointed() -> None:
    async def main() -> int:
        async with AsyncInMemoryEventStore(events=EVENTS) as store:
            await _fill(store)
            for cancelled, steps in enumerate(range(MAX_STEPS)):
                checkpoints = AsyncCheckpoints()
                config = ProjectionConfig(checkpoints, page_size=3)  # type: ignore[arg-type]
                rec = AsyncRecorder()
                rec.runs.append([])
                finished = await _cancel_after(steps, run_projection_async(rec, store, config))
                saved = checkpoints.inner.load("rec") or 0
                first = rec.runs[0]
                assert set(range(1, saved + 1)) <= set(first), (steps, saved, first)
                assert len(first) == len(set(first)), (steps, first)
                rec.runs.append([])
                report = await run_projection_async(rec, store, config)
                second = rec.runs[1]
                assert all(p > saved for p in second), (steps, saved, second)
                assert set(first) | set(second) == set(range(1, EVENT_COUNT + 1)), steps
                assert report.last_position == EVENT_COUNT
                if finished:
                    return cancelled
        raise AssertionError("the run never finished")

    assert asyncio.run(main()) > 5


class Ticker:
    """Cancels the run's task at its ``target``-th await point (counted by the wrappers
    below), from whichever thread reaches it: the cancellation lands in that await."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.task: asyncio.Task[Any] | None = None
        self.loop = asyncio.get_running_loop()

    def tick(self) -> None:
        self.count += 1
        if self.count == self.target and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)

    async def run(self, run: Awaitable[Any]) -> bool:
        """Run ``run``; True if it finished without reaching the target."""
        self.task = asyncio.ensure_future(run)
        try:
            await self.task
        except asyncio.CancelledError:
            return False
        return self.count < self.target


class TickingStore:
    """An async store whose reads count as await points."""

    def __init__(self, inner: Any, ticker: Ticker) -> None:
        self.inner, self.ticker = inner, ticker

    async def read_all(self, **kwargs: Any) -> list[RecordedEvent]:
        self.ticker.tick()
        return await self.inner.read_all(**kwargs)  # type: ignore[no-any-return]

    async def head(self) -> int:
        self.ticker.tick()
        return await self.inner.head()  # type: ignore[no-any-return]


class TickingSqliteCheckpoints:
    """SqliteCheckpointStore whose every call (on the runner's thread) is an await point."""

    def __init__(self, inner: SqliteCheckpointStore, ticker: Ticker) -> None:
        self.inner, self.ticker = inner, ticker

    def load(self, name: str) -> int | None:
        self.ticker.tick()
        return self.inner.load(name)

    def save(self, name: str, position: int) -> None:
        self.ticker.tick()
        self.inner.save(name, position)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.ticker.tick()
        with self.inner.transaction() as tx:
            yield tx
            self.ticker.tick()  # lands on the commit

    def savepoint(self, tx: sqlite3.Connection) -> Any:
        return self.inner.savepoint(tx)

    def save_in(self, tx: sqlite3.Connection, name: str, position: int, *, expected: Any) -> None:
        self.ticker.tick()
        self.inner.save_in(tx, name, position, expected=expected)


class SqliteReadModel:
    """A transactional projector writing one row per event, in the checkpoint's transaction
    (on the runner's thread)."""

    name = "model"
    transactional = True

    def __init__(self, ticker: Ticker | None = None) -> None:
        self.ticker = ticker

    def apply(self, event: RecordedEvent, tx: sqlite3.Connection) -> None:
        if self.ticker is not None:
            self.ticker.tick()
        tx.execute("INSERT INTO model_rows (position) VALUES (?)", (event.position,))


def test_a_transactional_projector_cancelled_anywhere_applies_each_event_once(
    tmp_path: Path,
) -> None:
    def rows(conn: sqlite3.Connection) -> list[int]:
        return [r[0] for r in conn.execute("SELECT position FROM model_rows ORDER BY position")]

    async def main() -> int:
        async with AsyncSqliteEventStore(tmp_path / "events.db", events=EVENTS) as store:
            await _fill(store)
            checkpoints = SqliteCheckpointStore(store.sync)
            conn = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
            conn.execute("CREATE TABLE model_rows (position INTEGER NOT NULL)")
            config = ProjectionConfig(checkpoints, page_size=3)
            try:
                for target in range(1, 200):
                    checkpoints.reset("model")
                    conn.execute("DELETE FROM model_rows")
                    ticker = Ticker(target)
                    ticking = ProjectionConfig(
                        TickingSqliteCheckpoints(checkpoints, ticker),  # type: ignore[arg-type]
                        page_size=3,
                    )
                    run = run_projection_async(
                        SqliteReadModel(ticker), TickingStore(store, ticker), ticking
                    )
                    finished = await ticker.run(run)
                    saved = checkpoints.load("model") or 0
                    assert rows(conn) == list(range(1, saved + 1)), (target, saved)
                    await run_projection_async(SqliteReadModel(), store, config)
                    assert rows(conn) == list(range(1, EVENT_COUNT + 1)), target
                    if finished:
                        return target
            finally:
                conn.close()
        raise AssertionError("the run never finished")

    assert asyncio.run(main()) > 10


def test_postgres_async_transactional_projector_cancelled_anywhere_applies_each_event_once(
    postgres_dsn: str, postgres_schema: str
) -> None:
    from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig
    from eventcore.stores.postgres.projections_aio import AsyncPostgresCheckpointStore

    pg = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=4)
    table = f'"{postgres_schema}".model_rows'

    class Model:
        name = "model"
        transactional = True

        def __init__(self, ticker: Ticker | None = None) -> None:
            self.ticker = ticker

        async def apply(self, event: RecordedEvent, tx: Any) -> None:
            if self.ticker is not None:
                self.ticker.tick()
            await tx.execute(f"INSERT INTO {table} (position) VALUES (%s)", (event.position,))

    class TickingCheckpoints:
        def __init__(self, inner: AsyncPostgresCheckpointStore, ticker: Ticker) -> None:
            self.inner, self.ticker = inner, ticker
            self.database_key = inner.database_key

        async def load(self, name: str) -> int | None:
            self.ticker.tick()
            return await self.inner.load(name)

        async def save(self, name: str, position: int) -> None:
            self.ticker.tick()
            await self.inner.save(name, position)

        @contextlib.asynccontextmanager
        async def transaction(self) -> AsyncIterator[Any]:
            self.ticker.tick()
            async with self.inner.transaction() as tx:
                yield tx
                self.ticker.tick()  # lands on the commit

        def savepoint(self, tx: Any) -> Any:
            return self.inner.savepoint(tx)

        async def save_in(self, tx: Any, name: str, position: int, *, expected: Any) -> None:
            self.ticker.tick()
            await self.inner.save_in(tx, name, position, expected=expected)

    async def main() -> int:
        async with AsyncPostgresEventStore(pg, events=EVENTS) as store:
            await _fill(store)
            checkpoints = AsyncPostgresCheckpointStore(store)
            config = ProjectionConfig(checkpoints, page_size=3)  # type: ignore[arg-type]

            async def rows() -> list[int]:
                async with store.database.connection("test") as conn:
                    cursor = await conn.execute(f"SELECT position FROM {table} ORDER BY 1")
                    return [r[0] for r in await cursor.fetchall()]

            async with store.database.connection("test") as conn:
                await conn.execute(f"CREATE TABLE {table} (position bigint NOT NULL)")
            for target in range(1, 200):
                await checkpoints.reset("model")
                async with store.database.connection("test") as conn:
                    await conn.execute(f"DELETE FROM {table}")
                ticker = Ticker(target)
                ticking = ProjectionConfig(
                    TickingCheckpoints(checkpoints, ticker),  # type: ignore[arg-type]
                    page_size=3,
                )
                run = run_projection_async(Model(ticker), TickingStore(store, ticker), ticking)
                finished = await ticker.run(run)
                saved = await checkpoints.load("model") or 0
                assert await rows() == list(range(1, saved + 1)), (target, saved)
                await run_projection_async(Model(), store, config)
                assert await rows() == list(range(1, EVENT_COUNT + 1)), target
                if finished:
                    return target
        raise AssertionError("the run never finished")

    assert asyncio.run(main()) > 10


Check = Callable[[], Awaitable[None]]


@pytest.mark.parametrize("when", ["reading", "waiting"])
def test_cancelling_a_running_handle_keeps_its_checkpoint(when: str) -> None:
    from eventcore.projections import start_projection_async

    async def main() -> None:
        async with AsyncInMemoryEventStore(events=EVENTS) as store:
            await _fill(store)
            checkpoints = InMemoryCheckpointStore()
            rec = AsyncRecorder()
            rec.runs.append([])
            config = ProjectionConfig(checkpoints, page_size=3, poll_interval=0.05)
            handle = start_projection_async(rec, store, config)
            if when == "waiting":
                assert await handle.wait_until(EVENT_COUNT, timeout=5)
            else:
                await asyncio.sleep(0)
            handle.cancel()
            with pytest.raises(asyncio.CancelledError):
                await handle.wait()
            assert handle.status == "cancelled"
            saved = checkpoints.load("rec") or 0
            assert set(range(1, saved + 1)) <= set(rec.runs[0])
            assert await handle.stop() is None

    asyncio.run(main())
