"""The two guarantees of issue 11 §5 and the pessimistic mode of issue 15, at the level of
``execute``, on every store: idempotent commands (a retry after a lost acknowledgement, in
this process and in another one) and execution in locked sessions (no conflicts, the same
invariants)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bank import EVENTS, Deposit, Transfer, balances_in

from eventcore import (
    IdempotencyConflict,
    InMemoryEventStore,
    RetryPolicy,
    SqliteEventStore,
    StoreFailure,
    StreamId,
    execute,
)
from eventcore.idempotency import IdempotencyKey, command_fingerprint
from eventcore.testing import LostAcknowledgementStore

A, B = StreamId("account-a"), StreamId("account-b")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryEventStore(events=EVENTS)
    elif request.param == "sqlite":
        with SqliteEventStore(tmp_path / "bank.db", events=EVENTS) as opened:
            yield opened
    else:
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        with PostgresEventStore(PostgresConfig(dsn, schema=schema), events=EVENTS) as opened:
            yield opened


# -- idempotent commands -----------------------------------------------------------------


def test_a_retry_after_a_lost_acknowledgement_writes_once(store: Any) -> None:
    lossy = LostAcknowledgementStore(store, losses=1)
    with pytest.raises(StoreFailure, match="after COMMIT"):
        execute(lossy, Deposit(account=A, amount=10), idempotency_key="deposit-1")
    assert store.stream_version(A) == 1  # it did commit
    result = execute(lossy, Deposit(account=A, amount=10), idempotency_key="deposit-1")
    assert result.replayed and result.attempts == 0
    assert list(result.events) == lossy.committed[0]
    assert result.stream_versions == {A: 1}
    assert balances_in(store, A) == {A: 10}  # not 20


def test_without_a_key_the_same_retry_writes_twice(store: Any) -> None:
    """What the key is for: the retry of a lost acknowledgement is a second deposit."""
    lossy = LostAcknowledgementStore(store, losses=1)
    with pytest.raises(StoreFailure):
        execute(lossy, Deposit(account=A, amount=10))
    execute(lossy, Deposit(account=A, amount=10))
    assert balances_in(store, A) == {A: 20}


def test_a_replayed_command_does_not_decide_again(store: Any) -> None:
    execute(store, Deposit(account=A, amount=30))
    first = execute(store, Transfer(source=A, target=B, amount=30), idempotency_key="t-1")
    # The balance is now 0: deciding again would refuse the transfer.
    again = execute(store, Transfer(source=A, target=B, amount=30), idempotency_key="t-1")
    assert again.replayed and again.events == first.events
    assert balances_in(store, A, B) == {A: 0, B: 30}


def test_the_same_key_for_another_command_is_refused(store: Any) -> None:
    execute(store, Deposit(account=A, amount=10), idempotency_key="k")
    head = store.head()
    with pytest.raises(IdempotencyConflict, match="'k'"):
        execute(store, Deposit(account=A, amount=11), idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        execute(store, Deposit(account=B, amount=10), idempotency_key="k")
    assert store.head() == head


def test_an_explicit_fingerprint_and_the_default_one(store: Any) -> None:
    key = IdempotencyKey("k", command_fingerprint(Deposit(account=A, amount=10)))
    first = execute(store, Deposit(account=A, amount=10), idempotency_key=key)
    again = execute(store, Deposit(account=A, amount=10), idempotency_key="k")
    assert again.replayed and again.events == first.events


def test_concurrent_executions_with_one_key_write_once(store: Any) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work() -> None:
        try:
            start.wait(10)
            results.append(execute(store, Deposit(account=A, amount=5), idempotency_key="d"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert balances_in(store, A) == {A: 5}
    assert len({tuple(e.event_id for e in r.events) for r in results}) == 1


_WORKER = r"""
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/tests")
from bank import EVENTS, Deposit
from eventcore import SqliteEventStore, StreamId, execute
with SqliteEventStore(sys.argv[2], events=EVENTS) as store:
    result = execute(store, Deposit(account=StreamId("account-a"), amount=10),
                     idempotency_key="deposit-from-anywhere")
    print(result.replayed, [e.position for e in result.events])
"""


def test_the_key_holds_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _WORKER, str(ROOT), path],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert outputs == ["False [1]", "True [1]"]


# -- pessimistic execution -----------------------------------------------------------------


def test_pessimistic_transfers_under_contention_never_conflict(store: Any) -> None:
    accounts = [StreamId(f"account-{n}") for n in range(4)]
    for sid in accounts:
        execute(store, Deposit(account=sid, amount=1000))
    conflicts: list[Any] = []
    errors: list[BaseException] = []
    never = RetryPolicy(max_retries=0, on_retry=conflicts.append)

    def work(n: int) -> None:
        try:
            for i in range(15):
                a, b = accounts[(n + i) % 4], accounts[(n + i + 1) % 4]
                execute(
                    store,
                    Transfer(source=a, target=b, amount=1),
                    retry=never,
                    concurrency="pessimistic",
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors  # RetryPolicy none: a single conflict would have raised
    assert not conflicts
    assert sum(balances_in(store, *accounts).values()) == 4000
    for sid in accounts:
        versions = [e.stream_version for e in store.read_stream(sid)]
        assert versions == list(range(1, len(versions) + 1))
    assert [e.position for e in store.read_all()] == list(range(1, store.head() + 1))


def test_a_command_class_can_choose_pessimistic(store: Any) -> None:
    class LockedDeposit(Deposit):
        concurrency = "pessimistic"

    execute(store, LockedDeposit(account=A, amount=3))
    with pytest.raises(Exception, match="concurrency must be"):
        execute(store, Deposit(account=A, amount=3), concurrency="hopeful")  # type: ignore[arg-type]
    assert balances_in(store, A) == {A: 3}
