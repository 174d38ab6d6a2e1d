"""The benchmark CLI runs end to end (tiny sizes, memory only) and writes well-formed results.

No timing is asserted: only the shape of ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "accounts=5",
    "deposits=10",
    "transfers=10",
    "contention_accounts=3",
    "contention_threads=2",
    "contention_transfers=10",
    "rebuild_events=30",
    "rebuild_repeats=2",
    "batch_events=20",
    "batch_repeats=2",
    "read_events=50",
    "read_page=20",
    "read_stream_events=10",
    "warmup=1",
    "proj_events=300",
    "proj_page=100",
    "proj_rounds=2",
    "proj_tx_events=50",
    "proj_live_appends=5",
    "proj_live_gap_ms=1",
]
WORKLOADS = {"deposits", "transfers", "contention", "rebuild", "batch_append", "read_all"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("bench")
    args = [sys.executable, "-m", "benchmarks", "run", "--quick", "--stores", "memory"]
    args += ["--out", str(out)]
    for size in TINY:
        args += ["--set", size]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return out, done


def test_cli_succeeds(run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, done = run
    assert done.returncode == 0, done.stderr
    assert (out / "results.json").is_file()
    assert (out / "results.md").is_file()


def test_json_shape(run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = run
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["quick"] is True
    assert doc["stores"] == ["memory"]
    assert doc["sizes"]["deposits"] == 10
    for key in ("date", "cpu", "cores", "python", "sqlite"):
        assert doc["machine"][key]
    cells = {(r["workload"], r["impl"]): r for r in doc["results"]}
    assert {w for w, _ in cells} == WORKLOADS
    assert {i for _, i in cells} == {"eventcore", "eventsourcing", "raw"}
    for workload in WORKLOADS:
        ours = cells[(workload, "eventcore")]
        assert ours["status"] == "ok", ours
        assert ours["ops"] > 0 and ours["ops_per_s"] > 0
        assert set(ours["latency_ms"]) == {"p50", "p95", "p99"}
        assert ours["checks"] and all(ours["checks"].values()), ours["checks"]
        assert cells[(workload, "raw")]["status"] == "n/a"  # no driver under memory
        assert cells[(workload, "eventsourcing")]["status"] in ("ok", "skipped")
    contention = cells[("contention", "eventcore")]
    assert contention["retries"] is not None and contention["failures"] == 0
    assert contention["checks"]["money_conserved"] and contention["checks"]["versions_contiguous"]
    assert {(r["workload"], r["store"]) for r in doc["comparisons"]} == {
        (w, "memory") for w in WORKLOADS
    }
    for row in doc["comparisons"]:
        assert {"eventcore", "eventsourcing", "raw", "vs_eventsourcing", "vs_raw"} <= set(row)
        assert row["raw"] is None and row["vs_raw"] is None
    assert any(g["workload"] == "rebuild" for g in doc["goals"])


def test_projections_json_shape(run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = run
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["workloads"][-1] == "projections"
    section = doc["projections"]
    assert section["sizes"]["proj_events"] == 300
    assert section["sizes"]["proj_live_appends"] == 5
    (catch,) = section["catch_up"]  # memory: no transactional checkpoint store
    assert catch["store"] == "memory" and catch["projector"] == "counting"
    assert catch["status"] == "ok", catch
    assert catch["events"] == 300 and catch["events_per_s"] > 0
    assert len(catch["round_rates"]) == 2
    assert catch["checks"] and all(catch["checks"].values()), catch["checks"]
    (live,) = section["live"]
    assert live["store"] == "memory" and live["status"] == "ok", live
    assert live["samples"] == 5
    for key in ("latency_ms", "latency_from_append_start_ms", "append_ms"):
        assert set(live[key]) == {"p50", "p95", "p99", "max"}
    assert live["checks"] and all(live["checks"].values()), live["checks"]
    assert section["goals"] == []  # the goals are for SQLite and PostgreSQL
    assert {"wall_seconds", "this_process_cpu_share"} <= set(section["cpu"])


def test_markdown_shape(run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = run
    text = (out / "results.md").read_text(encoding="utf-8")
    assert text.startswith("# EventCore benchmark results")
    assert "| Workload | Store | EventCore |" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "memory" in line]
    assert len(table) >= 6
    for workload in WORKLOADS:
        assert f"| {workload} (" in text
    assert "## Goals" in text
    assert "## Projections" in text
    assert "| memory | in-process notification |" in text


def test_chart_when_matplotlib_is_installed(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    pytest.importorskip("matplotlib")
    out, _ = run
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_projections(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "benchmarks", "run", "--only", "projections", "--quick"]
    args += ["--stores", "memory", "--out", str(tmp_path)]
    for size in TINY:
        if size.startswith("proj_"):
            args += ["--set", size]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert doc["workloads"] == ["projections"]
    assert doc["results"] == [] and doc["comparisons"] == []
    assert doc["projections"]["catch_up"][0]["status"] == "ok"
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "## Projections" in text and "| Workload | Store | EventCore |" not in text


def test_bad_arguments_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--only", "nonsense"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown workload" in done.stderr


def test_instruction_cases_run_and_check_their_work(tmp_path: Path) -> None:
    """The cases ``benchmarks.instructions`` counts under callgrind, run without it: the
    catch-up asserts it projected the whole log (valgrind itself is too slow for the suite)."""
    from benchmarks import instructions

    path = str(tmp_path / "log.db")
    instructions.build_log(str(ROOT), path)
    for case in instructions.CASES:
        for work in (False, True):
            command = instructions.case_command(str(ROOT), path, case, work)
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            assert done.returncode == 0, done.stderr


def test_instructions_without_valgrind_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import instructions

    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    assert instructions.main([]) == 2
    assert "valgrind is not installed" in capsys.readouterr().out
