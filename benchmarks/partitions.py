"""Partitioned projection catch-up on PostgreSQL: one worker against two (issue 15, goal 4).

``python -m benchmarks partitions [--quick] [--out DIR]`` writes ``partitions.json`` and
``partitions.md``. Goal: two worker processes catch up at least 1.7x faster than one.

The log: ``EVENTS`` events over 200 streams, on PostgreSQL (``EVENTCORE_POSTGRES_URL`` or the
default). The read model: a transactional projector that inserts one row per event into a
table, in the checkpoint's transaction (exactly once), the kind of read model worth
partitioning. ``Partitioning(2)``; one worker runs both partitions (two runner threads in one
process, as a :class:`~eventcore.projections.PartitionWorker` with both would), two workers
run one each, in two processes. Timed: from the moment every process has opened its store
until the last partition has caught up (process start-up and rebalancing are not timed).
Rounds interleave (1, 2, 1, 2, ...), the median of per-round ratios is reported with the
spread; ``--quick`` is one small round and not for ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Final

from benchmarks.config import postgres_url
from benchmarks.machine import describe

SCHEMA: Final = "eventcore_bench_partitions"
STREAMS: Final = 200
EVENTS: Final = 20_000
QUICK_EVENTS: Final = 2_000
ROUNDS: Final = 3
GOAL: Final = 1.7


def _store(url: str, schema: str) -> Any:
    from benchmarks.impl_eventcore import EVENTS as TYPES
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    return PostgresEventStore(PostgresConfig(url, schema=schema, pool_max=4), events=TYPES)


class Rows:
    """One row per event, in the checkpoint's transaction."""

    name = "rows"
    transactional = True

    def __init__(self, schema: str) -> None:
        self.sql = f"INSERT INTO {schema}.rm (position, stream_id) VALUES (%s, %s)"

    def apply(self, event: Any, tx: Any) -> None:
        tx.execute(self.sql, (event.position, str(event.stream_id)))


def worker(url: str, schema: str, indices: list[int]) -> None:
    """A worker process: open, say ready, wait for go, catch up ``indices``, say done."""
    from eventcore.projections import ProjectionConfig, run_projection
    from eventcore.projections.partitions import Partitioning, partition
    from eventcore.stores.postgres.projections import PostgresCheckpointStore

    store = _store(url, schema)
    config = ProjectionConfig(PostgresCheckpointStore(store), page_size=500)
    parts = Partitioning(2)
    store.head()  # the pool is open and warm
    print("ready", flush=True)
    sys.stdin.readline()
    projector = Rows(schema)
    threads = [
        threading.Thread(
            target=run_projection, args=(partition(projector, parts, i), store, config)
        )
        for i in indices
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("done", flush=True)
    store.close()


def _prepare(url: str, schema: str, events: int) -> int:
    """A fresh log of about ``events`` events (a whole number per stream); how many."""
    import psycopg

    from benchmarks.impl_eventcore import Deposited
    from eventcore import StreamId

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    store = _store(url, schema)
    per_stream = max(1, events // STREAMS)
    for s in range(STREAMS):
        sid = StreamId(f"account-{s}")
        store.append({sid: 0}, [Deposited(sid, 1) for _ in range(per_stream)])
    store.close()
    return per_stream * STREAMS


def _reset(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {schema}.rm")
        conn.execute(f"CREATE TABLE {schema}.rm (position bigint PRIMARY KEY, stream_id text)")
        conn.execute(f"DELETE FROM {schema}.checkpoints")


def _catch_up(url: str, schema: str, workers: int) -> float:
    _reset(url, schema)
    plan = [[0, 1]] if workers == 1 else [[0], [1]]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": here}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.partitions", "worker", url, schema]
            + [str(i) for i in indices],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for indices in plan
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "done"
        elapsed = time.perf_counter() - start
        for p in procs:
            if p.wait(60) != 0:
                raise RuntimeError(f"a worker failed with exit code {p.returncode}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return elapsed


def run_partitions(
    *,
    quick: bool,
    out_dir: str,
    url: str | None = None,
    schema: str = SCHEMA,
    events: int | None = None,
) -> dict[str, Any]:
    url = url or postgres_url()
    events = events or (QUICK_EVENTS if quick else EVENTS)
    rounds = 1 if quick else ROUNDS
    events = _prepare(url, schema, events)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in (1, 2):
            rates[workers].append(events / _catch_up(url, schema, workers))
    ratios = [two / one for one, two in zip(rates[1], rates[2], strict=True)]
    result = {
        "machine": describe(None),
        "events": events,
        "streams": STREAMS,
        "rounds": rounds,
        "quick": quick,
        "rate_1_worker": statistics.median(rates[1]),
        "rate_2_workers": statistics.median(rates[2]),
        "ratio": statistics.median(ratios),
        "ratio_spread": [min(ratios), max(ratios)],
        "goal": GOAL,
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "partitions.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(out_dir, "partitions.md"), "w") as f:
        f.write(markdown(result))
    print(markdown(result))
    if schema != SCHEMA:
        _drop(url, schema)
    return result


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def markdown(r: dict[str, Any]) -> str:
    met = "met" if r["ratio"] >= r["goal"] else "missed"
    note = " (quick run: one round, not for ratios)" if r["quick"] else ""
    lo, hi = r["ratio_spread"]
    return (
        f"## Partitioned catch-up on PostgreSQL{note}\n\n"
        f"{r['events']:,} events over {r['streams']} streams, a transactional projector "
        f"inserting one row per event, `Partitioning(2)`, {r['rounds']} interleaved rounds.\n\n"
        "| workers | events/s |\n|---|--:|\n"
        f"| 1 (both partitions) | {r['rate_1_worker']:,.0f} |\n"
        f"| 2 (one each) | {r['rate_2_workers']:,.0f} |\n\n"
        f"Two workers ÷ one: **{r['ratio']:.2f}x** ({lo:.2f}-{hi:.2f}); goal "
        f"{r['goal']}x: {met}.\n"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], sys.argv[3], [int(i) for i in sys.argv[4:]])
