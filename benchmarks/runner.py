"""Run the selected workloads and sections, every implementation side by side, in rounds.

Every cell runs ``sizes.rounds`` times; in round ``r`` the implementations run in the order
``IMPLS`` rotated by ``r``, so that load from elsewhere on the machine falls on all of them
alike and none always goes first. Command workloads get fresh storage every round; the read
workloads run on data seeded once per implementation and store (each implementation in its
own SQLite file or PostgreSQL schema, side by side), re-read every round.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import report
from benchmarks.backends import (
    PostgresStatus,
    Workspace,
    drop_postgres_schema,
    impl_schema,
    make_factory,
    probe_postgres,
)
from benchmarks.config import IMPLS, LATENCY_LABELS, SEEDED, UNITS, Sizes
from benchmarks.machine import CpuMeter, describe
from benchmarks.model import Bank, Measurement, Skip
from benchmarks.workloads import COMMAND_WORKLOADS, SEEDED_WORKLOADS, Dataset

Log = Callable[[str], None]

QUICK_WARNING = (
    "QUICK RUN: one round of small counts, to check that everything runs. Its ratios are NOT "
    "for comparing implementations or checking goals (a single round on a shared machine "
    "moves them by 2x); run without --quick for at least three interleaved rounds."
)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def rotated(items: Sequence[str], round_index: int) -> list[str]:
    """``items`` starting at ``round_index`` (mod its length): who goes first rotates."""
    k = round_index % len(items)
    return [*items[k:], *items[:k]]


def _new_measurement(workload: str, store: str, impl: str) -> Measurement:
    return Measurement(
        workload, store, impl, unit=UNITS[workload], latency_label=LATENCY_LABELS[workload]
    )


def _skip_or_factory(
    m: Measurement, impl: str, store: str, workspace: Workspace, pg: PostgresStatus, **kw: Any
) -> Callable[[], Bank] | None:
    """The cell's bank factory, or None with ``m`` marked skipped or n/a."""
    try:
        return make_factory(impl, store, workspace, pg, m.workload, **kw)
    except Skip as skip:
        text = str(skip)
        m.status = "n/a" if text.startswith("n/a") else "skipped"
        m.note = text.removeprefix("n/a: ")
        return None


def _settings(bank: Bank, m: Measurement, log: Log) -> None:
    try:
        m.settings = bank.settings()
    except Exception as exc:  # reading pragmas back must not fail a measurement
        log(f"could not read the settings back ({m.impl}/{m.store}): {exc!r}")


def run_cell(
    workload: str,
    store: str,
    impl: str,
    sizes: Sizes,
    workspace: Workspace,
    pg: PostgresStatus,
    log: Log = _stderr,
) -> Measurement:
    """Measure one command workload cell on fresh storage."""
    m = _new_measurement(workload, store, impl)
    factory = _skip_or_factory(m, impl, store, workspace, pg)
    if factory is None:
        return m
    gc.collect()
    try:
        bank = factory()
    except Exception as exc:
        m.status, m.note = "error", f"setup failed: {type(exc).__name__}: {exc}"
        log(traceback.format_exc())
        return m
    try:
        COMMAND_WORKLOADS[workload](bank, sizes, m)
        _settings(bank, m, log)
    except Exception as exc:
        m.status, m.note = "error", f"{type(exc).__name__}: {exc}"
        log(traceback.format_exc())
    finally:
        try:
            bank.close()
        except Exception as exc:  # a failed close must not hide the measurement
            log(f"close failed: {exc!r}")
    return m


def _command_workload(
    workload: str, store: str, sizes: Sizes, workspace: Workspace, pg: PostgresStatus, log: Log
) -> list[Measurement]:
    rounds: dict[str, list[Measurement]] = {impl: [] for impl in IMPLS}
    for r in range(max(1, sizes.rounds)):
        for impl in rotated(IMPLS, r):
            if rounds[impl] and rounds[impl][-1].status != "ok":
                continue  # skipped, n/a or failed: do not try again
            m = run_cell(workload, store, impl, sizes, workspace, pg, log)
            rounds[impl].append(m)
            log(_progress(m, r))
    return [Measurement.median_of(rounds[impl]) for impl in IMPLS]


class _Seeded:
    """One implementation's bank and data set for the seeded workloads of one store."""

    def __init__(self, impl: str) -> None:
        self.impl = impl
        self.bank: Bank | None = None
        self.data: Dataset | None = None
        self.status = "ok"
        self.note = ""
        self.seed_seconds = 0.0


def _seed_all(
    kind: str, store: str, sizes: Sizes, workspace: Workspace, pg: PostgresStatus, log: Log
) -> dict[str, _Seeded]:
    """A bank per implementation, each in its own storage, seeded with the ``kind`` data."""
    seeded: dict[str, _Seeded] = {}
    for impl in IMPLS:
        cell = seeded[impl] = _Seeded(impl)
        probe = _new_measurement("read_all" if kind == "batch" else "read_all_cmd", store, impl)
        factory = _skip_or_factory(probe, impl, store, workspace, pg, schema=impl_schema(impl))
        if factory is None:
            cell.status, cell.note = probe.status, probe.note
            continue
        try:
            t0 = time.perf_counter()
            cell.bank = factory()
            cell.data = Dataset.seed(cell.bank, kind, sizes)
            # Warm up: one page and one command on the long stream (it grows by one).
            cell.bank.read_page(0, sizes.read_page)
            cell.bank.rebuild(cell.data.long_stream)
            cell.data.long_events += 1
            cell.data.total += 1
            cell.seed_seconds = time.perf_counter() - t0
            log(
                f"{'seeded':>12} {store:>8} {impl:>13}: {kind} data, {cell.data.total:,} "
                f"events in {cell.seed_seconds:.1f} s"
            )
        except Exception as exc:
            cell.status, cell.note = "error", f"seeding failed: {type(exc).__name__}: {exc}"
            log(traceback.format_exc())
    return seeded


def _seeded_workloads(
    kind: str,
    workloads: Sequence[str],
    store: str,
    sizes: Sizes,
    workspace: Workspace,
    pg: PostgresStatus,
    log: Log,
) -> list[Measurement]:
    seeded = _seed_all(kind, store, sizes, workspace, pg, log)
    out: list[Measurement] = []
    try:
        for workload in workloads:
            rounds: dict[str, list[Measurement]] = {impl: [] for impl in IMPLS}
            for r in range(max(1, sizes.rounds)):
                for impl in rotated(IMPLS, r):
                    cell = seeded[impl]
                    if rounds[impl] and rounds[impl][-1].status != "ok":
                        continue
                    m = _new_measurement(workload, store, impl)
                    if cell.bank is None or cell.data is None:
                        m.status, m.note = cell.status, cell.note
                    else:
                        gc.collect()
                        try:
                            SEEDED_WORKLOADS[workload](cell.bank, sizes, m, cell.data)
                            _settings(cell.bank, m, log)
                        except Exception as exc:
                            m.status, m.note = "error", f"{type(exc).__name__}: {exc}"
                            log(traceback.format_exc())
                    rounds[impl].append(m)
                    log(_progress(m, r))
            out += [Measurement.median_of(rounds[impl]) for impl in IMPLS]
    finally:
        for cell in seeded.values():
            if cell.bank is not None:
                try:
                    cell.bank.close()
                except Exception as exc:
                    log(f"close failed: {exc!r}")
    return out


def measure_table(
    sizes: Sizes,
    workloads: Sequence[str],
    stores: Sequence[str],
    workspace: Workspace,
    pg: PostgresStatus,
    log: Log = _stderr,
) -> list[Measurement]:
    """Every selected workload of the side-by-side table on every selected store."""
    measurements: list[Measurement] = []
    for workload in workloads:
        if workload in COMMAND_WORKLOADS:
            for store in stores:
                measurements += _command_workload(workload, store, sizes, workspace, pg, log)
    for kind in ("batch", "commands"):
        chosen = [w for w in workloads if SEEDED.get(w) == kind]
        if not chosen:
            continue
        # read first, rebuild last: rebuilds append to the data set
        chosen.sort(key=lambda w: w.startswith("rebuild"))
        for store in stores:
            measurements += _seeded_workloads(kind, chosen, store, sizes, workspace, pg, log)
    order = {w: i for i, w in enumerate(workloads)}
    measurements.sort(key=lambda m: order[m.workload])
    return measurements


def run(
    sizes: Sizes,
    workloads: Sequence[str],
    stores: Sequence[str],
    *,
    quick: bool,
    out_dir: str,
    sections: Sequence[str] = (),
    modes: Sequence[str] = ("optimistic",),
    proj_sizes: Any = None,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Run everything, write the results files and return the JSON document."""
    if quick:
        log(QUICK_WARNING)
    meter = CpuMeter()
    pg = probe_postgres() if "postgres" in stores else PostgresStatus(url="", notes=[])
    for note in pg.notes:
        log(f"note: {note}")
    workspace = Workspace()
    document: dict[str, Any] = {
        "suite": "eventcore-benchmarks",
        "format": 2,
        "quick": quick,
        "ratios_valid": sizes.rounds >= 3,
        "warning": QUICK_WARNING if quick else None,
        "workloads": list(workloads),
        "sections": list(sections),
        "stores": list(stores),
        "sizes": sizes.as_dict(),
        "machine": describe(pg.server_version),
        "postgres": {
            "url": pg.url or None,
            "reachable": pg.reachable,
            "eventcore_store": pg.store_importable,
        },
        "notes": list(pg.notes),
    }
    measurements: list[Measurement] = []
    try:
        measurements = measure_table(sizes, workloads, stores, workspace, pg, log)
        if "contention" in sections:
            from benchmarks.contention import run_contention

            document["contention"] = run_contention(sizes, stores, modes, workspace, pg, log)
        if "instructions" in sections:
            from benchmarks.instructions import run_section

            document["instructions"] = run_section(quick=quick, log=log)
        if "memory" in sections:
            from benchmarks.memory import run_memory

            document["memory"] = run_memory(sizes, stores, workspace, pg, quick=quick, log=log)
    finally:
        workspace.cleanup()
        if pg.reachable:
            for schema in ("eventcore_bench", *(impl_schema(i) for i in IMPLS)):
                try:
                    drop_postgres_schema(schema)
                except Exception as exc:
                    log(f"could not drop the benchmark schema {schema}: {exc!r}")
    if "projections" in sections:
        from benchmarks.projections import ProjectionSizes, run_projections

        section = run_projections(proj_sizes or ProjectionSizes(), stores, pg=pg, log=log)
        document["projections"] = section
        document["notes"] += section["notes"]
    document["cpu"] = meter.report()
    document["results"] = [m.to_json() for m in measurements]
    document["comparisons"] = report.comparisons(measurements)
    from benchmarks.goals import goals

    document["goals"] = goals(document)
    for m in measurements:
        if m.status == "error":
            document["notes"].append(f"{m.workload}/{m.store}/{m.impl} failed: {m.note}")
    paths = report.write(document, out_dir)
    for kind, path in paths.items():
        log(f"wrote {kind}: {path}")
    if quick:
        log(QUICK_WARNING)
    return document


def _progress(m: Measurement, round_index: int) -> str:
    head = f"{m.workload:>12} {m.store:>8} {m.impl:>13} #{round_index + 1}: "
    if m.status != "ok":
        return head + f"{m.status} ({m.note})"
    rate = m.ops_per_s or 0.0
    lat = m.latency_ms() or {}
    checks = "ok" if all(m.checks.values()) else f"CHECK FAILED {m.checks}"
    return (
        head + f"{rate:>12,.0f} {m.unit}/s  p50 {lat.get('p50', 0):.3f} ms "
        f"p99 {lat.get('p99', 0):.3f} ms  checks {checks}"
    )
