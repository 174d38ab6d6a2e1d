"""Instructions per command or per event, counted by callgrind: the figure that does not move.

Wall-clock rates on a shared virtual machine move by up to 2x from one minute to the next;
the number of instructions a piece of work executes does not. This counts them with
``valgrind --tool=callgrind`` (about 50x slower than a normal run, so the sizes are small)
for the work alone: each case (:mod:`benchmarks.instruction_cases`) runs twice in a fresh
interpreter, once with the work and once without (imports, data, warm-up), and the
difference is divided by the units of work (commands or events).

    python -m benchmarks.instructions                        # every case, this tree
    python -m benchmarks.instructions --cases transfer-memory,page-memory-100k
    python -m benchmarks.instructions --root /tmp/old        # another checkout's eventcore

``python -m benchmarks run`` runs them too (section ``instructions``) and checks issue 15's
goal 5 against ``benchmarks/baselines.json``: the in-memory transfer at most half the
baseline, and paging through the in-memory log linear (the same instructions per event over
100,000 events as over 20,000). Needs valgrind (Debian: ``apt-get install valgrind``);
without it, says so (status 2 on the command line, a note in ``run``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from benchmarks.instruction_cases import CASES, NEEDS_LOG, build_log

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK_CASES = ("transfer-memory", "page-memory-20k")

_CHILD = (
    "import sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import eventcore  # the measured tree's, before anything else imports it\n"
    "sys.path.insert(0, sys.argv[2])\n"
    "from benchmarks.instruction_cases import main\n"
    "sys.exit(main(sys.argv[3:]))\n"
)


def case_command(root: str, folder: str, case: str, work: bool) -> list[str]:
    """The interpreter command line of one case (``work=False``: its set-up alone)."""
    return [sys.executable, "-c", _CHILD, root, HERE, case, "work" if work else "setup", folder]


def count(root: str, folder: str, case: str, work: bool) -> tuple[int, int]:
    """(instructions of one interpreter running the case, units of work it reports)."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            *case_command(root, folder, case, work),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict and set layouts every run
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed ({case}):\n{done.stderr[-2000:]}")
    return int(found.group(1)), int(done.stdout.split()[-1])


def measure(root: str = HERE, cases: Sequence[str] = tuple(CASES)) -> dict[str, dict[str, Any]]:
    """Instructions per unit for each case, with ``root``'s eventcore."""
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="eventcore-instr-") as folder:
        if NEEDS_LOG & set(cases):
            build_log(folder)
        for case in cases:
            work, units = count(root, folder, case, True)
            setup, _ = count(root, folder, case, False)
            out[case] = {
                "per": CASES[case][1],
                "units": units,
                "instructions": (work - setup) // units,
            }
    return out


def available() -> bool:
    return shutil.which("valgrind") is not None


BASELINES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "baselines.json")
RUN_CASES = (
    "transfer-memory",
    "transfer-sqlite",
    "transfer-raw-sqlite",
    "page-memory-20k",
    "page-memory-100k",
)


def baselines() -> dict[str, Any]:
    """The figures recorded before issue 15's work (``benchmarks/baselines.json``)."""
    import json

    try:
        with open(BASELINES, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return {}
    return data


def run_section(*, quick: bool, log: Any) -> dict[str, Any]:
    """The ``instructions`` section of ``results.json`` (valgrind; skipped without it)."""
    cases = QUICK_CASES if quick else RUN_CASES
    section: dict[str, Any] = {"cases": {}, "baseline": baselines().get("instructions", {})}
    if not available():
        section["note"] = "valgrind is not installed (apt-get install valgrind): not counted"
        log(f"note: {section['note']}")
        return section
    if quick:
        section["note"] = f"quick run: only {', '.join(cases)}"
    for case in cases:
        try:
            figure = measure(HERE, (case,))[case]
        except Exception as exc:  # one failed case must not lose the others
            section["cases"][case] = {"status": "error", "note": f"{type(exc).__name__}: {exc}"}
            log(f"{'instructions':>12} {case}: error {exc}")
            continue
        section["cases"][case] = {"status": "ok", **figure}
        log(f"{'instructions':>12} {case:>20}: {figure['instructions']:,} per {figure['per']}")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--root", default=HERE, help="checkout whose eventcore is measured")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}"
    )
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser.error(f"unknown case(s) {', '.join(unknown) or '(none)'}")
    if not available():
        print("valgrind is not installed (apt-get install valgrind); nothing measured")
        return 2
    root = os.path.abspath(args.root)
    for case, figure in measure(root, cases).items():
        print(
            f"{case:20s} {figure['instructions']:10,d} instructions per {figure['per']}   ({root})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
