"""Run the selected workloads on the selected stores, every implementation side by side."""

from __future__ import annotations

import gc
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import report
from benchmarks.backends import (
    PostgresStatus,
    Workspace,
    drop_postgres_schema,
    make_factory,
    probe_postgres,
)
from benchmarks.config import IMPLS, LATENCY_LABELS, UNITS, Sizes
from benchmarks.machine import CpuMeter, describe
from benchmarks.model import Measurement, Skip
from benchmarks.workloads import WORKLOAD_FUNCTIONS

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_cell(
    workload: str,
    store: str,
    impl: str,
    sizes: Sizes,
    workspace: Workspace,
    pg: PostgresStatus,
    log: Log = _stderr,
) -> Measurement:
    """Measure one (workload, store, implementation) cell on fresh storage."""
    m = Measurement(
        workload, store, impl, unit=UNITS[workload], latency_label=LATENCY_LABELS[workload]
    )
    try:
        factory = make_factory(impl, store, workspace, pg, workload)
    except Skip as skip:
        text = str(skip)
        m.status = "n/a" if text.startswith("n/a") else "skipped"
        m.note = text.removeprefix("n/a: ")
        return m
    gc.collect()
    try:
        bank = factory()
    except Exception as exc:
        m.status, m.note = "error", f"setup failed: {type(exc).__name__}: {exc}"
        log(traceback.format_exc())
        return m
    try:
        WORKLOAD_FUNCTIONS[workload](bank, sizes, m)
    except Exception as exc:
        m.status, m.note = "error", f"{type(exc).__name__}: {exc}"
        log(traceback.format_exc())
    finally:
        try:
            bank.close()
        except Exception as exc:  # a failed close must not hide the measurement
            log(f"close failed: {exc!r}")
    return m


def run(
    sizes: Sizes,
    workloads: Sequence[str],
    stores: Sequence[str],
    *,
    quick: bool,
    out_dir: str,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Run everything, write the results files and return the JSON document."""
    meter = CpuMeter()
    pg = probe_postgres() if "postgres" in stores else PostgresStatus(url="", notes=[])
    for note in pg.notes:
        log(f"note: {note}")
    workspace = Workspace()
    measurements: list[Measurement] = []
    try:
        for workload in workloads:
            for store in stores:
                rounds: dict[str, list[Measurement]] = {impl: [] for impl in IMPLS}
                for r in range(max(1, sizes.rounds)):
                    # Interleave the implementations, rotating who goes first, so that load
                    # from elsewhere on the machine falls on all of them alike.
                    order = IMPLS[r % len(IMPLS) :] + IMPLS[: r % len(IMPLS)]
                    for impl in order:
                        if rounds[impl] and rounds[impl][-1].status != "ok":
                            continue  # skipped, n/a or failed: do not try again
                        m = run_cell(workload, store, impl, sizes, workspace, pg, log)
                        rounds[impl].append(m)
                        log(_progress(m, r))
                measurements += [Measurement.median_of(rounds[impl]) for impl in IMPLS]
    finally:
        workspace.cleanup()
        if pg.reachable:
            try:
                drop_postgres_schema()
            except Exception as exc:
                log(f"could not drop the benchmark schema: {exc!r}")
    rows = report.comparisons(measurements)
    document: dict[str, Any] = {
        "suite": "eventcore-benchmarks",
        "format": 1,
        "quick": quick,
        "workloads": list(workloads),
        "stores": list(stores),
        "sizes": sizes.as_dict(),
        "machine": describe(pg.server_version),
        "cpu": meter.report(),
        "postgres": {
            "url": pg.url or None,
            "reachable": pg.reachable,
            "eventcore_store": pg.store_importable,
        },
        "notes": list(pg.notes),
        "results": [m.to_json() for m in measurements],
        "comparisons": rows,
        "goals": report.goals(rows),
    }
    failed = [m for m in measurements if m.status == "error"]
    for m in failed:
        document["notes"].append(f"{m.workload}/{m.store}/{m.impl} failed: {m.note}")
    paths = report.write(document, out_dir)
    for kind, path in paths.items():
        log(f"wrote {kind}: {path}")
    return document


def _progress(m: Measurement, round_index: int) -> str:
    head = f"{m.workload:>12} {m.store:>8} {m.impl:>13} #{round_index + 1}: "
    if m.status != "ok":
        return head + f"{m.status} ({m.note})"
    rate = m.ops_per_s or 0.0
    lat = m.latency_ms() or {}
    checks = "ok" if all(m.checks.values()) else f"CHECK FAILED {m.checks}"
    extra = "" if m.retries is None else f", retries {m.retries}, failures {m.failures}"
    return (
        head + f"{rate:>12,.0f} {m.unit}/s  p50 {lat.get('p50', 0):.3f} ms "
        f"p99 {lat.get('p99', 0):.3f} ms{extra}  checks {checks}"
    )
