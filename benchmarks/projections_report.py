"""The "Projections" part of ``results.md`` and ``chart.png``, and its goals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

STORE_LABELS: Final = {"memory": "memory", "sqlite": "SQLite (FULL)", "postgres": "PostgreSQL"}
CATCH_UP_GOAL: Final = ("sqlite", 100_000.0)  # counting projector, events/s, at least
LIVE_P99_GOAL: Final = ("postgres", 50.0)  # LISTEN/NOTIFY delivery, p99 ms, below


def _find(cells: Sequence[dict[str, Any]], **match: str) -> dict[str, Any] | None:
    for cell in cells:
        if all(cell.get(k) == v for k, v in match.items()) and cell["status"] == "ok":
            return cell
    return None


def goals(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's two goals, for the stores that ran (``met`` is None when not measured)."""
    out: list[dict[str, Any]] = []
    stores = {c["store"] for c in section["catch_up"]}
    store, floor = CATCH_UP_GOAL
    if store in stores:
        cell = _find(section["catch_up"], store=store, projector="counting")
        actual = None if cell is None else cell["events_per_s"]
        out.append(
            {
                "goal": f"catch-up on {STORE_LABELS[store]}, trivial projector: at least "
                f"{floor:,.0f} events/s",
                "store": store,
                "measure": "events_per_s",
                "target": floor,
                "actual": actual,
                "met": None if actual is None else actual >= floor,
            }
        )
    store, ceiling = LIVE_P99_GOAL
    if store in stores:
        cell = _find(section["live"], store=store)
        lat = None if cell is None else cell["latency_ms"]
        actual = None if lat is None else lat["p99"]
        out.append(
            {
                "goal": f"live delivery on {STORE_LABELS[store]} (LISTEN/NOTIFY): p99 under "
                f"{ceiling:g} ms",
                "store": store,
                "measure": "p99_ms",
                "target": ceiling,
                "actual": actual,
                "met": None if actual is None else actual < ceiling,
            }
        )
    return out


def _rate(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    if cell["status"] != "ok":
        return f"{cell['status']}"
    return f"{cell['events_per_s']:,.0f}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _checks(cells: Sequence[dict[str, Any] | None]) -> str:
    failed = [
        name
        for c in cells
        if c is not None and c["status"] == "ok"
        for name, ok in c["checks"].items()
        if not ok
    ]
    if any(c is not None and c["status"] == "error" for c in cells):
        return "ERROR"
    if not any(c is not None and c["status"] == "ok" for c in cells):
        return "—"
    return "ok" if not failed else "FAILED: " + ", ".join(failed)


def markdown(section: dict[str, Any]) -> list[str]:
    """The section's lines (tables, goals, notes on the sizes and how busy the CPU was)."""
    sizes = section["sizes"]
    catch = section["catch_up"]
    stores = list(dict.fromkeys(c["store"] for c in catch + section["live"]))
    lines = [
        "",
        "## Projections",
        "",
        f"**Catch-up**: a log of {sizes['proj_events']:,} events (streams of 1,000 events, one "
        "batched append each) projected in batch mode from position 0 by a trivial counting "
        f"projector with an in-memory checkpoint store, in pages of {sizes['proj_page']:,}; "
        f"the median of {sizes['proj_rounds']} round(s). The transactional projector (one "
        "upsert per event into a table of per-stream counts, each event in a savepoint, the "
        "checkpoint saved in the same database and committed once per page) handles the "
        f"log's last {sizes['proj_tx_events']:,} events. "
        "Building the log is timed too (batched appends, events/s).",
        "",
        "| Store | counting projector (events/s) | rounds | transactional projector "
        "(events/s) | building the log (events/s) | checks |",
        "|---|--:|---|--:|--:|---|",
    ]
    for store in stores:
        counting = _find_any(catch, store=store, projector="counting")
        tx = _find_any(catch, store=store, projector="transactional")
        rounds = (
            ", ".join(f"{r:,.0f}" for r in counting["round_rates"])
            if counting is not None and counting["status"] == "ok"
            else "—"
        )
        build = counting.get("log_build_events_per_s") if counting is not None else None
        lines.append(
            f"| {STORE_LABELS.get(store, store)} | {_rate(counting)} | {rounds} "
            f"| {_rate(tx) if store != 'memory' else 'n/a'} "
            f"| {'—' if build is None else f'{build:,.0f}'} | {_checks([counting, tx])} |"
        )
    lines += [
        "",
        f"**Live delivery**: a continuous projection (`running_projection`) follows "
        f"{sizes['proj_live_appends']:,} appends of one event each, made "
        f"{sizes['proj_live_gap_ms']} ms apart by a second store object from another thread. "
        "Latency runs from the append's return (the commit is acknowledged) to the "
        "projector's `apply`, in milliseconds (0 when the projector saw the event before "
        "the append call returned); the last column includes the append call itself.",
        "",
        "| Store | wake-up | p50 / p95 / p99 ms | max ms | append p50 ms | p99 incl. the "
        "append ms | checks |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for cell in section["live"]:
        label = STORE_LABELS.get(cell["store"], cell["store"])
        if cell["status"] != "ok":
            lines.append(
                f"| {label} | {cell['delivery']} | {cell['status']}: {cell['note']} "
                "| — | — | — | — |"
            )
            continue
        lat, append, total = (
            cell["latency_ms"],
            cell["append_ms"],
            cell["latency_from_append_start_ms"],
        )
        lines.append(
            f"| {label} | {cell['delivery']} "
            f"| {' / '.join(_ms(lat[k]) for k in ('p50', 'p95', 'p99'))} | {_ms(lat['max'])} "
            f"| {_ms(append['p50'])} | {_ms(total['p99'])} | {_checks([cell])} |"
        )
    lines += ["", "| Projection goal | Measured | Met |", "|---|--:|---|"]
    for goal in section["goals"]:
        actual = goal["actual"]
        if actual is None:
            shown = "—"
        elif goal["measure"] == "events_per_s":
            shown = f"{actual:,.0f}/s"
        else:
            shown = f"{_ms(actual)} ms"
        met = {True: "yes", False: "**no**", None: "—"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {shown} | {met} |")
    cpu = section.get("cpu") or {}
    if "machine_cpu_busy" in cpu:
        lines += [
            "",
            f"During the projection workloads ({cpu['wall_seconds']} s) the machine's CPU was "
            f"{cpu['machine_cpu_busy']:.0%} busy: this process "
            f"{cpu['this_process_cpu_share']:.0%}, everything else (the PostgreSQL server's "
            f"work for this run included) {cpu.get('other_cpu_share', 0.0):.0%}.",
        ]
    return lines


def _find_any(cells: Sequence[dict[str, Any]], **match: str) -> dict[str, Any] | None:
    for cell in cells:
        if all(cell.get(k) == v for k, v in match.items()):
            return cell
    return None


def draw(axes: Sequence[Any], section: dict[str, Any]) -> None:
    """Fill a row of three matplotlib axes: catch-up rates, live latency, (unused)."""
    catch_ax, live_ax, spare = axes[0], axes[1], axes[2]
    spare.set_axis_off()
    stores = list(dict.fromkeys(c["store"] for c in section["catch_up"]))
    width = 0.38
    colours = {"counting": "#1f77b4", "transactional": "#2ca02c"}
    for i, kind in enumerate(("counting", "transactional")):
        values = []
        for store in stores:
            cell = _find(section["catch_up"], store=store, projector=kind)
            values.append(0.0 if cell is None else float(cell["events_per_s"] or 0.0))
        xs = [k + (i - 0.5) * width for k in range(len(stores))]
        bars = catch_ax.bar(xs, values, width, label=f"{kind} projector", color=colours[kind])
        _annotate(catch_ax, bars, values, lambda v: f"{v:,.0f}")
    floor = CATCH_UP_GOAL[1]
    catch_ax.axhline(floor, color="#d62728", linestyle="--", linewidth=0.8, label="goal (SQLite)")
    catch_ax.set_xticks(range(len(stores)))
    catch_ax.set_xticklabels([STORE_LABELS.get(s, s) for s in stores])
    catch_ax.set_yscale("log")
    catch_ax.set_title("projection catch-up  (events/s, log scale)", fontsize=10)
    catch_ax.legend(fontsize=7, loc="upper right")
    catch_ax.margins(y=0.25)
    live = [c for c in section["live"] if c["status"] == "ok" and c["latency_ms"]]
    names = [c["store"] for c in live]
    shades = {"p50": "#9ecae1", "p95": "#4292c6", "p99": "#08519c"}
    for i, q in enumerate(("p50", "p95", "p99")):
        values = [max(float(c["latency_ms"][q]), 0.001) for c in live]
        xs = [k + (i - 1) * 0.26 for k in range(len(live))]
        bars = live_ax.bar(xs, values, 0.26, label=q, color=shades[q])
        _annotate(live_ax, bars, values, _ms)
    live_ax.axhline(
        LIVE_P99_GOAL[1], color="#d62728", linestyle="--", linewidth=0.8, label="p99 goal (PG)"
    )
    live_ax.set_xticks(range(len(live)))
    live_ax.set_xticklabels([STORE_LABELS.get(s, s) for s in names])
    live_ax.set_yscale("log")
    live_ax.set_title("live delivery: append → projector  (ms, log scale)", fontsize=10)
    live_ax.legend(fontsize=7, loc="upper left")
    live_ax.margins(y=0.25)


def _annotate(ax: Any, bars: Any, values: Sequence[float], text: Any) -> None:
    for bar, value in zip(bars, values, strict=True):
        if value > 0:
            ax.annotate(
                text(value),
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                fontsize=6.5,
                rotation=90,
                xytext=(0, 2),
                textcoords="offset points",
            )
