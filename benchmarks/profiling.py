"""cProfile of EventCore: where the time of a transfer, a rebuild, a batched append, a
global read (of batch- and of command-written data) and a catch-up goes, on SQLite (and on
PostgreSQL when it is reachable). Only the measured part is profiled (setup is not), and
each case also runs once without the profiler for the honest time.

``python -m benchmarks profile`` writes ``profile_<store>_<workload>.txt`` into the results
directory (with ``--dump``, also the ``.prof`` files for pstats or snakeviz);
``benchmarks/PROFILE.md`` discusses them.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import sys
import time
from collections.abc import Callable, Sequence

from benchmarks.backends import (
    Workspace,
    drop_postgres_schema,
    probe_postgres,
    reset_postgres_schema,
)
from benchmarks.config import POSTGRES_SCHEMA, Sizes, postgres_url
from benchmarks.impl_eventcore import EVENTS, EventCoreBank
from benchmarks.workloads import OPENING, account_ids, transfer_plan


def _bank(store: str, workspace: Workspace, label: str) -> EventCoreBank:
    if store == "postgres":
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        reset_postgres_schema()
        config = PostgresConfig(postgres_url(), schema=POSTGRES_SCHEMA)
        return EventCoreBank(PostgresEventStore(config, events=list(EVENTS)))
    from eventcore import SqliteEventStore

    path = workspace.sqlite_path(f"profile-{label}")
    return EventCoreBank(SqliteEventStore(path, events=list(EVENTS), synchronous="FULL"))


def _transfers(bank: EventCoreBank, sizes: Sizes) -> tuple[Callable[[], None], int]:
    rng = random.Random(sizes.seed)
    accounts = account_ids(sizes.accounts)
    bank.open_accounts(accounts, OPENING)
    plan = transfer_plan(rng, accounts, sizes.warmup + sizes.transfers)
    for source, target, amount in plan[: sizes.warmup]:
        bank.transfer(source, target, amount)
    plan = plan[sizes.warmup :]

    def work() -> None:
        for source, target, amount in plan:
            bank.transfer(source, target, amount)

    return work, len(plan)


def _rebuild(bank: EventCoreBank, sizes: Sizes) -> tuple[Callable[[], None], int]:
    bank.seed_stream("bench-long-0001", sizes.rebuild_events)
    bank.rebuild("bench-long-0001")

    def work() -> None:
        for _ in range(sizes.rebuild_repeats):
            bank.rebuild("bench-long-0001")

    return work, sizes.rebuild_repeats


def _batch(bank: EventCoreBank, sizes: Sizes) -> tuple[Callable[[], None], int]:
    calls = [bank.prepare_batch(f"bench-batch-{r}", sizes.batch_events) for r in range(3)]

    def work() -> None:
        for call in calls:
            call()

    return work, len(calls)


def _read_all(bank: EventCoreBank, sizes: Sizes) -> tuple[Callable[[], None], int]:
    bank.seed_log(sizes.read_events, sizes.read_stream_events)

    def work() -> None:
        after = 0
        while True:
            after, count = bank.read_page(after, sizes.read_page)
            if count == 0:
                return

    return work, 1


def _read_all_cmd(bank: EventCoreBank, sizes: Sizes) -> tuple[Callable[[], None], int]:
    """The global read of a log written one command per append (own metadata each)."""
    streams = [f"bench-cmd-{i:04d}" for i in range(sizes.cmd_streams)]
    bank.seed_commands(streams, sizes.cmd_stream_events)

    def work() -> None:
        after = 0
        while True:
            after, count = bank.read_page(after, sizes.read_page)
            if count == 0:
                return

    return work, 1


def _catch_up_cmd(bank: EventCoreBank, sizes: Sizes) -> tuple[Callable[[], None], int]:
    """Projection catch-up (counting projector) over the same command-written log."""
    streams = [f"bench-cmd-{i:04d}" for i in range(sizes.cmd_streams)]
    bank.seed_commands(streams, sizes.cmd_stream_events)

    def work() -> None:
        bank.catch_up(sizes.read_page)

    return work, 1


CASES: dict[str, Callable[[EventCoreBank, Sizes], tuple[Callable[[], None], int]]] = {
    "transfers": _transfers,
    "rebuild": _rebuild,
    "batch_append": _batch,
    "read_all": _read_all,
    "read_all_cmd": _read_all_cmd,
    "catch_up_cmd": _catch_up_cmd,
}


def profile(
    sizes: Sizes,
    out_dir: str,
    stores: Sequence[str] = ("sqlite", "postgres"),
    *,
    dump: bool = False,
) -> None:
    """Profile each case on each store and write the reports."""
    os.makedirs(out_dir, exist_ok=True)
    if "postgres" in stores:
        pg = probe_postgres()
        if not (pg.reachable and pg.store_importable):
            for note in pg.notes:
                print(f"note: {note}", file=sys.stderr)
            stores = [s for s in stores if s != "postgres"]
    workspace = Workspace()
    try:
        for store in stores:
            for name, prepare in CASES.items():
                _profile_case(store, name, prepare, sizes, workspace, out_dir, dump)
    finally:
        workspace.cleanup()
        if "postgres" in stores:
            drop_postgres_schema()


def _profile_case(
    store: str,
    name: str,
    prepare: Callable[[EventCoreBank, Sizes], tuple[Callable[[], None], int]],
    sizes: Sizes,
    workspace: Workspace,
    out_dir: str,
    dump: bool,
) -> None:
    # Once without the profiler (the honest time), once under it, on fresh storage.
    bank = _bank(store, workspace, name)
    try:
        work, ops = prepare(bank, sizes)
        start = time.perf_counter()
        work()
        plain = time.perf_counter() - start
    finally:
        bank.close()
    bank = _bank(store, workspace, name + "-profiled")
    try:
        work, ops = prepare(bank, sizes)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(work)
        profiled = time.perf_counter() - start
    finally:
        bank.close()
    stem = os.path.join(out_dir, f"profile_{store}_{name}")
    if dump:
        profiler.dump_stats(stem + ".prof")
    text = io.StringIO()
    text.write(
        f"# {name} on {store}: {ops} operations, {plain:.3f} s unprofiled "
        f"({plain / ops * 1e3:.3f} ms each), {profiled:.3f} s under cProfile\n\n"
    )
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs()
    text.write("## by own time (tottime)\n")
    stats.sort_stats("tottime").print_stats(30)
    text.write("## by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(30)
    with open(stem + ".txt", "w", encoding="utf-8") as f:
        f.write(text.getvalue())
    print(f"wrote {stem}.txt ({plain:.3f} s unprofiled)", file=sys.stderr)
