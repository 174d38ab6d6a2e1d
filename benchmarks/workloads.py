"""The six workloads. Each drives a :class:`~benchmarks.model.Bank` and fills a
:class:`~benchmarks.model.Measurement`; the implementations differ, the workloads do not."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

from benchmarks.config import Sizes
from benchmarks.model import Bank, Measurement

OPENING = 1_000_000  # large enough that no transfer is ever refused for lack of funds


def account_ids(count: int, prefix: str = "bench-account") -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(count)]


def _timed_loop(count: int, op: Callable[[int], None]) -> tuple[float, list[int]]:
    latencies: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    for i in range(count):
        t0 = clock()
        op(i)
        latencies.append(clock() - t0)
    return (clock() - start) / 1e9, latencies


def _check_accounts(
    bank: Bank, accounts: Sequence[str], expected_total: int, expected_events: int
) -> dict[str, bool]:
    total = 0
    events = 0
    contiguous = True
    for account in accounts:
        balance, versions = bank.inspect(account)
        total += balance
        events += len(versions)
        contiguous = contiguous and versions == list(range(1, len(versions) + 1))
    return {
        "money_conserved": total == expected_total,
        "versions_contiguous": contiguous,
        "event_count": events == expected_events,
    }


def deposits(bank: Bank, sizes: Sizes, m: Measurement) -> None:
    """Single-stream commands: read one account, decide, append one event."""
    rng = random.Random(sizes.seed)
    accounts = account_ids(sizes.accounts)
    bank.open_accounts(accounts, OPENING)
    count = sizes.warmup + sizes.deposits
    plan = [(rng.choice(accounts), rng.randint(1, 100)) for _ in range(count)]
    for account, amount in plan[: sizes.warmup]:
        bank.deposit(account, amount)
    timed = plan[sizes.warmup :]
    m.seconds, m.latencies_ns = _timed_loop(len(timed), lambda i: bank.deposit(*timed[i]))
    m.ops = len(timed)
    total = OPENING * len(accounts) + sum(amount for _, amount in plan)
    m.checks = _check_accounts(bank, accounts, total, len(accounts) + len(plan))


def transfer_plan(
    rng: random.Random, accounts: Sequence[str], count: int
) -> list[tuple[str, str, int]]:
    plan: list[tuple[str, str, int]] = []
    for _ in range(count):
        source, target = rng.sample(accounts, 2)
        plan.append((source, target, rng.randint(1, 10)))
    return plan


def transfers(bank: Bank, sizes: Sizes, m: Measurement) -> None:
    """Two-stream commands: read both accounts, decide, append to both atomically."""
    rng = random.Random(sizes.seed)
    accounts = account_ids(sizes.accounts)
    bank.open_accounts(accounts, OPENING)
    plan = transfer_plan(rng, accounts, sizes.warmup + sizes.transfers)
    for source, target, amount in plan[: sizes.warmup]:
        bank.transfer(source, target, amount)
    timed = plan[sizes.warmup :]

    def one(i: int) -> None:
        bank.transfer(*timed[i])

    m.seconds, m.latencies_ns = _timed_loop(len(timed), one)
    m.ops = len(timed)
    events = len(accounts) + 2 * len(plan)
    m.checks = _check_accounts(bank, accounts, OPENING * len(accounts), events)


def contention(bank: Bank, sizes: Sizes, m: Measurement) -> None:
    """Several threads of transfers on few accounts: conflicts, retries, and the checks."""
    accounts = account_ids(sizes.contention_accounts)
    bank.open_accounts(accounts, OPENING)
    threads = sizes.contention_threads
    per_thread = max(1, sizes.contention_transfers // threads)
    plans = [
        transfer_plan(random.Random(sizes.seed + t), accounts, per_thread) for t in range(threads)
    ]
    latencies: list[list[int]] = [[] for _ in range(threads)]
    retries = [0] * threads
    failures = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        clock = time.perf_counter_ns
        barrier.wait()
        for source, target, amount in plans[t]:
            t0 = clock()
            try:
                retries[t] += bank.transfer(source, target, amount)
            except Exception:
                failures[t] += 1
                continue
            latencies[t].append(clock() - t0)

    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    m.seconds = time.perf_counter() - start
    m.latencies_ns = [value for chunk in latencies for value in chunk]
    m.ops = len(m.latencies_ns)
    m.retries = sum(retries)
    m.failures = sum(failures)
    m.checks = _check_accounts(bank, accounts, OPENING * len(accounts), len(accounts) + 2 * m.ops)
    m.checks["no_failed_commands"] = m.failures == 0


def rebuild(bank: Bank, sizes: Sizes, m: Measurement) -> None:
    """One command on a long stream: the fold is the cost (events folded per second)."""
    account = "bench-long-0001"
    bank.seed_stream(account, sizes.rebuild_events)
    folded_total = 0
    latencies: list[int] = []
    bank.rebuild(account)  # warm-up (also warms the page cache)
    for _ in range(sizes.rebuild_repeats):
        t0 = time.perf_counter_ns()
        folded = bank.rebuild(account)
        latencies.append(time.perf_counter_ns() - t0)
        folded_total += folded
    m.seconds = sum(latencies) / 1e9
    m.latencies_ns = latencies
    m.ops = folded_total
    expected_events = sizes.rebuild_events + 1 + sizes.rebuild_repeats
    balance, versions = bank.inspect(account)
    m.checks = {
        "versions_contiguous": versions == list(range(1, expected_events + 1)),
        "money_conserved": balance == expected_events,
        "folded_all": folded_total
        == sum(sizes.rebuild_events + 1 + r for r in range(sizes.rebuild_repeats)),
    }


def batch_append(bank: Bank, sizes: Sizes, m: Measurement) -> None:
    """One ``append`` call carrying many events for one stream (events per second)."""
    latencies: list[int] = []
    bank.prepare_batch("bench-batch-warmup", min(100, sizes.batch_events))()
    for r in range(sizes.batch_repeats):
        call = bank.prepare_batch(f"bench-batch-{r:04d}", sizes.batch_events)
        t0 = time.perf_counter_ns()
        call()
        latencies.append(time.perf_counter_ns() - t0)
    m.seconds = sum(latencies) / 1e9
    m.latencies_ns = latencies
    m.ops = sizes.batch_events * sizes.batch_repeats
    ok = True
    for r in range(sizes.batch_repeats):
        _, versions = bank.inspect(f"bench-batch-{r:04d}")
        ok = ok and versions == list(range(1, sizes.batch_events + 1))
    m.checks = {"versions_contiguous": ok}


def read_all(bank: Bank, sizes: Sizes, m: Measurement) -> None:
    """Read the whole global log in position order, page by page (events per second)."""
    bank.seed_log(sizes.read_events, sizes.read_stream_events)
    bank.read_page(0, sizes.read_page)  # warm-up
    latencies: list[int] = []
    after, total, ordered = 0, 0, True
    clock = time.perf_counter_ns
    start = clock()
    while True:
        t0 = clock()
        last, count = bank.read_page(after, sizes.read_page)
        latencies.append(clock() - t0)
        if count == 0:
            break
        ordered = ordered and last > after
        after = last
        total += count
    m.seconds = (clock() - start) / 1e9
    m.latencies_ns = latencies
    m.ops = total
    m.checks = {"read_every_event": total == sizes.read_events, "position_order": ordered}


WORKLOAD_FUNCTIONS: dict[str, Callable[[Bank, Sizes, Measurement], None]] = {
    "deposits": deposits,
    "transfers": transfers,
    "contention": contention,
    "rebuild": rebuild,
    "batch_append": batch_append,
    "read_all": read_all,
}
