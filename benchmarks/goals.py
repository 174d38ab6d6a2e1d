"""Issue 15's goals, checked against one run: the measured figure, the target, met or not,
and for a miss where to look (which profile or count explains it).

Ratios are the median of per-round ratios (:mod:`benchmarks.stats`) with their spread. A
quick run (one round) shows its figures but checks no ratio: one round is not enough.
Read goals are judged on both data sets — written one command per append and written in
batches — and met only when both meet the target.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from benchmarks.stats import round_ratios

STORE_LABELS: Final = {"memory": "memory", "sqlite": "SQLite (FULL)", "postgres": "PostgreSQL"}
PAGING_LINEAR: Final = 1.10  # per-event instructions at 100k over 20k, at most
TRANSFER_FRACTION: Final = 0.5  # instructions per in-memory transfer over the baseline, at most


def _results(document: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["workload"], r["store"], r["impl"]): r for r in document.get("results", ())}


def _ratio(
    cells: dict[tuple[str, str, str], dict[str, Any]],
    ours: tuple[str, str, str],
    theirs: tuple[str, str, str],
) -> dict[str, Any] | None:
    a, b = cells.get(ours), cells.get(theirs)
    if a is None or b is None or a["status"] != "ok" or b["status"] != "ok":
        return None
    return round_ratios(a["round_rates"], b["round_rates"])


def _row(
    goal: int,
    text: str,
    target: float,
    kind: str,
    parts: Iterable[tuple[str, dict[str, Any] | None]],
    look_at: str,
    *,
    judge: bool,
    below: bool = False,
) -> dict[str, Any]:
    """One line of the table. ``parts``: (label, ratio stats) — met when every part meets
    the target (``below``: at most the target instead of at least)."""
    shown = [(label, stats) for label, stats in parts]
    measured = [s for _, s in shown if s is not None and s.get("ratio") is not None]
    if len(measured) < len(shown) or not shown:
        met, status = None, "not measured"
    elif not judge:
        met, status = None, "not checked (quick run: one round, not for ratios)"
    else:
        values = [s["ratio"] for s in measured]
        if kind == "mib":  # "under": strictly below
            met = all(v < target for v in values)
        elif below:
            met = all(v <= target for v in values)
        else:
            met = all(v >= target for v in values)
        status = "met" if met else "not met"
    return {
        "goal": goal,
        "text": text,
        "target": target,
        "kind": kind,
        "parts": [{"label": label, **(stats or {})} for label, stats in shown],
        "below": below,
        "met": met,
        "status": status,
        "look_at": "" if met or met is None else look_at,
    }


def _na(goal: int, text: str, target: float, kind: str, reason: str) -> dict[str, Any]:
    return {
        "goal": goal,
        "text": text,
        "target": target,
        "kind": kind,
        "parts": [],
        "below": kind == "count",
        "met": None,
        "status": reason,
        "look_at": "",
    }


def contention_goals(document: dict[str, Any], judge: bool) -> list[dict[str, Any]]:
    section = document.get("contention")
    out: list[dict[str, Any]] = []
    if section is None:
        return out
    for store, target in (("sqlite", 5.0), ("postgres", 3.0)):
        text = (
            f"1: 8 threads × transfers among 10 accounts on {STORE_LABELS[store]}: pessimistic "
            f"mode at least {target:g}× the optimistic rate"
        )
        safe = (
            f"1: {STORE_LABELS[store]}: 0 retries exhausted and the invariants hold "
            "(pessimistic mode, every cell)"
        )
        rows = [r for r in section["rows"] if r["store"] == store]
        if not rows:
            continue
        pess = [r for r in rows if r["mode"] == "pessimistic"]
        if not pess or pess[0]["status"] == "n/a":
            reason = pess[0]["note"] if pess else "pessimistic mode not selected (--modes)"
            out.append(_na(1, text, target, "ratio", reason))
            out.append(_na(1, safe, 0, "count", reason))
            continue
        ratio = next(
            (
                x
                for x in section["ratios"]
                if x["store"] == store
                and x["mode"] == "pessimistic"
                and (x["threads"], x["accounts"]) == (8, 10)
            ),
            None,
        )
        look = "the contention table (retries per command, p99) and python -m benchmarks profile"
        out.append(_row(1, text, target, "ratio", [("8×10", ratio)], look, judge=judge))
        exhausted = sum(r.get("exhausted") or 0 for r in pess if r["status"] == "ok")
        held = all(r["status"] == "ok" and all(r["checks"].values()) for r in pess)
        met = held and exhausted == 0
        out.append(
            {
                "goal": 1,
                "text": safe,
                "target": 0,
                "kind": "count",
                "below": True,
                "parts": [
                    {"label": "exhausted", "ratio": float(exhausted)},
                    {
                        "label": "invariants",
                        "ratio": 1.0 if held else 0.0,
                        "text": "hold" if held else "FAILED",
                    },
                ],
                "met": met,
                "status": "met" if met else "not met",
                "look_at": "" if met else "the contention table: its exhausted and checks columns",
            }
        )
    return out


def table_goals(document: dict[str, Any], judge: bool) -> list[dict[str, Any]]:
    cells = _results(document)
    stores = [s for s in ("sqlite", "postgres") if s in document.get("stores", ())]
    out: list[dict[str, Any]] = []

    def both(workload: str, store: str, theirs_workload: str, impl: str) -> list[tuple[str, Any]]:
        parts = []
        for suffix, label in (("_cmd", "command-written"), ("", "batch-written")):
            ours = (workload + suffix, store, "eventcore")
            theirs = (theirs_workload + suffix, store, impl)
            if ours in cells or theirs in cells:
                parts.append((label, _ratio(cells, ours, theirs)))
        return parts

    for store in stores:
        label = STORE_LABELS[store]
        prof = (
            f"benchmarks/results/profile_{store}_read_all_cmd.txt, _catch_up_cmd.txt, "
            "_read_all.txt (python -m benchmarks profile)"
        )
        count = "python -m benchmarks.instructions --cases catch-up,decode"
        for workload, name in (("read_all", "global read"), ("catch_up", "projection catch-up")):
            parts = both(workload, store, "read_all", "raw")
            if parts:
                out.append(
                    _row(
                        2,
                        f"2: {name} on {label}: at least 60% of the raw driver's decoded read",
                        0.6,
                        "percent",
                        parts,
                        f"{prof}; {count}",
                        judge=judge,
                    )
                )
            parts = both(workload, store, workload, "eventsourcing")
            if parts:
                out.append(
                    _row(
                        2,
                        f"2: {name} on {label}: at least 2.5× eventsourcing",
                        2.5,
                        "ratio",
                        parts,
                        f"{prof}; {count}",
                        judge=judge,
                    )
                )
        parts = both("rebuild", store, "rebuild", "raw")
        if parts:
            out.append(
                _row(
                    2,
                    f"2: rebuild on {label}: at least 60% of the raw driver",
                    0.6,
                    "percent",
                    parts,
                    f"benchmarks/results/profile_{store}_rebuild.txt",
                    judge=judge,
                )
            )
    for store, floor in (("sqlite", 0.75), ("postgres", 0.85)):
        if store not in stores:
            continue
        for workload in ("deposits", "transfers"):
            ratio = _ratio(cells, (workload, store, "eventcore"), (workload, store, "raw"))
            if (workload, store, "eventcore") not in cells:
                continue
            look = (
                f"benchmarks/results/profile_{store}_transfers.txt (python -m benchmarks profile)"
            )
            if store == "sqlite":
                look += (
                    "; python -m benchmarks.instructions --cases transfer-sqlite,"
                    "transfer-raw-sqlite"
                )
            out.append(
                _row(
                    3,
                    f"3: {workload} on {STORE_LABELS[store]}: at least {floor:.0%} of the raw "
                    "driver",
                    floor,
                    "percent",
                    [("", ratio)],
                    look,
                    judge=judge,
                )
            )
            if store == "sqlite":
                ratio = _ratio(
                    cells, (workload, store, "eventcore"), (workload, store, "eventsourcing")
                )
                out.append(
                    _row(
                        3,
                        f"3: {workload} on {STORE_LABELS[store]}: at least 2.5× eventsourcing",
                        2.5,
                        "ratio",
                        [("", ratio)],
                        look,
                        judge=judge,
                    )
                )
    return out


def projection_goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks.capabilities import partitioned_projections

    reason = partitioned_projections()
    text = "4: two partitioned projection workers catch up at least 1.7× one worker (PostgreSQL)"
    return [_na(4, text, 1.7, "ratio", reason)] if reason else []


def measurement_goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    rounds = int(document["sizes"].get("rounds", 1))
    out = [
        _row(
            5,
            "5: ratios from at least three interleaved rounds (first implementation rotated)",
            3,
            "rounds",
            [("rounds", {"ratio": float(rounds)})],
            "run without --quick (or --set rounds=3)",
            judge=True,
        )
    ]
    section = document.get("instructions")
    if section is None:
        return out
    cases = section.get("cases", {})
    base = section.get("baseline", {})

    def figure(case: str) -> float | None:
        cell = cases.get(case)
        return None if not cell or cell.get("status") != "ok" else float(cell["instructions"])

    ours, before = figure("transfer-memory"), base.get("transfer-memory")
    stats = None if ours is None or not before else {"ratio": round(ours / before, 3)}
    if ours is not None and before:
        stats = {"ratio": round(ours / before, 3), "value": ours, "baseline": before}
    out.append(
        _row(
            5,
            "5: instructions per in-memory transfer at most half the baseline",
            TRANSFER_FRACTION,
            "fraction",
            [("", stats)],
            "python -m benchmarks.instructions --cases transfer-memory; callgrind_annotate "
            "(benchmarks/PROFILE.md)",
            judge=True,
            below=True,
        )
    )
    small, large = figure("page-memory-20k"), figure("page-memory-100k")
    stats = None
    if small and large:
        stats = {"ratio": round(large / small, 3), "value": large, "baseline": small}
    out.append(
        _row(
            5,
            "5: paging the in-memory log is linear (instructions per event over 100,000 events "
            f"at most {PAGING_LINEAR:g}× those over 20,000)",
            PAGING_LINEAR,
            "ratio",
            [("100k ÷ 20k", stats)],
            "InMemoryEventStore.read_all (eventcore/stores/memory.py): the copy per page",
            judge=True,
            below=True,
        )
    )
    return out


def memory_goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    section = document.get("memory")
    out: list[dict[str, Any]] = []
    if section is None:
        return out
    full = section["goal_sizes"]
    for case, limit, what in (
        (
            "catch-up",
            section["goals_mib"]["catch-up"],
            f"catching up {section['log_events']:,} events",
        ),
        (
            "command",
            section["goals_mib"]["command"],
            f"one command on a {section['stream_events']:,}-event stream",
        ),
    ):
        for store in ("sqlite", "postgres"):
            row = next(
                (
                    r
                    for r in section["rows"]
                    if (r["case"], r["store"], r["impl"]) == (case, store, "eventcore")
                ),
                None,
            )
            if row is None:
                continue
            stats = {"ratio": row["growth_mib"]} if row["status"] == "ok" else None
            made = _row(
                6,
                f"6: peak RSS growth {what} on {STORE_LABELS[store]} under {limit:g} MiB",
                limit,
                "mib",
                [("", stats)],
                f"python -m benchmarks.memory {case} {store} WHERE under tracemalloc",
                judge=True,
                below=True,
            )
            if not full and made["met"] is not None:
                made["status"] += " (indicative: smaller than the goal's size)"
            out.append(made)
    return out


def goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of issue 15 this run measured (or says why it could not)."""
    judge = bool(document.get("ratios_valid"))
    rows = contention_goals(document, judge)
    rows += table_goals(document, judge)
    rows += projection_goals(document)
    rows += measurement_goals(document)
    rows += memory_goals(document)
    return sorted(rows, key=lambda r: r["goal"])
