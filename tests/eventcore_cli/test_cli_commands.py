"""``eventcore info``, ``streams``, ``show``, ``tail``, ``verify`` and ``migrate`` on SQLite
and PostgreSQL, in process (CliRunner) and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import Deposited, fill

from eventcore import StreamId


def test_info_in_json_and_as_a_table(target: Any, run: Any) -> None:
    fill(target.store())
    result = run("info", *target.args, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (found["kind"], found["head"], found["events"], found["streams"]) == (
        target.kind,
        6,
        6,
        3,
    )
    assert found["schema_version"] >= 5
    table = run("info", *target.args)
    assert table.exit_code == 0
    assert "head" in table.stdout and "6" in table.stdout


def test_streams_filtered_by_prefix_and_pattern(target: Any, run: Any) -> None:
    fill(target.store())
    every = json.loads(run("streams", *target.args, "--json").stdout)
    assert [
        (s["stream_id"], s["version"], s["first_position"], s["last_position"]) for s in every
    ] == [
        ("account-a", 3, 1, 6),
        ("account-b", 2, 2, 4),
        ("order-1", 1, 5, 5),
    ]
    prefixed = json.loads(run("streams", *target.args, "--json", "--prefix", "account-").stdout)
    assert [s["stream_id"] for s in prefixed] == ["account-a", "account-b"]
    matched = json.loads(run("streams", *target.args, "--json", "--pattern", "order-*").stdout)
    assert [s["stream_id"] for s in matched] == ["order-1"]
    paged = json.loads(
        run("streams", *target.args, "--json", "--after", "account-a", "--limit", "1").stdout
    )
    assert [s["stream_id"] for s in paged] == ["account-b"]
    table = run("streams", *target.args)
    assert "3 streams" in table.stdout and "order-1" in table.stdout


def test_show_a_stream_with_decoded_data(target: Any, run: Any) -> None:
    fill(target.store())
    result = run("show", "account-a", *target.args, "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["position"], e["version"], e["type"], e["data"]) for e in events] == [
        (1, 1, "Deposited", {"account": "account-a", "amount": 10}),
        (3, 2, "Withdrawn", {"account": "account-a", "amount": 5}),
        (6, 3, "Deposited", {"account": "account-a", "amount": 7}),
    ]
    middle = run("show", "account-a", *target.args, "--json", "--from", "2", "--to", "2")
    assert [json.loads(line)["position"] for line in middle.stdout.splitlines()] == [3]
    meta = run("show", "order-1", *target.args, "--json")
    assert json.loads(meta.stdout)["metadata"]["custom"] == {"by": "ops"}
    table = run("show", "account-a", *target.args, "--metadata")
    assert '"amount": 5' in table.stdout and "account-a: 3 events" in table.stdout


def test_show_names_a_missing_stream_and_bad_ranges(target: Any, run: Any) -> None:
    fill(target.store())
    missing = run("show", "account", *target.args)  # a prefix of real streams is not one
    assert missing.exit_code == 4
    assert "no stream 'account'" in missing.stderr
    backwards = run("show", "account-a", *target.args, "--from", "3", "--to", "2")
    assert backwards.exit_code == 2 and "--to 2 is before --from 3" in backwards.stderr


def test_tail_prints_history_then_stops_at_its_limit(target: Any, run: Any) -> None:
    fill(target.store())
    result = run(
        "tail",
        *target.args,
        "--after",
        "0",
        "--prefix",
        "account-b",
        "--limit",
        "5",
        "--timeout",
        "0.3",
    )
    assert result.exit_code == 0, result.output
    assert [line.split("  ")[:3] for line in result.stdout.splitlines()] == [
        ["2", "account-b@1", "Deposited"],
        ["4", "account-b@2", "Deposited"],
    ]
    typed = run(
        "tail", *target.args, "--after", "0", "--type", "Withdrawn", "--json", "--timeout", "0"
    )
    assert [json.loads(line)["position"] for line in typed.stdout.splitlines()] == [3]
    limited = run("tail", *target.args, "--after", "0", "--limit", "2")
    assert len(limited.stdout.splitlines()) == 2


def test_tail_follows_events_written_while_it_runs(target: Any, run_process: Any) -> None:
    store = target.store()
    fill(store)
    import os

    here = Path(__file__).parent  # not `from conftest import`: other conftests share the name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), *sys.path])}
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventcore",
            "tail",
            *target.args,
            "--json",
            "--limit",
            "1",
            "--timeout",
            "30",
            "--pattern",
            "new-*",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and follower.poll() is None:
            sid = StreamId("new-1")
            store.append({sid: store.stream_version(sid)}, [Deposited(sid, 1)])
            try:
                out, err = follower.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            out, err = follower.communicate(timeout=5)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    event = json.loads(out.splitlines()[0])
    assert (event["stream_id"], event["type"]) == ("new-1", "Deposited")
    assert event["position"] > 6


def test_verify_passes_a_sound_log(target: Any, run: Any) -> None:
    fill(target.store())
    result = run("verify", *target.args)
    assert result.exit_code == 0, result.output
    assert "has 6 events; no problems" in result.stdout
    found = json.loads(run("verify", *target.args, "--json").stdout)
    assert (found["ok"], found["head"], found["problems"]) == (True, 6, [])


def test_verify_names_a_corrupt_row_a_gap_and_a_missing_trigger(
    target: Any, run_process: Any
) -> None:
    fill(target.store())
    if target.kind == "sqlite":
        target.sql(
            "INSERT INTO eventcore_events (position, event_id, stream_id, stream_version, "
            "event_type, schema_version, data, metadata, recorded_at) VALUES "
            "(9, 'not-a-uuid', 'account-a', 5, 'Deposited', 1, '{\"amount\": ', '{}', "
            "'2026-01-01T00:00:00+00:00')"
        )
        target.sql("DROP TRIGGER eventcore_events_no_delete")
        trigger = "trigger: immutability trigger eventcore_events_no_delete is missing"
    else:
        target.sql(
            "INSERT INTO {schema}.events (position, event_id, stream_id, stream_version, "
            "event_type, schema_version, data, metadata, recorded_at) VALUES "
            "(9, gen_random_uuid(), 'account-a', 5, 'Deposited', 1, '[1]', '[1, 2]', now())"
        )
        target.sql("ALTER TABLE {schema}.events DISABLE TRIGGER events_no_update")
        trigger = "trigger: immutability trigger events_no_update is disabled"
    result = run_process("verify", *target.args)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "problem: position 9: gap: positions 7 to 8 are missing"
    assert lines[1] == "problem: position 9: version: stream 'account-a' goes from version 3 to 5"
    assert lines[2].startswith("problem: position 9: corrupt: corrupt event row at position 9")
    assert trigger in lines[3]
    assert lines[4].startswith("4 problems in ")
    found = json.loads(run_process("verify", *target.args, "--json").stdout)
    assert [p["kind"] for p in found["problems"]] == ["gap", "version", "corrupt", "trigger"]


def test_migrate_creates_and_upgrades_explicitly(target: Any, run: Any) -> None:
    if target.kind == "postgres":
        refused = run("info", *target.args)  # a schema that does not exist yet
        assert refused.exit_code == 3
        assert "eventcore migrate" in refused.stderr
    created = run("migrate", *target.args, "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["migrated"] is True
    again = run("migrate", *target.args)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert json.loads(run("info", *target.args, "--json").stdout)["head"] == 0


def test_migrate_applies_what_is_missing_on_an_old_sqlite_file(
    sqlite_target: Any, run: Any
) -> None:
    fill(sqlite_target.store())
    sqlite_target.close()
    sqlite_target.opened.clear()
    sqlite_target.sql("DELETE FROM eventcore_migrations WHERE version = 5")
    sqlite_target.sql("ALTER TABLE eventcore_events DROP COLUMN write_end")
    sqlite_target.sql("DROP TABLE eventcore_idempotency")
    behind = run("info", *sqlite_target.args)
    assert behind.exit_code == 3 and "eventcore migrate" in behind.stderr
    done = run("migrate", *sqlite_target.args)
    assert done.exit_code == 0 and "migrated" in done.stdout, done.output
    assert json.loads(run("info", *sqlite_target.args, "--json").stdout)["head"] == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense"], "No such command"),
        (["show"], "Missing argument 'STREAM'"),
        (["streams", "--limit", "0"], "0 is not in the range"),
        (["info", "--db", "x.db", "--schema", "s"], "--schema applies to PostgreSQL"),
        (["info", "--db", "postgresql://a@b:notaport/c"], "bad PostgreSQL target"),
        (["streams", "--pattern", "a[", "--db", "x.db"], "bad stream selector"),
        (["info"], "no target"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    args: list[str], message: str, run: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTCORE_POSTGRES_URL", raising=False)
    (tmp_path / "x.db").touch()
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"], "nothing written"


def test_a_missing_file_is_not_created(run: Any, tmp_path: Any) -> None:
    result = run("info", "--db", str(tmp_path / "nope.db"))
    assert result.exit_code == 3
    assert "no SQLite file" in result.stderr and "nothing was created" in result.stderr
    assert list(tmp_path.iterdir()) == []
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello, this is not a database\n" * 100)
    refused = run("info", "--db", str(not_sqlite))
    assert refused.exit_code == 3 and "cannot open" in refused.stderr


def test_an_unreachable_server_exits_3_without_showing_the_password(run_process: Any) -> None:
    result = run_process("info", "--db", "postgresql://root:sekrit-pw@127.0.0.1:1/test")
    assert result.returncode == 3, result.stderr
    assert "cannot open postgresql://root:***@127.0.0.1:1/test" in result.stderr
    assert "sekrit-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_key_value_dsn_is_postgres_and_its_password_is_masked(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = "host=127.0.0.1 port=1 dbname=test user=root password=hunter2x"
    result = run("info", "--db", dsn)
    assert result.exit_code == 3, result.output
    assert "password=***" in result.stderr and "hunter2x" not in result.output
    monkeypatch.setenv("EVENTCORE_POSTGRES_URL", dsn)
    from_env = run("verify")
    assert from_env.exit_code == 3 and "hunter2x" not in from_env.output


def test_the_postgres_url_comes_from_the_environment(
    pg_target: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(pg_target.store())
    monkeypatch.setenv("EVENTCORE_POSTGRES_URL", pg_target.spec)
    monkeypatch.setenv("EVENTCORE_POSTGRES_SCHEMA", pg_target.schema)
    found = json.loads(run("info", "--json").stdout)
    assert (found["kind"], found["head"]) == ("postgres", 6)


def test_help_lists_the_commands_and_exit_codes(run_process: Any) -> None:
    result = run_process("--help")
    assert result.returncode == 0
    for name in ("info", "streams", "show", "tail", "verify", "export", "import", "migrate"):
        assert name in result.stdout
    assert "Exit codes" in result.stdout and "4  the stream" in result.stdout


def test_the_console_script_runs_the_same_command(sqlite_target: Any) -> None:
    fill(sqlite_target.store())
    script = Path(sys.executable).with_name("eventcore")
    result = subprocess.run(
        [str(script), "info", *sqlite_target.args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["head"] == 6


def test_without_the_extra_one_line_names_the_install_command() -> None:
    code = "import sys; sys.modules['click'] = None; from eventcore.cli import main; main(['info'])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "eventcore: the command needs the cli extra (click and rich): pip install 'eventcore[cli]'"
    ]
