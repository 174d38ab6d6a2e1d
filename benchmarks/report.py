"""Turn measurements into ``results.json``, ``results.md`` and ``chart.png``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from benchmarks.config import (
    DESCRIPTIONS,
    IMPLS,
    LATENCY_LABELS,
    STORES,
    UNITS,
    WORKLOADS,
    Sizes,
)
from benchmarks.model import Measurement

IMPL_LABELS = {"eventcore": "EventCore", "eventsourcing": "eventsourcing 9.5", "raw": "raw driver"}
STORE_LABELS = {"memory": "memory", "sqlite": "SQLite (FULL)", "postgres": "PostgreSQL"}

# (workload, stores, comparison, threshold): the goals from the benchmark issue.
GOALS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("deposits", ("sqlite", "postgres"), "vs_eventsourcing", 3.0),
    ("deposits", ("sqlite", "postgres"), "vs_raw", 0.5),
    ("transfers", ("sqlite", "postgres"), "vs_eventsourcing", 3.0),
    ("transfers", ("sqlite", "postgres"), "vs_raw", 0.5),
    ("rebuild", ("memory", "sqlite", "postgres"), "vs_eventsourcing", 5.0),
    ("read_all", ("sqlite",), "eventcore", 150_000.0),
)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 3)


def comparisons(measurements: Sequence[Measurement]) -> list[dict[str, Any]]:
    """One row per (workload, store): our rate and the ratios to the others."""
    by_key = {(m.workload, m.store, m.impl): m for m in measurements}
    rows = []
    for workload in WORKLOADS:
        for store in STORES:
            cells = {impl: by_key.get((workload, store, impl)) for impl in IMPLS}
            if all(c is None for c in cells.values()):
                continue
            rates = {impl: (c.ops_per_s if c is not None else None) for impl, c in cells.items()}
            shown = {k: (None if v is None else round(v, 1)) for k, v in rates.items()}
            ours = cells["eventcore"]
            rows.append(
                {
                    "workload": workload,
                    "store": store,
                    "unit": UNITS[workload],
                    "eventcore": shown["eventcore"],
                    "eventsourcing": shown["eventsourcing"],
                    "raw": shown["raw"],
                    "vs_eventsourcing": _ratio(rates["eventcore"], rates["eventsourcing"]),
                    "vs_raw": _ratio(rates["eventcore"], rates["raw"]),
                    "eventcore_latency_ms": None if ours is None else ours.latency_ms(),
                    "eventcore_retries": None if ours is None else ours.retries,
                    "eventcore_checks": None if ours is None else dict(ours.checks),
                }
            )
    return rows


def goals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    found = {(r["workload"], r["store"]): r for r in rows}
    out = []
    for workload, stores, key, threshold in GOALS:
        for store in stores:
            row = found.get((workload, store))
            if row is None:
                continue
            actual = row.get(key)
            if key == "eventcore":
                text = f"{workload} on {store}: at least {threshold:,.0f} {UNITS[workload]}/s"
            elif key == "vs_raw":
                text = f"{workload} on {store}: at least {threshold:.0%} of the raw driver"
            else:
                text = f"{workload} on {store}: at least {threshold:g}x eventsourcing"
            out.append(
                {
                    "goal": text,
                    "workload": workload,
                    "store": store,
                    "measure": key,
                    "target": threshold,
                    "actual": actual,
                    "met": None if actual is None else actual >= threshold,
                }
            )
    return out


def _rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}"


def _times(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:.0%}" if percent else f"{value:.2f}×"


def _latency(lat: dict[str, float] | None) -> str:
    if not lat:
        return "—"
    return " / ".join(_ms(lat[k]) for k in ("p50", "p95", "p99"))


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _checks(checks: dict[str, bool] | None) -> str:
    if not checks:
        return "—"
    failed = [name for name, ok in checks.items() if not ok]
    return "ok" if not failed else "FAILED: " + ", ".join(failed)


def markdown(document: dict[str, Any]) -> str:
    sizes = Sizes(**document["sizes"])
    machine = document["machine"]
    cpu = document["cpu"]
    lines = [
        "# EventCore benchmark results",
        "",
        f"Run {machine['date']}{' (--quick)' if document['quick'] else ''} on "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GiB, "
        f"{machine['os']}; {machine['python']}, SQLite {machine['sqlite']}, "
        f"PostgreSQL {machine['postgresql'] or 'not available'}, "
        f"psycopg {machine['psycopg'] or '—'}, eventsourcing {machine['eventsourcing'] or '—'}.",
        "",
        _cpu_sentence(cpu),
    ]
    if document["results"]:
        lines += _store_tables(document, sizes)
    if document.get("projections"):
        from benchmarks.projections_report import markdown as projections_markdown

        lines += projections_markdown(document["projections"])
    if document["notes"]:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in document["notes"]]
    return "\n".join(lines) + "\n"


def _store_tables(document: dict[str, Any], sizes: Sizes) -> list[str]:
    lines = [
        "",
        "Rates are per second (the unit is in the first column); latencies are p50 / p95 / p99 "
        "in milliseconds per command (per rebuild, per append call, per page for the last "
        "three workloads). Ratios are EventCore's rate divided by the other's. "
        f"Each cell ran {sizes.rounds} time(s), the implementations interleaved; the round "
        "with the median rate is shown (every round's rate is in results.json), and the "
        "checks held in every round.",
        "",
        "| Workload | Store | EventCore | p50 / p95 / p99 ms | eventsourcing | ÷ eventsourcing "
        "| raw driver | ÷ raw | retries | checks |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in document["comparisons"]:
        lines.append(
            f"| {row['workload']} ({row['unit']}/s) | {STORE_LABELS[row['store']]} "
            f"| {_rate(row['eventcore'])} | {_latency(row['eventcore_latency_ms'])} "
            f"| {_rate(row['eventsourcing'])} | {_times(row['vs_eventsourcing'])} "
            f"| {_rate(row['raw'])} | {_times(row['vs_raw'], percent=True)} "
            f"| {'—' if row['eventcore_retries'] is None else row['eventcore_retries']} "
            f"| {_checks(row['eventcore_checks'])} |"
        )
    lines += ["", "## Workloads", ""]
    for workload in WORKLOADS:
        lines.append(f"- **{workload}**: {DESCRIPTIONS[workload].format(**sizes.as_dict())}")
    lines += ["", "## Goals", "", "| Goal | Measured | Met |", "|---|--:|---|"]
    for goal in document["goals"]:
        actual = goal["actual"]
        if actual is None:
            shown = "—"
        elif goal["measure"] == "eventcore":
            shown = f"{actual:,.0f}/s"
        elif goal["measure"] == "vs_raw":
            shown = f"{actual:.0%}"
        else:
            shown = f"{actual:.2f}×"
        met = {True: "yes", False: "**no**", None: "—"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {shown} | {met} |")
    lines += [
        "",
        "## Every cell",
        "",
        "| Workload | Store | Implementation | rate/s | p50 / p95 / p99 ms | latency per "
        "| retries | failures | checks | note |",
        "|---|---|---|--:|--:|---|--:|--:|---|---|",
    ]
    for r in document["results"]:
        lines.append(
            f"| {r['workload']} | {r['store']} | {IMPL_LABELS[r['impl']]} "
            f"| {_rate(r['ops_per_s'])} "
            f"| {_latency(r['latency_ms'])} | {r['latency_per']} "
            f"| {'—' if r['retries'] is None else r['retries']} "
            f"| {'—' if r['failures'] is None else r['failures']} "
            f"| {_checks(r['checks'])} | {r['status'] if r['status'] != 'ok' else ''}"
            f"{': ' if r['note'] and r['status'] != 'ok' else ''}{r['note']} |"
        )
    return lines


def _cpu_sentence(cpu: dict[str, Any]) -> str:
    parts = [f"The run took {cpu['wall_seconds']} s."]
    if "machine_cpu_busy" in cpu:
        rest = cpu.get("other_cpu_share", 0.0)
        parts.append(
            f"Machine CPU busy {cpu['machine_cpu_busy']:.0%} of all cores: this process "
            f"{cpu['this_process_cpu_share']:.0%}, everything else {rest:.0%} (the PostgreSQL "
            "server's work for this run included)."
        )
        top = [p for p in cpu.get("top_other_processes", []) if p["cpu_share"] >= 0.01]
        if rest >= 0.25 or cpu.get("other_processes_cpu_share", 0.0) >= 0.05:
            seen = ", ".join(f"{p['name']} {p['cpu_share']:.0%}" for p in top)
            parts.append(
                "**Other work was competing for the CPU during this run**"
                + (f" (long-lived processes seen: {seen})" if seen else "")
                + "; figures are lower and noisier than on a quiet machine."
            )
    return " ".join(parts)


def chart(document: dict[str, Any], path: str) -> str | None:
    """Draw one panel per workload (log scale); return a note if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"chart skipped: matplotlib is not installed ({exc})"
    rows = document["comparisons"]
    projections = document.get("projections")
    store_rows = 2 if rows or not projections else 0
    nrows = store_rows + (1 if projections else 0)
    fig, axes = plt.subplots(nrows, 3, figsize=(15, 4.25 * nrows), squeeze=False)
    if projections:
        from benchmarks.projections_report import draw as draw_projections

        draw_projections(axes[-1], projections)
    colours = {"eventcore": "#1f77b4", "eventsourcing": "#ff7f0e", "raw": "#7f7f7f"}
    width = 0.26
    for ax, workload in zip(axes[:store_rows].flat, WORKLOADS[: 3 * store_rows], strict=True):
        wrows = [r for r in rows if r["workload"] == workload]
        stores = [r["store"] for r in wrows]
        for i, impl in enumerate(IMPLS):
            xs = [k + (i - 1) * width for k in range(len(stores))]
            values = [r[impl] or 0.0 for r in wrows]
            bars = ax.bar(xs, values, width, label=IMPL_LABELS[impl], color=colours[impl])
            for bar, value in zip(bars, values, strict=True):
                if value > 0:
                    ax.annotate(
                        f"{value:,.0f}",
                        (bar.get_x() + bar.get_width() / 2, value),
                        ha="center",
                        va="bottom",
                        fontsize=6.5,
                        rotation=90,
                        xytext=(0, 2),
                        textcoords="offset points",
                    )
        ax.set_xticks(range(len(stores)))
        ax.set_xticklabels([STORE_LABELS[s] for s in stores])
        ax.set_yscale("log")
        ax.set_title(f"{workload}  ({UNITS[workload]}/s, log scale)", fontsize=10)
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.margins(y=0.25)
    if store_rows:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    machine = document["machine"]
    title = "EventCore vs eventsourcing vs raw driver" if store_rows else "EventCore projections"
    fig.suptitle(
        f"{title} — {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['date'][:10]}{' (quick)' if document['quick'] else ''}",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def rerender(out_dir: str) -> dict[str, str]:
    """Redraw ``results.md`` and ``chart.png`` from an existing ``results.json``."""
    with open(os.path.join(out_dir, "results.json"), encoding="utf-8") as f:
        document: dict[str, Any] = json.load(f)
    for r in document["results"]:
        if r["status"] != "ok":
            r["latency_per"] = LATENCY_LABELS.get(r["workload"], r["latency_per"])
    return write(document, out_dir)


def write(document: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Write the three files; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "json": os.path.join(out_dir, "results.json"),
        "markdown": os.path.join(out_dir, "results.md"),
        "chart": os.path.join(out_dir, "chart.png"),
    }
    note = chart(document, paths["chart"])
    if note is not None:
        document["notes"].append(note)
        del paths["chart"]
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(markdown(document))
    return paths
