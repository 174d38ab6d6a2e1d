"""The HTTP benchmark runs end to end on a tiny size and writes well-formed results (no
timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_http_benchmark_smoke_run_writes_its_results(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "http", "--quick", "--seconds", "1"]
    command += ["--stores", "sqlite", "--clients", "2", "--out", str(tmp_path)]
    done = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "http.json").read_text())
    assert [r["path"] for r in document["results"]] == ["http", "asgi", "execute_async"]
    for result in document["results"]:
        assert result["store"] == "sqlite" and result["status"] == "ok", result
        assert result["clients"] == 2
        assert result["requests"] > 0 and result["requests_per_second"] > 0
        assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
        assert all(result["checks"].values()), result["checks"]
    table = (tmp_path / "http.md").read_text()
    for path in ("http", "asgi", "execute_async"):
        assert f"| sqlite | {path} |" in table
    assert table.count("all pass") == 3
