"""Focused timings of EventCore's hot paths, steadier than the workloads on a busy machine.

Each figure is the best of several repeats of CPU-bound work (SQLite ``:memory:``, the
in-memory store), so other processes on the machine disturb it less than a wall-clock
workload; the PostgreSQL figures are wall-clock and count the statements sent per command.

    python -m benchmarks.hotpaths                  # this tree
    python benchmarks/hotpaths.py --root /tmp/old  # another checkout's eventcore (before/after)

``benchmarks/PROFILE.md`` quotes its output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _best(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def measure(postgres_url: str | None) -> dict[str, float]:
    from benchmarks.impl_eventcore import EVENTS, Deposited, Transfer
    from eventcore import InMemoryEventStore, SqliteEventStore, StreamId, execute
    from eventcore.stores.sqlite import COLUMNS
    from eventcore.stores.sqlite.plans import rows_plan

    out: dict[str, float] = {}
    a, b = StreamId("acc-a"), StreamId("acc-b")
    select = f"SELECT {COLUMNS} FROM eventcore_events WHERE stream_id IN (?, ?) ORDER BY position"

    # Rows of one batched write (the shape of rebuild and read_all): one metadata, one time.
    batch = SqliteEventStore(":memory:", events=list(EVENTS))
    batch.append({a: 0}, [Deposited(a, 1) for _ in range(1000)])
    rows = batch.database.read("bench", rows_plan(select, (a, a)))
    out["decode row, batch-written (us)"] = _best(lambda: batch._decode(rows), 20) / len(rows) * 1e6

    # Rows written by commands: every command stamps its own metadata and time.
    by_commands = SqliteEventStore(":memory:", events=list(EVENTS))
    by_commands.append({a: 0, b: 0}, [Deposited(a, 10**6), Deposited(b, 10**6)])
    for i in range(40):
        source, target = (a, b) if i % 2 else (b, a)
        execute(by_commands, Transfer(source=source, target=target, amount=1))
    rows = by_commands.database.read("bench", rows_plan(select, (a, b)))
    out["decode row, command-written (us)"] = (
        _best(lambda: by_commands._decode(rows), 200) / len(rows) * 1e6
    )

    def transfer_cost(store: Any) -> float:
        accounts = [StreamId(f"acc-{i}") for i in range(4)]
        store.append({s: 0 for s in accounts}, [Deposited(s, 10**9) for s in accounts])
        rng = random.Random(1)

        def one() -> None:
            source, target = rng.sample(accounts, 2)
            execute(store, Transfer(source=source, target=target, amount=1))

        for _ in range(80):  # streams of about 40 events, as in the transfers workload
            one()
        return _best(one, 50, 5) * 1e6

    out["transfer, SQLite :memory: (us/command)"] = transfer_cost(
        SqliteEventStore(":memory:", events=list(EVENTS))
    )
    out["transfer, memory (us/command)"] = transfer_cost(InMemoryEventStore(events=list(EVENTS)))

    def append_cost(make: Callable[[], Any]) -> float:
        events = [Deposited(a, 1) for _ in range(1000)]
        return _best(lambda: make().append({a: 0}, events), 5) / len(events) * 1e6

    out["batched append, SQLite :memory: (us/event)"] = append_cost(
        lambda: SqliteEventStore(":memory:", events=list(EVENTS))
    )
    out["batched append, memory (us/event)"] = append_cost(
        lambda: InMemoryEventStore(events=list(EVENTS))
    )
    if postgres_url:
        out.update(_postgres(postgres_url))
    return out


def _postgres(url: str) -> dict[str, float]:
    import psycopg

    from benchmarks.impl_eventcore import EVENTS, Deposited, Transfer
    from eventcore import StreamId, execute
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    schema = "eventcore_hotpaths"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    except psycopg.Error as exc:
        print(f"note: PostgreSQL skipped ({exc})", file=sys.stderr)
        return {}
    store = PostgresEventStore(PostgresConfig(url, schema=schema), events=list(EVENTS))
    accounts = [StreamId(f"acc-{i}") for i in range(10)]
    store.append({s: 0 for s in accounts}, [Deposited(s, 10**9) for s in accounts])
    rng = random.Random(1)
    sent = [0]
    real_execute = psycopg.Connection.execute

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return real_execute(self, *args, **kwargs)

    def transfers(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            source, target = rng.sample(accounts, 2)
            execute(store, Transfer(source=source, target=target, amount=1))
        return (time.perf_counter() - start) / n

    try:
        transfers(50)
        psycopg.Connection.execute = counting  # type: ignore[method-assign]
        seconds = transfers(200)
    finally:
        psycopg.Connection.execute = real_execute  # type: ignore[method-assign]
        store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return {
        "transfer, PostgreSQL (ms/command, wall)": seconds * 1e3,
        "statements per transfer, PostgreSQL": sent[0] / 200,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="import eventcore from this checkout instead")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    if args.root:
        sys.path.insert(0, os.path.abspath(args.root))
    sys.path.append(HERE)  # the benchmarks package, when run as a script
    from benchmarks.config import postgres_url

    figures = measure(None if args.no_postgres else postgres_url())
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:10.2f}")
    print(json.dumps(figures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
