"""Tenant views of the asyncio stores (``async_store.for_tenant(...)``): commands through
``execute_async``, reads, sessions and tombstones see only the tenant's streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from eventcore import StreamId
from eventcore.aio import execute_async
from eventcore.errors import StreamClosed
from eventcore.stores.memory import AsyncInMemoryEventStore
from eventcore.stores.sqlite import AsyncSqliteEventStore
from eventcore.types import StreamPattern
from tests.bank import EVENTS, Deposit, MoneyDeposited

ACCOUNT = StreamId("account-1")

Opener = Callable[[], Awaitable[Any]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    async def open_store() -> Any:
        if request.param == "memory":
            return AsyncInMemoryEventStore(events=EVENTS)
        if request.param == "sqlite":
            return AsyncSqliteEventStore(tmp_path / "t.db", events=EVENTS)
        from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

        config = PostgresConfig(dsn, schema=schema, pool_max=2)
        return await AsyncPostgresEventStore(config, events=EVENTS).open()

    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
    return open_store


def test_async_tenant_views_keep_tenants_apart(opener: Opener) -> None:
    async def scenario() -> None:
        store = await opener()
        try:
            acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
            await execute_async(acme, Deposit(account=ACCOUNT, amount=5))
            await execute_async(beta, Deposit(account=ACCOUNT, amount=7))
            assert [e.event for e in await acme.read_stream(ACCOUNT)] == [
                MoneyDeposited(ACCOUNT, 5)
            ]
            assert [e.stream_id for e in await beta.read_all()] == [ACCOUNT]
            assert await acme.read_all(streams=StreamPattern("*beta*")) == []
            assert sorted(e.stream_id for e in await store.read_all()) == [
                "@acme/account-1",
                "@beta/account-1",
            ]
            async with acme.session([ACCOUNT]) as session:
                version = await session.stream_version(ACCOUNT)
                await session.append({ACCOUNT: version}, [MoneyDeposited(ACCOUNT, 1)])
            assert [e.stream_id for e in [e async for e in acme.iter_all()]] == [ACCOUNT] * 2
            closed = await acme.close_stream(ACCOUNT)
            assert closed.stream_id == ACCOUNT
            with pytest.raises(StreamClosed):
                await execute_async(acme, Deposit(account=ACCOUNT, amount=1))
            await execute_async(beta, Deposit(account=ACCOUNT, amount=1))
            assert await beta.stream_version(ACCOUNT) == 2
            assert [i.stream_id for i in await acme.list_streams()] == [ACCOUNT]
            assert [e.stream_id for e in await acme.read_retained()] == [ACCOUNT] * 3
        finally:
            await store.close()

    asyncio.run(scenario())


def test_an_async_commands_fold_reads_the_tenants_streams(opener: Opener) -> None:
    """``read_stream_events`` through a tenant: the events and versions ``read_stream``
    gives, each event's stream field without the prefix, in and out of a session."""

    async def scenario() -> None:
        store = await opener()
        try:
            acme, beta = store.for_tenant("acme"), store.for_tenant("beta")
            await execute_async(acme, Deposit(account=ACCOUNT, amount=5))
            await execute_async(beta, Deposit(account=ACCOUNT, amount=7))
            await execute_async(acme, Deposit(account=ACCOUNT, amount=1))
            expected = [(e.stream_version, e.event) for e in await acme.read_stream(ACCOUNT)]
            assert expected == [(1, MoneyDeposited(ACCOUNT, 5)), (2, MoneyDeposited(ACCOUNT, 1))]
            folded = await acme.read_stream_events(ACCOUNT)
            assert [(v.stream_version, v.event) for v in folded] == expected
            later = await acme.read_stream_events(ACCOUNT, after_version=1)
            assert [(v.stream_version, v.event) for v in later] == expected[1:]
            other = StreamId("account-2")
            found = await beta.read_streams_events([ACCOUNT, other])
            assert [(v.stream_version, v.event) for v in found[ACCOUNT]] == [
                (1, MoneyDeposited(ACCOUNT, 7))
            ]
            assert found[other] == []
            async with acme.session([ACCOUNT]) as session:
                inside = await session.read_stream_events(ACCOUNT)
                both = await session.read_streams_events([ACCOUNT])
            assert [(v.stream_version, v.event) for v in inside] == expected
            assert [(v.stream_version, v.event) for v in both[ACCOUNT]] == expected
        finally:
            await store.close()

    asyncio.run(scenario())
