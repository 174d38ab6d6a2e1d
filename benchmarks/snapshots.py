"""The snapshot workload: one deposit on a stream of 10, 1,000, 10,000 and 100,000 events,
with and without command-state snapshots, on SQLite and PostgreSQL.

``python -m benchmarks snapshots [--quick] [--stores sqlite,postgres] [--out DIR]`` writes
``snapshots.json`` and ``snapshots.md``. Goal: with snapshots, a deposit on the
100,000-event stream costs at most 1.5x one on the 10-event stream.

Streams are built with batched appends (1,000 events per append). Without snapshots each
length runs on fresh storage. With snapshots, the streams of every length live in one fresh
store and the timed deposits go round-robin over them (10, 1,000, 10,000, 100,000, 10, ...),
so that a slow minute of a shared machine lands on every length alike: the goal compares
lengths, and timing them one after the other made its ratio swing between 0.6x and 1.8x
from run to run on the same machine. Warm-up deposits come first (the first one with
snapshots replays in full and saves the snapshot), then the timed deposits; the median
latency is reported. With snapshots the default policy applies (``every=100``), so the timed
runs include the periodic re-saves.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from benchmarks.config import postgres_url
from benchmarks.impl_eventcore import EVENTS, Deposit, Deposited
from eventcore import StreamId, execute
from eventcore.snapshots import SnapshotPolicy, SnapshotStore, snapshot_store_for
from eventcore.store import EventStore

LENGTHS: Final = (10, 1_000, 10_000, 100_000)
QUICK_LENGTHS: Final = (10, 1_000, 10_000)
SNAPSHOT_STORES: Final = ("sqlite", "postgres")
SCHEMA: Final = "eventcore_bench_snapshots"
GOAL: Final = 1.5
BATCH: Final = 1_000

Log = Callable[[str], None]


class SnapshotDeposit(Deposit):
    """The benchmark's deposit with the default snapshot policy (every 100 events)."""

    snapshot = SnapshotPolicy()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fill(store: EventStore, account: StreamId, count: int) -> None:
    """Append ``count`` deposits to ``account`` in batches of 1,000."""
    version = store.stream_version(account)
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        store.append({account: version}, [Deposited(account, 1)] * size)
        version += size


def _timed(
    store: EventStore, command: Deposit, snapshots: SnapshotStore | None, n: int
) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        execute(store, command, snapshots=snapshots)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _open(kind: str, folder: str, label: str) -> EventStore:
    if kind == "sqlite":
        from eventcore import SqliteEventStore

        return SqliteEventStore(os.path.join(folder, f"{label}.db"), events=EVENTS)
    import psycopg

    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    return PostgresEventStore(PostgresConfig(postgres_url(), schema=SCHEMA), events=EVENTS)


def _drop_schema() -> None:
    import psycopg

    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def _row(
    kind: str, length: int, snapshots: bool, latencies: list[float], fill_s: float
) -> dict[str, Any]:
    return {
        "store": kind,
        "events": length,
        "snapshots": snapshots,
        "deposits": len(latencies),
        "median_ms": statistics.median(latencies),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
        "fill_s": fill_s,
        "interleaved": snapshots,
    }


def measure(kind: str, length: int, deposits: int, folder: str) -> dict[str, Any]:
    """Without snapshots: time ``deposits`` deposits on a fresh stream of ``length`` events."""
    store = _open(kind, folder, f"{kind}-{length}-plain")
    try:
        account = StreamId("bench-snapshot-account")
        t0 = time.perf_counter()
        fill(store, account, length)
        fill_s = time.perf_counter() - t0
        command = Deposit(account=account, amount=1)
        _timed(store, command, None, 2)  # warm-up
        latencies = _timed(store, command, None, deposits)
        final = store.stream_version(account)
        assert final == length + 2 + deposits, (final, length, deposits)
        return _row(kind, length, False, latencies, fill_s)
    finally:
        store.close()


def measure_interleaved(
    kind: str, lengths: Sequence[int], deposits: int, folder: str
) -> list[dict[str, Any]]:
    """With snapshots: ``deposits`` deposits on each of several streams of one store, one
    per length, taken in turns."""
    store = _open(kind, folder, f"{kind}-snap")
    try:
        accounts = {n: StreamId(f"bench-snapshot-{n}") for n in lengths}
        fill_s: dict[int, float] = {}
        for length, account in accounts.items():
            t0 = time.perf_counter()
            fill(store, account, length)
            fill_s[length] = time.perf_counter() - t0
        snapshots = snapshot_store_for(store)
        commands = {n: SnapshotDeposit(account=a, amount=1) for n, a in accounts.items()}
        for command in commands.values():  # warm-up: the first deposit saves the snapshot
            _timed(store, command, snapshots, 2)
        latencies: dict[int, list[float]] = {n: [] for n in lengths}
        for _ in range(deposits):
            for length, command in commands.items():
                latencies[length].extend(_timed(store, command, snapshots, 1))
        rows = []
        for length, account in accounts.items():
            final = store.stream_version(account)
            assert final == length + 2 + deposits, (final, length, deposits)
            rows.append(_row(kind, length, True, latencies[length], fill_s[length]))
        return rows
    finally:
        store.close()


def run_snapshots(
    *,
    stores: Sequence[str] = SNAPSHOT_STORES,
    lengths: Sequence[int] = LENGTHS,
    deposits: int = 200,
    plain_budget_events: int = 2_000_000,
    out_dir: str | None = None,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Run every cell; write ``snapshots.json`` and ``snapshots.md`` to ``out_dir``.

    Without snapshots every deposit replays the whole stream, so those cells time fewer
    deposits on long streams (about ``plain_budget_events`` events folded per cell).
    """
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eventcore-snapbench-") as folder:
        for kind in stores:
            if kind == "postgres" and not _postgres_reachable(notes):
                continue
            for length in lengths:
                n = max(3, min(deposits, plain_budget_events // max(1, length)))
                row = measure(kind, length, n, folder)
                rows.append(row)
                log(
                    f"snapshots {kind:>8} {length:>7,} events without snapshots: "
                    f"median {row['median_ms']:.2f} ms over {n} deposits"
                )
            for row in measure_interleaved(kind, lengths, deposits, folder):
                rows.append(row)
                log(
                    f"snapshots {kind:>8} {row['events']:>7,} events    with snapshots: "
                    f"median {row['median_ms']:.2f} ms over {deposits} deposits (in turns)"
                )
            if kind == "postgres":
                _drop_schema()
    document = {
        "suite": "eventcore-snapshots",
        "format": 1,
        "lengths": list(lengths),
        "results": rows,
        "goals": goals(rows),
        "notes": notes,
    }
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "snapshots.json"), "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2)
        with open(os.path.join(out_dir, "snapshots.md"), "w", encoding="utf-8") as fh:
            fh.write(markdown(document))
        log(f"wrote {os.path.join(out_dir, 'snapshots.md')}")
    return document


def goals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per store: the longest stream's median with snapshots over the shortest one's."""
    out = []
    for kind in dict.fromkeys(r["store"] for r in rows):
        snap = sorted((r for r in rows if r["store"] == kind and r["snapshots"]), key=_events)
        if len(snap) < 2:
            continue
        ratio = snap[-1]["median_ms"] / snap[0]["median_ms"]
        out.append(
            {
                "store": kind,
                "short": snap[0]["events"],
                "long": snap[-1]["events"],
                "ratio": ratio,
                "goal": GOAL,
                "met": ratio <= GOAL,
            }
        )
    return out


def _events(row: dict[str, Any]) -> int:
    return int(row["events"])


def markdown(document: dict[str, Any]) -> str:
    """The results as a Markdown table (median ms per deposit)."""
    rows = document["results"]
    lines = [
        "| store | events in the stream | without snapshots (ms) | with snapshots (ms) "
        "| speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in dict.fromkeys(r["store"] for r in rows):
        for length in document["lengths"]:
            cells = {
                r["snapshots"]: r for r in rows if r["store"] == kind and r["events"] == length
            }
            if len(cells) < 2:
                continue
            plain, snap = cells[False]["median_ms"], cells[True]["median_ms"]
            lines.append(
                f"| {kind} | {length:,} | {plain:.2f} | {snap:.2f} | {plain / snap:.1f}x |"
            )
    lines.append("")
    for goal in document["goals"]:
        verdict = "met" if goal["met"] else "NOT met"
        lines.append(
            f"- {goal['store']}: with snapshots, {goal['long']:,} events cost "
            f"{goal['ratio']:.2f}x {goal['short']:,} events (goal <= {goal['goal']}x: {verdict})"
        )
    lines.extend(f"- note: {n}" for n in document["notes"])
    return "\n".join(lines) + "\n"


def _postgres_reachable(notes: list[str]) -> bool:
    try:
        import psycopg

        with psycopg.connect(postgres_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:
        notes.append(f"PostgreSQL skipped: {type(exc).__name__}: {str(exc).strip()[:200]}")
        return False
