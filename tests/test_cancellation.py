"""``execute_async`` cancelled at every await point never reports a committed write as failed
and never leaves a store half-used (issue 11 §6, issue 12).

Each case starts a deposit, lets the event loop run ``k`` steps, cancels the task, and
checks the outcome: a task that raised ``CancelledError`` wrote nothing; a task that
returned wrote exactly its event (the append had been sent, so it ran to its end); either
way the next command works. ``k`` grows until the command finishes before the cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bank import EVENTS, Deposit

from eventcore import InMemoryEventStore, SqliteEventStore, StreamId
from eventcore.aio import execute_async
from eventcore.stores.memory import AsyncInMemoryEventStore
from eventcore.stores.sqlite import AsyncSqliteEventStore

A = StreamId("account-a")
MAX_STEPS = 3000


async def _head(store: Any) -> int:
    head = store.head()
    return int(await head) if asyncio.iscoroutine(head) else int(head)


async def _sweep(store: Any, **options: Any) -> tuple[int, int]:
    """Cancel after 0, 1, 2... loop steps; return (cancelled, completed) counts."""
    cancelled = completed = 0
    for steps in range(MAX_STEPS):
        before = await _head(store)
        task = asyncio.ensure_future(execute_async(store, Deposit(account=A, amount=1), **options))
        for _ in range(steps):
            if task.done():
                break
            await asyncio.sleep(0)
        finished_first = task.done()
        task.cancel()
        try:
            result = await task
        except asyncio.CancelledError:
            cancelled += 1
            assert await _head(store) == before, f"cancelled at step {steps} yet wrote"
        else:
            completed += 1
            assert [e.position for e in result.events] == [before + 1], steps
            assert await _head(store) == before + 1
            if finished_first:
                break
        # The store is usable: nothing half-open is left behind.
        await execute_async(store, Deposit(account=A, amount=1))
    return cancelled, completed


@pytest.fixture(params=["async-memory", "async-sqlite", "sync-memory", "sync-sqlite", "async-pg"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    kind = request.param
    if kind == "async-memory":
        return lambda: AsyncInMemoryEventStore(events=EVENTS)
    if kind == "async-sqlite":
        return lambda: AsyncSqliteEventStore(tmp_path / "c.db", events=EVENTS)
    if kind == "sync-memory":
        return lambda: InMemoryEventStore(events=EVENTS)
    if kind == "sync-sqlite":
        return lambda: SqliteEventStore(tmp_path / "c.db", events=EVENTS)
    from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

    config = PostgresConfig(
        request.getfixturevalue("postgres_dsn"), schema=request.getfixturevalue("postgres_schema")
    )
    return lambda: AsyncPostgresEventStore(config, events=EVENTS)


@pytest.mark.parametrize("concurrency", ["optimistic", "pessimistic"])
def test_cancelling_at_every_await_point(open_store: Callable[[], Any], concurrency: str) -> None:
    async def main() -> tuple[int, int]:
        store = open_store()
        try:
            return await _sweep(store, concurrency=concurrency, idempotency_key=None)
        finally:
            closed = store.close()
            if asyncio.iscoroutine(closed):
                await closed

    cancelled, completed = asyncio.run(main())
    assert cancelled >= 1  # the sweep reached points before the append
    assert completed >= 1  # and the end
