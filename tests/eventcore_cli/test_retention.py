"""``eventcore retention apply|restore`` and ``eventcore streams close|delete`` on SQLite and
PostgreSQL: policies as options, archive or discard, dry runs that write nothing, restore
into an empty store only, tombstones."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import Deposited, Target, fill

from eventcore import SeededIds, StreamId
from eventcore.errors import StreamClosed, StreamDeleted


@pytest.fixture
def second(target: Target, tmp_path: Path) -> Iterator[Target]:
    """Another, empty store of the same kind (restore's destination)."""
    if target.kind == "sqlite":
        path = str(tmp_path / "restored.db")
        made = Target("sqlite", ["--db", path], path, None)
        yield made
        made.close()
        return
    import psycopg

    name = f"ec_test_{uuid.uuid4().hex[:12]}"
    made = Target("postgres", ["--db", target.spec, "--schema", name], target.spec, name)
    yield made
    made.close()
    with psycopg.connect(target.spec, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _rows(target: Target) -> list[tuple[int, str, int]]:
    store = target.store()
    rows = [(r.position, r.stream_id, r.stream_version) for r in store.export_rows()]
    return rows


FILLED = [
    (1, "account-a", 1),
    (2, "account-b", 1),
    (3, "account-a", 2),
    (4, "account-b", 2),
    (5, "order-1", 1),
    (6, "account-a", 3),
]


def test_dry_run_reports_and_writes_nothing(target: Target, run: Any, tmp_path: Path) -> None:
    fill(target.store())
    archive = tmp_path / "archive"
    result = run(
        "retention", "apply", *target.args, "--keep-last", "account-=1", "--dry-run", "--json"
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (found["dry_run"], found["removed"], found["streams"]) == (True, 3, 2)
    assert (found["first_position"], found["last_position"]) == (1, 3)
    assert found["by_stream"] == [
        {"stream_id": "account-a", "removed": 2, "first_version": 1, "last_version": 2},
        {"stream_id": "account-b", "removed": 1, "first_version": 1, "last_version": 1},
    ]
    table = run("retention", "apply", *target.args, "--keep-last", "account-=1", "--dry-run")
    assert "would remove 3 events from 2 streams (positions 1..3)" in table.stdout
    assert "account-a" in table.stdout
    assert _rows(target) == FILLED and not archive.exists()


def test_apply_archives_then_removes_and_restore_rebuilds_the_log(
    target: Target, second: Target, run: Any, tmp_path: Path
) -> None:
    fill(target.store())
    archive = str(tmp_path / "archive")
    result = run(
        "retention",
        "apply",
        *target.args,
        "--keep-last",
        "account-=1",
        "--archive",
        archive,
        "--json",
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (found["removed"], found["streams"], found["archive_files"]) == (
        3,
        2,
        ["events-000000000001-000000000003.jsonl.gz"],
    )
    assert _rows(target) == [FILLED[3], FILLED[4], FILLED[5]]
    live = ["--live", target.spec] + (["--live-schema", target.schema] if target.schema else [])
    restored = run("retention", "restore", archive, *second.args, *live, "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["imported"] == 6
    original = {r.position: r for r in target.store().export_rows()}
    back = second.store().export_rows()
    assert [(r.position, r.stream_id, r.stream_version) for r in back] == FILLED
    assert [r.event_id for r in back[3:]] == [original[p].event_id for p in (4, 5, 6)]
    assert back[4].metadata == original[5].metadata


def test_restore_refuses_a_store_that_is_not_empty(
    target: Target, run: Any, tmp_path: Path
) -> None:
    fill(target.store())
    archive = str(tmp_path / "archive")
    applied = run(
        "retention", "apply", *target.args, "--truncate-before", "account-a=3", "--archive", archive
    )
    assert applied.exit_code == 0, applied.output
    assert "removed 2 events from 1 streams (positions 1..3)" in applied.stdout
    refused = run("retention", "restore", archive, *target.args)
    assert refused.exit_code == 5
    assert "is not empty (events up to position 6)" in refused.stderr
    assert len(_rows(target)) == 4
    missing = run("retention", "restore", str(tmp_path / "nowhere"), *target.args)
    assert missing.exit_code == 4 and "no archive at" in missing.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "policy",
    [
        ["--keep-last", "account-"],
        ["--keep-last", "account-=0"],
        ["--keep-last", "account-=ten"],
        ["--keep-younger", "account-=30x"],
        ["--keep-younger", "account-=0d"],
        ["--truncate-before", "=3"],
        ["--purge-deleted", "[z-a]*"],
        [],
    ],
)
def test_bad_policy_syntax_exits_2_and_writes_nothing(
    target: Target, run: Any, tmp_path: Path, policy: list[str]
) -> None:
    fill(target.store())
    result = run("retention", "apply", *target.args, *policy, "--discard")
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr
    assert _rows(target) == FILLED


def test_archive_or_discard_must_be_chosen(target: Target, run: Any, tmp_path: Path) -> None:
    fill(target.store())
    neither = run("retention", "apply", *target.args, "--keep-last", "account-=1")
    assert neither.exit_code == 2 and "--archive DIR" in neither.stderr
    both = run(
        "retention",
        "apply",
        *target.args,
        "--keep-last",
        "account-=1",
        "--discard",
        "--archive",
        str(tmp_path / "a"),
    )
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    assert _rows(target) == FILLED
    discarded = run(
        "retention", "apply", *target.args, "--keep-younger", "account-*=1d", "--discard"
    )
    assert discarded.exit_code == 0, discarded.output
    assert "removed 3 events" in discarded.stdout and "discarded" in discarded.stdout
    assert _rows(target) == [FILLED[3], FILLED[4], FILLED[5]]


def test_close_and_delete_streams_then_purge_deleted(target: Target, run: Any) -> None:
    fill(target.store())
    closed = run("streams", "close", "account-b", *target.args, "--reason", "settled", "--json")
    assert closed.exit_code == 0, closed.output
    assert json.loads(closed.stdout)["position"] == 7
    deleted = run("streams", "delete", "account-a", *target.args, "--reason", "gdpr")
    assert deleted.exit_code == 0 and "deleted account-a at position 8" in deleted.stdout
    store = target.store(ids=SeededIds(seed=99))  # not the ids fill used
    with pytest.raises(StreamClosed):
        store.append({StreamId("account-b"): 3}, [Deposited(StreamId("account-b"), 1)])
    with pytest.raises(StreamDeleted):
        list(store.read_stream(StreamId("account-a")))
    again = run("streams", "delete", "account-a", *target.args)
    assert again.exit_code == 5 and "was deleted" in again.stderr
    missing = run("streams", "close", "nobody", *target.args)
    assert missing.exit_code == 4
    purged = run(
        "retention", "apply", *target.args, "--purge-deleted", "account-", "--discard", "--json"
    )
    assert json.loads(purged.stdout)["removed"] == 3
    assert [r[0] for r in _rows(target)] == [2, 4, 5, 7, 8]
    listed = run("streams", *target.args, "--json")
    assert [(s["stream_id"], s["state"]) for s in json.loads(listed.stdout)] == [
        ("account-a", "deleted"),
        ("account-b", "closed"),
        ("order-1", "open"),
    ]
    assert "deleted" in run("streams", *target.args, "--prefix", "account-a").stdout
    info = json.loads(run("info", *target.args, "--json").stdout)
    assert (info["closed_streams"], info["deleted_streams"], info["retention_runs"]) == (1, 1, 1)
    assert (info["last_retention"]["first_position"], info["last_retention"]["last_position"]) == (
        1,
        6,
    )
    assert "last_retention" in run("info", *target.args).stdout
    misplaced = run("streams", *target.args, "close", "order-1")
    assert misplaced.exit_code == 2 and "after the subcommand" in misplaced.stderr


def test_retention_apply_and_restore_as_a_subprocess(
    sqlite_target: Target, run_process: Any, tmp_path: Path
) -> None:
    fill(sqlite_target.store())
    archive = str(tmp_path / "archive")
    applied = run_process(
        "retention",
        "apply",
        *sqlite_target.args,
        "--keep-last",
        "account-=1",
        "--archive",
        archive,
        "--json",
    )
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["removed"] == 3
    bad = run_process("retention", "apply", *sqlite_target.args, "--keep-last", "x=y", "--discard")
    assert bad.returncode == 2 and "--keep-last" in bad.stderr
    into = str(tmp_path / "restored.db")
    restored = run_process(
        "retention", "restore", archive, "--db", into, "--live", sqlite_target.spec
    )
    assert restored.returncode == 0, restored.stderr
    assert "restored 6 events" in restored.stdout
    refused = run_process("retention", "restore", archive, "--db", into)
    assert refused.returncode == 5
    closed = run_process("streams", "close", "account-a", "--db", into)
    assert closed.returncode == 0, closed.stderr
    again = run_process("streams", "close", "account-a", "--db", into)
    assert again.returncode == 5
    assert again.stderr.splitlines() == [again.stderr.strip()]  # one line, no log records
    assert again.stderr.startswith("eventcore: error: stream 'account-a' was closed")
