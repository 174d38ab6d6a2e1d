"""Turn a run into ``results.json``, ``results.md`` and ``chart.png``."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.config import (
    DATA_LABELS,
    DESCRIPTIONS,
    IMPLS,
    LATENCY_LABELS,
    SEEDED,
    STORES,
    UNITS,
    WORKLOADS,
    Sizes,
)
from benchmarks.model import Measurement
from benchmarks.stats import round_ratios

IMPL_LABELS = {"eventcore": "EventCore", "eventsourcing": "eventsourcing 9.5", "raw": "raw driver"}
STORE_LABELS = {"memory": "memory", "sqlite": "SQLite (FULL)", "postgres": "PostgreSQL"}


def _median_rate(m: Measurement | None) -> float | None:
    if m is None or m.status != "ok" or not m.round_rates:
        return None if m is None else m.ops_per_s
    return round(statistics.median(m.round_rates), 1)


def comparisons(measurements: Sequence[Measurement]) -> list[dict[str, Any]]:
    """One row per (workload, store): the median rates and the per-round ratios."""
    by_key = {(m.workload, m.store, m.impl): m for m in measurements}
    rows = []
    for workload in WORKLOADS:
        for store in STORES:
            cells = {impl: by_key.get((workload, store, impl)) for impl in IMPLS}
            if all(c is None for c in cells.values()):
                continue
            ours = cells["eventcore"]
            row: dict[str, Any] = {
                "workload": workload,
                "data": SEEDED.get(workload),
                "store": store,
                "unit": UNITS[workload],
                **{impl: _median_rate(c) for impl, c in cells.items()},
                "eventcore_latency_ms": None if ours is None else ours.latency_ms(),
                "eventcore_checks": None if ours is None else dict(ours.checks),
            }
            for impl in ("eventsourcing", "raw"):
                theirs = cells[impl]
                ok = ours is not None and theirs is not None
                ok = ok and ours.status == "ok" and theirs.status == "ok"  # type: ignore[union-attr]
                stats = round_ratios(
                    ours.round_rates if ok else [],  # type: ignore[union-attr]
                    theirs.round_rates if ok else [],  # type: ignore[union-attr]
                )
                row[f"vs_{impl}"] = stats["ratio"]
                row[f"vs_{impl}_spread"] = [stats["ratio_min"], stats["ratio_max"]]
            rows.append(row)
    return rows


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def times(
    value: float | None, spread: Sequence[float | None] | None = None, *, percent: bool = False
) -> str:
    if value is None:
        return "—"
    fmt = "{:.0%}" if percent else "{:.2f}×"
    text = fmt.format(value)
    if spread and spread[0] is not None and spread[1] is not None and spread[0] != spread[1]:
        low, high = (fmt.format(x) for x in spread)
        text += f" ({low.rstrip('×%')}–{high})"
    return text


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


def checks_text(checks: dict[str, bool] | None) -> str:
    if not checks:
        return "—"
    failed = [name for name, ok in checks.items() if not ok]
    return "ok" if not failed else "FAILED: " + ", ".join(failed)


def workload_label(workload: str) -> str:
    kind = SEEDED.get(workload)
    base = workload.removesuffix("_cmd")
    return f"{base}, {DATA_LABELS[kind]}" if kind else workload


def markdown(document: dict[str, Any]) -> str:
    from benchmarks import report_sections as sections

    sizes = Sizes(**document["sizes"])
    lines = ["# EventCore benchmark results", ""]
    if document.get("warning"):
        lines += [f"> **{document['warning']}**", ""]
    lines += [sections.machine_sentence(document), "", sections.cpu_sentence(document["cpu"])]
    if document.get("goals"):
        lines += sections.goals_table(document["goals"])
    if document["results"]:
        lines += _store_tables(document, sizes)
    if document.get("contention"):
        lines += sections.contention_table(document["contention"], document.get("quick", False))
    if document.get("instructions"):
        lines += sections.instructions_table(document["instructions"])
    if document.get("memory"):
        lines += sections.memory_table(document["memory"])
    if document.get("projections"):
        from benchmarks.projections_report import markdown as projections_markdown

        lines += projections_markdown(document["projections"])
    if document["results"]:
        lines += _every_cell(document)
    if document["notes"]:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in document["notes"]]
    return "\n".join(lines) + "\n"


def _store_tables(document: dict[str, Any], sizes: Sizes) -> list[str]:
    from benchmarks.report_sections import settings_sentence

    lines = [
        "",
        "## EventCore, eventsourcing and the raw driver",
        "",
        "Rates are per second (the unit is in the first column), the median of the rounds; "
        "latencies are EventCore's p50 / p95 / p99 in milliseconds of its median round. Ratios "
        "are EventCore's rate divided by the other's: the median of the per-round ratios, "
        f"with their spread (min–max) over {sizes.rounds} interleaved round(s). Checks held "
        "in every round. Every implementation does the same work (benchmarks/README.md).",
        "",
        "| Workload | Store | EventCore | p50 / p95 / p99 ms | eventsourcing | ÷ eventsourcing "
        "| raw driver | ÷ raw | checks |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in document["comparisons"]:
        lines.append(
            f"| {workload_label(row['workload'])} ({row['unit']}/s) "
            f"| {STORE_LABELS[row['store']]} "
            f"| {rate(row['eventcore'])} | {_latency(row['eventcore_latency_ms'])} "
            f"| {rate(row['eventsourcing'])} "
            f"| {times(row['vs_eventsourcing'], row['vs_eventsourcing_spread'])} "
            f"| {rate(row['raw'])} | {times(row['vs_raw'], row['vs_raw_spread'], percent=True)} "
            f"| {checks_text(row['eventcore_checks'])} |"
        )
    lines += ["", settings_sentence(document["results"]), "", "### Workloads", ""]
    described = sizes.describe()
    for workload in WORKLOADS:
        if workload in document["workloads"]:
            lines.append(f"- **{workload}**: {DESCRIPTIONS[workload].format(**described)}")
    return lines


def _every_cell(document: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Every cell",
        "",
        "| Workload | Store | Implementation | median rate/s | rounds | p50 / p95 / p99 ms "
        "| latency per | checks | note |",
        "|---|---|---|--:|---|--:|---|---|---|",
    ]
    for r in document["results"]:
        rounds = ", ".join(f"{x:,.0f}" for x in r["round_rates"]) or "—"
        note = r["note"] if r["status"] == "ok" else f"{r['status']}: {r['note']}"
        median = statistics.median(r["round_rates"]) if r["round_rates"] else r["ops_per_s"]
        lines.append(
            f"| {r['workload']} | {r['store']} | {IMPL_LABELS[r['impl']]} "
            f"| {rate(median)} "
            f"| {rounds} | {_latency(r['latency_ms'])} | {r['latency_per']} "
            f"| {checks_text(r['checks'])} | {note} |"
        )
    return lines


def chart(document: dict[str, Any], path: str) -> str | None:
    """One panel per workload (log scale); return a note if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"chart skipped: matplotlib is not installed ({exc})"
    rows = document["comparisons"]
    projections = document.get("projections")
    shown = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    store_rows = (len(shown) + 2) // 3
    nrows = store_rows + (1 if projections else 0)
    if nrows == 0:
        return None
    fig, axes = plt.subplots(nrows, 3, figsize=(15, 4.25 * nrows), squeeze=False)
    if projections:
        from benchmarks.projections_report import draw as draw_projections

        draw_projections(axes[-1], projections)
    colours = {"eventcore": "#1f77b4", "eventsourcing": "#ff7f0e", "raw": "#7f7f7f"}
    width = 0.26
    panels = list(axes[:store_rows].flat)
    for ax in panels[len(shown) :]:
        ax.set_visible(False)
    for ax, workload in zip(panels, shown, strict=False):
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
        ax.set_title(f"{workload_label(workload)}  ({UNITS[workload]}/s, log)", fontsize=10)
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.margins(y=0.25)
    if store_rows:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    machine = document["machine"]
    title = "EventCore vs eventsourcing vs raw driver" if store_rows else "EventCore projections"
    quick = " (QUICK: one round, not for ratios)" if document["quick"] else ""
    fig.suptitle(
        f"{title} — {machine['cpu']}, {machine['cores']} cores, {machine['date'][:10]}{quick}",
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
    if document.get("format", 1) >= 2:  # the goals again, with this tree's targets and hints
        from benchmarks.goals import goals
        from benchmarks.instructions import baselines

        if document.get("instructions"):
            document["instructions"]["baseline"] = baselines().get("instructions", {})

        document["goals"] = goals(document)
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
    elif not os.path.exists(paths["chart"]):
        del paths["chart"]
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(markdown(document))
    return paths
