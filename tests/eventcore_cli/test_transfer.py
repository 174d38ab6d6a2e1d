"""``eventcore export`` and ``import``: JSON Lines, streamed, resumable, the same events on
every store (SQLite -> PostgreSQL -> SQLite), and a 100,000-event round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import EVENTS, fill, raw_log

from eventcore.raw import RawEvent
from eventcore.stores.sqlite import SqliteEventStore


def _decoded(store: Any) -> list[Any]:
    return [
        (e.position, e.stream_id, e.stream_version, e.event, e.event_id, e.recorded_at, e.metadata)
        for e in store.read_all()
    ]


def test_sqlite_to_postgres_and_back_gives_the_same_events(
    sqlite_target: Any, pg_target: Any, run_process: Any, tmp_path: Path
) -> None:
    source = sqlite_target.store()
    fill(source)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    out = run_process("export", *sqlite_target.args, "-o", str(first))
    assert out.returncode == 0, out.stderr
    assert "exported 6 events (to position 6)" in out.stderr
    pg_target.store().close()  # creates the schema
    into_pg = run_process("import", str(first), *pg_target.args, "--json")
    assert into_pg.returncode == 0, into_pg.stderr
    assert json.loads(into_pg.stdout) == {"imported": 6, "skipped": 0, "events_in_file": 6}
    assert run_process("export", *pg_target.args, "-o", str(second)).returncode == 0
    back = tmp_path / "back.db"
    assert run_process("import", str(second), "--db", str(back)).returncode == 0
    again = SqliteEventStore(str(back), events=EVENTS)
    try:
        assert _decoded(again) == _decoded(source) == _decoded(pg_target.store())
        assert [r.write_end for r in again.export_rows()] == [1, 2, 4, 4, 5, 6]
        assert again.export_rows() == source.export_rows()
    finally:
        again.close()


def test_export_to_stdout_and_from_a_position(target: Any, run: Any) -> None:
    fill(target.store())
    every = run("export", *target.args)
    rows = [RawEvent.from_json_line(line) for line in every.stdout.splitlines()]
    assert [r.position for r in rows] == [1, 2, 3, 4, 5, 6]
    later = run("export", *target.args, "--after", "4")
    assert [json.loads(line)["position"] for line in later.stdout.splitlines()] == [5, 6]


def test_export_resumes_after_the_last_complete_line(
    sqlite_target: Any, run: Any, tmp_path: Path
) -> None:
    fill(sqlite_target.store())
    whole = tmp_path / "whole.jsonl"
    assert run("export", *sqlite_target.args, "-o", str(whole)).exit_code == 0
    lines = whole.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:3]) + lines[3][:20])  # an export interrupted mid-line
    refused = run("export", *sqlite_target.args, "-o", str(cut))
    assert refused.exit_code == 5 and "--resume" in refused.stderr
    resumed = run("export", *sqlite_target.args, "-o", str(cut), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert cut.read_text() == whole.read_text()
    forced = run("export", *sqlite_target.args, "-o", str(cut), "--force", "--after", "5")
    assert forced.exit_code == 0 and len(cut.read_text().splitlines()) == 1


def test_import_resumes_and_refuses_a_different_log(
    sqlite_target: Any, run: Any, tmp_path: Path
) -> None:
    fill(sqlite_target.store())
    whole = tmp_path / "whole.jsonl"
    run("export", *sqlite_target.args, "-o", str(whole))
    half = tmp_path / "half.jsonl"
    half.write_text("".join(whole.read_text().splitlines(keepends=True)[:4]))
    target = tmp_path / "target.db"
    assert run("import", str(half), "--db", str(target)).stdout == "imported 4 events\n"
    rest = run("import", str(whole), "--db", str(target))
    assert rest.exit_code == 0 and rest.stdout == "imported 2 events (4 already there)\n"
    other = tmp_path / "other.db"
    store = SqliteEventStore(str(other), events=EVENTS)
    fill(store)  # the same events with other ids and times
    store.close()
    refused = run("import", str(whole), "--db", str(other))
    assert refused.exit_code == 5 and "different event at position 6" in refused.stderr


def test_a_bad_file_imports_nothing(sqlite_target: Any, run: Any, tmp_path: Path) -> None:
    fill(sqlite_target.store())
    whole = tmp_path / "whole.jsonl"
    run("export", *sqlite_target.args, "-o", str(whole))
    lines = whole.read_text().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(lines[:5]) + "{not json\n")
    target = tmp_path / "target.db"
    result = run("import", str(broken), "--db", str(target))
    assert result.exit_code == 5
    assert "broken.jsonl line 6" in result.stderr and "nothing was imported" in result.stderr
    gap = tmp_path / "gap.jsonl"
    gap.write_text("".join(lines[:2] + lines[3:]))
    skipped = run("import", str(gap), "--db", str(target))
    assert skipped.exit_code == 5 and "not one contiguous export" in skipped.stderr
    assert not target.exists(), "nothing was written"
    assert run("import", str(tmp_path / "none.jsonl"), "--db", str(target)).exit_code == 2


def test_an_import_that_does_not_continue_the_log_writes_nothing(
    target: Any, run: Any, tmp_path: Path
) -> None:
    store = target.store()
    fill(store)
    rows = [r.to_json_line() for r in raw_log(9)]  # another log
    behind = tmp_path / "behind.jsonl"
    behind.write_text("\n".join(rows[1:3]) + "\n")  # positions 2-3: the store is at 6
    result = run("import", str(behind), *target.args)
    assert result.exit_code == 5 and "ends at an earlier position" in result.stderr
    ahead = tmp_path / "ahead.jsonl"
    ahead.write_text("\n".join(rows[7:]) + "\n")  # positions 8-9: 7 is missing
    result = run("import", str(ahead), *target.args)
    assert result.exit_code == 5 and "does not continue the log" in result.stderr
    assert "0 events were imported before this batch" in result.stderr
    assert store.head() == 6


def test_a_100k_event_log_round_trips(run_process: Any, tmp_path: Path) -> None:
    """File -> SQLite -> file: the same bytes (ids, positions, versions, times, metadata)."""
    exported = tmp_path / "big.jsonl"
    exported.write_text("".join(r.to_json_line() + "\n" for r in raw_log(100_000)))
    copy = tmp_path / "copy.db"
    into = run_process("import", str(exported), "--db", str(copy), "--json", timeout=120)
    assert into.returncode == 0, into.stderr
    assert json.loads(into.stdout) == {"imported": 100_000, "skipped": 0, "events_in_file": 100_000}
    again = tmp_path / "again.jsonl"
    out = run_process("export", "--db", str(copy), "-o", str(again), timeout=120)
    assert out.returncode == 0, out.stderr
    assert again.read_bytes() == exported.read_bytes()
