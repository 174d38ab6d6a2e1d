"""Helpers of the web tests: run a scenario against an app in-process, open accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

Scenario = Callable[[httpx.AsyncClient, FastAPI], Awaitable[Any]]
Bank = Callable[[Scenario], Any]


async def drive(app: FastAPI, scenario: Scenario, *, raise_app_exceptions: bool = True) -> Any:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://bank") as client:
            return await asyncio.wait_for(scenario(client, app), timeout=30)


async def open_accounts(client: httpx.AsyncClient, **balances: int) -> int:
    """Open one account per keyword with that first deposit; the last write's position."""
    position = 0
    for name, amount in balances.items():
        r = await client.post(
            "/accounts", json={"account": name, "owner": name.title(), "initial_deposit": amount}
        )
        assert r.status_code == 201, r.text
        position = int(r.headers["EventCore-Position"])
    return position
