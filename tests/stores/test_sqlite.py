"""SQLite-specific behaviour: pragmas, migrations, triggers, paging, corrupt rows, several
processes, lock timeouts and the translation of stream patterns into GLOB."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventcore import (
    ConfigurationError,
    DeserializationError,
    InvalidStreamSelector,
    Metadata,
    StoreFailure,
    StreamDeleted,
    StreamId,
    StreamPattern,
    StreamPrefix,
    TickingClock,
    VersionConflict,
)
from eventcore.stores.sqlite import SCHEMA_VERSION, SqliteEventStore
from eventcore.stores.sqlite.schema import MIGRATIONS
from eventcore.testing.contract import Deposited, Withdrawn

A = StreamId("account-a")
B = StreamId("account-b")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteEventStore]:
    with SqliteEventStore(path, events=[Deposited, Withdrawn]) as s:
        yield s


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- configuration -------------------------------------------------------------------------


def test_file_database_uses_wal(store: SqliteEventStore, path: Path) -> None:
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(("option", "expected"), [({}, 2), ({"synchronous": "NORMAL"}, 1)])
def test_synchronous_full_by_default_normal_on_request(
    path: Path, option: dict[str, Any], expected: int
) -> None:
    conn = raw(path)
    SqliteEventStore(conn, **option)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected  # 2 FULL, 1 NORMAL
    conn.close()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"synchronous": "OFF"}, "synchronous must be"),
        ({"synchronous": "full"}, "synchronous must be"),
        ({"busy_timeout": -1}, "busy_timeout must be"),
        ({"busy_timeout": "5"}, "busy_timeout must be"),
        ({"page_size": 0}, "page_size must be"),
        ({"page_size": -3}, "page_size must be"),
        ({"page_size": 2.5}, "page_size must be"),
        ({"page_size": True}, "page_size must be"),
    ],
)
def test_invalid_options_raise_configuration_error(
    path: Path, option: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SqliteEventStore(path, **option)
    assert not path.exists()  # rejected before the file is created


def test_database_of_the_wrong_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"file path, ':memory:' or a sqlite3\.Connection"):
        SqliteEventStore(42)  # type: ignore[arg-type]


def test_memory_database_by_name() -> None:
    with SqliteEventStore(":memory:") as store:
        store.append({A: 0}, [Deposited(A, 1)])
        assert [r.event for r in store.read_stream(A)] == [Deposited(A, 1)]
        assert repr(store) == "SqliteEventStore(':memory:')"


# -- migrations ----------------------------------------------------------------------------


def test_migrations_are_idempotent_and_recorded(path: Path) -> None:
    start = datetime(2030, 5, 1, tzinfo=UTC)
    SqliteEventStore(path, clock=TickingClock(start)).close()
    with SqliteEventStore(path, events=[Deposited]) as again:
        again.append({A: 0}, [Deposited(A, 1)])
    SqliteEventStore(path).close()
    with raw(path) as conn:
        rows = conn.execute("SELECT version, applied_at FROM eventcore_migrations").fetchall()
        assert rows == [(v, start.isoformat()) for v, _, _ in sorted(MIGRATIONS)]
        assert rows[-1][0] == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM eventcore_events").fetchone()[0] == 1


def test_a_newer_schema_version_is_refused(path: Path) -> None:
    SqliteEventStore(path).close()
    with raw(path) as conn:
        conn.execute("INSERT INTO eventcore_migrations VALUES (99, '2099-01-01')")
    with pytest.raises(ConfigurationError, match=r"schema version 99, newer than .* upgrade"):
        SqliteEventStore(path)


# -- immutability ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    ["UPDATE eventcore_events SET data = '{}'", "DELETE FROM eventcore_events"],
)
def test_update_and_delete_are_rejected_by_triggers(
    store: SqliteEventStore, path: Path, sql: str
) -> None:
    store.append({A: 0}, [Deposited(A, 1)])
    with raw(path) as conn, pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute(sql)
    assert [r.event for r in store.read_stream(A)] == [Deposited(A, 1)]


# -- a connection you own ------------------------------------------------------------------


@pytest.mark.parametrize("isolation", [None, ""], ids=["autocommit", "legacy-default"])
def test_existing_connection_is_used_and_left_open(path: Path, isolation: str | None) -> None:
    conn = sqlite3.connect(path, isolation_level=isolation)
    store = SqliteEventStore(conn, events=[Deposited])
    store.append({A: 0}, [Deposited(A, 1)])
    assert repr(store) == "SqliteEventStore('<connection>')"
    store.close()
    assert conn.execute("SELECT COUNT(*) FROM eventcore_events").fetchone()[0] == 1
    with raw(path) as other:  # committed, visible to another connection
        assert other.execute("SELECT COUNT(*) FROM eventcore_events").fetchone()[0] == 1
    conn.close()


# -- paging --------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [9, 10])
def test_read_stream_pages_in_order(path: Path, count: int) -> None:
    with SqliteEventStore(path, page_size=3) as store:
        for i in range(count):  # interleave another stream so versions and positions differ
            store.append({A: i, B: i}, [Deposited(B, i), Deposited(A, i)])
        assert [r.stream_version for r in store.read_stream(A)] == list(range(1, count + 1))
        assert [r.event.amount for r in store.read_stream(A)] == list(range(count))
        after = [r.stream_version for r in store.read_stream(A, after_version=4)]
        assert after == list(range(5, count + 1))
        assert len(store.read_all(streams=StreamPrefix("account-a"))) == count


def _pairs(items: Any) -> list[tuple[int, object]]:
    return [(item.stream_version, item.event) for item in items]


@pytest.mark.parametrize("count", [9, 10])
def test_fold_reads_page_as_read_stream_does(path: Path, count: int) -> None:
    """read_stream_events / read_streams_events over streams longer than a page (lazily, in
    one query with its continuation, and in a session), and a deleted long stream."""
    with SqliteEventStore(path, page_size=3) as store:
        for i in range(count):
            store.append({A: i, B: i}, [Deposited(B, i), Deposited(A, i)])
        expected = {sid: _pairs(store.read_stream(sid)) for sid in (A, B)}
        for after in (0, 4, count):
            assert _pairs(store.read_stream_events(A, after_version=after)) == expected[A][after:]
        found = store.read_streams_events([A, B])
        assert {sid: _pairs(found[sid]) for sid in (A, B)} == expected
        with store.session([A, B]) as session:
            inside = _pairs(session.read_stream_events(B, after_version=2))
            both = session.read_streams_events([B, A])
        assert inside == expected[B][2:]
        assert {sid: _pairs(both[sid]) for sid in (A, B)} == expected
        deleted = store.delete_stream(A)
        for read in (
            lambda: list(store.read_stream_events(A)),
            lambda: store.read_streams_events([B, A]),
        ):
            with pytest.raises(StreamDeleted) as info:
                read()
            assert info.value.position == deleted.position


# -- corrupt rows --------------------------------------------------------------------------

GOOD_ROW = {
    "event_id": "0190c2a4-0000-7000-8000-0000000000aa",
    "stream_id": "account-a",
    "stream_version": 2,
    "event_type": "Deposited",
    "schema_version": 1,
    "data": '{"account": "account-a", "amount": 5}',
    "metadata": '{"causation_id": null, "correlation_id": null, "custom": {}}',
    "recorded_at": "2026-01-01T00:00:00+00:00",
}


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("data", "{not json", "not valid JSON"),
        ("data", '{"account": "account-a"}', "missing \\['amount'\\]"),
        ("event_type", "Vanished", "unknown event type 'Vanished'"),
        ("schema_version", 7, "schema version 7"),
        ("event_id", "not-a-uuid", "corrupt event row"),
        ("metadata", "{bad", "corrupt event row"),
        ("metadata", "[1, 2]", "corrupt event row"),
        ("metadata", '{"correlation_id": "nope"}', "corrupt event row"),
        ("recorded_at", "yesterday", "corrupt event row"),
        ("data", '{"account": "account-a", "amount": 5} x', "not valid JSON"),
        ("data", '{"account": "account-a", "amount": "5"}', "expected an integer"),
        ("data", '{"account": 7, "amount": 5}', "expected a stream id string"),
        (
            "metadata",
            '{"causation_id":null,"correlation_id":"not-a-uuid-at-all-but-36-chars-long","custom":{}}',
            "corrupt event row",
        ),
    ],
)
def test_corrupt_rows_raise_deserialization_error_naming_the_position(
    store: SqliteEventStore, path: Path, column: str, value: object, message: str
) -> None:
    store.append({A: 0}, [Deposited(A, 1)])
    row = {**GOOD_ROW, column: value}
    with raw(path) as conn:
        conn.execute(
            f"INSERT INTO eventcore_events (position, {', '.join(row)}) "
            f"VALUES (2, {', '.join('?' * len(row))})",
            list(row.values()),
        )
    with pytest.raises(DeserializationError, match=message) as info:
        list(store.read_stream(A))
    assert "position 2" in str(info.value)
    with pytest.raises(DeserializationError, match=message):
        store.read_streams([A])
    with pytest.raises(DeserializationError, match="position 2"):
        store.read_all()
    assert [r.position for r in store.read_all(limit=1)] == [1]  # the good row still reads


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("data", ' {"account": "account-a", "amount": 5}\n'),  # json.loads allows spaces
        ("event_id", "{0190C2A4-0000-7000-8000-0000000000AA}"),  # so does UUID()
        ("event_id", "0190c2a40000700080000000000000aa"),
        (
            "metadata",
            '{"causation_id":null,"correlation_id":"0190c2a4-0000-7000-8000-0000000000ab","custom":{}}',
        ),
        (
            "metadata",
            '{"causation_id":null,"correlation_id":"\\u0030190c2a4-0000-7000-8000-0000000000ab","custom":{}}',
        ),
    ],
)
def test_unusual_but_valid_rows_read_as_before(
    store: SqliteEventStore, path: Path, column: str, value: str
) -> None:
    store.append({A: 0}, [Deposited(A, 1)])
    row = {**GOOD_ROW, column: value}
    with raw(path) as conn:
        conn.execute(
            f"INSERT INTO eventcore_events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    rec = list(store.read_stream(A))[1]
    assert rec.event == Deposited(A, 5)
    assert rec.event_id == UUID(row["event_id"])
    assert rec.metadata == Metadata.from_json(json.loads(row["metadata"]))
    assert store.read_streams([A])[A][1] == rec == store.read_all()[1]


@pytest.mark.parametrize("lengths", [(0, 2, 3, 7), (3, 3, 3), (7, 0, 1), (12,)])
def test_read_streams_pages_through_streams_of_any_length(
    path: Path, lengths: tuple[int, ...]
) -> None:
    ids = [StreamId(f"s-{i}") for i in range(len(lengths))]
    with SqliteEventStore(path, page_size=3) as store:
        for round_ in range(max(lengths)):  # interleaved, so positions and versions differ
            due = [sid for sid, n in zip(ids, lengths, strict=True) if round_ < n]
            store.append({sid: round_ for sid in due}, [Deposited(sid, round_) for sid in due])
        wanted = [*reversed(ids), StreamId("none")]
        found = store.read_streams(wanted)
        assert list(found) == wanted
        for sid in ids:
            assert found[sid] == list(store.read_stream(sid))
        assert [len(found[sid]) for sid in ids] == list(lengths)


def test_the_good_row_template_is_valid(store: SqliteEventStore, path: Path) -> None:
    store.append({A: 0}, [Deposited(A, 1)])
    with raw(path) as conn:
        conn.execute(
            f"INSERT INTO eventcore_events ({', '.join(GOOD_ROW)}) "
            f"VALUES ({', '.join('?' * len(GOOD_ROW))})",
            list(GOOD_ROW.values()),
        )
    assert [r.event.amount for r in store.read_stream(A)] == [1, 5]


# -- concurrency ---------------------------------------------------------------------------

WORKER = r"""
import json, sys
from eventcore import Command, RetryPolicy, SqliteEventStore, StreamId, execute, stream
from eventcore.testing.contract import Deposited, Withdrawn

class Transfer(Command[int]):
    source: StreamId = stream()
    target: StreamId = stream()
    amount: int

    def initial_state(self):
        return 0

    def apply(self, balance, event):
        return balance + (event.amount if isinstance(event, Deposited) else -event.amount)

    def handle(self, balance):
        return [Withdrawn(self.source, self.amount), Deposited(self.target, self.amount)]

path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = SqliteEventStore(path, events=[Deposited, Withdrawn], synchronous="NORMAL")
accounts = [StreamId(f"account-{i}") for i in range(4)]
retry = RetryPolicy(max_retries=500, base_delay=0.0005, max_delay=0.005)
print("ready", flush=True)
sys.stdin.readline()
recorded, attempts = [], 0
for i in range(count):
    source, target = accounts[(worker + i) % 4], accounts[(worker + 2 * i + 1) % 4]
    if source == target:
        target = accounts[(worker + i + 1) % 4]
    result = execute(store, Transfer(source=source, target=target, amount=worker * 1000 + i),
                     retry=retry)
    attempts += result.attempts
    recorded += [[str(e.event_id), e.position] for e in result.events]
store.close()
print(json.dumps({"recorded": recorded, "attempts": attempts}), flush=True)
"""


def test_two_processes_append_to_the_same_file(path: Path) -> None:
    SqliteEventStore(path).close()  # migrate once, up front
    count, workers = 100, 2
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(n), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(1, workers + 1)
    ]
    try:
        for p in procs:  # start both at once, after their imports
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    with SqliteEventStore(path, events=[Deposited, Withdrawn]) as store:
        everything = store.read_all()
        total = workers * count * 2
        assert [r.position for r in everything] == list(range(1, total + 1))
        assert store.head() == total
        for i in range(4):
            versions = [r.stream_version for r in store.read_stream(StreamId(f"account-{i}"))]
            assert versions == list(range(1, len(versions) + 1))
        reported = sorted(tuple(e) for r in reports for e in r["recorded"])
        assert reported == sorted((str(r.event_id), r.position) for r in everything)
        withdrawn = sorted(r.event.amount for r in everything if r.event_type == "Withdrawn")
        expected = sorted(n * 1000 + i for n in range(1, workers + 1) for i in range(count))
        assert withdrawn == expected
        deposited = sorted(r.event.amount for r in everything if r.event_type == "Deposited")
        assert deposited == expected


def test_threads_with_their_own_handles(path: Path) -> None:
    SqliteEventStore(path).close()
    shared, threads, rounds = StreamId("shared"), 4, 20
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with SqliteEventStore(path, synchronous="NORMAL") as handle:
                for i in range(rounds):
                    while True:
                        version = handle.stream_version(shared)
                        try:
                            handle.append({shared: version}, [Deposited(shared, n * 100 + i)])
                            break
                        except VersionConflict:
                            continue
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(30)
    assert not failures, failures
    with SqliteEventStore(path, events=[Deposited]) as store:
        read = list(store.read_stream(shared))
        assert [r.stream_version for r in read] == list(range(1, threads * rounds + 1))
        assert [r.position for r in read] == list(range(1, threads * rounds + 1))
        assert len({r.event.amount for r in read}) == threads * rounds


def test_busy_timeout_expires_as_store_failure(path: Path) -> None:
    store = SqliteEventStore(path, busy_timeout=0.1)
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreFailure, match=r"busy_timeout=0\.1s") as info:
            store.append({A: 0}, [Deposited(A, 1)])
        waited = time.monotonic() - started
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert info.value.operation == "append"
        assert 0.05 <= waited < 5
    finally:
        blocker.rollback()
        blocker.close()
    assert store.head() == 0
    assert store.stream_version(A) == 0
    assert [r.stream_version for r in store.append({A: 0}, [Deposited(A, 1)])] == [1]
    store.close()


# -- stream patterns in GLOB ---------------------------------------------------------------

ALPHABET = "ab^!-_%/\\"
IDS = sorted({a + b + c for a in ALPHABET for b in ["", *ALPHABET] for c in ["", "a", "/b"]})


@pytest.fixture(scope="module")
def many() -> Iterator[SqliteEventStore]:
    with SqliteEventStore(":memory:", events=[Deposited]) as store:
        sids = [StreamId(i) for i in IDS]
        store.append(dict.fromkeys(sids, 0), [Deposited(s, 1) for s in sids])
        yield store


def _check(store: SqliteEventStore, selector: StreamPattern | StreamPrefix) -> None:
    found = [r.stream_id for r in store.read_all(streams=selector)]
    assert found == [i for i in IDS if selector.matches(i)], selector


@pytest.mark.parametrize(
    "pattern",
    [
        "[!a]",
        "[!a]*",
        "[^a]",
        "[^^]",
        "[^-b]*",
        "[!^]?",
        "[!!]",
        "[-a]",
        "[a-]",
        "[-a-c]*",
        "[a-c-]",
        "?",
        "??",
        "a*",
        "*/b",
        "*b",
        "a*b",
        "[\\]*",
        "%*",
        "_?",
    ],
)
def test_patterns_select_what_stream_pattern_matches(many: SqliteEventStore, pattern: str) -> None:
    _check(many, StreamPattern(pattern))


def test_star_crosses_slashes(many: SqliteEventStore) -> None:
    found = {r.stream_id for r in many.read_all(streams=StreamPattern("a*b"))}
    assert {"a/b", "aa/b", "a^/b"} <= found


def test_reversed_range_is_rejected_before_any_sql() -> None:
    with pytest.raises(InvalidStreamSelector, match="invalid character class"):
        StreamPattern("[z-a]")


_piece = st.one_of(
    st.sampled_from([*ALPHABET, "*", "?"]),
    st.builds(
        lambda neg, body: f"[{neg}{body}]",
        st.sampled_from(["", "!"]),
        st.text(alphabet=ALPHABET, min_size=1, max_size=4),
    ),
)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # re warns about '--' inside classes
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_piece, min_size=1, max_size=5))
def test_random_patterns_agree_with_stream_pattern(
    many: SqliteEventStore, pieces: list[str]
) -> None:
    try:
        pattern = StreamPattern("".join(pieces))
    except InvalidStreamSelector:
        return  # a reversed range, for example
    _check(many, pattern)


@settings(max_examples=100, deadline=None)
@given(prefix=st.text(alphabet=ALPHABET, min_size=1, max_size=3))
def test_random_prefixes_match_literally(many: SqliteEventStore, prefix: str) -> None:
    _check(many, StreamPrefix(prefix))
