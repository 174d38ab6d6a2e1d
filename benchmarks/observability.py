"""What the instrumentation hooks cost: transfers with them bypassed, present but off (the
``otel`` extra absent or ``instrument()`` not called), and on, in the same run.

``python -m benchmarks observability [--quick] [--stores memory,sqlite,postgres] [--out DIR]``
writes ``observability.json`` and ``observability.md``. Goal (issue 13): transfers with the
hooks present but off within 3% of transfers with the hooks bypassed.

The three variants, in rounds (the order rotated each round, so that a slow minute of the
shared machine falls on all of them; each variant gets fresh storage every round):

- ``bare``: the code paths without the hooks — the shell's inner function called directly,
  the databases' reads and writes patched to their inner bodies (what the library did
  before the hooks were added);
- ``off``: the public ``execute`` as shipped, nothing instrumented (one module-level name
  tested per hook);
- ``on``: ``instrument()`` with the OpenTelemetry SDK when it is installed (spans created
  and dropped, metrics aggregated in an in-memory reader), else the API's no-op providers.

Reported: per store, the median time per transfer of each variant and the median of the
per-round ratios ``off / bare`` and ``on / bare`` with their spread. Wall-clock figures on a
shared machine move by a few percent between rounds; ``python -m benchmarks.instructions
--root OTHER_TREE`` counts instructions for the stable comparison (see book/performance.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from benchmarks.config import postgres_url
from benchmarks.impl_eventcore import EVENTS, Deposited, Transfer
from benchmarks.stats import round_ratios
from benchmarks.workloads import account_ids, transfer_plan
from eventcore import RetryPolicy, StreamId, execute
from eventcore.store import EventStore

VARIANTS: Final = ("bare", "off", "on")
STORES: Final = ("memory", "sqlite", "postgres")
SCHEMA: Final = "eventcore_bench_observability"
GOAL: Final = 1.03
ACCOUNTS: Final = 50
OPENING: Final = 1_000_000
RETRY: Final = RetryPolicy(max_retries=50, base_delay=0.0005, max_delay=0.02, jitter=0.5)
SIZES: Final = {"memory": 4_000, "sqlite": 400, "postgres": 400}
QUICK_SIZES: Final = {"memory": 300, "sqlite": 30, "postgres": 30}
WARMUP: Final = 50


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _open(kind: str, folder: str, label: str) -> EventStore:
    if kind == "memory":
        from eventcore import InMemoryEventStore

        return InMemoryEventStore(events=list(EVENTS))
    if kind == "sqlite":
        from eventcore import SqliteEventStore

        return SqliteEventStore(os.path.join(folder, f"{label}.db"), events=EVENTS)
    import psycopg

    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    return PostgresEventStore(PostgresConfig(postgres_url(), schema=SCHEMA), events=EVENTS)


@contextlib.contextmanager
def _bypassed() -> Iterator[Callable[..., Any]]:
    """The hooks out of the way: the databases' read/write are their inner bodies, and
    commands go to the shell's inner function (benchmark-only access to private names)."""
    from eventcore import execution
    from eventcore.stores.sqlite.database import SqliteDatabase

    patched: list[tuple[type, str, Any]] = [
        (SqliteDatabase, "read", SqliteDatabase._read),
        (SqliteDatabase, "write", SqliteDatabase._write),
    ]
    with contextlib.suppress(ImportError):
        from eventcore.stores.postgres.database import PostgresDatabase

        write = PostgresDatabase._write

        def pg_write(self: Any, operation: str, plan: Any) -> Any:
            self.refuse_inside_transaction(operation)
            return write(self, operation, plan)

        patched += [(PostgresDatabase, "read", PostgresDatabase._read)]
        patched += [(PostgresDatabase, "write", pg_write)]
    saved = [(cls, name, cls.__dict__[name]) for cls, name, _ in patched]
    for cls, name, inner in patched:
        setattr(cls, name, inner)
    inner_execute = execution._execute

    def run(store: Any, command: Any) -> Any:
        return inner_execute(store, command, RETRY, None, time.sleep, None, None, None)

    try:
        yield run
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)


@contextlib.contextmanager
def _variant(name: str) -> Iterator[tuple[Callable[..., Any], str]]:
    if name == "bare":
        with _bypassed() as run:
            yield run, "hooks bypassed"
        return
    if name == "off":
        yield (lambda store, command: execute(store, command, retry=RETRY)), "hooks off"
        return
    from eventcore.observability import instrument, uninstrument

    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        instrument()
        what = "OpenTelemetry API, no SDK (no-op providers)"
    else:
        instrument(
            tracer_provider=TracerProvider(),
            meter_provider=MeterProvider([InMemoryMetricReader()]),
        )
        what = "OpenTelemetry SDK (spans dropped, metrics in memory)"
    try:
        yield (lambda store, command: execute(store, command, retry=RETRY)), what
    finally:
        uninstrument()


def _transfers(
    kind: str, variant: str, count: int, folder: str, label: str, warmup: int = WARMUP
) -> tuple[float, str]:
    """Seconds per transfer over ``count`` timed transfers (after ``warmup`` more)."""
    store = _open(kind, folder, label)
    try:
        accounts = [StreamId(a) for a in account_ids(ACCOUNTS)]
        store.append({a: 0 for a in accounts}, [Deposited(a, OPENING) for a in accounts])
        plan = transfer_plan(random.Random(15), [str(a) for a in accounts], warmup + count)
        commands = [Transfer(source=StreamId(s), target=StreamId(t), amount=n) for s, t, n in plan]
        with _variant(variant) as (run, what):
            for command in commands[:warmup]:
                run(store, command)
            start = time.perf_counter()
            for command in commands[warmup:]:
                run(store, command)
            elapsed = time.perf_counter() - start
        return elapsed / count, what
    finally:
        store.close()


def measure(
    kind: str, count: int, rounds: int, folder: str, warmup: int = WARMUP
) -> dict[str, Any]:
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    what: dict[str, str] = {}
    for r in range(rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
        for variant in order:
            seconds, what[variant] = _transfers(
                kind, variant, count, folder, f"{variant}-{r}", warmup
            )
            times[variant].append(seconds)
        _stderr(
            f"observability {kind} round {r + 1}/{rounds}: "
            + ", ".join(f"{v} {times[v][-1] * 1e6:.1f} us" for v in VARIANTS)
        )
    off = round_ratios(times["off"], times["bare"])
    on = round_ratios(times["on"], times["bare"])
    return {
        "store": kind,
        "transfers": count,
        "rounds": rounds,
        "us_per_transfer": {v: round(statistics.median(t) * 1e6, 2) for v, t in times.items()},
        "variants": what,
        "off_vs_bare": off,
        "on_vs_bare": on,
        "goal_met": off["ratio"] is not None and off["ratio"] <= GOAL,
    }


def render(rows: Sequence[dict[str, Any]], quick: bool) -> str:
    lines = [
        "# Instrumentation overhead (issue 13)",
        "",
        "Transfers (two streams read, decided, appended atomically) per store; time per "
        "transfer, median of the rounds; ratios: median of per-round ratios (min-max). "
        f"Goal: hooks off within {GOAL - 1:.0%} of hooks bypassed.",
        "",
    ]
    if quick:
        lines += ["**--quick: a smoke test, not for ratios.**", ""]
    lines += [
        "| store | transfers x rounds | bypassed (us) | off (us) | on (us) | off / bypassed "
        "| on / bypassed | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        us, off, on = row["us_per_transfer"], row["off_vs_bare"], row["on_vs_bare"]
        lines.append(
            f"| {row['store']} | {row['transfers']} x {row['rounds']} | {us['bare']} | "
            f"{us['off']} | {us['on']} | {off['ratio']} ({off['ratio_min']}-{off['ratio_max']}) "
            f"| {on['ratio']} ({on['ratio_min']}-{on['ratio_max']}) | "
            f"{'met' if row['goal_met'] else 'NOT met'} |"
        )
    if rows:
        lines += ["", f"On: {rows[0]['variants'].get('on', '?')}."]
    return "\n".join(lines) + "\n"


def run_observability(
    *,
    stores: Sequence[str],
    quick: bool,
    out_dir: str,
    rounds: int | None = None,
    sizes: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Measure ``stores`` and write observability.json/.md into ``out_dir``; ``sizes``:
    timed transfers per store (the default, or the quick one)."""
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    warmup = 5 if quick else WARMUP
    rounds = rounds or (1 if quick else 5)
    rows = []
    with tempfile.TemporaryDirectory(prefix="eventcore-bench-observability-") as folder:
        for kind in stores:
            rows.append(measure(kind, sizes[kind], rounds, folder, warmup))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "observability.json"), "w", encoding="utf-8") as f:
        json.dump({"quick": quick, "goal": GOAL, "rows": rows}, f, indent=2)
    with open(os.path.join(out_dir, "observability.md"), "w", encoding="utf-8") as f:
        f.write(render(rows, quick))
    if "postgres" in stores:
        import psycopg

        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    return rows
