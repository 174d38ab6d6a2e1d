"""Memory (issue 15, goal 6): how much peak RSS grows while EventCore catches up a long log
and while it runs one command on a long stream without snapshots.

Each figure comes from a fresh interpreter (``python -m benchmarks.memory CASE STORE
WHERE``), so nothing the benchmark did before is counted: the child imports everything,
opens the store and warms up (one small read or command), collects garbage, reads its RSS,
resets the kernel's peak (``/proc/self/clear_refs``), does the work, and reports the peak
(``VmHWM``) minus the RSS before. Where the peak cannot be reset, ``ru_maxrss`` is used
instead (then a higher peak during start-up hides part of the growth: the method is
recorded).

- ``catch-up``: ``run_projection`` of a counting projector (in-memory checkpoint, pages of
  1,000) over a log of ``mem_log_events`` events (goal: under 50 MiB for 1,000,000);
- ``command``: one ``execute`` of a deposit on a stream of ``mem_stream_events`` events,
  no snapshots (goal: under 10 MiB for 100,000);
- ``command-eventsourcing``: the same command with the ``eventsourcing`` library (SQLite,
  for comparison).

The logs are written by the parent in batches of 1,000 events per stream and append (the
size makes one append per event impractical here; the read and decode paths are the same).
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final
from uuid import UUID

HERE: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA: Final = "eventcore_bench_mem"
CATCH_UP_GOAL_MIB: Final = 50.0
COMMAND_GOAL_MIB: Final = 10.0
LONG_STREAM: Final = "bench-mem-long"
BATCH: Final = 1_000

Log = Callable[[str], None]


# -- the child --------------------------------------------------------------------------


def _status_kib() -> dict[str, int]:
    with open("/proc/self/status", encoding="ascii") as f:
        text = f.read()
    out = {}
    for key in ("VmRSS", "VmHWM"):
        found = re.search(key + r":\s+(\d+) kB", text)
        if found:
            out[key] = int(found.group(1))
    return out


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _open_store(store: str, where: str) -> Any:
    from benchmarks.impl_eventcore import EVENTS

    if store == "sqlite":
        from eventcore import SqliteEventStore

        return SqliteEventStore(where, events=list(EVENTS))
    from benchmarks.config import postgres_url
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    return PostgresEventStore(PostgresConfig(postgres_url(), schema=where), events=list(EVENTS))


def _measure(work: Callable[[], int]) -> dict[str, Any]:
    gc.collect()
    before = _status_kib()
    reset = _reset_peak()
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    units = work()
    seconds = time.perf_counter() - t0
    after = _status_kib()
    if reset and "VmHWM" in after:
        peak, method = after["VmHWM"], "VmHWM after clear_refs"
    else:
        peak, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
        peak = max(peak, max_before)
    rss = before.get("VmRSS", max_before)
    return {
        "units": units,
        "seconds": round(seconds, 3),
        "rss_before_mib": round(rss / 1024, 2),
        "peak_mib": round(peak / 1024, 2),
        "growth_mib": round(max(0, peak - rss) / 1024, 2),
        "method": method,
    }


def child(case: str, store: str, where: str) -> dict[str, Any]:
    """Run one case in this (fresh) interpreter and return its figures."""
    if case == "command-eventsourcing":
        from benchmarks.impl_eventsourcing import EventsourcingBank

        bank = EventsourcingBank(
            {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": where}
        )
        with open(where + ".ids", encoding="ascii") as f:
            bank._ids.update({name: UUID(text) for name, text in json.load(f).items()})
        bank.rebuild("bench-mem-warm")
        return _measure(lambda: bank.rebuild(LONG_STREAM))
    from benchmarks.impl_eventcore import Deposit
    from eventcore import StreamId, execute

    es = _open_store(store, where)
    if case == "command":
        execute(es, Deposit(account=StreamId("bench-mem-warm"), amount=1))

        def command() -> int:
            result = execute(es, Deposit(account=StreamId(LONG_STREAM), amount=1))
            return int(result.stream_versions[StreamId(LONG_STREAM)]) - 1

        return _measure(command)
    from benchmarks.projections import CountingProjector
    from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, run_projection

    es.read_all(after=0, limit=10)

    def catch_up() -> int:
        projector = CountingProjector("bench-mem")
        run_projection(projector, es, ProjectionConfig(InMemoryCheckpointStore(), page_size=BATCH))
        return projector.count

    return _measure(catch_up)


# -- the parent -------------------------------------------------------------------------


def _run_child(case: str, store: str, where: str) -> dict[str, Any]:
    code = "import sys; from benchmarks.memory import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, case, store, where],
        capture_output=True,
        text=True,
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": HERE},
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case} on {store} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _build(store_obj: Any, stream_events: int, log_events: int) -> float:
    """The long stream, a short warm-up stream, then the log; returns seconds."""
    from benchmarks.impl_eventcore import Deposited
    from eventcore import StreamId

    t0 = time.perf_counter()
    for name, count in ((LONG_STREAM, stream_events), ("bench-mem-warm", 10)):
        sid = StreamId(name)
        for version in range(0, count, 10 * BATCH):
            chunk = min(10 * BATCH, count - version)
            store_obj.append({sid: version}, [Deposited(sid, 1)] * chunk)
    index = written = 0
    rest = max(0, log_events - stream_events - 10)
    while written < rest:
        sid = StreamId(f"bench-mem-{index:05d}")
        chunk = min(BATCH, rest - written)
        store_obj.append({sid: 0}, [Deposited(sid, 1)] * chunk)
        written += chunk
        index += 1
    return time.perf_counter() - t0


def _eventsourcing_reference(path: str, events: int) -> None:
    from benchmarks.impl_eventsourcing import EventsourcingBank

    bank = EventsourcingBank({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path})
    bank.seed_stream(LONG_STREAM, events)
    bank.seed_stream("bench-mem-warm", 10)
    with open(path + ".ids", "w", encoding="ascii") as f:
        json.dump({k: str(v) for k, v in bank._ids.items()}, f)
    bank.close()


def run_memory(
    sizes: Any,
    stores: Sequence[str],
    workspace: Any,
    pg: Any,
    *,
    quick: bool,
    log: Log,
) -> dict[str, Any]:
    """The ``memory`` section of ``results.json``."""
    from benchmarks.backends import drop_postgres_schema, reset_postgres_schema

    rows: list[dict[str, Any]] = []

    def record(
        case: str, store: str, impl: str, events: int, fn: Callable[[], dict[str, Any]]
    ) -> None:
        row: dict[str, Any] = {"case": case, "store": store, "impl": impl, "events": events}
        try:
            row.update(status="ok", **fn())
        except Exception as exc:
            row.update(status="error", note=f"{type(exc).__name__}: {exc}")
            log(traceback.format_exc())
        rows.append(row)
        shown = f"{row['growth_mib']} MiB" if row["status"] == "ok" else row["note"][:200]
        log(f"{'memory':>12} {store:>8} {impl:>13} {case} ({events:,} events): {shown}")

    for store in [s for s in stores if s in ("sqlite", "postgres")]:
        if store == "postgres" and not (pg.reachable and pg.store_importable):
            rows.append(
                {
                    "case": "catch-up",
                    "store": store,
                    "impl": "eventcore",
                    "status": "skipped",
                    "note": "no PostgreSQL",
                }
            )
            continue
        try:
            if store == "sqlite":
                where = workspace.sqlite_path("memory")
            else:
                reset_postgres_schema(SCHEMA)
                where = SCHEMA
            es = _open_store(store, where)
            build_s = _build(es, sizes.mem_stream_events, sizes.mem_log_events)
            total = es.head()
            es.close()
            log(f"{'memory':>12} {store:>8}: log of {total:,} events written in {build_s:.0f} s")
        except Exception as exc:
            rows.append(
                {
                    "case": "catch-up",
                    "store": store,
                    "impl": "eventcore",
                    "status": "error",
                    "note": f"building the log: {exc}",
                }
            )
            log(traceback.format_exc())
            continue
        record("catch-up", store, "eventcore", total, partial(_run_child, "catch-up", store, where))
        record(
            "command",
            store,
            "eventcore",
            sizes.mem_stream_events,
            partial(_run_child, "command", store, where),
        )
        if store == "postgres":
            drop_postgres_schema(SCHEMA)
    if "sqlite" in stores:
        path = workspace.sqlite_path("memory-eventsourcing")

        def reference() -> dict[str, Any]:
            _eventsourcing_reference(path, sizes.mem_stream_events)
            return _run_child("command-eventsourcing", "sqlite", path)

        record("command", "sqlite", "eventsourcing", sizes.mem_stream_events, reference)
    return {
        "log_events": sizes.mem_log_events,
        "stream_events": sizes.mem_stream_events,
        "goal_sizes": sizes.mem_log_events >= 1_000_000 and sizes.mem_stream_events >= 100_000,
        "goals_mib": {"catch-up": CATCH_UP_GOAL_MIB, "command": COMMAND_GOAL_MIB},
        "rows": rows,
    }


def main(argv: list[str]) -> int:
    case, store, where = argv
    print(json.dumps(child(case, store, where)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
