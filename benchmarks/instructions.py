"""Instructions per event of projection catch-up and of row decoding, counted by callgrind.

Wall-clock rates on a shared virtual machine move by up to 2x from one minute to the next;
the number of instructions a piece of work executes does not. This counts them with
``valgrind --tool=callgrind`` (about 50x slower than a normal run, so the sizes are
small) for the work alone: each case runs twice in a fresh interpreter, once with the work
and once without (imports, store set-up and the first page), and the difference is divided
by the number of events.

    python -m benchmarks.instructions                   # this tree
    python -m benchmarks.instructions --root /tmp/old   # another checkout's eventcore

Cases:

- ``catch-up``: ``run_projection`` of a counting projector over a SQLite log of 20,000
  events (20 streams of 1,000, one batched append each), pages of 1,000, in-memory
  checkpoints: the projection benchmark's workload, smaller;
- ``decode``: ``decode_rows`` of one page of 1,000 of those rows, 20 times (the fetch
  left out).

``benchmarks/PROFILE.md`` quotes its output. Needs valgrind (Debian: ``apt-get install
valgrind``); without it, says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_EVENTS = 20_000
DECODE_REPEATS = 20
PAGE = 1_000

_CASE = r"""
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from benchmarks.projections import CountingProjector, EVENTS
from eventcore import SqliteEventStore
from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, run_projection
from eventcore.stores._rows import decode_rows
from eventcore.stores.sqlite import COLUMNS
from eventcore.stores.sqlite.plans import rows_plan

path, case, work = sys.argv[3], sys.argv[4], sys.argv[5] == "work"
store = SqliteEventStore(path, events=EVENTS)
rows = store.database.read(
    "bench", rows_plan(f"SELECT {COLUMNS} FROM eventcore_events ORDER BY position LIMIT {PAGE}", ())
)
decode_rows(store.types, rows, text_envelope=True)  # warm: codecs compiled, caches filled
if work and case == "catch-up":
    projector = CountingProjector("count")
    config = ProjectionConfig(InMemoryCheckpointStore(), page_size={PAGE})
    run_projection(projector, store, config)
    assert projector.count == {LOG_EVENTS}, projector.count
elif work and case == "decode":
    for _ in range({DECODE_REPEATS}):
        decode_rows(store.types, rows, text_envelope=True)
"""

CASES = {"catch-up": LOG_EVENTS, "decode": DECODE_REPEATS * PAGE}


def build_log(root: str, path: str) -> None:
    """The SQLite log both trees read (written by this tree's eventcore)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from benchmarks.projections import EVENTS, build_log\n"
        "from eventcore import SqliteEventStore\n"
        "store = SqliteEventStore(sys.argv[2], events=EVENTS)\n"
        f"build_log(store, {LOG_EVENTS})\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, HERE, path], check=True, cwd=root)


def case_command(root: str, path: str, case: str, work: bool) -> list[str]:
    """The interpreter command line of one case (``work=False``: its set-up alone)."""
    script = _CASE.replace("{PAGE}", str(PAGE))
    script = script.replace("{LOG_EVENTS}", str(LOG_EVENTS))
    script = script.replace("{DECODE_REPEATS}", str(DECODE_REPEATS))
    return [sys.executable, "-c", script, root, HERE, path, case, "work" if work else "setup"]


def count(root: str, path: str, case: str, work: bool) -> int:
    """Instructions of one interpreter running the case (callgrind's total)."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            *case_command(root, path, case, work),
        ],
        capture_output=True,
        text=True,
        cwd=root,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed ({case}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def measure(root: str) -> dict[str, int]:
    """Instructions per event for each case, with ``root``'s eventcore."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "log.db")
        build_log(HERE, path)
        return {
            case: (count(root, path, case, True) - count(root, path, case, False)) // events
            for case, events in CASES.items()
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=HERE, help="checkout whose eventcore is measured")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind); nothing measured")
        return 2
    root = os.path.abspath(args.root)
    for case, per_event in measure(root).items():
        print(f"{case:10s} {per_event:8,d} instructions per event   ({root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
