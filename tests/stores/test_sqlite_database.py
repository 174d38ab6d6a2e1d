"""SqliteDatabase: one object owning the file's connections, locks, transactions and schema.

Regression tests for the defects of the first independent test run (issue 11 §1): a
connection opened by the user in Python's default transaction mode, one connection handed to
several stores, reads stalled behind a write waiting for another process's lock, and
concurrent openers of a new file.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventcore import StoreFailure, StoreTimeout, StreamId
from eventcore.projections import SqliteCheckpointStore, SqliteDeadLetterStore
from eventcore.snapshots import SqliteSnapshotStore
from eventcore.stores.sqlite import SCHEMA_VERSION, SqliteDatabase, SqliteEventStore
from eventcore.stores.sqlite import database as database_module
from eventcore.testing.contract import Deposited

A = StreamId("account-a")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def test_stores_built_on_one_database_share_it_and_leave_it_open(path: Path) -> None:
    with SqliteDatabase(path) as db:
        store = SqliteEventStore(db, events=[Deposited])
        checkpoints = SqliteCheckpointStore(store)
        letters = SqliteDeadLetterStore(db)
        snapshots = SqliteSnapshotStore(store)
        assert store.database is checkpoints.database is letters.database is db
        assert snapshots.database is db
        for thing in (store, checkpoints, letters, snapshots):
            thing.close()  # none of them owns the database
        store.append({A: 0}, [Deposited(A, 1)])
        assert db.schema_version == SCHEMA_VERSION
    with pytest.raises(StoreFailure, match="is closed"):
        store.head()


def test_options_for_a_shared_database_are_refused(path: Path) -> None:
    with SqliteDatabase(path) as db, pytest.raises(Exception, match="belong to the SqliteDatabase"):
        SqliteEventStore(db, busy_timeout=1.0)


@pytest.mark.parametrize("isolation", [None, ""], ids=["autocommit", "legacy-default"])
def test_a_checkpoint_saved_through_a_users_connection_is_committed(
    path: Path, isolation: str | None
) -> None:
    """Python's default mode opens a transaction before INSERT; every write is now an
    explicit BEGIN IMMEDIATE ... COMMIT, so nothing is left open."""
    conn = sqlite3.connect(path, isolation_level=isolation, check_same_thread=False)
    store = SqliteEventStore(conn, events=[Deposited])
    checkpoints = SqliteCheckpointStore(conn)
    checkpoints.save("audit", 5)
    assert not conn.in_transaction
    store.append({A: 0}, [Deposited(A, 1)])  # failed with "cannot start a transaction within"
    checkpoints.save("audit", 6)
    with sqlite3.connect(path) as other:  # committed: visible to another connection
        assert other.execute("SELECT position FROM eventcore_checkpoints").fetchone() == (6,)
        assert other.execute("SELECT COUNT(*) FROM eventcore_events").fetchone() == (1,)
    conn.close()


def test_a_users_open_transaction_is_reported_clearly(path: Path) -> None:
    conn = sqlite3.connect(path, check_same_thread=False)
    store = SqliteEventStore(conn, events=[Deposited])
    conn.execute("CREATE TABLE mine (x)")
    conn.execute("INSERT INTO mine VALUES (1)")  # opens a transaction in the default mode
    with pytest.raises(StoreFailure, match="isolation_level=None"):
        store.append({A: 0}, [Deposited(A, 1)])
    conn.rollback()
    store.append({A: 0}, [Deposited(A, 1)])
    conn.close()


def test_stores_given_one_connection_share_one_database_and_lock(path: Path) -> None:
    conn = sqlite3.connect(path, check_same_thread=False)
    store = SqliteEventStore(conn, events=[Deposited])
    checkpoints = SqliteCheckpointStore(conn)
    snapshots = SqliteSnapshotStore(conn)
    assert store.database is checkpoints.database is snapshots.database
    errors: list[BaseException] = []

    def appends() -> None:
        try:
            for n in range(200):
                store.append({A: n}, [Deposited(A, n)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    def saves() -> None:
        try:
            for n in range(1, 201):
                checkpoints.save("p", n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=appends), threading.Thread(target=saves)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # A save that landed inside an append's transaction would vanish with its rollback (or
    # fail); every one of them is kept.
    assert checkpoints.load("p") == 200
    assert store.stream_version(A) == 200
    conn.close()


def test_reads_do_not_wait_behind_a_write_that_waits_for_another_process(path: Path) -> None:
    store = SqliteEventStore(path, events=[Deposited], busy_timeout=20.0)
    store.append({A: 0}, [Deposited(A, 1)])
    blocker = sqlite3.connect(path, isolation_level=None)  # another process's write lock
    blocker.execute("BEGIN IMMEDIATE")
    writer = threading.Thread(target=store.append, args=({A: 1}, [Deposited(A, 2)]))
    try:
        writer.start()
        time.sleep(0.2)  # let the append reach the lock; it now waits up to 20 s
        assert writer.is_alive()
        assert store.head() == 1
        assert [r.position for r in store.read_all()] == [1]
        assert [r.stream_version for r in store.read_stream(A)] == [1]
        assert store.stream_version(A) == 1
        assert writer.is_alive(), "the reads above must not have waited for the write"
    finally:
        blocker.rollback()
        blocker.close()
        writer.join(30)
    assert store.stream_version(A) == 2
    store.close()


def test_a_write_lock_held_too_long_is_a_store_timeout(path: Path) -> None:
    store = SqliteEventStore(path, events=[Deposited], busy_timeout=0.1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreTimeout, match=r"busy_timeout=0\.1s"):
            store.append({A: 0}, [Deposited(A, 1)])
    finally:
        blocker.rollback()
        blocker.close()
    store.close()


def test_a_second_transaction_on_the_same_thread_fails_at_once(path: Path) -> None:
    store = SqliteEventStore(path, events=[Deposited])
    checkpoints = SqliteCheckpointStore(store)
    with checkpoints.transaction() as tx:
        tx.execute("CREATE TABLE model (n)")
        with pytest.raises(StoreFailure, match="already has a transaction open"):
            store.append({A: 0}, [Deposited(A, 1)])
        with pytest.raises(StoreFailure, match="already has a transaction open"):
            checkpoints.save("p", 1)
        assert store.head() == 0  # reads still work inside it
    assert store.head() == 0
    store.append({A: 0}, [Deposited(A, 1)])
    store.close()


def test_reads_inside_a_memory_transaction_use_its_connection() -> None:
    store = SqliteEventStore(":memory:", events=[Deposited])
    checkpoints = SqliteCheckpointStore(store)
    with checkpoints.transaction():
        assert store.head() == 0  # would wait for itself on the single connection
    store.close()


def test_a_database_behind_the_library_is_refused_without_migrate(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE eventcore_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    conn.execute("INSERT INTO eventcore_migrations VALUES (1, 'x')")
    conn.close()
    with pytest.raises(Exception, match="eventcore migrate"):
        SqliteDatabase(path, migrate=False)


def test_a_migration_missing_below_the_latest_is_applied(path: Path) -> None:
    SqliteDatabase(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE eventcore_snapshots")
    conn.execute("DELETE FROM eventcore_migrations WHERE version = 4")
    conn.close()
    with SqliteDatabase(path) as db:
        snapshots = SqliteSnapshotStore(db)
        assert snapshots.list() == []


def _open_and_append(path: str, start: float, name: str) -> None:
    while time.time() < start:
        time.sleep(0.001)
    with SqliteEventStore(path, events=[Deposited]) as store:
        sid = StreamId(name)
        store.append({sid: 0}, [Deposited(sid, 1)])


def test_concurrent_openers_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    """``PRAGMA journal_mode = WAL`` on a new file does not wait on the busy handler; it is
    retried. Before: about one open in 25 failed with 'database is locked'."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(6):
        path = str(tmp_path / f"new-{round_}.db")
        start = time.time() + 0.3  # the processes start, then open together
        procs = [
            ctx.Process(target=_open_and_append, args=(path, start, f"p-{n}")) for n in range(6)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 6, f"round {round_}"
        with SqliteEventStore(path, events=[Deposited]) as store:
            assert store.head() == 6


def test_opening_retries_a_busy_switch_to_wal(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch to WAL fails at once with 'database is locked' while another opener holds
    the lock it needs (SQLite does not consult the busy handler): it is retried."""
    real = database_module._journal_mode_wal
    calls: list[int] = []

    def busy_twice(conn: sqlite3.Connection) -> object:
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return real(conn)

    monkeypatch.setattr(database_module, "_journal_mode_wal", busy_twice)
    with SqliteDatabase(path, busy_timeout=5) as db:
        assert db.schema_version == SCHEMA_VERSION
    assert len(calls) == 3

    def always_busy(conn: sqlite3.Connection) -> object:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(database_module, "_journal_mode_wal", always_busy)
    with pytest.raises(StoreTimeout, match="database is locked"):  # within busy_timeout
        SqliteDatabase(path.with_name("other.db"), busy_timeout=0.05)


@pytest.fixture
def memory_store() -> Iterator[SqliteEventStore]:
    with SqliteEventStore(":memory:", events=[Deposited]) as store:
        yield store


def test_repr_and_closing_twice(memory_store: SqliteEventStore) -> None:
    assert repr(memory_store) == "SqliteEventStore(':memory:')"
    assert repr(memory_store.database) == "SqliteDatabase(':memory:')"
    memory_store.database.close()
    memory_store.database.close()
    assert memory_store.database.closed
