"""The bank service on SQLite and PostgreSQL, driven in-process through httpx.

``bank`` runs an async scenario against a fresh app: ``bank(scenario)`` enters the app's
lifespan (store opened, projection started), gives the scenario an ``httpx.AsyncClient`` on
``ASGITransport`` and the app, and returns what the scenario returns.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from web_support import Bank, Scenario, drive

from eventcore import SeededIds, TickingClock
from eventcore.examples.service import create_app, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def bank(request: pytest.FixtureRequest, tmp_path: Path) -> Bank:
    ids = SeededIds(seed=16)
    clock = TickingClock()
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        env = {"EVENTCORE_POSTGRES_URL": dsn, "EVENTCORE_POSTGRES_SCHEMA": schema}
        store, projection_store = open_store(clock=clock, ids=ids, environ=env)
    else:
        store, projection_store = open_store(tmp_path / "bank.db", clock=clock, ids=ids, environ={})

    def run(scenario: Scenario) -> Any:
        app = create_app(store, projection_store=projection_store, ids=ids, read_timeout=5.0)
        return asyncio.run(drive(app, scenario))

    return run
