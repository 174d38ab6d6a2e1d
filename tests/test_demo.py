"""The demo runs end to end against a real SQLite file and prints what it promises."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from eventcore import SqliteEventStore
from eventcore.demo import main
from eventcore.examples import bank


def run_demo(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    path = tmp_path / "bank.db"
    code, output = run_demo(str(path))
    assert code == 0
    lines = [line.strip() for line in output.splitlines()]
    assert f"database: {path}" in lines
    assert "ok: account-alice v3, account-bob v3 at positions 5-6" in lines
    assert "refused: InsufficientFunds: account-bob holds 80, cannot withdraw 500" in lines
    assert "nothing was written: the log still ends at position 6" in lines
    assert "attempt 1: version conflict on 'account-alice': expected version 3, found 4" in lines
    assert "ok after 2 attempts: account-alice v5, account-bob v4 at positions 8-9" in lines
    assert "5. Balances: account-alice 55, account-bob 100" in lines
    assert "The event log, read back from the file (9 events):" in lines


def test_demo_prints_an_aligned_event_log(tmp_path: Path) -> None:
    _, output = run_demo(str(tmp_path / "bank.db"))
    lines = output.splitlines()
    start = lines.index(
        "position  stream         version  type            data           correlation"
    )
    table = lines[start : start + 10]
    assert table[1].split()[:5] == ["1", "account-alice", "1", "AccountOpened", "owner='Alice'"]
    assert table[9].split()[:5] == ["9", "account-bob", "4", "MoneyDeposited", "amount=20"]
    # The two events of one transfer share a correlation id; different commands do not.
    assert table[5].split()[-1] == table[6].split()[-1] != table[4].split()[-1]
    # Every text column starts where its header starts.
    for column in ("stream", "type", "data", "correlation"):
        start = table[0].index(column)
        assert all(row[start - 2 : start] == "  " and row[start] != " " for row in table)


def test_demo_output_is_deterministic(tmp_path: Path) -> None:
    first = run_demo(str(tmp_path / "one.db"))[1].splitlines()[2:]
    second = run_demo(str(tmp_path / "two.db"))[1].splitlines()[2:]
    assert first == second


def test_demo_leaves_a_file_another_process_can_read(tmp_path: Path) -> None:
    path = tmp_path / "bank.db"
    run_demo(str(path))
    with SqliteEventStore(path, events=bank.EVENTS) as store:
        assert store.head() == 9
        assert bank.balance(store, "account-alice") == 55


def test_demo_refuses_a_file_that_already_holds_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bank.db"
    run_demo(str(path))
    code, output = run_demo(str(path))
    assert code == 2
    assert output == ""
    assert "already holds 9 events" in capsys.readouterr().err


def test_demo_in_a_temporary_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "database: bank.db in a temporary folder" in capsys.readouterr().out
