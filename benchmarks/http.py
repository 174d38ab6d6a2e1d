"""The HTTP workload: the example service's transfer endpoint under uvicorn, 8 clients.

``python -m benchmarks http [--quick] [--stores sqlite,postgres] [--clients 8] [--out DIR]``
starts ``python -m eventcore.examples.service`` (uvicorn, one worker, access log off) in a
process of its own on 127.0.0.1 (a free port), opens the accounts, sends warm-up transfers,
then runs ``clients`` concurrent ``httpx.AsyncClient`` connections (keep-alive) sending
transfers between random accounts for a fixed time. It reports requests/s, the latency
percentiles (p50, p90, p99, max), the statuses, and checks that no request answered 5xx and
that the money in the bank is unchanged. Writes ``http.json`` and ``http.md``.

The clients run in this process and the server in another: on a two-core machine they
compete for the cores, so the figures are those of client and server together (as on one
developer machine), not of the server alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import httpx

from benchmarks.backends import drop_postgres_schema, probe_postgres
from benchmarks.config import POSTGRES_SCHEMA, postgres_url
from benchmarks.machine import describe

SCHEMA: Final = f"{POSTGRES_SCHEMA}_http"
ACCOUNTS: Final = 64
OPENING: Final = 1_000_000
STORES: Final = ("sqlite", "postgres")

Connect = Callable[[], httpx.AsyncClient]
"""Makes one client: over TCP to the server, or on ASGITransport to the app in-process."""


@dataclass(frozen=True)
class HttpSizes:
    clients: int = 8
    warmup: int = 200
    seconds: float = 20.0

    @classmethod
    def quick(cls, clients: int = 8) -> HttpSizes:
        return cls(clients=clients, warmup=40, seconds=4.0)


@dataclass
class HttpResult:
    store: str
    clients: int
    path: str = "http"
    status: str = "ok"
    note: str = ""
    requests: int = 0
    seconds: float = 0.0
    requests_per_second: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


class ServiceProcess:
    """The example service in a child process, stopped with SIGINT (uvicorn's Ctrl-C)."""

    def __init__(self, store: str, folder: str) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTCORE_POSTGRES")}
        if store == "postgres":
            env["EVENTCORE_POSTGRES_URL"] = postgres_url()
            env["EVENTCORE_POSTGRES_SCHEMA"] = SCHEMA
        command = [
            sys.executable,
            "-m",
            "eventcore.examples.service",
            "--port",
            str(self.port),
            "--database",
            os.path.join(folder, "bank.db"),
            "--log-level",
            "warning",
        ]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited: {self.process.communicate()[0]}")
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=2).raise_for_status()
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not start within {timeout:g} s") from None
                time.sleep(0.1)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()[0]


async def _client(
    connect: Connect, seed: int, stop_at: float, latencies: list[float], statuses: Counter[int]
) -> None:
    rng = random.Random(seed)
    async with connect() as client:
        while time.monotonic() < stop_at:
            source, target = rng.sample(range(ACCOUNTS), 2)
            body = {"source": f"a{source}", "target": f"a{target}", "amount": rng.randint(1, 50)}
            started = time.perf_counter()
            r = await client.post("/transfers", json=body)
            latencies.append(time.perf_counter() - started)
            statuses[r.status_code] += 1


async def _drive(
    connect: Connect, sizes: HttpSizes
) -> tuple[list[float], Counter[int], float, int]:
    async with connect() as client:
        for n in range(ACCOUNTS):
            r = await client.post(
                "/accounts",
                json={"account": f"a{n}", "owner": f"Owner {n}", "initial_deposit": OPENING},
            )
            r.raise_for_status()
    rng = random.Random(0)
    async with connect() as client:
        for _ in range(sizes.warmup):
            source, target = rng.sample(range(ACCOUNTS), 2)
            await client.post(
                "/transfers", json={"source": f"a{source}", "target": f"a{target}", "amount": 1}
            )
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    stop_at = started + sizes.seconds
    await asyncio.gather(
        *(_client(connect, n, stop_at, latencies, statuses) for n in range(sizes.clients))
    )
    elapsed = time.monotonic() - started
    async with connect() as client:
        head = await client.post("/accounts/a0/deposits", json={"amount": 1})
        position = head.headers["EventCore-Position"]
        final = await client.get("/accounts", headers={"EventCore-Min-Position": position})
        total = int(final.json()["total"]) - 1
    return latencies, statuses, elapsed, total


def run_store(store: str, sizes: HttpSizes) -> HttpResult:
    result = HttpResult(store=store, clients=sizes.clients)
    if store == "postgres":
        pg = probe_postgres()
        if not pg.reachable:
            result.status, result.note = "skipped", "; ".join(pg.notes)
            return result
        drop_postgres_schema(SCHEMA)
    with tempfile.TemporaryDirectory(prefix="eventcore-bench-http-") as folder:
        service = ServiceProcess(store, folder)
        try:
            service.wait_ready()
            base = service.base
            latencies, statuses, elapsed, total = asyncio.run(
                _drive(lambda: httpx.AsyncClient(base_url=base, timeout=30), sizes)
            )
        except Exception as exc:
            result.status, result.note = "error", f"{type(exc).__name__}: {exc}"
            return result
        finally:
            output = service.stop()
            if store == "postgres":
                drop_postgres_schema(SCHEMA)
    _fill(result, latencies, statuses, elapsed, total)
    if "Traceback" in output:
        result.note = "the service logged an error: " + output.strip().splitlines()[-1]
    return result


async def _direct_drive(
    store: Any, sizes: HttpSizes
) -> tuple[list[float], Counter[int], float, int]:
    """The same transfers through ``execute_async`` in this process: no HTTP, no client."""
    from eventcore.aio import execute_async
    from eventcore.errors import BusinessRuleViolation, ConcurrencyError
    from eventcore.examples.bank import OpenAccount, Transfer, balance
    from eventcore.types import StreamId

    def sid(n: int) -> StreamId:
        return StreamId(f"account-a{n}")

    async with store:
        for n in range(ACCOUNTS):
            await execute_async(
                store, OpenAccount(account=sid(n), owner=f"Owner {n}", initial_deposit=OPENING)
            )
        rng = random.Random(0)
        for _ in range(sizes.warmup):
            source, target = rng.sample(range(ACCOUNTS), 2)
            await execute_async(store, Transfer(source=sid(source), target=sid(target), amount=1))
        latencies: list[float] = []
        statuses: Counter[int] = Counter()

        async def task(seed: int, stop_at: float) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop_at:
                source, target = rng.sample(range(ACCOUNTS), 2)
                command = Transfer(
                    source=sid(source), target=sid(target), amount=rng.randint(1, 50)
                )
                started = time.perf_counter()
                try:
                    await execute_async(store, command)
                    statuses[201] += 1
                except ConcurrencyError:
                    statuses[409] += 1
                except BusinessRuleViolation:
                    statuses[422] += 1
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        stop_at = started + sizes.seconds
        await asyncio.gather(*(task(n, stop_at) for n in range(sizes.clients)))
        elapsed = time.monotonic() - started
        sync = getattr(store, "sync", None)
        total = sum(balance(sync, f"account-a{n}") for n in range(ACCOUNTS)) if sync else -1
    return latencies, statuses, elapsed, total


def run_asgi(store: str, sizes: HttpSizes) -> HttpResult:
    """The same requests to the same app in this process through ``httpx.ASGITransport``:
    the web layer without the server, the sockets and a second process."""
    result = HttpResult(store=store, clients=sizes.clients, path="asgi")
    if store == "postgres":
        pg = probe_postgres()
        if not pg.reachable:
            result.status, result.note = "skipped", "; ".join(pg.notes)
            return result
        drop_postgres_schema(SCHEMA)
    from eventcore.examples.service import create_app, open_store

    with tempfile.TemporaryDirectory(prefix="eventcore-bench-http-") as folder:
        env = {"EVENTCORE_POSTGRES_URL": postgres_url(), "EVENTCORE_POSTGRES_SCHEMA": SCHEMA}
        try:
            handle, projection_store = open_store(
                os.path.join(folder, "bank.db"), environ=env if store == "postgres" else {}
            )
            app = create_app(handle, projection_store=projection_store)

            async def in_process() -> tuple[list[float], Counter[int], float, int]:
                async with app.router.lifespan_context(app):
                    transport = httpx.ASGITransport(app=app)
                    return await _drive(
                        lambda: httpx.AsyncClient(transport=transport, base_url="http://bank"),
                        sizes,
                    )

            latencies, statuses, elapsed, total = asyncio.run(in_process())
        except Exception as exc:
            result.status, result.note = "error", f"{type(exc).__name__}: {exc}"
            return result
        finally:
            if store == "postgres":
                drop_postgres_schema(SCHEMA)
    _fill(result, latencies, statuses, elapsed, total)
    return result


def run_direct(store: str, sizes: HttpSizes) -> HttpResult:
    result = HttpResult(store=store, clients=sizes.clients, path="execute_async")
    if store == "postgres":
        pg = probe_postgres()
        if not pg.reachable:
            result.status, result.note = "skipped", "; ".join(pg.notes)
            return result
        drop_postgres_schema(SCHEMA)
    with tempfile.TemporaryDirectory(prefix="eventcore-bench-http-") as folder:
        try:
            if store == "postgres":
                from eventcore.examples.bank import EVENTS
                from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

                handle: Any = AsyncPostgresEventStore(
                    PostgresConfig(postgres_url(), schema=SCHEMA), events=EVENTS
                )
            else:
                from eventcore.examples.bank import EVENTS
                from eventcore.stores.sqlite import AsyncSqliteEventStore

                handle = AsyncSqliteEventStore(os.path.join(folder, "bank.db"), events=EVENTS)
            latencies, statuses, elapsed, total = asyncio.run(_direct_drive(handle, sizes))
        except Exception as exc:
            result.status, result.note = "error", f"{type(exc).__name__}: {exc}"
            return result
        finally:
            if store == "postgres":
                drop_postgres_schema(SCHEMA)
    _fill(result, latencies, statuses, elapsed, total if total >= 0 else ACCOUNTS * OPENING)
    return result


def _fill(
    result: HttpResult, latencies: list[float], statuses: Counter[int], elapsed: float, total: int
) -> None:
    ordered = sorted(latencies)
    result.requests = len(ordered)
    result.seconds = round(elapsed, 2)
    result.requests_per_second = round(len(ordered) / elapsed, 1) if elapsed else 0.0
    if ordered:
        result.p50_ms = round(statistics.median(ordered) * 1000, 2)
        result.p90_ms = round(_percentile(ordered, 0.90) * 1000, 2)
        result.p99_ms = round(_percentile(ordered, 0.99) * 1000, 2)
        result.max_ms = round(ordered[-1] * 1000, 2)
    result.statuses = {str(k): v for k, v in sorted(statuses.items())}
    result.checks = {
        "no 5xx": not any(code >= 500 for code in statuses),
        "money conserved": total == ACCOUNTS * OPENING,
        "transfers succeeded": statuses.get(201, 0) > 0,
    }


def render(document: dict[str, Any]) -> str:
    lines = [
        "# HTTP: the transfer endpoint under uvicorn",
        "",
        f"`POST /transfers` of `eventcore.examples.service` (FastAPI, one uvicorn worker), "
        f"{document['sizes']['clients']} concurrent keep-alive clients for "
        f"{document['sizes']['seconds']:g} s after {document['sizes']['warmup']} warm-up "
        f"transfers, {ACCOUNTS} accounts. Clients and server share the machine "
        f"({document['machine']['cores']} cores).",
        "",
        "`http` is the service under uvicorn in its own process, over TCP. `asgi` sends the",
        "same requests to the same app in this process through `httpx.ASGITransport` (the web",
        "layer without server, sockets or a second process). `execute_async` runs the same",
        "transfers with the same concurrency on the async store directly (no HTTP at all).",
        "",
        "| store | path | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | statuses "
        "| checks |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in document["results"]:
        if r["status"] != "ok":
            lines.append(f"| {r['store']} | {r['path']} | {r['status']}: {r['note']} ||||||||")
            continue
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        checks = (
            "all pass"
            if all(r["checks"].values())
            else "FAILED " + ", ".join(k for k, ok in r["checks"].items() if not ok)
        )
        lines.append(
            f"| {r['store']} | {r['path']} | {r['requests']} | {r['requests_per_second']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
            f"{statuses} | {checks} |"
        )
    lines.append("")
    return "\n".join(lines)


def run_http(stores: list[str], sizes: HttpSizes, out_dir: str) -> dict[str, Any]:
    results = []
    for store in stores:
        print(f"http: {store}, {sizes.clients} clients, {sizes.seconds:g} s ...", file=sys.stderr)
        for runner in (run_store, run_asgi, run_direct):
            result = runner(store, sizes)
            print(
                f"http: {store} {result.path}: {result.status} {result.requests_per_second} "
                f"req/s p99 {result.p99_ms} ms {result.note}",
                file=sys.stderr,
            )
            results.append(asdict(result))
    pg = probe_postgres() if "postgres" in stores else None
    document = {
        "machine": describe(pg.server_version if pg else None),
        "sizes": asdict(sizes),
        "results": results,
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "http.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "http.md"), "w", encoding="utf-8") as f:
        f.write(render(document))
    return document


def failed(document: dict[str, Any]) -> bool:
    return any(
        r["status"] == "error" or (r["status"] == "ok" and not all(r["checks"].values()))
        for r in document["results"]
    )
