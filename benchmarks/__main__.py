"""Command line: ``python -m benchmarks run [--quick] [--only NAME,...] [--stores ...]
[--modes optimistic,pessimistic] [--out DIR]`` runs the side-by-side workloads, then the
contention table, instruction counts, memory and projections sections (``--only`` picks
any of them); ``python -m benchmarks profile`` (cProfile of EventCore's workloads);
``python -m benchmarks snapshots``; ``python -m benchmarks partitions`` (partitioned
catch-up); ``python -m benchmarks privacy``; ``python -m benchmarks http`` (the example
service under uvicorn); ``python -m benchmarks async [--quick] [--stores postgres|memory]``
(asyncio transfers, issue 12: :mod:`benchmarks.async_transfers`); ``python -m benchmarks
observability`` (what the instrumentation hooks cost); ``python -m benchmarks report``
(redraw)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from benchmarks.capabilities import MODES
from benchmarks.config import SECTIONS, STORES, WORKLOADS, Sizes

RUNNABLE = (*WORKLOADS, *SECTIONS)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the workloads and write results.json/.md/chart.png")
    run.add_argument(
        "--quick",
        action="store_true",
        help="one round of small counts, a smoke test (a few minutes): NOT for ratios",
    )
    run.add_argument(
        "--only",
        type=lambda t: _names(t, RUNNABLE, "workload"),
        default=list(RUNNABLE),
        metavar="NAME[,NAME]",
        help=f"workloads and sections to run: {', '.join(RUNNABLE)} (default: all)",
    )
    run.add_argument(
        "--modes",
        type=lambda t: _names(t, MODES, "mode"),
        default=list(MODES),
        metavar="optimistic,pessimistic",
        help="execution modes of the contention table (a mode this build lacks is a row "
        "saying so; default: all)",
    )
    run.add_argument(
        "--stores",
        type=lambda t: _names(t, STORES, "store"),
        default=list(STORES),
        metavar="memory,sqlite,postgres",
        help="stores to run on (default: all three)",
    )
    run.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SIZE=N",
        help="override a size, e.g. --set deposits=500 or proj_events=50000 (repeatable)",
    )
    redo = sub.add_parser("report", help="redraw results.md and chart.png from results.json")
    redo.add_argument("--out", default=DEFAULT_OUT)
    prof = sub.add_parser("profile", help="cProfile transfers and rebuild on SQLite")
    prof.add_argument("--quick", action="store_true")
    prof.add_argument("--out", default=DEFAULT_OUT)
    prof.add_argument("--set", action="append", default=[], metavar="SIZE=N")
    prof.add_argument(
        "--stores",
        type=lambda t: _names(t, ("sqlite", "postgres"), "store"),
        default=["sqlite", "postgres"],
        metavar="sqlite,postgres",
    )
    prof.add_argument("--dump", action="store_true", help="also write the .prof files")
    priv = sub.add_parser(
        "privacy", help="transfers and rebuild with and without encryption; each serializer"
    )
    priv.add_argument("--quick", action="store_true", help="small counts, one round")
    priv.add_argument("--out", default=DEFAULT_OUT)
    priv.add_argument(
        "--stores",
        type=lambda t: _names(t, ("memory", "sqlite", "postgres"), "store"),
        default=["memory", "sqlite", "postgres"],
        metavar="memory,sqlite,postgres",
    )
    snap = sub.add_parser("snapshots", help="deposits on long streams, with and without snapshots")
    snap.add_argument("--quick", action="store_true", help="streams up to 10,000 events")
    snap.add_argument("--out", default=DEFAULT_OUT)
    snap.add_argument(
        "--stores",
        type=lambda t: _names(t, ("sqlite", "postgres"), "store"),
        default=["sqlite", "postgres"],
        metavar="sqlite,postgres",
    )
    part = sub.add_parser(
        "partitions", help="partitioned projection catch-up on PostgreSQL: 1 worker vs 2"
    )
    part.add_argument("--quick", action="store_true", help="one small round: NOT for ratios")
    part.add_argument("--out", default=DEFAULT_OUT)
    http = sub.add_parser("http", help="the example service's transfer endpoint under uvicorn")
    http.add_argument("--quick", action="store_true", help="a few seconds per store")
    http.add_argument("--out", default=DEFAULT_OUT)
    http.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    http.add_argument("--seconds", type=float, default=None, help="timed seconds per store")
    http.add_argument(
        "--stores",
        type=lambda t: _names(t, ("sqlite", "postgres"), "store"),
        default=["sqlite", "postgres"],
        metavar="sqlite,postgres",
    )
    obs = sub.add_parser(
        "observability", help="transfers with the instrumentation hooks bypassed, off and on"
    )
    obs.add_argument("--quick", action="store_true", help="one small round: NOT for ratios")
    obs.add_argument("--out", default=DEFAULT_OUT)
    obs.add_argument("--rounds", type=int, default=None, help="rounds (default 5)")
    obs.add_argument(
        "--stores",
        type=lambda t: _names(t, STORES, "store"),
        default=list(STORES),
        metavar="memory,sqlite,postgres",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["async"]:
        from benchmarks.async_transfers import main as run_async

        return run_async(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "snapshots":
        from benchmarks.snapshots import LENGTHS, QUICK_LENGTHS, run_snapshots

        lengths = QUICK_LENGTHS if args.quick else LENGTHS
        run_snapshots(stores=args.stores, lengths=lengths, out_dir=args.out)
        return 0  # the goal is reported in snapshots.md; timings never fail the run
    if args.command == "partitions":
        from benchmarks.partitions import run_partitions

        run_partitions(quick=args.quick, out_dir=args.out)
        return 0  # the goal is reported in partitions.md; timings never fail the run
    if args.command == "privacy":
        from benchmarks.privacy import PrivacySizes, run_privacy

        run_privacy(
            stores=args.stores,
            sizes=PrivacySizes.quick() if args.quick else PrivacySizes(),
            out_dir=args.out,
        )
        return 0  # timings never fail the run
    if args.command == "http":
        from benchmarks.http import HttpSizes, failed, run_http

        sizes_http = HttpSizes.quick(args.clients) if args.quick else HttpSizes(args.clients)
        if args.seconds is not None:
            sizes_http = HttpSizes(sizes_http.clients, sizes_http.warmup, args.seconds)
        return 1 if failed(run_http(args.stores, sizes_http, args.out)) else 0
    if args.command == "observability":
        from benchmarks.observability import render, run_observability

        rows = run_observability(
            stores=args.stores, quick=args.quick, out_dir=args.out, rounds=args.rounds
        )
        print(render(rows, args.quick), end="")
        return 0  # timings never fail the run; the goal is reported
    if args.command == "report":
        from benchmarks.report import rerender

        for kind, path in rerender(args.out).items():
            print(f"wrote {kind}: {path}", file=sys.stderr)
        return 0
    from benchmarks.projections import ProjectionSizes, split_sets

    proj_sets, store_sets = split_sets(args.set)
    base = Sizes.quick() if args.quick else Sizes()
    try:
        sizes = base.override(store_sets)
        proj_sizes = (ProjectionSizes.quick() if args.quick else ProjectionSizes()).override(
            proj_sets
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "profile":
        from benchmarks.profiling import profile

        profile(sizes, args.out, args.stores, dump=args.dump)
        return 0
    from benchmarks.projections import failures
    from benchmarks.runner import run

    document = run(
        sizes,
        [w for w in args.only if w in WORKLOADS],
        args.stores,
        quick=args.quick,
        out_dir=args.out,
        sections=[s for s in args.only if s in SECTIONS],
        modes=args.modes,
        proj_sizes=proj_sizes,
    )
    failed = [r for r in document["results"] if r["status"] == "error"]
    bad_checks = [
        r for r in document["results"] if r["status"] == "ok" and not all(r["checks"].values())
    ]
    contention = (document.get("contention") or {}).get("rows", [])
    bad_contention = [
        r
        for r in contention
        if r["status"] == "error" or (r["status"] == "ok" and not all(r["checks"].values()))
    ]
    return 1 if failed or bad_checks or bad_contention or failures(document) else 0


if __name__ == "__main__":
    sys.exit(main())
