"""The workloads of the side-by-side table. Each drives a :class:`~benchmarks.model.Bank` and
fills a :class:`~benchmarks.model.Measurement`; the implementations differ, the workloads do
not.

Command workloads (``deposits``, ``transfers``, ``batch_append``) get fresh storage every
round. The read workloads share a data set seeded once per implementation and store
(:class:`Dataset`): ``batch`` is written in large appends (a 10,000-event stream, then
streams of 1,000 events, one append each), ``commands`` one event per append, round-robin
over a few streams, each append with its own metadata — the way commands write a log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


def check_accounts(
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
    m.checks = check_accounts(bank, accounts, total, len(accounts) + len(plan))


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
    m.checks = check_accounts(bank, accounts, OPENING * len(accounts), events)


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


COMMAND_WORKLOADS: dict[str, Callable[[Bank, Sizes, Measurement], None]] = {
    "deposits": deposits,
    "transfers": transfers,
    "batch_append": batch_append,
}


# -- the seeded read workloads -------------------------------------------------------------


@dataclass
class Dataset:
    """What one bank's seeded data holds now (rebuilds append, so it grows)."""

    kind: str  # batch | commands
    long_stream: str  # the stream rebuild works on
    long_events: int  # its length
    total: int  # events in the log

    @classmethod
    def seed(cls, bank: Bank, kind: str, sizes: Sizes) -> Dataset:
        if kind == "batch":
            long_stream = "bench-long-0001"
            rebuild_events = min(sizes.rebuild_events, sizes.read_events)
            bank.seed_stream(long_stream, rebuild_events)
            bank.seed_log(sizes.read_events - rebuild_events, sizes.read_stream_events)
            return cls(kind, long_stream, rebuild_events, sizes.read_events)
        streams = [f"bench-cmd-{i:04d}" for i in range(sizes.cmd_streams)]
        per_stream = sizes.cmd_stream_events
        bank.seed_commands(streams, per_stream)
        return cls(kind, streams[0], per_stream, per_stream * len(streams))


def rebuild(bank: Bank, sizes: Sizes, m: Measurement, data: Dataset) -> None:
    """Commands on a long stream: reading and folding it is the cost (events folded/s)."""
    folded_ok = True
    latencies: list[int] = []
    folded_total = 0
    for _ in range(sizes.rebuild_repeats):
        t0 = time.perf_counter_ns()
        folded = bank.rebuild(data.long_stream)
        latencies.append(time.perf_counter_ns() - t0)
        folded_ok = folded_ok and folded == data.long_events
        folded_total += folded
        data.long_events += 1
        data.total += 1
    m.seconds = sum(latencies) / 1e9
    m.latencies_ns = latencies
    m.ops = folded_total
    balance, versions = bank.inspect(data.long_stream)
    m.checks = {
        "folded_all": folded_ok,
        "versions_contiguous": versions == list(range(1, data.long_events + 1)),
        "money_conserved": balance == data.long_events,
    }


def read_all(bank: Bank, sizes: Sizes, m: Measurement, data: Dataset) -> None:
    """Read the whole global log in position order, page by page (events per second)."""
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
    m.checks = {"read_every_event": total == data.total, "position_order": ordered}


def catch_up(bank: Bank, sizes: Sizes, m: Measurement, data: Dataset) -> None:
    """Project the whole log from position 0 with a counting projector (events per second)."""
    t0 = time.perf_counter_ns()
    applied = bank.catch_up(sizes.read_page)
    elapsed = time.perf_counter_ns() - t0
    m.seconds = elapsed / 1e9
    m.latencies_ns = [elapsed]
    m.ops = applied
    m.checks = {"applied_every_event": applied == data.total}


SEEDED_WORKLOADS: dict[str, Callable[[Bank, Sizes, Measurement, Dataset], None]] = {
    "rebuild": rebuild,
    "rebuild_cmd": rebuild,
    "read_all": read_all,
    "read_all_cmd": read_all,
    "catch_up": catch_up,
    "catch_up_cmd": catch_up,
}
