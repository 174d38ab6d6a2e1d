"""The snapshot benchmark runs end to end on tiny sizes (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from benchmarks.snapshots import run_snapshots
run_snapshots(stores=["sqlite"], lengths=(10, 1500), deposits=3, out_dir=sys.argv[1],
              log=lambda line: None)
"""


def test_the_snapshot_workload_writes_its_tables(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "snapshots.json").read_text(encoding="utf-8"))
    cells = {(r["events"], r["snapshots"]) for r in doc["results"]}
    assert cells == {(10, False), (10, True), (1500, False), (1500, True)}
    assert [g["store"] for g in doc["goals"]] == ["sqlite"]
    table = (tmp_path / "snapshots.md").read_text(encoding="utf-8")
    assert "| sqlite | 1,500 |" in table
