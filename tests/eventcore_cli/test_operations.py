"""``eventcore projections``, ``dead-letters`` and ``snapshots`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from cli_support import Ledger, fill

from eventcore import StreamId
from eventcore.projections import DeadLetter
from eventcore.snapshots import Snapshot


def _dead_letter(store: Any, letters: Any, position: int) -> None:
    event = store.read_all(after=position - 1, limit=1)[0]
    letters.record(
        DeadLetter.for_failure("ledger", event, RuntimeError(f"cannot apply {position}"), 3)
    )


@pytest.fixture
def projected(target: Any) -> Any:
    """A log of six events; projection 'ledger' at 4 with dead letters at 2 and 3, held by
    this process; projection 'report' at 6."""
    store = target.store()
    fill(store)
    checkpoints = target.part("checkpoints", store)
    checkpoints.save("ledger", 4)
    checkpoints.save("report", 6)
    letters = target.part("dead_letters", store)
    _dead_letter(store, letters, 2)
    _dead_letter(store, letters, 3)
    leadership = target.part("leadership", store)
    assert leadership.acquire("ledger")
    return store, letters


def test_projections_show_checkpoints_lag_dead_letters_and_leader(
    target: Any, projected: Any, run: Any
) -> None:
    result = run("projections", *target.args, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["head"] == 6
    rows = {p["name"]: p for p in found["projections"]}
    assert (
        rows["ledger"]["checkpoint"],
        rows["ledger"]["lag"],
        rows["ledger"]["dead_letters"],
    ) == (
        4,
        2,
        2,
    )
    assert (rows["report"]["lag"], rows["report"]["dead_letters"], rows["report"]["leader"]) == (
        0,
        0,
        None,
    )
    leader = rows["ledger"]["leader"]
    assert leader is not None
    if target.kind == "sqlite":
        assert str(os.getpid()) in leader
    table = run("projections", *target.args)
    assert "2 projections (head 6)" in table.stdout


def test_dead_letters_list_and_show(target: Any, projected: Any, run: Any) -> None:
    listed = json.loads(run("dead-letters", "list", *target.args, "--json").stdout)
    assert [(d["projection"], d["position"], d["stream_id"]) for d in listed] == [
        ("ledger", 2, "account-b"),
        ("ledger", 3, "account-a"),
    ]
    assert listed[0]["message"] == "cannot apply 2" and listed[0]["attempts"] == 3
    assert run("dead-letters", "list", "report", *target.args, "--json").stdout.strip() == "[]"
    shown = run("dead-letters", "show", "ledger", "3", *target.args)
    assert shown.exit_code == 0 and "RuntimeError: cannot apply 3" in shown.stdout
    missing = run("dead-letters", "show", "ledger", "5", *target.args)
    assert missing.exit_code == 4 and "no dead letter at position 5" in missing.stderr


def test_dead_letters_retry_through_the_projector(
    target: Any, projected: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, letters = projected
    monkeypatch.setattr(Ledger, "FAILING", {3})
    without_classes = run(
        "dead-letters", "retry", "ledger", *target.args, "--projector", "cli_support:Ledger"
    )
    assert without_classes.exit_code == 5, without_classes.output
    assert "pass the event classes with --events" in without_classes.stderr
    assert [d.attempts for d in letters.list("ledger")] == [3, 3], "nothing was retried"
    wrong = run(
        "dead-letters", "retry", "report", *target.args, "--projector", "cli_support:Ledger"
    )
    assert wrong.exit_code == 2 and "not 'report'" in wrong.stderr
    args = ["--projector", "cli_support:Ledger", "--events", "cli_support:EVENTS", "--json"]
    result = run("dead-letters", "retry", "ledger", *target.args, *args)
    assert result.exit_code == 1, result.output  # one failed again
    found = json.loads(result.stdout)
    assert found["failed"][-1]["message"] == "cannot apply 3", found
    assert (found["applied"], [d["position"] for d in found["failed"]]) == ([2], [3])
    assert [(d.position, d.attempts) for d in letters.list("ledger")] == [(3, 4)]
    monkeypatch.setattr(Ledger, "FAILING", set())
    done = run("dead-letters", "retry", "ledger", "3", *target.args, *args[:4])
    assert done.exit_code == 0 and "applied 1, failed again 0" in done.stdout
    assert letters.list("ledger") == []


def test_dead_letters_discard_needs_yes(target: Any, projected: Any, run: Any) -> None:
    _, letters = projected
    refused = run("dead-letters", "discard", "ledger", *target.args)
    assert refused.exit_code == 5 and "add --yes" in refused.stderr
    assert len(letters.list("ledger")) == 2
    one = run("dead-letters", "discard", "ledger", "2", "--yes", *target.args)
    assert one.exit_code == 0 and "discarded 1" in one.stdout
    absent = run("dead-letters", "discard", "ledger", "2", "--yes", *target.args)
    assert absent.exit_code == 4
    rest = run("dead-letters", "discard", "ledger", "--yes", "--json", *target.args)
    assert json.loads(rest.stdout) == {"discarded": 1}
    assert letters.names() == {}


def test_snapshots_list_and_delete(target: Any, run: Any) -> None:
    store = target.store()
    fill(store)
    snapshots = target.part("snapshots", store)
    for name, stream in [
        ("transfer/a", "account-a"),
        ("transfer/b", "account-b"),
        ("x", "order-1"),
    ]:
        snapshots.save(Snapshot(name, ((StreamId(stream), 1),), ({"balance": 1},)))
    listed = json.loads(run("snapshots", "list", *target.args, "--json").stdout)
    assert [(s["snapshot_id"], s["streams"]) for s in listed] == [
        ("transfer/a", {"account-a": 1}),
        ("transfer/b", {"account-b": 1}),
        ("x", {"order-1": 1}),
    ]
    some = json.loads(run("snapshots", "list", *target.args, "--json", "--prefix", "x").stdout)
    assert [s["snapshot_id"] for s in some] == ["x"]
    assert "3 snapshots" in run("snapshots", "list", *target.args).stdout
    missing = run("snapshots", "delete", "nope", "x", *target.args)
    assert missing.exit_code == 4 and "nothing was deleted" in missing.stderr
    assert len(snapshots.list()) == 3
    assert "deleted 1 snapshots" in run("snapshots", "delete", "x", *target.args).stdout
    cleared = run("snapshots", "delete", "--prefix", "transfer/", "--json", *target.args)
    assert json.loads(cleared.stdout) == {"deleted": 2}
    assert snapshots.list() == []
    nothing = run("snapshots", "delete", *target.args)
    assert nothing.exit_code == 2
