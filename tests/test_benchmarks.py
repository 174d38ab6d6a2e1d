"""The benchmark harness runs end to end on tiny sizes and writes well-formed results.

No timing is asserted: only the shape of ``results.json`` and ``results.md``, that every
implementation does the work (its checks hold), and the logic that turns figures into goals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.config import SEEDED, WORKLOADS

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "accounts=5",
    "deposits=10",
    "transfers=10",
    "contention_commands=8",
    "contention_seconds=5",
    "rebuild_events=30",
    "rebuild_repeats=2",
    "batch_events=20",
    "batch_repeats=2",
    "read_events=120",
    "read_page=20",
    "read_stream_events=10",
    "cmd_events=40",
    "warmup=1",
    "mem_log_events=300",
    "mem_stream_events=100",
    "proj_events=300",
    "proj_page=100",
    "proj_rounds=2",
    "proj_tx_events=50",
    "proj_live_appends=5",
    "proj_live_gap_ms=1",
]
ENV = {**os.environ, "MPLBACKEND": "Agg"}


def _bench(out: Path, *args: str, sizes: list[str] = TINY) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "benchmarks", "run", "--out", str(out), *args]
    for size in sizes:
        command += ["--set", size]
    return subprocess.run(
        command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("bench")
    only = ",".join([*WORKLOADS, "contention", "projections"])
    return out, _bench(out, "--quick", "--stores", "memory", "--only", only)


def _doc(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return document


def test_cli_succeeds_and_says_quick_is_not_for_ratios(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = run
    assert done.returncode == 0, done.stderr
    assert "NOT for comparing" in done.stderr.splitlines()[-1]
    doc = _doc(out)
    assert doc["quick"] is True and doc["ratios_valid"] is False
    assert "NOT for comparing" in doc["warning"]
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "QUICK RUN" in text.splitlines()[2]


def test_json_shape(run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = run
    doc = _doc(out)
    assert doc["stores"] == ["memory"] and doc["sizes"]["deposits"] == 10
    for key in ("date", "cpu", "cores", "python", "sqlite"):
        assert doc["machine"][key]
    cells = {(r["workload"], r["impl"]): r for r in doc["results"]}
    assert {w for w, _ in cells} == set(WORKLOADS)
    for workload in WORKLOADS:
        ours = cells[(workload, "eventcore")]
        assert ours["status"] == "ok", ours
        assert ours["ops"] > 0 and len(ours["round_rates"]) == 1
        assert ours["checks"] and all(ours["checks"].values()), ours["checks"]
        assert cells[(workload, "raw")]["status"] == "n/a"  # no driver under memory
        theirs = cells[(workload, "eventsourcing")]
        assert theirs["status"] in ("ok", "skipped")
        if theirs["status"] == "ok":
            assert all(theirs["checks"].values()), (workload, theirs["checks"])
    for row in doc["comparisons"]:
        assert row["data"] == SEEDED.get(row["workload"])
        assert row["raw"] is None and row["vs_raw"] is None
        assert len(row["vs_eventsourcing_spread"]) == 2


def test_contention_table_has_every_cell_and_marks_missing_modes(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = run
    section = _doc(out)["contention"]
    rows = section["rows"]
    ours = [r for r in rows if r["impl"] == "eventcore" and r["mode"] == "optimistic"]
    assert {(r["threads"], r["accounts"]) for r in ours} == {
        (t, a) for t in (1, 2, 4, 8) for a in (10, 100)
    }
    for row in ours:
        assert row["status"] == "ok", row
        assert row["exhausted"] == 0 and row["errors"] == 0
        assert row["commands"] > 0 and row["retries_per_command"] is not None
        assert row["checks"] == {
            "money_conserved": True,
            "versions_contiguous": True,
            "positions_gapless": True,
            "event_count": True,
            "threads_finished": True,
        }
    pessimistic = [r for r in rows if r["mode"] == "pessimistic"]
    assert len(pessimistic) == 8
    from benchmarks.capabilities import mode_support

    if mode_support("pessimistic") is not None:
        assert all(r["status"] == "n/a" and "not available" in r["note"] for r in pessimistic)


def test_markdown_shape(run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = run
    text = (out / "results.md").read_text(encoding="utf-8")
    assert text.startswith("# EventCore benchmark results")
    for heading in ("## Goals of issue 15", "## Contention (goal 1)", "## Projections"):
        assert heading in text
    assert "| read_all, command-written (events/s) | memory |" in text
    assert "| rebuild, batch-written (events folded/s) | memory |" in text
    assert "| memory | in-process notification |" in text


def test_chart_when_matplotlib_is_installed(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    pytest.importorskip("matplotlib")
    out, _ = run
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_section_measures_in_subprocesses(tmp_path: Path) -> None:
    pytest.importorskip("eventsourcing")
    done = _bench(tmp_path, "--quick", "--stores", "sqlite", "--only", "memory")
    assert done.returncode == 0, done.stderr
    rows = _doc(tmp_path)["memory"]["rows"]
    assert {(r["case"], r["impl"]) for r in rows} == {
        ("catch-up", "eventcore"),
        ("command", "eventcore"),
        ("command", "eventsourcing"),
    }
    for row in rows:
        assert row["status"] == "ok", row
        assert row["growth_mib"] >= 0 and row["rss_before_mib"] > 0
    assert next(r for r in rows if r["case"] == "catch-up")["units"] == 300


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    for args in (["--only", "nonsense"], ["--modes", "reckless"]):
        done = _bench(tmp_path, *args, sizes=[])
        assert done.returncode == 2
        assert "unknown" in done.stderr


def test_raw_driver_reads_folds_and_decides(tmp_path: Path) -> None:
    """The raw driver does the library's work: a refused transfer writes nothing."""
    from benchmarks.impl_raw_sqlite import RawSqliteBank, Refused

    bank = RawSqliteBank(str(tmp_path / "raw.db"))
    bank.open_accounts(["a", "b"], 10)
    assert bank.transfer("a", "b", 4) == 0
    with pytest.raises(Refused, match="insufficient funds"):
        bank.transfer("a", "b", 7)
    assert bank.inspect("a") == (6, [1, 2]) and bank.inspect("b") == (14, [1, 2])
    assert bank.rebuild("a") == 2  # a command folds the whole stream
    assert bank.positions() == [1, 2, 3, 4, 5]
    assert bank.settings() == {"journal_mode": "WAL", "synchronous": "FULL"}
    bank.close()


@pytest.mark.parametrize("locks_first", [False, True])
def test_raw_postgres_driver_reads_folds_decides_and_checks_versions(
    postgres_dsn: str, postgres_schema: str, locks_first: bool
) -> None:
    """Both designs of the raw PostgreSQL driver: a refused transfer writes nothing, a
    stale version is caught by the unique key (and the optimistic one retries it)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from benchmarks.impl_raw_postgres import RawPostgresBank
    from benchmarks.impl_raw_sqlite import Refused, deposit_decision

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {postgres_schema}")
    params = conninfo_to_dict(postgres_dsn)
    params["options"] = f"-c search_path={postgres_schema}"
    bank = RawPostgresBank(make_conninfo(**params), locks_first=locks_first)
    try:
        bank.open_accounts(["a", "b"], 10)
        assert bank.transfer("a", "b", 4) == 0
        with pytest.raises(Refused, match="insufficient funds"):
            bank.transfer("a", "b", 7)
        assert bank.inspect("a") == (6, [1, 2]) and bank.inspect("b") == (14, [1, 2])
        calls = []

        def meanwhile(balances: dict[str, int]) -> list[tuple[str, str, int]]:
            if not calls:  # another writer takes version 3 between our read and write
                bank._write([("a", "Deposited", 1)], {"a": 2})
            calls.append(balances["a"])
            return deposit_decision("a", 5)(balances)

        if locks_first:
            bank.command(["a"], deposit_decision("a", 5))
            assert bank.inspect("a")[1] == [1, 2, 3]
        else:
            assert bank.command(["a"], meanwhile) == (3, 1)  # retried once, folded 3 events
            assert calls == [6, 7] and bank.inspect("a") == (12, [1, 2, 3, 4])
        assert bank.positions() == list(range(1, len(bank.positions()) + 1))
    finally:
        bank.close()


def test_round_ratios_and_goals() -> None:
    from benchmarks.goals import goals
    from benchmarks.stats import round_ratios

    assert round_ratios([3.0, 1.0, 2.0], [1.0, 1.0, 1.0]) == {
        "ratio": 2.0,
        "ratio_min": 1.0,
        "ratio_max": 3.0,
        "ratio_rounds": 3,
    }

    def cell(workload: str, impl: str, rates: list[float]) -> dict[str, Any]:
        return {
            "workload": workload,
            "store": "sqlite",
            "impl": impl,
            "status": "ok",
            "round_rates": rates,
        }

    document: dict[str, Any] = {
        "stores": ["sqlite"],
        "sizes": {"rounds": 3},
        "ratios_valid": True,
        "results": [
            cell("transfers", "eventcore", [80.0, 90.0, 70.0]),
            cell("transfers", "raw", [100.0, 100.0, 100.0]),
            cell("transfers", "eventsourcing", [10.0, 10.0, 10.0]),
            cell("read_all", "eventcore", [70.0, 70.0, 70.0]),
            cell("read_all", "raw", [100.0, 100.0, 100.0]),
            cell("read_all_cmd", "eventcore", [50.0, 50.0, 50.0]),
            cell("read_all_cmd", "raw", [100.0, 100.0, 100.0]),
        ],
    }
    rows = {g["text"]: g for g in goals(document)}
    raw = rows["3: transfers on SQLite (FULL): at least 75% of the raw driver"]
    assert raw["met"] is True and raw["parts"][0]["ratio"] == 0.8
    read = rows["2: global read on SQLite (FULL): at least 60% of the raw driver's decoded read"]
    assert read["met"] is False and "profile_sqlite_read_all_cmd" in read["look_at"]
    assert [p["label"] for p in read["parts"]] == ["command-written", "batch-written"]
    document["ratios_valid"] = False
    again = {g["text"]: g for g in goals(document)}
    assert again[raw["text"]]["met"] is None and "not checked" in again[raw["text"]]["status"]


def test_instruction_cases_run_and_check_their_work(tmp_path: Path) -> None:
    """The cases ``benchmarks.instructions`` counts under callgrind, run without it: each
    checks that it did its work (valgrind itself is too slow for the suite)."""
    from benchmarks import instructions

    instructions.build_log(str(tmp_path))
    for case in instructions.CASES:
        for work in (False, True):
            command = instructions.case_command(str(ROOT), str(tmp_path), case, work)
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
            assert done.returncode == 0, done.stderr
            assert int(done.stdout.split()[-1]) > 0


def test_instructions_without_valgrind_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import instructions

    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    assert instructions.main([]) == 2
    assert "valgrind is not installed" in capsys.readouterr().out
    section = instructions.run_section(quick=True, log=lambda line: None)
    assert section["cases"] == {} and "valgrind" in section["note"]


def test_partitioned_catch_up_runs_both_layouts_and_reports_the_goal(
    postgres_dsn: str, postgres_schema: str, tmp_path: Path
) -> None:
    """The partition benchmark's workers apply every event once in both layouts."""
    from benchmarks.partitions import markdown, run_partitions

    result = run_partitions(
        quick=True, out_dir=str(tmp_path), url=postgres_dsn, schema=postgres_schema, events=400
    )
    assert result["events"] == 400 and result["rounds"] == 1 and result["quick"]
    assert result["rate_1_worker"] > 0 and result["rate_2_workers"] > 0
    saved = json.loads((tmp_path / "partitions.json").read_text(encoding="utf-8"))
    assert saved["ratio"] == pytest.approx(result["rate_2_workers"] / result["rate_1_worker"])
    text = (tmp_path / "partitions.md").read_text(encoding="utf-8")
    assert text == markdown(result) and "not for ratios" in text


def test_async_workload_runs_every_cell_and_judges_no_goal_on_a_smoke_run(tmp_path: Path) -> None:
    """``python -m benchmarks async`` on the in-memory stores, tiny: every EventCore cell
    does its work (checks hold), eventsourcing is skipped, and no goal is judged."""
    command = [sys.executable, "-m", "benchmarks", "async", "--quick", "--stores", "memory"]
    command += ["--out", str(tmp_path), "--set", "commands=16", "--set", "accounts=8"]
    done = subprocess.run(
        command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "async.json").read_text(encoding="utf-8"))
    assert doc["ratios_valid"] is False and doc["store"] == "memory"
    cells = {(c["impl"], c["workers"]): c for c in doc["cells"]}
    for key in [("eventcore async", 1), ("eventcore async", 8), ("eventcore async", 32)]:
        assert cells[key]["status"] == "ok" and cells[key]["kind"] == "tasks", cells[key]
        assert all(cells[key]["checks"].values()) and cells[key]["median_rate"] > 0
    for key in [("eventcore", 1), ("eventcore", 8)]:
        assert cells[key]["status"] == "ok" and all(cells[key]["checks"].values()), cells[key]
    assert cells[("eventsourcing", 1)]["status"] == "skipped"
    assert [g["met"] for g in doc["goals"]] == [None, None]
    assert "NOT for comparing" in (tmp_path / "async.md").read_text(encoding="utf-8")


def test_the_instrumentation_benchmark_runs_each_variant_and_restores_the_hooks(
    tmp_path: Path,
) -> None:
    from benchmarks import observability
    from eventcore import SqliteDatabase
    from eventcore.observability import instrumented

    read, write = SqliteDatabase.read, SqliteDatabase.write
    rows = observability.run_observability(
        stores=["memory", "sqlite"],
        quick=True,
        out_dir=str(tmp_path),
        rounds=1,
        sizes={"memory": 10, "sqlite": 5},
    )
    assert [r["store"] for r in rows] == ["memory", "sqlite"]
    for row in rows:
        assert set(row["us_per_transfer"]) == {"bare", "off", "on"}
        assert all(v > 0 for v in row["us_per_transfer"].values())
        assert row["off_vs_bare"]["ratio_rounds"] == 1
    assert (SqliteDatabase.read, SqliteDatabase.write) == (read, write)
    assert not instrumented()
    text = (tmp_path / "observability.md").read_text(encoding="utf-8")
    assert "not for ratios" in text and "| memory |" in text
    assert json.loads((tmp_path / "observability.json").read_text())["quick"] is True
