"""The parts of ``results.md`` besides the side-by-side table: the machine, the goals of
issue 15, the contention table, instruction counts and memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.report import STORE_LABELS, rate


def machine_sentence(document: dict[str, Any]) -> str:
    machine = document["machine"]
    cpu = document.get("cpu", {})
    load = cpu.get("load_average_start")
    load_text = "" if not load else f" Load average at the start: {load[0]:.2f} (1 min)."
    return (
        f"Run {machine['date']}{' (--quick)' if document['quick'] else ''} on "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GiB, "
        f"{machine['os']}; {machine['python']}, SQLite {machine['sqlite']}, "
        f"PostgreSQL {machine['postgresql'] or 'not available'}, "
        f"psycopg {machine['psycopg'] or '—'}, eventsourcing {machine['eventsourcing'] or '—'}; "
        f"{document['sizes']['rounds']} round(s) per cell.{load_text}"
    )


def cpu_sentence(cpu: dict[str, Any]) -> str:
    parts = [f"The run took {cpu['wall_seconds']} s."]
    if "machine_cpu_busy" in cpu:
        rest = cpu.get("other_cpu_share", 0.0)
        parts.append(
            f"Machine CPU busy {cpu['machine_cpu_busy']:.0%} of all cores: this process "
            f"{cpu['this_process_cpu_share']:.0%}, everything else {rest:.0%} (the PostgreSQL "
            "server's work for this run and the measuring subprocesses included)."
        )
        top = [p for p in cpu.get("top_other_processes", []) if p["cpu_share"] >= 0.01]
        if rest >= 0.25 or cpu.get("other_processes_cpu_share", 0.0) >= 0.05:
            seen = ", ".join(f"{p['name']} {p['cpu_share']:.0%}" for p in top)
            parts.append(
                "**Other work was competing for the CPU during this run**"
                + (f" (processes seen: {seen})" if seen else "")
                + "; figures are lower and noisier than on a quiet machine."
            )
    return " ".join(parts)


def _value(kind: str, value: float | None) -> str:
    if value is None:
        return "—"
    if kind == "percent":
        return f"{value:.0%}"
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind == "fraction":
        return f"{value:.2f} of the baseline"
    if kind == "mib":
        return f"{value:.1f} MiB"
    return f"{value:g}"


def _part(kind: str, part: dict[str, Any]) -> str:
    if part.get("text"):
        return f"{part['label']} {part['text']}"
    value = part.get("ratio")
    text = _value(kind, value)
    low, high = part.get("ratio_min"), part.get("ratio_max")
    if value is not None and low is not None and high is not None and low != high:
        text += f" ({_value(kind, low).rstrip('×%')}–{_value(kind, high)})"
    if "value" in part and "baseline" in part:
        text += f" [{part['value']:,.0f} vs {part['baseline']:,.0f}]"
    label = part.get("label") or ""
    return f"{label} {text}".strip()


def _target(kind: str, target: float, below: bool) -> str:
    sign = "≤" if below else "≥"
    if kind == "percent":
        return f"{sign} {target:.0%}"
    if kind == "ratio":
        return f"{sign} {target:g}×"
    if kind == "fraction":
        return f"{sign} {target:g} of the baseline"
    if kind == "mib":
        return f"< {target:g} MiB"
    if kind == "count":
        return f"{target:g}"
    return f"{sign} {target:g}"


def goals_table(goals: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Goals of issue 15",
        "",
        "Each goal's figure from this run: ratios are the median of per-round ratios with "
        "their spread (min–max); read goals list the command-written and the batch-written "
        "data and are met only when both are. A miss names where to look.",
        "",
        "| Goal | Measured | Target | Result | Where to look |",
        "|---|---|---|---|---|",
    ]
    for g in goals:
        measured = "; ".join(_part(g["kind"], p) for p in g["parts"]) or "—"
        result = {True: "met", False: "**not met**"}.get(g["met"], g["status"])
        if g["met"] is not None and g["status"] not in ("met", "not met"):
            result += g["status"].removeprefix("met").removeprefix("not met")
        target = _target(g["kind"], g["target"], g.get("below", False))
        lines.append(f"| {g['text']} | {measured} | {target} | {result} | {g['look_at'] or ''} |")
    return lines


def _contention_cell(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return row["status"]
    text = f"{rate(row['ops_per_s'])}/s"
    if row["mode"] != "raw, locks first" or row["retries"]:
        text += f" · {row['retries_per_command']:.2f} retries"
    if row["exhausted"]:
        text += f" · **{row['exhausted']} exhausted**"
    if row["errors"]:
        text += f" · **{row['errors']} errors**"
    if row.get("time_capped"):
        text += " (time cap)"
    return text


def contention_table(section: dict[str, Any], quick: bool) -> list[str]:
    """One line per store, accounts and threads; a column per mode (and the raw driver)."""
    rows = section["rows"]
    variants = list(dict.fromkeys(r["mode"] for r in rows))
    lines = [
        "",
        "## Contention (goal 1)",
        "",
        f"Transfers among 10 and 100 accounts from 1, 2, 4 and 8 threads; each cell "
        f"{section['commands_per_cell']} commands (split across the threads) or "
        f"{section['seconds_per_cell']} s, whichever comes first, on fresh storage; EventCore "
        f"with the default retry policy ({section['retry_policy']}). Each cell: the median "
        "commands/s of the rounds (every round in results.json), retries per completed "
        "command, commands that exhausted the policy (ConcurrencyError) and other errors, "
        "summed over the rounds. *checks*: after every run, money conserved, versions "
        "contiguous, positions gapless, event count. The raw driver is the reference for the "
        "pessimistic design: it locks before it reads, so it never retries.",
        "",
        "| Store | Accounts | Threads | " + " | ".join(variants) + " | checks |",
        "|---|--:|--:|" + "--:|" * len(variants) + "---|",
    ]
    index = {(r["store"], r["accounts"], r["threads"], r["mode"]): r for r in rows}
    configs = list(dict.fromkeys((r["store"], r["accounts"], r["threads"]) for r in rows))
    unavailable: dict[tuple[str, str], str] = {}
    for store, accounts, threads in configs:
        cells = [index.get((store, accounts, threads, v)) for v in variants]
        shown = []
        for variant, cell in zip(variants, cells, strict=True):
            if cell is None:
                shown.append("—")
                continue
            if cell["status"] != "ok":
                unavailable[(STORE_LABELS[store], variant)] = f"{cell['status']}: {cell['note']}"
            shown.append(_contention_cell(cell))
        failed = sorted(
            {
                n
                for c in cells
                if c and c["status"] == "ok"
                for n, ok in c["checks"].items()
                if not ok
            }
        )
        checks = "ok" if not failed else "FAILED: " + ", ".join(failed)
        lines.append(
            f"| {STORE_LABELS[store]} | {accounts} | {threads} | "
            + " | ".join(shown)
            + f" | {checks} |"
        )
    if unavailable:
        lines += [""]
        lines += [f"- {store}, {variant}: {note}" for (store, variant), note in unavailable.items()]
    ratios = [x for x in section.get("ratios", ()) if x.get("ratio") is not None]
    if ratios:
        lines += ["", "| Store | Mode ÷ optimistic | Accounts | Threads | ratio (spread) |"]
        lines += ["|---|---|--:|--:|--:|"]
        for x in ratios:
            spread = ""
            if x["ratio_rounds"] > 1:
                spread = f" ({x['ratio_min']:.2f}–{x['ratio_max']:.2f})"
            lines.append(
                f"| {STORE_LABELS[x['store']]} | {x['mode']} | {x['accounts']} | {x['threads']} "
                f"| {x['ratio']:.2f}×{spread} |"
            )
    if quick:
        lines += ["", "*Quick run: one round of few commands; not for comparing modes.*"]
    return lines


def instructions_table(section: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Instructions (callgrind)",
        "",
        "Instructions of the work alone (`python -m benchmarks.instructions`: each case runs "
        "with and without the work under valgrind; the difference per unit). They do not move "
        "between runs, so they compare trees. The baseline is `benchmarks/baselines.json`.",
    ]
    if section.get("note"):
        lines += ["", f"*{section['note']}*"]
    if not section.get("cases"):
        return lines
    base = section.get("baseline", {})
    lines += ["", "| Case | instructions | per | baseline | ÷ baseline |", "|---|--:|---|--:|--:|"]
    for case, cell in section["cases"].items():
        if cell.get("status") != "ok":
            lines.append(f"| {case} | {cell.get('status')}: {cell.get('note', '')} | | | |")
            continue
        before = base.get(case)
        ratio = f"{cell['instructions'] / before:.2f}" if before else "—"
        shown = f"{before:,}" if before else "—"
        lines.append(f"| {case} | {cell['instructions']:,} | {cell['per']} | {shown} | {ratio} |")
    return lines


def memory_table(section: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Memory (goal 6)",
        "",
        "Peak RSS growth of the work alone, in a fresh interpreter (`python -m "
        "benchmarks.memory`): catch-up of a counting projector over the whole log, and one "
        "deposit on a long stream without snapshots.",
    ]
    if not section["goal_sizes"]:
        lines += ["", "*Smaller than the goals' sizes (quick run): indicative only.*"]
    lines += [
        "",
        "| Case | Store | Implementation | events | RSS before | peak growth | seconds | method |",
        "|---|---|---|--:|--:|--:|--:|---|",
    ]
    for r in section["rows"]:
        head = f"| {r['case']} | {STORE_LABELS[r['store']]} | {r['impl']} | {r.get('events', 0):,} "
        if r["status"] != "ok":
            lines.append(head + f"| {r['status']}: {r.get('note', '')} | | | |")
            continue
        lines.append(
            head + f"| {r['rss_before_mib']:.1f} MiB | **{r['growth_mib']:.1f} MiB** "
            f"| {r['seconds']:.1f} | {r['method']} |"
        )
    return lines


def settings_sentence(results: Sequence[dict[str, Any]]) -> str:
    """What the SQLite connections reported when read back, per implementation."""
    seen: dict[str, set[str]] = {}
    for r in results:
        if r["store"] != "sqlite" or r["status"] != "ok":
            continue
        s = r.get("settings") or {}
        text = f"{s.get('journal_mode', '?')}/{s.get('synchronous', '?')}" if s else "not readable"
        seen.setdefault(r["impl"], set()).add(text)
    if not seen:
        return ""
    parts = [f"{impl}: {', '.join(sorted(v))}" for impl, v in sorted(seen.items())]
    return (
        "SQLite journal_mode/synchronous read back from the connections used: "
        + "; ".join(parts)
        + "."
    )
