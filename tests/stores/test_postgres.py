"""The PostgreSQL store against a real server: configuration, schema, SQL translation,
ordering, concurrency (threads and processes), faults and LISTEN/NOTIFY.

The store contract itself runs in ``test_postgres_contract.py``.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

psycopg = pytest.importorskip("psycopg")
from psycopg_pool import ConnectionPool  # noqa: E402

from eventcore import (  # noqa: E402
    ConfigurationError,
    RetryAttempt,
    RetryPolicy,
    StoreFailure,
    StoreTimeout,
    StreamDeleted,
    StreamId,
    StreamPattern,
    StreamPrefix,
    VersionConflict,
    execute,
)
from eventcore.errors import BusinessRuleViolation, Conflict, InvalidStreamId  # noqa: E402
from eventcore.examples.bank import EVENTS, OpenAccount, Transfer, balance  # noqa: E402
from eventcore.stores.postgres import (  # noqa: E402
    PostgresConfig,
    PostgresEventStore,
)
from eventcore.stores.postgres.filters import like_prefix, pattern_regex  # noqa: E402
from eventcore.stores.postgres.pool import looks_healthy, readable  # noqa: E402
from eventcore.stores.postgres.schema import MIGRATIONS  # noqa: E402
from eventcore.testing.contract_base import _raw  # noqa: E402

SECRET = "s3cr3t-Pa55"


@dataclass(frozen=True)
class Noted:
    topic: StreamId
    text: str = ""


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def config(postgres_dsn: str, postgres_schema: str) -> PostgresConfig:
    return PostgresConfig(
        postgres_dsn,
        schema=postgres_schema,
        pool_max=8,
        application_name=f"ec-{postgres_schema}",
        poll_interval=0.2,
    )


@pytest.fixture
def open_store(config: PostgresConfig) -> Iterator[Callable[..., PostgresEventStore]]:
    """Open stores on the test's schema (with config overrides); all closed afterwards."""
    opened: list[PostgresEventStore] = []

    def factory(**changes: Any) -> PostgresEventStore:
        opened.append(PostgresEventStore(replace(config, **changes), events=[*EVENTS, Noted]))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., PostgresEventStore]) -> PostgresEventStore:
    return open_store()


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator[Any]:
    """A separate autocommit connection for inspecting and sabotaging."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


def test_fold_reads_page_as_read_stream_does(open_store: Callable[..., PostgresEventStore]) -> None:
    """read_stream_events / read_streams_events over streams longer than a page (lazily, in
    one query with its continuation, and in a session), and a deleted long stream."""
    store = open_store(page_size=3)
    a, b = StreamId("topic-a"), StreamId("topic-b")
    for i in range(10):
        store.append({a: i, b: i}, [Noted(b, str(i)), Noted(a, str(i))])

    def pairs(items: Any) -> list[tuple[int, object]]:
        return [(item.stream_version, item.event) for item in items]

    expected = {sid: pairs(store.read_stream(sid)) for sid in (a, b)}
    for after in (0, 4, 10):
        assert pairs(store.read_stream_events(a, after_version=after)) == expected[a][after:]
    found = store.read_streams_events([a, b])
    assert {sid: pairs(found[sid]) for sid in (a, b)} == expected
    with store.session([a, b]) as session:
        inside = pairs(session.read_stream_events(b, after_version=2))
        both = session.read_streams_events([b, a])
    assert inside == expected[b][2:]
    assert {sid: pairs(both[sid]) for sid in (a, b)} == expected
    deleted = store.delete_stream(a)
    for read in (
        lambda: list(store.read_stream_events(a)),
        lambda: store.read_streams_events([b, a]),
    ):
        with pytest.raises(StreamDeleted) as info:
            read()
        assert info.value.position == deleted.position


def open_accounts(store: PostgresEventStore, n: int, deposit: int = 100) -> list[StreamId]:
    accounts = [StreamId(f"account-{i}") for i in range(n)]
    for account in accounts:
        execute(store, OpenAccount(account=account, owner="o", initial_deposit=deposit))
    return accounts


def assert_consistent(store: PostgresEventStore, accounts: list[StreamId], total: int) -> None:
    """Money conserved, every stream's versions 1..n, global positions 1..head."""
    assert sum(balance(store, a) for a in accounts) == total
    for account in accounts:
        versions = [e.stream_version for e in store.read_stream(account)]
        assert versions == list(range(1, len(versions) + 1))
    positions = [e.position for e in store.read_all()]
    assert positions == list(range(1, store.head() + 1))


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def backend_waiting_for_lock(admin: Any, application_name: str) -> int | None:
    row = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
        "AND wait_event_type = 'Lock' LIMIT 1",
        (application_name,),
    ).fetchone()
    return row[0] if row else None


# -- configuration -------------------------------------------------------------------------


class TestConfig:
    def test_repr_and_masked_dsn_hide_the_password(self) -> None:
        for dsn in (
            f"postgresql://app:{SECRET}@db.example:6543/shop",
            f"host=db.example port=6543 user=app password={SECRET} dbname=shop",
        ):
            config = PostgresConfig(dsn)
            assert SECRET not in repr(config)
            assert "password=***" in repr(config)
            assert SECRET not in config.masked_dsn
            assert config.address == "db.example:6543"
            assert config.mask(f"oops {SECRET} and {dsn}").count(SECRET) == 0

    def test_mask_hides_passwords_in_other_texts(self) -> None:
        config = PostgresConfig("host=h dbname=d")
        assert config.mask("postgresql://u:hunter2@h/d") == "postgresql://u:***@h/d"
        assert config.mask("host=h password=hunter2 x=1") == "host=h password=*** x=1"

    def test_a_bad_dsn_is_a_configuration_error_without_the_password(self) -> None:
        with pytest.raises(ConfigurationError, match="not a PostgreSQL URL") as info:
            PostgresConfig(f"host=h password={SECRET} port")
        assert SECRET not in str(info.value)
        with pytest.raises(ConfigurationError, match="port"):
            PostgresConfig(f"postgresql://u:{SECRET}@h:abc/d")

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("schema", "Events", "lower-case identifier"),
            ("schema", "a-b", "lower-case identifier"),
            ("schema", "x" * 64, "lower-case identifier"),
            ("schema", "1abc", "lower-case identifier"),
            ("schema", 'x"; drop table y; --', "lower-case identifier"),
            ("schema", "pg_events", "reserves"),
            ("pool_min", -1, "pool_min"),
            ("pool_max", 0, "pool_max"),
            ("pool_min", 5, "pool_max .* must be >= pool_min"),
            ("connect_timeout", 0, "connect_timeout"),
            ("acquire_timeout", float("nan"), "acquire_timeout"),
            ("statement_timeout", -1, "statement_timeout"),
            ("lock_timeout", True, "lock_timeout"),
            ("page_size", 0, "page_size"),
            ("poll_interval", "1", "poll_interval"),
            ("listen", "yes", "listen"),
            ("application_name", "x" * 64, "application_name"),
        ],
    )
    def test_invalid_values_are_configuration_errors(
        self, field: str, value: object, message: str
    ) -> None:
        kwargs: dict[str, Any] = {"pool_max": 2} if field == "pool_min" and value == 5 else {}
        with pytest.raises(ConfigurationError, match=message):
            PostgresConfig("host=localhost", **{**kwargs, field: value})

    def test_from_env_prefers_the_eventcore_url(self) -> None:
        env = {
            "EVENTCORE_POSTGRES_URL": f"postgresql://u:{SECRET}@h1:5433/d1",
            "PGHOST": "h2",
            "EVENTCORE_POSTGRES_SCHEMA": "shop",
        }
        config = PostgresConfig.from_env(env, pool_max=3)
        assert (config.address, config.schema, config.pool_max) == ("h1:5433", "shop", 3)
        assert SECRET not in repr(config)

    def test_from_env_falls_back_to_the_pg_variables(self) -> None:
        env = {
            "PGHOST": "h2",
            "PGPORT": "5439",
            "PGUSER": "u",
            "PGPASSWORD": SECRET,
            "PGDATABASE": "d",
        }
        config = PostgresConfig.from_env(env)
        assert config.params == {
            "host": "h2",
            "port": "5439",
            "user": "u",
            "password": SECRET,
            "dbname": "d",
        }
        assert config.schema == "eventcore"
        assert SECRET not in repr(config)

    def test_from_env_without_any_server_says_what_to_set(self) -> None:
        with pytest.raises(ConfigurationError, match=r"EVENTCORE_POSTGRES_URL.*PGHOST"):
            PostgresConfig.from_env({})

    def test_store_takes_a_config_or_a_dsn(self) -> None:
        with pytest.raises(ConfigurationError, match="PostgresConfig or a DSN"):
            PostgresEventStore(42)  # type: ignore[arg-type]
        assert PostgresConfig("host=h").schema == "eventcore"
        with pytest.raises(StoreFailure, match=re.escape("at 127.0.0.1:1:")):
            PostgresEventStore(f"postgresql://root:{SECRET}@127.0.0.1:1/test")


# -- schema ---------------------------------------------------------------------------------


class TestSchema:
    def test_migrations_are_recorded_once_and_idempotent(
        self, open_store: Callable[..., PostgresEventStore], admin: Any, config: PostgresConfig
    ) -> None:
        for _ in range(3):
            open_store()
        rows = admin.execute(f"SELECT version FROM {config.schema}.migrations").fetchall()
        assert sorted(rows) == [(v,) for v, _, _ in sorted(MIGRATIONS)]

    def test_concurrent_migrations_are_serialised(self, config: PostgresConfig, admin: Any) -> None:
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []
        stores: list[PostgresEventStore] = []

        def open_one() -> None:
            barrier.wait()
            try:
                stores.append(PostgresEventStore(replace(config, pool_min=0)))
            except BaseException as exc:  # pragma: no cover - the failure we look for
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in stores:
            s.close()
        assert errors == []
        rows = admin.execute(f"SELECT version FROM {config.schema}.migrations").fetchall()
        assert sorted(rows) == [(v,) for v, _, _ in sorted(MIGRATIONS)]

    def test_a_newer_schema_version_is_refused(
        self, store: PostgresEventStore, config: PostgresConfig, admin: Any
    ) -> None:
        admin.execute(
            f"INSERT INTO {config.schema}.migrations (version, description) VALUES (99, 'x')"
        )
        with pytest.raises(ConfigurationError, match="version 99, newer"):
            PostgresEventStore(config)

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE {s}.events SET event_type = 'x'",
            "DELETE FROM {s}.events",
            "TRUNCATE {s}.events",
        ],
    )
    def test_events_are_immutable(
        self, store: PostgresEventStore, config: PostgresConfig, admin: Any, statement: str
    ) -> None:
        store.append({StreamId("t"): 0}, [Noted(StreamId("t"), "keep")])
        with pytest.raises(psycopg.Error, match="immutable") as info:
            admin.execute(statement.format(s=config.schema))
        assert info.value.sqlstate == "EC002"
        assert [e.event.text for e in store.read_all()] == ["keep"]

    def test_appends_refuse_isolation_levels_other_than_read_committed(
        self, open_store: Callable[..., PostgresEventStore], config: PostgresConfig
    ) -> None:
        params = {**config.params, "options": "-c default_transaction_isolation=serializable"}
        store = open_store(dsn=" ".join(f"{k}='{v}'" for k, v in params.items()))
        with pytest.raises(StoreFailure, match="need READ COMMITTED, not serializable"):
            store.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
        with store.transaction() as tx:  # transactions always begin READ COMMITTED
            tx.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
        assert store.head() == 1

    def test_nul_in_a_payload_round_trips_as_on_the_other_stores(
        self, store: PostgresEventStore, admin: Any, postgres_schema: str
    ) -> None:
        """Payloads are kept as json (exact text), which holds the escape ``\\u0000``
        (jsonb could not, so PostgreSQL used to refuse what memory and SQLite keep)."""
        store.append({StreamId("t"): 0}, [Noted(StreamId("t"), "a\x00b")])
        assert [e.event.text for e in store.read_all()] == ["a\x00b"]
        kind = admin.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'events' AND column_name = 'data'",
            (postgres_schema,),
        ).fetchone()
        assert kind == ("json",)

    def test_nul_in_a_stream_id_is_refused_before_any_store(
        self, store: PostgresEventStore
    ) -> None:
        with pytest.raises(InvalidStreamId, match="NUL"):
            store.append({_raw("t\x00"): 0}, [Noted(_raw("t"))])
        assert store.head() == 0


# -- SQL translation ------------------------------------------------------------------------

ODD_IDS = [
    "a%b-1",
    "a_b-1",
    "axb-1",
    "a\\b-1",
    "a\\\\b",
    "ab",
    "a.b",
    "a+b",
    "a(b)",
    "a$b",
    "a^b",
    "a{1}",
    "a|b",
    "a b",
    "a\nb",
    "é-1",
    "É_x",
    "-a",
    "!a",
    "b%",
    "account-1",
    "account-x",
    "my-account-1",
]


class TestFilters:
    def test_like_prefix_escapes_wildcards(self) -> None:
        assert like_prefix(StreamPrefix("a%_\\")) == "a\\%\\_\\\\%"

    @pytest.mark.parametrize("prefix", ["a%", "a_", "a\\", "a\\\\", "a", "é", "b%", "a\n"])
    def test_prefixes_match_literally(self, store: PostgresEventStore, prefix: str) -> None:
        for sid in ODD_IDS:
            store.append({StreamId(sid): 0}, [Noted(StreamId(sid))])
        selector = StreamPrefix(prefix)
        found = [e.stream_id for e in store.read_all(streams=selector)]
        assert found == [sid for sid in ODD_IDS if selector.matches(sid)]

    def test_pattern_regex_is_anchored_and_escaped(self) -> None:
        assert pattern_regex(StreamPattern("a.b*")) == "^a\\.b.*$"
        assert pattern_regex(StreamPattern("[!^\\]?")) == "^[^\\^\\\\].$"

    def test_patterns_match_like_stream_pattern(self, store: PostgresEventStore) -> None:
        store.append(
            {StreamId(sid): 0 for sid in ODD_IDS}, [Noted(StreamId(sid)) for sid in ODD_IDS]
        )
        literal = st.sampled_from(list("ab-_%\\.+()$^{}|!1x éÉ\n"))
        klass = st.sampled_from(["[ab]", "[!a]", "[a-c]", "[%_]", "[\\]", "[^]", "[!^-]", "[0-9]"])
        part = st.one_of(literal, literal, st.just("*"), st.just("?"), klass)

        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(st.lists(part, min_size=1, max_size=6).map("".join))
        def check(text: str) -> None:
            pattern = StreamPattern(text)
            found = {e.stream_id for e in store.read_all(streams=pattern)}
            assert found == {sid for sid in ODD_IDS if pattern.matches(sid)}, text

        check()

    def test_filters_apply_before_the_limit(self, store: PostgresEventStore) -> None:
        for i in range(30):
            store.append({StreamId(f"noise-{i}"): 0}, [Noted(StreamId(f"noise-{i}"))])
        store.append({StreamId("k_1"): 0}, [Noted(StreamId("k_1"))])
        store.append({StreamId("k_2"): 0}, [Noted(StreamId("k_2"))])
        assert len(store.read_all(streams=StreamPrefix("k_"), limit=2)) == 2
        assert len(store.read_all(streams=StreamPattern("k?[0-9]"), limit=5)) == 2
        assert [e.stream_id for e in store.read_all(event_types=[Noted], after=31)] == ["k_2"]


# -- transactions and the ordering guarantee -------------------------------------------------


class TestTransactions:
    def test_commit_makes_the_append_and_own_sql_visible_together(
        self, store: PostgresEventStore, config: PostgresConfig, admin: Any
    ) -> None:
        admin.execute(f"CREATE TABLE {config.schema}.outbox (note text)")
        with store.transaction() as tx:
            recorded = tx.append({StreamId("t"): 0}, [Noted(StreamId("t"), "one")])
            tx.connection.execute(f"INSERT INTO {config.schema}.outbox VALUES ('sent')")
            assert [r.position for r in recorded] == [1]
            assert store.head() == 0  # not visible before the commit
        assert store.head() == 1
        assert admin.execute(f"SELECT note FROM {config.schema}.outbox").fetchall() == [("sent",)]

    def test_an_exception_rolls_everything_back(self, store: PostgresEventStore) -> None:
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
            raise RuntimeError("changed my mind")
        assert store.head() == 0
        assert store.append({StreamId("t"): 0}, [Noted(StreamId("t"))])[0].position == 1

    def test_one_append_per_transaction(self, store: PostgresEventStore) -> None:
        with store.transaction() as tx:
            tx.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
            with pytest.raises(StoreFailure, match="already appended"):
                tx.append({StreamId("u"): 0}, [Noted(StreamId("u"))])
        with pytest.raises(StoreFailure, match="transaction has ended"):
            tx.append({StreamId("u"): 0}, [Noted(StreamId("u"))])
        assert store.head() == 1

    def test_a_swallowed_failure_does_not_commit(self, store: PostgresEventStore) -> None:
        store.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
        with pytest.raises(StoreFailure, match="rolled it back"), store.transaction() as tx:
            with pytest.raises(VersionConflict) as info:
                tx.append({StreamId("t"): 0, StreamId("u"): 3}, [Noted(StreamId("t"))])
            assert info.value.conflicts == (Conflict("t", 0, 1), Conflict("u", 3, 0))
        assert store.head() == 1


def test_a_reader_polling_sees_every_event_once_in_order_despite_late_commits(
    open_store: Callable[..., PostgresEventStore],
) -> None:
    """Writer A holds its transaction open 0.3 s after appending while writer B appends and
    commits as fast as it can; a reader polling "after the last position seen" must never
    skip an event, see one twice, or see positions out of order."""
    writer_a, writer_b, reader = open_store(), open_store(), open_store()
    written: list[tuple[int, uuid.UUID]] = []
    written_lock = threading.Lock()
    a_done = threading.Event()
    errors: list[BaseException] = []

    def record(events: list[Any]) -> None:
        with written_lock:
            written.extend((e.position, e.event_id) for e in events)

    def slow_writer() -> None:
        try:
            sid = StreamId("slow")
            for version in range(4):
                with writer_a.transaction() as tx:
                    events = tx.append({sid: version}, [Noted(sid, f"a{version}")])
                    time.sleep(0.3)  # commit late: B's appends queue behind this one
                record(events)
                time.sleep(0.05)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            a_done.set()

    def fast_writer() -> None:
        try:
            n = 0
            while not a_done.is_set():
                sid = StreamId(f"fast-{n % 3}")
                if n % 4 == 3:  # sometimes a short delayed transaction too
                    with writer_b.transaction() as tx:
                        events = tx.append({sid: n // 3}, [Noted(sid, f"b{n}")])
                        time.sleep(0.02)
                else:
                    events = writer_b.append({sid: n // 3}, [Noted(sid, f"b{n}")])
                record(events)
                n += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=slow_writer), threading.Thread(target=fast_writer)]
    for t in threads:
        t.start()
    seen: list[tuple[int, uuid.UUID]] = []
    last = 0
    while True:
        finished = not any(t.is_alive() for t in threads)
        for event in reader.read_all(after=last):
            assert event.position == last + 1, f"skipped from {last} to {event.position}"
            seen.append((event.position, event.event_id))
            last = event.position
        if finished:
            break
        time.sleep(0.001)
    assert errors == []
    assert len(written) > 8
    assert seen == sorted(written)
    a_positions = [e.position for e in reader.read_stream(StreamId("slow"))]
    assert len(a_positions) == 4
    # B's appends really were interleaved with A's late commits
    assert a_positions[-1] - a_positions[0] > 3


# -- concurrency ------------------------------------------------------------------------------


def random_transfers(
    store: PostgresEventStore, accounts: list[StreamId], count: int, seed: int
) -> dict[str, int]:
    rng = random.Random(seed)
    stats = {"ok": 0, "rejected": 0, "retries": 0}

    def on_retry(attempt: RetryAttempt) -> None:
        stats["retries"] += 1

    policy = RetryPolicy(
        max_retries=100, base_delay=0.001, max_delay=0.02, on_retry=on_retry, rng=rng
    )
    for _ in range(count):
        source, target = rng.sample(accounts, 2)
        try:
            execute(
                store,
                Transfer(source=source, target=target, amount=rng.randint(1, 60)),
                retry=policy,
            )
            stats["ok"] += 1
        except BusinessRuleViolation:
            stats["rejected"] += 1
    return stats


def test_eight_threads_moving_money_conserve_it(store: PostgresEventStore) -> None:
    accounts = open_accounts(store, 10)
    results: list[dict[str, int]] = []

    def work(seed: int) -> None:
        results.append(random_transfers(store, accounts, 15, seed))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    ok = sum(r["ok"] for r in results)
    assert ok + sum(r["rejected"] for r in results) == 8 * 15
    print(f"8 threads: {ok} transfers, {sum(r['retries'] for r in results)} conflicts retried")
    assert_consistent(store, accounts, 1000)
    # 2 events per account opening, 2 per transfer
    assert store.head() == 20 + 2 * ok


WORKER = """
import json, sys
from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
sys.path.insert(0, sys.argv[4])
from test_postgres import random_transfers
from eventcore import StreamId
from eventcore.examples.bank import EVENTS
dsn, schema, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
accounts = [StreamId(f"account-{i}") for i in range(10)]
with PostgresEventStore(PostgresConfig(dsn, schema=schema, pool_max=2), events=EVENTS) as store:
    print(json.dumps(random_transfers(store, accounts, 30, seed)))
"""


@pytest.mark.slow
def test_two_processes_moving_money_conserve_it(
    store: PostgresEventStore, config: PostgresConfig
) -> None:
    accounts = open_accounts(store, 10)
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, config.dsn, config.schema, str(seed), here],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (101, 202)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    ok = sum(r["ok"] for r in results)
    assert ok + sum(r["rejected"] for r in results) == 60
    print(f"2 processes: {ok} transfers, {sum(r['retries'] for r in results)} conflicts retried")
    assert_consistent(store, accounts, 1000)
    assert store.head() == 20 + 2 * ok


# -- faults -----------------------------------------------------------------------------------


class Proxy:
    """A TCP proxy to the test server that can be stopped, like a server going down."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def stop(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class TestFaults:
    def test_a_connection_killed_mid_append_fails_cleanly_and_the_pool_recovers(
        self, store: PostgresEventStore, config: PostgresConfig, admin: Any
    ) -> None:
        a, b = open_accounts(store, 2)
        outcome: list[BaseException] = []

        def transfer() -> None:
            try:
                execute(store, Transfer(source=a, target=b, amount=10), retry=RetryPolicy.none())
            except BaseException as exc:
                outcome.append(exc)

        with store.transaction() as tx:
            # An empty append still locks its streams: the transfer now stops inside
            # eventcore_append, waiting for the lock on account a.
            tx.append({a: 2}, [])
            worker = threading.Thread(target=transfer)
            worker.start()
            pid = wait_until(lambda: backend_waiting_for_lock(admin, config.application_name))
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            worker.join(5)
        assert len(outcome) == 1
        failure = outcome[0]
        assert isinstance(failure, StoreFailure) and not isinstance(failure, StoreTimeout)
        assert "lost the connection to PostgreSQL at" in str(failure)
        assert isinstance(failure.__cause__, psycopg.OperationalError)
        assert [balance(store, a), balance(store, b)] == [100, 100]  # nothing half-written
        assert store.head() == 4
        result = execute(store, Transfer(source=a, target=b, amount=10))  # the pool recovered
        assert [e.position for e in result.events] == [5, 6]
        assert_consistent(store, [a, b], 200)

    def test_checkouts_cost_no_round_trip_yet_a_terminated_connection_is_caught(
        self, postgres_dsn: str, admin: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        full_checks: list[Any] = []
        real_check = ConnectionPool.check_connection
        monkeypatch.setattr(
            ConnectionPool,
            "check_connection",
            staticmethod(lambda conn: (full_checks.append(conn), real_check(conn))[1]),
        )
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("SELECT 1")
            assert looks_healthy(conn)
            assert full_checks == []  # a healthy idle connection: no query sent
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            wait_until(lambda: readable(conn.pgconn.socket))
            assert not looks_healthy(conn)
            assert full_checks == [conn]

    def test_a_pooled_connection_killed_while_idle_is_replaced_before_use(
        self, open_store: Callable[..., PostgresEventStore], config: PostgresConfig, admin: Any
    ) -> None:
        store = open_store(pool_min=1, pool_max=1)
        a, b = open_accounts(store, 2)
        pids = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (config.application_name,),
        ).fetchall()
        assert pids
        time.sleep(0.1)  # let the termination reach the client's socket
        result = execute(store, Transfer(source=a, target=b, amount=10), retry=RetryPolicy.none())
        assert result.attempts == 1 and len(result.events) == 2
        assert_consistent(store, [a, b], 200)

    def hold_stream(self, store: PostgresEventStore, sid: StreamId) -> Any:
        """A transaction that appended to ``sid`` and stays open (close the returned cm)."""
        cm = store.transaction()
        tx = cm.__enter__()
        tx.append({sid: 0}, [Noted(sid, "held")])
        return cm

    def test_lock_timeout_is_a_store_timeout(
        self, store: PostgresEventStore, open_store: Callable[..., PostgresEventStore]
    ) -> None:
        impatient = open_store(lock_timeout=0.2)
        held = self.hold_stream(store, StreamId("t"))
        try:
            started = time.monotonic()
            with pytest.raises(StoreTimeout, match=re.escape("lock_timeout=0.2s")) as info:
                impatient.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
            assert time.monotonic() - started < 2
            assert isinstance(info.value.__cause__, psycopg.errors.LockNotAvailable)
        finally:
            held.__exit__(None, None, None)
        assert [e.event.text for e in store.read_all()] == ["held"]

    def test_statement_timeout_is_a_store_timeout(
        self, store: PostgresEventStore, open_store: Callable[..., PostgresEventStore]
    ) -> None:
        impatient = open_store(lock_timeout=None, statement_timeout=0.2)
        held = self.hold_stream(store, StreamId("t"))
        try:
            with pytest.raises(StoreTimeout, match=re.escape("statement_timeout=0.2s")) as info:
                impatient.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
            assert isinstance(info.value.__cause__, psycopg.errors.QueryCanceled)
        finally:
            held.__exit__(None, None, None)
        assert store.head() == 1

    def test_an_exhausted_pool_says_so(self, open_store: Callable[..., PostgresEventStore]) -> None:
        store = open_store(pool_max=1, acquire_timeout=0.3)
        with store.transaction(), pytest.raises(StoreTimeout, match="no pooled connection"):
            store.head()
        assert store.head() == 0

    def test_an_unreachable_server_names_host_and_port_but_not_the_password(self) -> None:
        dsn = f"postgresql://root:{SECRET}@127.0.0.1:1/test"
        with pytest.raises(
            StoreFailure, match=re.escape("cannot connect to PostgreSQL at 127.0.0.1:1:")
        ) as info:
            PostgresEventStore(PostgresConfig(dsn, connect_timeout=2))
        assert SECRET not in str(info.value)
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        assert SECRET not in str(info.value.__cause__)

    def test_a_server_stopped_before_a_command_gives_a_clear_error(
        self, postgres_dsn: str, config: PostgresConfig
    ) -> None:
        params = PostgresConfig(postgres_dsn).params
        target = (params.get("host", "127.0.0.1"), int(params.get("port", 5432)))
        proxy = Proxy(target)
        through = {**params, "host": "127.0.0.1", "port": str(proxy.port), "password": SECRET}
        dsn = " ".join(f"{k}={v}" for k, v in through.items())
        store = PostgresEventStore(replace(config, dsn=dsn, acquire_timeout=1.0))
        assert SECRET not in repr(store)
        try:
            store.append({StreamId("t"): 0}, [Noted(StreamId("t"))])
            proxy.stop()
            with pytest.raises(
                StoreFailure,
                match=re.escape(f"cannot connect to PostgreSQL at 127.0.0.1:{proxy.port}:"),
            ) as info:
                store.head()
            assert SECRET not in str(info.value)
        finally:
            store.close()


# -- LISTEN/NOTIFY ----------------------------------------------------------------------------


class TestWaitForEvents:
    def append_later(self, store: PostgresEventStore, delay: float) -> threading.Timer:
        sid = StreamId(f"late-{uuid.uuid4().hex[:6]}")
        timer = threading.Timer(delay, lambda: store.append({sid: 0}, [Noted(sid)]))
        timer.start()
        return timer

    def test_a_notification_wakes_the_waiter(
        self, open_store: Callable[..., PostgresEventStore]
    ) -> None:
        waiter, writer = open_store(poll_interval=10.0), open_store()
        assert waiter.wait_for_events(0, 0.05) is False
        started = time.monotonic()
        timer = self.append_later(writer, 0.3)
        assert waiter.wait_for_events(0, 5.0) is True
        assert time.monotonic() - started < 1.3  # far below the 10 s poll interval
        timer.join()
        assert waiter.wait_for_events(0, 0) is True  # already there: returns at once

    def test_polling_finds_events_without_notifications(
        self, open_store: Callable[..., PostgresEventStore]
    ) -> None:
        waiter, writer = open_store(listen=False, poll_interval=0.2), open_store()
        started = time.monotonic()
        timer = self.append_later(writer, 0.3)
        assert waiter.wait_for_events(0, 5.0) is True
        assert time.monotonic() - started < 1.3
        timer.join()
        started = time.monotonic()
        assert waiter.wait_for_events(1, 0.3) is False
        assert 0.25 < time.monotonic() - started < 1.0

    def test_a_dropped_listener_falls_back_to_polling_and_reconnects(
        self, open_store: Callable[..., PostgresEventStore], admin: Any, config: PostgresConfig
    ) -> None:
        waiter, writer = open_store(poll_interval=0.2), open_store()
        assert waiter.wait_for_events(0, 0.1) is False  # starts the listener
        listener_name = f"{config.application_name}:listen"

        def listener_pid() -> int | None:
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (listener_name,),
            ).fetchone()
            return row[0] if row else None

        admin.execute("SELECT pg_terminate_backend(%s)", (wait_until(listener_pid),))
        timer = self.append_later(writer, 0.05)
        started = time.monotonic()
        assert waiter.wait_for_events(0, 5.0) is True
        assert time.monotonic() - started < 1.3
        timer.join()
        wait_until(listener_pid)  # the listener came back
        timer = self.append_later(writer, 0.2)
        assert waiter.wait_for_events(1, 5.0) is True
        timer.join()

    def test_arguments_are_checked(self, store: PostgresEventStore) -> None:
        with pytest.raises(ValueError, match="after"):
            store.wait_for_events(-1, 1)
        with pytest.raises(ValueError, match="timeout"):
            store.wait_for_events(0, -1)


def test_a_closed_store_says_so(store: PostgresEventStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreFailure, match="closed"):
        store.head()
    with pytest.raises(StoreFailure, match="closed"):
        store.wait_for_events(0, 0)
