"""The bank service under a real uvicorn on 127.0.0.1 (a free port), on SQLite and
PostgreSQL: 200 transfers from 8 concurrent clients. Money is conserved, nothing answers
5xx, and every read that names a write's position sees that write."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from eventcore.examples.bank import Balances, fold
from eventcore.examples.service import create_app, open_store
from eventcore.types import StreamId

CLIENTS = 8
TRANSFERS = 200
ACCOUNTS = 12
OPENING = 100
TIME_LIMIT = 120.0


class Server:
    """uvicorn serving ``app`` in a thread, on a socket bound to 127.0.0.1 port 0."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.socket.close()
        assert not self.thread.is_alive(), "uvicorn did not stop within 20 s"


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    if request.param == "postgres":
        env = {
            "EVENTCORE_POSTGRES_URL": request.getfixturevalue("postgres_dsn"),
            "EVENTCORE_POSTGRES_SCHEMA": request.getfixturevalue("postgres_schema"),
        }
        yield open_store(environ=env)
    else:
        yield open_store(tmp_path / "bank.db", environ={})


async def client_run(
    base: str, number: int, count: int, deadline: float, seen: list[tuple[str, int, int]]
) -> Counter[int]:
    """``count`` transfers between random accounts, each followed by a read of its source
    that names the transfer's position; returns the statuses (reads' too)."""
    rng = random.Random(number)
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            source, target = rng.sample(range(ACCOUNTS), 2)
            move = {"source": f"a{source}", "target": f"a{target}", "amount": rng.randint(1, 40)}
            r = await client.post("/transfers", json=move)
            statuses[r.status_code] += 1
            if r.status_code != 201:
                continue
            position = int(r.headers["EventCore-Position"])
            read = await client.get(
                f"/accounts/a{source}", headers={"EventCore-Min-Position": str(position)}
            )
            statuses[read.status_code] += 1
            seen.append((move["source"], position, int(read.headers["EventCore-Position"])))
    return statuses


async def load(base: str) -> tuple[Counter[int], list[tuple[str, int, int]], dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for n in range(ACCOUNTS):
            r = await client.post(
                "/accounts",
                json={"account": f"a{n}", "owner": f"Owner {n}", "initial_deposit": OPENING},
            )
            assert r.status_code == 201, r.text
    deadline = time.monotonic() + TIME_LIMIT
    seen: list[tuple[str, int, int]] = []
    per_client = TRANSFERS // CLIENTS
    results = await asyncio.gather(
        *(client_run(base, n, per_client, deadline, seen) for n in range(CLIENTS))
    )
    statuses: Counter[int] = sum(results, Counter())
    last = max(position for _, position, _ in seen)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        final = await client.get("/accounts", headers={"EventCore-Min-Position": str(last)})
        assert final.status_code == 200, final.text
        summary: dict[str, Any] = final.json()
    return statuses, seen, summary


def test_200_concurrent_transfers_over_real_http(stores: tuple[Any, Any]) -> None:
    store, projection_store = stores
    app = create_app(store, projection_store=projection_store)
    with Server(app) as base:
        statuses, seen, summary = asyncio.run(load(base))
        log = projection_store or store.sync
        events = list(log.read_all())

    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 201, 409, 422}, statuses  # 422: insufficient funds
    transfers = statuses[201]
    assert transfers >= TRANSFERS // 2, statuses  # most transfers went through
    assert statuses[200] == transfers  # every write's read answered
    assert all(reached >= position for _, position, reached in seen)  # read-your-writes

    assert summary["total"] == ACCOUNTS * OPENING  # money is conserved
    assert all(row["balance"] >= 0 for row in summary["accounts"])
    withdrawals = [e for e in events if e.event_type == "MoneyWithdrawn"]
    assert len(withdrawals) == transfers
    state = Balances()
    for event in events:
        state = fold(state, event.event)
    assert {row["account"]: row["balance"] for row in summary["accounts"]} == {
        f"a{n}": state[StreamId(f"account-a{n}")] for n in range(ACCOUNTS)
    }


def test_the_service_module_serves_on_sqlite_with_no_setup(tmp_path: Path) -> None:
    """What ``make serve`` runs: ``python -m eventcore.examples.service`` in a fresh
    directory (SQLite file created there), stopped with Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTCORE_POSTGRES", "PG"))}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root)
    process = subprocess.Popen(
        [sys.executable, "-m", "eventcore.examples.service", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start within 30 s"
                time.sleep(0.1)
        assert r.json()["info"]["title"] == "EventCore bank"
        opened = httpx.post(
            f"http://127.0.0.1:{port}/accounts", json={"account": "ada", "owner": "Ada"}
        )
        assert opened.status_code == 201
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=20)[0]
    assert process.returncode == 0, output
    assert (
        f"EventCore bank on SQLite (build/service/bank.db): http://127.0.0.1:{port}/docs" in output
    )
    assert (tmp_path / "build" / "service" / "bank.db").exists()
