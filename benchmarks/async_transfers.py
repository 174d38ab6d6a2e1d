"""The asyncio workload (issue 12): transfers on PostgreSQL through ``execute_async`` on the
async store with 1, 8 and 32 concurrent tasks, against ``execute`` on the blocking store with
1 and 8 threads and against ``eventsourcing`` with 1 and 8 threads, in the same run.

``python -m benchmarks async [--quick] [--stores postgres] [--out DIR] [--set NAME=N]``
writes ``async.json`` and ``async.md``. Goals: 32 async tasks reach at least 2x the
single-thread blocking rate, and one async task is within 15% of one thread (ratio >= 0.85).

Every cell gets a fresh schema and funds ``accounts`` accounts (1,000 by default: 32
transfers in flight among 100 accounts conflict on about half their attempts, so the figures
would measure the retries rather than the drivers; ``--set accounts=100`` shows that); its
workers (tasks or threads) start together and each runs its own seeded plan of transfers
until its share of ``commands`` is done or ``seconds`` have passed. Every implementation
retries conflicts with the same policy (EventCore's contention policy; ``eventsourcing``'s
``IntegrityError`` with EventCore's backoff, see ``impl_eventsourcing.py``). Pools: the
async store's ``AsyncConnectionPool`` and the blocking store's pool both get ``min(workers,
16)`` connections; ``eventsourcing`` its pool of 8. Cells run ``rounds`` times, the order
rotated each round; reported: the median rate over the rounds and, per ratio, the median of
the per-round ratios with its spread. After each cell: money conserved, every stream's
versions contiguous, the global positions gapless. ``memory`` runs the same cells on the
in-memory stores (no eventsourcing): a smoke test of the harness, not a figure to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

from benchmarks.backends import probe_postgres, reset_postgres_schema
from benchmarks.config import postgres_url
from benchmarks.impl_eventcore import (
    CONTENTION_RETRY,
    EVENTS,
    Deposited,
    EventCoreBank,
    Transfer,
    Withdrawn,
)
from benchmarks.machine import describe
from benchmarks.model import Bank, Skip
from benchmarks.workloads import OPENING, account_ids, transfer_plan
from eventcore import StreamId
from eventcore.aio import execute_async

SCHEMA: Final = "eventcore_bench_async"
TASKS: Final = (1, 8, 32)
THREADS: Final = (1, 8)
GOAL_SCALE: Final = 2.0  # 32 tasks / 1 blocking thread
GOAL_SINGLE: Final = 0.85  # 1 task / 1 blocking thread: within 15%

Log = Callable[[str], None]


@dataclass
class AsyncSizes:
    accounts: int = 1_000
    commands: int = 1_200
    seconds: float = 30.0
    rounds: int = 3
    seed: int = 1234

    @classmethod
    def quick(cls) -> AsyncSizes:
        return cls(accounts=20, commands=64, seconds=10.0, rounds=1)

    def override(self, pairs: Sequence[str]) -> AsyncSizes:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for pair in pairs:
            name, _, text = pair.partition("=")
            if name not in values:
                raise ValueError(f"unknown size {name!r}; choose from {', '.join(values)}")
            values[name] = type(values[name])(text)
        return AsyncSizes(**values)


@dataclass
class Cell:
    impl: str  # "eventcore async", "eventcore", "eventsourcing"
    workers: int
    kind: str  # "tasks" or "threads"
    rates: list[float] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    status: str = "ok"
    error: str = ""

    @property
    def label(self) -> str:
        return f"{self.impl}, {self.workers} {self.kind}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- the async side ------------------------------------------------------------------------


class AsyncEventCoreBank:
    """Transfers through ``execute_async`` on an async store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        ids = [StreamId(a) for a in accounts]
        await self.store.append({sid: 0 for sid in ids}, [Deposited(sid, opening) for sid in ids])

    async def transfer(self, source: str, target: str, amount: int) -> int:
        command = Transfer(source=StreamId(source), target=StreamId(target), amount=amount)
        result = await execute_async(self.store, command, retry=CONTENTION_RETRY)
        return result.attempts - 1

    async def inspect(self, account: str) -> tuple[int, list[int]]:
        events = await self.store.read_stream(StreamId(account))
        return sum(_amount(r.event) for r in events), [r.stream_version for r in events]

    async def positions(self) -> list[int]:
        out: list[int] = []
        after = 0
        while True:
            page = await self.store.read_all(after=after, limit=1_000)
            if not page:
                return out
            out += [r.position for r in page]
            after = page[-1].position


def _amount(event: object) -> int:
    if isinstance(event, Deposited):
        return event.amount
    if isinstance(event, Withdrawn):
        return -event.amount
    return 0


def _checks(
    balances: int, expected: int, versions: list[list[int]], positions: list[int] | None, ops: int
) -> dict[str, bool]:
    """Money conserved, versions contiguous, positions gapless (where there is a global
    log), and one opening event per account plus two events per completed transfer."""
    checks = {
        "money_conserved": balances == expected,
        "versions_contiguous": all(v == list(range(1, len(v) + 1)) for v in versions),
        "event_count": sum(len(v) for v in versions) == len(versions) + 2 * ops,
    }
    if positions is not None:
        checks["positions_gapless"] = positions == list(range(1, len(positions) + 1))
    return checks


async def _async_cell(store: Any, tasks: int, sizes: AsyncSizes, seed: int) -> dict[str, Any]:
    bank = AsyncEventCoreBank(store)
    accounts = account_ids(sizes.accounts)
    await bank.open_accounts(accounts, OPENING)
    per_task = max(1, sizes.commands // tasks)
    plans = [transfer_plan(random.Random(seed + t), accounts, per_task) for t in range(tasks)]
    latencies: list[int] = []
    retries = [0]
    errors: list[str] = []
    start_gate = asyncio.Event()
    deadline = [0.0]

    async def worker(plan: list[tuple[str, str, int]]) -> None:
        await start_gate.wait()
        for source, target, amount in plan:
            if time.perf_counter() > deadline[0]:
                return
            t0 = time.perf_counter_ns()
            try:
                # Await first: ``retries[0] += await ...`` would read the total before the
                # await and lose the other tasks' retries made meanwhile.
                needed = await bank.transfer(source, target, amount)
            except Exception as exc:  # counted and reported; the checks will tell
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            retries[0] += needed
            latencies.append(time.perf_counter_ns() - t0)

    running = [asyncio.ensure_future(worker(plan)) for plan in plans]
    await asyncio.sleep(0)
    deadline[0] = time.perf_counter() + sizes.seconds
    started, cpu = time.perf_counter(), time.process_time()
    start_gate.set()
    await asyncio.gather(*running)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    versions = []
    balances = 0
    for account in accounts:
        balance, v = await bank.inspect(account)
        balances += balance
        versions.append(v)
    positions = await bank.positions()
    return _figures(latencies, seconds, cpu, retries[0], errors) | {
        "checks": _checks(balances, OPENING * len(accounts), versions, positions, len(latencies))
    }


def _figures(
    latencies: list[int], seconds: float, cpu: float, retries: int, errors: list[str]
) -> dict[str, Any]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6 if ordered else 0.0
    return {
        "ops": len(latencies),
        "seconds": seconds,
        "rate": len(latencies) / seconds if seconds > 0 else 0.0,
        "retries": retries,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "p99_ms": p99,
        # This process's CPU time per transfer (every thread): the client's cost, which the
        # server's and other processes' load does not inflate as it does the wall time.
        "cpu_ms": cpu * 1000 / len(latencies) if latencies else 0.0,
    }


def _threaded_cell(bank: Bank, threads: int, sizes: AsyncSizes, seed: int) -> dict[str, Any]:
    accounts = account_ids(sizes.accounts)
    bank.open_accounts(accounts, OPENING)
    per_thread = max(1, sizes.commands // threads)
    plans = [transfer_plan(random.Random(seed + t), accounts, per_thread) for t in range(threads)]
    latencies: list[list[int]] = [[] for _ in range(threads)]
    retries = [0] * threads
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(t: int) -> None:
        barrier.wait()
        for source, target, amount in plans[t]:
            if time.perf_counter() > deadline[0]:
                return
            t0 = time.perf_counter_ns()
            try:
                retries[t] += bank.transfer(source, target, amount)
            except Exception as exc:  # counted and reported; the checks will tell
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies[t].append(time.perf_counter_ns() - t0)

    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    deadline[0] = time.perf_counter() + sizes.seconds
    started, cpu = time.perf_counter(), time.process_time()
    barrier.wait()
    for thread in pool:
        thread.join(sizes.seconds + 120)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = [v for chunk in latencies for v in chunk]
    versions = []
    balances = 0
    for account in accounts:
        balance, v = bank.inspect(account)
        balances += balance
        versions.append(v)
    # eventsourcing has no global log positions here: the gapless check is EventCore's only.
    positions = bank.positions() if callable(getattr(bank, "positions", None)) else None
    return _figures(done, seconds, cpu, sum(retries), errors) | {
        "checks": _checks(balances, OPENING * len(accounts), versions, positions, len(done))
    }


# -- cells on each store -----------------------------------------------------------------------


def _pg_config(workers: int) -> Any:
    from eventcore.stores.postgres import PostgresConfig

    return PostgresConfig(postgres_url(), schema=SCHEMA, pool_max=min(workers, 16))


def run_async_cell(store_kind: str, tasks: int, sizes: AsyncSizes, seed: int) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        if store_kind == "memory":
            from eventcore.stores.memory import AsyncInMemoryEventStore

            store: Any = AsyncInMemoryEventStore(events=EVENTS)
        else:
            from eventcore.stores.postgres import AsyncPostgresEventStore

            reset_postgres_schema(SCHEMA)
            store = await AsyncPostgresEventStore(_pg_config(tasks), events=EVENTS).open()
        try:
            return await _async_cell(store, tasks, sizes, seed)
        finally:
            await store.close()

    return asyncio.run(main())


def run_threaded_cell(
    store_kind: str, impl: str, threads: int, sizes: AsyncSizes, seed: int
) -> dict[str, Any]:
    bank: Bank
    if impl == "eventcore":
        if store_kind == "memory":
            from eventcore import InMemoryEventStore

            bank = EventCoreBank(InMemoryEventStore(events=EVENTS))
        else:
            from eventcore.stores.postgres import PostgresEventStore

            reset_postgres_schema(SCHEMA)
            bank = EventCoreBank(PostgresEventStore(_pg_config(threads), events=EVENTS))
    else:
        if store_kind == "memory":
            raise Skip("eventsourcing runs on PostgreSQL only in this workload")
        from benchmarks.backends import Workspace, make_factory

        workspace = Workspace()
        try:
            bank = make_factory(
                "eventsourcing", "postgres", workspace, probe_postgres(), "async", schema=SCHEMA
            )()
        finally:
            workspace.cleanup()
    try:
        return _threaded_cell(bank, threads, sizes, seed)
    finally:
        bank.close()


def _cells() -> list[Cell]:
    cells = [Cell("eventcore async", n, "tasks") for n in TASKS]
    cells += [Cell("eventcore", n, "threads") for n in THREADS]
    cells += [Cell("eventsourcing", n, "threads") for n in THREADS]
    return cells


def measure(store_kind: str, sizes: AsyncSizes, log: Log = _stderr) -> list[Cell]:
    cells = _cells()
    for round_no in range(sizes.rounds):
        shift = round_no % len(cells)
        for cell in cells[shift:] + cells[:shift]:
            if cell.status != "ok":
                continue
            seed = sizes.seed + round_no
            try:
                if cell.kind == "tasks":
                    figures = run_async_cell(store_kind, cell.workers, sizes, seed)
                else:
                    impl = "eventcore" if cell.impl == "eventcore" else "eventsourcing"
                    figures = run_threaded_cell(store_kind, impl, cell.workers, sizes, seed)
            except Skip as skip:
                cell.status, cell.error = "skipped", str(skip)
                continue
            except Exception as exc:
                cell.status = "error"
                cell.error = f"{type(exc).__name__}: {exc}"
                log(traceback.format_exc())
                continue
            cell.rates.append(figures["rate"])
            cell.retries.append(figures["retries"])
            cell.p99_ms.append(figures["p99_ms"])
            cell.cpu_ms.append(figures["cpu_ms"])
            cell.checks = {k: cell.checks.get(k, True) and v for k, v in figures["checks"].items()}
            cell.checks["no_errors"] = cell.checks.get("no_errors", True) and not figures["errors"]
            if figures["errors"]:
                cell.error = figures["first_error"]
            log(
                f"round {round_no + 1}/{sizes.rounds}  {store_kind:8s} {cell.label:28s} "
                f"{figures['rate']:8.1f} transfers/s  p99 {figures['p99_ms']:7.1f} ms  "
                f"cpu {figures['cpu_ms']:5.2f} ms/transfer  "
                f"retries {figures['retries']}"
            )
    return cells


# -- ratios, goals, report ---------------------------------------------------------------------


def _find(cells: list[Cell], impl: str, workers: int) -> Cell | None:
    for cell in cells:
        if cell.impl == impl and cell.workers == workers and cell.status == "ok" and cell.rates:
            return cell
    return None


def ratio(cells: list[Cell], num: tuple[str, int], den: tuple[str, int]) -> dict[str, Any] | None:
    """Median of the per-round ratios (and their spread) of two cells."""
    a, b = _find(cells, *num), _find(cells, *den)
    if a is None or b is None:
        return None
    per_round = [x / y for x, y in zip(a.rates, b.rates, strict=False) if y > 0]
    if not per_round:
        return None
    return {
        "median": statistics.median(per_round),
        "min": min(per_round),
        "max": max(per_round),
        "rounds": len(per_round),
    }


def goals(cells: list[Cell], valid: bool) -> list[dict[str, Any]]:
    rows = []
    for name, num, den, target in (
        (
            "32 async tasks vs 1 blocking thread",
            ("eventcore async", 32),
            ("eventcore", 1),
            GOAL_SCALE,
        ),
        (
            "1 async task vs 1 blocking thread",
            ("eventcore async", 1),
            ("eventcore", 1),
            GOAL_SINGLE,
        ),
    ):
        found = ratio(cells, num, den)
        rows.append(
            {
                "goal": name,
                "target": target,
                "ratio": found,
                "met": None if found is None or not valid else found["median"] >= target,
            }
        )
    return rows


def document(store_kind: str, sizes: AsyncSizes, cells: list[Cell], quick: bool) -> dict[str, Any]:
    pg = probe_postgres() if store_kind == "postgres" else None
    valid = not quick and store_kind == "postgres"
    comparisons = {}
    for impl, workers in (
        ("eventcore async", 8),
        ("eventcore async", 32),
        ("eventcore", 8),
        ("eventsourcing", 1),
        ("eventsourcing", 8),
    ):
        comparisons[f"{impl}, {workers}"] = ratio(cells, (impl, workers), ("eventcore", 1))
    return {
        "machine": describe(pg.server_version if pg else None),
        "store": store_kind,
        "quick": quick,
        "ratios_valid": valid,
        "sizes": {f.name: getattr(sizes, f.name) for f in fields(sizes)},
        "cells": [
            {
                "impl": c.impl,
                "workers": c.workers,
                "kind": c.kind,
                "status": c.status,
                "error": c.error,
                "round_rates": c.rates,
                "median_rate": statistics.median(c.rates) if c.rates else None,
                "median_p99_ms": statistics.median(c.p99_ms) if c.p99_ms else None,
                "median_cpu_ms": statistics.median(c.cpu_ms) if c.cpu_ms else None,
                "retries": c.retries,
                "checks": c.checks,
            }
            for c in cells
        ],
        "vs_eventcore_1_thread": comparisons,
        "goals": goals(cells, valid),
    }


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# Async transfers (issue 12)",
        "",
    ]
    if not doc["ratios_valid"]:
        lines += [
            "**QUICK OR NON-POSTGRESQL RUN: a smoke test of the harness, NOT for comparing.**",
            "",
        ]
    lines += [
        f"{m['date']} · {m['cpu']} · {m['cores']} cores · {m['python']} · PostgreSQL "
        f"{m['postgresql']} · psycopg {m['psycopg']} · eventsourcing {m['eventsourcing']} · "
        f"store `{doc['store']}` · {doc['sizes']['accounts']} accounts · "
        f"{doc['sizes']['commands']} transfers per cell · {doc['sizes']['rounds']} rounds",
        "",
        "| implementation | workers | transfers/s (median) | p99 ms | client CPU ms/transfer "
        "| vs eventcore 1 thread | checks |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in doc["cells"]:
        key = f"{c['impl']}, {c['workers']}"
        found = doc["vs_eventcore_1_thread"].get(key)
        if c["impl"] == "eventcore async" and c["workers"] == 1:
            found = next(g["ratio"] for g in doc["goals"] if g["goal"].startswith("1 async"))
        vs = (
            "1.00"
            if (c["impl"], c["workers"]) == ("eventcore", 1)
            else (
                f"{found['median']:.2f} ({found['min']:.2f}-{found['max']:.2f})" if found else "-"
            )
        )
        if c["status"] != "ok":
            lines.append(
                f"| {c['impl']} | {c['workers']} {c['kind']} | {c['status']}: {c['error']} "
                "| | | | |"
            )
            continue
        checks = "ok" if c["checks"] and all(c["checks"].values()) else f"FAILED {c['checks']}"
        lines.append(
            f"| {c['impl']} | {c['workers']} {c['kind']} | {c['median_rate']:.1f} | "
            f"{c['median_p99_ms']:.1f} | {c['median_cpu_ms']:.2f} | {vs} | {checks} |"
        )
    lines += ["", "| goal | target | measured (median, spread) | met |", "|---|---|---|---|"]
    for g in doc["goals"]:
        r = g["ratio"]
        measured = f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})" if r else "-"
        met = {True: "yes", False: "NO", None: "not judged"}[g["met"]]
        lines.append(f"| {g['goal']} | >= {g['target']:.2f} | {measured} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks async", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one small round: NOT for ratios")
    p.add_argument("--stores", default="postgres", help="postgres (default) or memory")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--set", action="append", default=[], metavar="NAME=N")
    args = p.parse_args(argv)
    try:
        sizes = (AsyncSizes.quick() if args.quick else AsyncSizes()).override(args.set)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store_kind = args.stores
    if store_kind not in ("postgres", "memory"):
        print(f"error: --stores takes postgres or memory, got {store_kind!r}", file=sys.stderr)
        return 2
    if store_kind == "postgres" and not probe_postgres().reachable:
        _stderr("no PostgreSQL server: the async workload is skipped (set EVENTCORE_POSTGRES_URL)")
        return 0
    cells = measure(store_kind, sizes)
    if store_kind == "postgres":
        from benchmarks.backends import drop_postgres_schema

        drop_postgres_schema(SCHEMA)
    doc = document(store_kind, sizes, cells, args.quick)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "async.json"), "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=2)
    text = markdown(doc)
    with open(os.path.join(args.out, "async.md"), "w", encoding="utf-8") as out:
        out.write(text)
    _stderr(text)
    bad = [
        c
        for c in doc["cells"]
        if c["status"] == "error" or (c["checks"] and not all(c["checks"].values()))
    ]
    return 1 if bad else 0
