"""The contention table (issue 15, goal 1): transfers under 1, 2, 4 and 8 threads among 10
and 100 accounts, in each execution mode, on SQLite (FULL) and PostgreSQL.

Every cell gets fresh storage, funds its accounts, and starts its threads together; each
thread runs its own seeded plan of transfers through ``execute`` with the library's
**default** retry policy until its share of ``contention_commands`` is done or
``contention_seconds`` have passed (commands not started by then are not counted). Reported
per cell: commands per second (completed commands over the wall time), retries per
completed command, commands that exhausted the retry policy (``ConcurrencyError``), other
errors, and the invariants checked after the run: money conserved, every stream's versions
contiguous (1..n), the global positions gapless (1..head), and the event count.

The raw driver runs the same cells as a reference for the pessimistic design: it takes the
write lock (SQLite) or sorted stream locks (PostgreSQL) before reading, so it never
retries. A mode the library does not offer yet is a row saying so
(:mod:`benchmarks.capabilities`). Cells of one configuration run interleaved, the order
rotating every round; the median rate is reported.
"""

from __future__ import annotations

import gc
import random
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Final

from benchmarks.backends import PostgresStatus, Workspace, make_factory
from benchmarks.capabilities import mode_support
from benchmarks.config import Sizes
from benchmarks.model import Bank, Skip, percentile
from benchmarks.workloads import OPENING, account_ids, transfer_plan

THREADS: Final = (1, 2, 4, 8)
ACCOUNTS: Final = (10, 100)
GOAL_CELL: Final = (8, 10)  # threads, accounts: the cell goal 1 is judged on
RAW: Final = "raw, locks first"

Log = Callable[[str], None]


def _default_retry() -> Any:
    from eventcore import RetryPolicy

    return RetryPolicy()


def _exhausted_type() -> type[BaseException]:
    from eventcore import ConcurrencyError

    return ConcurrencyError


def measure_cell(
    bank: Bank, threads: int, accounts_count: int, sizes: Sizes, seed: int
) -> dict[str, Any]:
    """Run one cell on ``bank`` (fresh); return its figures and checks."""
    accounts = account_ids(accounts_count)
    bank.open_accounts(accounts, OPENING)
    per_thread = max(1, sizes.contention_commands // threads)
    plans = [transfer_plan(random.Random(seed + t), accounts, per_thread) for t in range(threads)]
    latencies: list[list[int]] = [[] for _ in range(threads)]
    retries = [0] * threads
    exhausted = [0] * threads
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)
    exhausted_type = _exhausted_type()
    deadline = [0.0]

    def worker(t: int) -> None:
        clock = time.perf_counter_ns
        barrier.wait()
        for source, target, amount in plans[t]:
            if time.perf_counter() > deadline[0]:
                return
            t0 = clock()
            try:
                retries[t] += bank.transfer(source, target, amount)
            except exhausted_type:
                exhausted[t] += 1
                continue
            except Exception as exc:  # counted and reported; the checks will tell
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies[t].append(clock() - t0)

    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    deadline[0] = time.perf_counter() + sizes.contention_seconds
    start = time.perf_counter()
    barrier.wait()
    for thread in pool:
        thread.join(sizes.contention_seconds + 120)
    seconds = time.perf_counter() - start
    done = [value for chunk in latencies for value in chunk]
    ops = len(done)
    balances = 0
    contiguous = True
    events = 0
    for account in accounts:
        balance, versions = bank.inspect(account)
        balances += balance
        events += len(versions)
        contiguous = contiguous and versions == list(range(1, len(versions) + 1))
    positions = bank.positions()
    ordered = sorted(done)
    return {
        "ops": ops,
        "seconds": seconds,
        "ops_per_s": ops / seconds if seconds > 0 else 0.0,
        "retries": sum(retries),
        "exhausted": sum(exhausted),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "attempted": ops + sum(exhausted) + len(errors),
        "planned": per_thread * threads,
        "p50_ms": percentile(ordered, 0.5) / 1e6,
        "p99_ms": percentile(ordered, 0.99) / 1e6,
        "checks": {
            "money_conserved": balances == OPENING * len(accounts),
            "versions_contiguous": contiguous,
            "positions_gapless": positions == list(range(1, len(positions) + 1)),
            "event_count": events == len(accounts) + 2 * ops,
            "threads_finished": not any(thread.is_alive() for thread in pool),
        },
    }


def _variants(modes: Sequence[str]) -> list[tuple[str, str]]:
    """(impl, mode) pairs of one configuration: EventCore in each mode, then the raw driver."""
    return [*(("eventcore", mode) for mode in modes), ("raw", RAW)]


def _run_one(
    impl: str,
    mode: str,
    store: str,
    threads: int,
    accounts: int,
    sizes: Sizes,
    seed: int,
    workspace: Workspace,
    pg: PostgresStatus,
    log: Log,
) -> dict[str, Any]:
    cell: dict[str, Any] = {"status": "ok", "note": ""}
    reason = mode_support(mode) if impl == "eventcore" else None
    if reason is not None:
        return {"status": "n/a", "note": reason}
    if impl == "eventcore":
        options: dict[str, Any] = {"mode": mode, "retry": _default_retry()}
    else:  # the reference: locks before it reads (SQLite always does: BEGIN IMMEDIATE)
        options = {"locks_first": True} if store == "postgres" else {}
    try:
        factory = make_factory(
            impl, store, workspace, pg, f"contention-{threads}x{accounts}", bank_options=options
        )
    except Skip as skip:
        text = str(skip)
        return {
            "status": "n/a" if text.startswith("n/a") else "skipped",
            "note": text.removeprefix("n/a: "),
        }
    gc.collect()
    bank: Bank | None = None
    try:
        bank = factory()
        cell.update(measure_cell(bank, threads, accounts, sizes, seed))
    except Exception as exc:
        cell = {"status": "error", "note": f"{type(exc).__name__}: {exc}"}
        log(traceback.format_exc())
    finally:
        if bank is not None:
            try:
                bank.close()
            except Exception as exc:
                log(f"close failed: {exc!r}")
    return cell


def _summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a variant's rounds: median rate, totals, checks held in every round."""
    bad = next((r for r in rounds if r["status"] != "ok"), None)
    if bad is not None:
        return {"status": bad["status"], "note": bad["note"], "round_rates": []}
    rates = [r["ops_per_s"] for r in rounds]
    ops = sum(r["ops"] for r in rounds)
    names = sorted({n for r in rounds for n in r["checks"]})
    return {
        "status": "ok",
        "note": "; ".join(sorted({r["first_error"] for r in rounds if r["first_error"]})),
        "ops_per_s": round(statistics.median(rates), 1),
        "round_rates": [round(x, 1) for x in rates],
        "commands": ops,
        "planned": sum(r["planned"] for r in rounds),
        "retries": sum(r["retries"] for r in rounds),
        "retries_per_command": round(sum(r["retries"] for r in rounds) / ops, 3) if ops else None,
        "exhausted": sum(r["exhausted"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in rounds), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in rounds), 3),
        "time_capped": any(r["attempted"] < r["planned"] for r in rounds),
        "checks": {n: all(r["checks"].get(n, False) for r in rounds) for n in names},
    }


def run_contention(
    sizes: Sizes,
    stores: Sequence[str],
    modes: Sequence[str],
    workspace: Workspace,
    pg: PostgresStatus,
    log: Log,
) -> dict[str, Any]:
    """The contention section of ``results.json``."""
    rows: list[dict[str, Any]] = []
    chosen = [s for s in stores if s in ("memory", "sqlite", "postgres")]
    for store in chosen:
        for accounts in ACCOUNTS:
            for threads in THREADS:
                variants = _variants(modes)
                per_variant: dict[tuple[str, str], list[dict[str, Any]]] = {v: [] for v in variants}
                for r in range(max(1, sizes.rounds)):
                    k = r % len(variants)
                    for impl, mode in [*variants[k:], *variants[:k]]:
                        previous = per_variant[(impl, mode)]
                        if previous and previous[-1]["status"] != "ok":
                            continue
                        seed = sizes.seed + 1000 * r
                        cell = _run_one(
                            impl, mode, store, threads, accounts, sizes, seed, workspace, pg, log
                        )
                        previous.append(cell)
                        log(_progress(store, mode, threads, accounts, r, cell))
                for (impl, mode), rounds in per_variant.items():
                    rows.append(
                        {
                            "store": store,
                            "impl": impl,
                            "mode": mode,
                            "threads": threads,
                            "accounts": accounts,
                            **_summarise(rounds),
                        }
                    )
    return {
        "threads": list(THREADS),
        "accounts": list(ACCOUNTS),
        "modes": list(modes),
        "commands_per_cell": sizes.contention_commands,
        "seconds_per_cell": sizes.contention_seconds,
        "retry_policy": repr(_default_retry()),
        "rows": rows,
        "ratios": ratios(rows, modes),
    }


def ratios(rows: Sequence[dict[str, Any]], modes: Sequence[str]) -> list[dict[str, Any]]:
    """Each non-default mode's rate over the optimistic mode's, per store and configuration:
    the median of per-round ratios, with the spread."""
    from benchmarks.stats import round_ratios

    index = {(r["store"], r["mode"], r["threads"], r["accounts"]): r for r in rows}
    out = []
    for (store, mode, threads, accounts), row in index.items():
        if mode in ("optimistic", RAW) or mode not in modes:
            continue
        base = index.get((store, "optimistic", threads, accounts))
        entry = {"store": store, "mode": mode, "threads": threads, "accounts": accounts}
        entry.update(
            round_ratios(row.get("round_rates") or [], (base or {}).get("round_rates") or [])
        )
        out.append(entry)
    return out


def _progress(
    store: str, mode: str, threads: int, accounts: int, r: int, cell: dict[str, Any]
) -> str:
    head = f"{'contention':>12} {store:>8} {mode:>13} {threads}x{accounts:<3} #{r + 1}: "
    if cell["status"] != "ok":
        return head + f"{cell['status']} ({cell['note']})"
    checks = "ok" if all(cell["checks"].values()) else f"CHECK FAILED {cell['checks']}"
    return head + (
        f"{cell['ops_per_s']:>9,.0f} commands/s, {cell['ops']} done, retries {cell['retries']}, "
        f"exhausted {cell['exhausted']}, errors {cell['errors']}  checks {checks}"
    )
