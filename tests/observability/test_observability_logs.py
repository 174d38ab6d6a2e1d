"""The log lines EventCore writes: the fields in ``extra``, the levels, and what never
appears in them (an event's payload, a password)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventcore import (
    ConcurrencyError,
    InMemoryEventStore,
    RetryPolicy,
    SqliteEventStore,
    StoreFailure,
    StreamId,
    execute,
)
from eventcore.observability import LOGGERS
from eventcore.projections import (
    ErrorPolicy,
    InMemoryCheckpointStore,
    InMemoryDeadLetterStore,
    InProcessLeadership,
    ProjectionConfig,
    run_projection,
)
from eventcore.testing import InterleavingStore
from tests.bank import Deposit, MoneyDeposited, Transfer

SECRET_PAYLOAD = "card-4242-4242"
PASSWORD = "s3cret-Pa55word"


def records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every message and every attribute value of every record, as one text."""
    return "\n".join(
        f"{r.getMessage()} {sorted((k, str(v)) for k, v in vars(r).items())}"
        for r in caplog.records
    )


@dataclass(frozen=True)
class CardCharged:
    account: StreamId
    card: str


class Ledger:
    """A projection whose apply fails on one event, carrying a secret in its message."""

    name = "ledger"
    error_policy = ErrorPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, then="dead_letter")

    def apply(self, event: object) -> None:
        if isinstance(getattr(event, "event", None), CardCharged):
            raise ValueError(f"cannot book {event.event.card}")  # type: ignore[attr-defined]


def interfering(times: int) -> InterleavingStore:
    def sneak_in(inner: object, n: int) -> None:
        if n <= times:
            inner.append({StreamId("acc-b"): n - 1}, [MoneyDeposited(StreamId("acc-b"), 1)])  # type: ignore[attr-defined]

    return InterleavingStore(InMemoryEventStore(), before_append=sneak_in)


def test_every_logger_is_silent_by_default_in_normal_operation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    store = InMemoryEventStore()
    execute(store, Deposit(account=StreamId("acc-a"), amount=5))
    config = ProjectionConfig(InMemoryCheckpointStore(), dead_letters=InMemoryDeadLetterStore())
    run_projection(Ledger(), store, config)
    assert caplog.records == []
    for name in LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING


def test_a_retried_conflict_logs_info_with_the_command_streams_and_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="eventcore.execute")
    store = interfering(times=1)
    store.inner.append({StreamId("acc-a"): 0}, [MoneyDeposited(StreamId("acc-a"), 10)])
    policy = RetryPolicy(base_delay=0.0, max_delay=0.0, jitter=0.0)
    command = Transfer(source=StreamId("acc-a"), target=StreamId("acc-b"), amount=3)
    assert execute(store, command, retry=policy, sleep=lambda _: None).attempts == 2
    (record,) = records(caplog, "eventcore.execute")
    assert record.levelno == logging.INFO
    assert record.command_type == "Transfer"  # type: ignore[attr-defined]
    assert record.streams == ["acc-a", "acc-b"]  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.conflicting_streams == ["acc-b"]  # type: ignore[attr-defined]
    assert record.delay == 0.0  # type: ignore[attr-defined]
    assert "retrying" in record.getMessage()


def test_exhausted_retries_log_a_warning_naming_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="eventcore.execute")
    store = interfering(times=10)
    with pytest.raises(ConcurrencyError):
        execute(store, Deposit(account=StreamId("acc-b"), amount=1), retry=RetryPolicy.none())
    (record,) = records(caplog, "eventcore.execute")
    assert record.levelno == logging.WARNING
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert "max_retries" in record.getMessage()


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "events.db"


def test_sqlite_migrations_and_a_busy_database_are_logged(
    sqlite_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with SqliteEventStore(sqlite_file, events=[MoneyDeposited], busy_timeout=0.05) as store:
        (migration,) = records(caplog, "eventcore.migrations")
        assert migration.db_system == "sqlite"  # type: ignore[attr-defined]
        assert migration.from_version == 0  # type: ignore[attr-defined]
        assert migration.to_version >= 1  # type: ignore[attr-defined]
        blocker = sqlite3.connect(sqlite_file, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreFailure):
                execute(store, Deposit(account=StreamId("acc-a"), amount=1))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    (failure,) = records(caplog, "eventcore.store")
    assert failure.levelno == logging.WARNING
    assert failure.db_system == "sqlite"  # type: ignore[attr-defined]
    assert failure.operation == "append"  # type: ignore[attr-defined]
    assert failure.error_type == "StoreTimeout"  # type: ignore[attr-defined]
    # reopening an up-to-date file migrates nothing, so logs nothing
    caplog.clear()
    SqliteEventStore(sqlite_file).close()
    assert records(caplog, "eventcore.migrations") == []


def test_projection_lifecycle_errors_and_dead_letters_carry_fields_but_no_payload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = InMemoryEventStore()
    store.append({StreamId("acc-a"): 0}, [MoneyDeposited(StreamId("acc-a"), 5)])
    store.append({StreamId("acc-b"): 0}, [CardCharged(StreamId("acc-b"), SECRET_PAYLOAD)])
    leadership = InProcessLeadership()
    config = ProjectionConfig(
        InMemoryCheckpointStore(),
        dead_letters=InMemoryDeadLetterStore(),
        leadership=leadership,
        sleep=lambda _: None,
    )
    report = run_projection(Ledger(), store, config)
    assert report.dead_lettered == 1

    lines = records(caplog, "eventcore.projections")
    started, stopped = lines[0], lines[-1]
    (page,) = [r for r in lines if "page" in r.getMessage()]
    assert started.projection == "ledger" and started.position == 0  # type: ignore[attr-defined]
    assert started.mode == "batch"  # type: ignore[attr-defined]
    assert page.levelno == logging.DEBUG and page.events == 2  # type: ignore[attr-defined]
    assert stopped.stopped_reason == "caught_up"  # type: ignore[attr-defined]
    assert stopped.position == 2 and stopped.dead_lettered == 1  # type: ignore[attr-defined]

    errors = [r for r in records(caplog, "eventcore.projections") if r.levelno == logging.WARNING]
    assert [(r.attempt, r.position, r.error_type) for r in errors] == [  # type: ignore[attr-defined]
        (1, 2, "ValueError"),
        (2, 2, "ValueError"),
    ]
    (letter,) = records(caplog, "eventcore.dead_letters")
    assert letter.levelno == logging.WARNING
    assert (letter.projection, letter.position, letter.stream) == ("ledger", 2, "acc-b")  # type: ignore[attr-defined]
    assert letter.event_type.endswith("CardCharged")  # type: ignore[attr-defined]

    changes = [r.leadership for r in records(caplog, "eventcore.leadership")]  # type: ignore[attr-defined]
    assert changes == ["acquired", "released"]
    assert SECRET_PAYLOAD not in everything_logged(caplog)


def test_a_projection_waiting_for_the_leader_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="eventcore.leadership")
    leadership = InProcessLeadership()
    assert leadership.acquire("ledger")
    config = ProjectionConfig(
        InMemoryCheckpointStore(),
        dead_letters=InMemoryDeadLetterStore(),
        leadership=leadership,
        wait_for_leadership=0.01,
    )
    with pytest.raises(Exception, match="ledger"):
        run_projection(Ledger(), InMemoryEventStore(), config)
    assert [r.leadership for r in records(caplog, "eventcore.leadership")] == ["waiting"]  # type: ignore[attr-defined]


def test_postgres_failures_and_migrations_never_log_the_password(
    postgres_dsn: str, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    caplog.set_level(logging.DEBUG)
    user_part = postgres_dsn.split("://", 1)[1].split("@", 1)
    with_password = f"postgresql://{user_part[0]}:{PASSWORD}@{user_part[1]}"
    config = PostgresConfig(with_password, schema=postgres_schema, connect_timeout=2)
    assert PASSWORD not in repr(config)
    with PostgresEventStore(config, events=[MoneyDeposited]) as store:
        execute(store, Deposit(account=StreamId("acc-a"), amount=1))
    (migration,) = records(caplog, "eventcore.migrations")
    assert migration.db_system == "postgresql"  # type: ignore[attr-defined]
    assert migration.where == postgres_schema  # type: ignore[attr-defined]

    unreachable = PostgresConfig(
        f"postgresql://root:{PASSWORD}@127.0.0.1:1/test", schema=postgres_schema, connect_timeout=1
    )
    with pytest.raises(StoreFailure):
        PostgresEventStore(unreachable)
    (failure,) = records(caplog, "eventcore.store")
    assert failure.levelno == logging.WARNING
    assert failure.db_system == "postgresql" and failure.operation == "open"  # type: ignore[attr-defined]
    assert "127.0.0.1:1" in failure.getMessage()
    assert PASSWORD not in everything_logged(caplog)


def test_postgres_dead_pooled_connections_are_replaced_and_logged(
    postgres_dsn: str, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    import psycopg

    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    name = f"ec-logs-{postgres_schema[-8:]}"
    config = PostgresConfig(
        postgres_dsn, schema=postgres_schema, application_name=name, pool_min=1, pool_max=2
    )
    with PostgresEventStore(config, events=[MoneyDeposited]) as store:
        execute(store, Deposit(account=StreamId("acc-a"), amount=1))
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        time.sleep(0.2)  # the termination message reaches the idle sockets
        caplog.set_level(logging.INFO, logger="eventcore.store")
        assert store.stream_version(StreamId("acc-a")) == 1  # answered on a fresh connection
    (record,) = [r for r in records(caplog, "eventcore.store") if r.levelno == logging.INFO][:1]
    assert record.db_system == "postgresql"  # type: ignore[attr-defined]
    assert record.operation == "stream_version"  # type: ignore[attr-defined]
    assert "dead" in record.getMessage()


def test_a_lost_leadership_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from eventcore import LeadershipUnavailable

    class Vanishing(InProcessLeadership):
        def holds(self, name: str) -> bool:
            return False  # the connection holding the lock died

    caplog.set_level(logging.INFO, logger="eventcore.leadership")
    store = InMemoryEventStore()
    execute(store, Deposit(account=StreamId("acc-a"), amount=1))
    config = ProjectionConfig(
        InMemoryCheckpointStore(), dead_letters=InMemoryDeadLetterStore(), leadership=Vanishing()
    )
    with pytest.raises(LeadershipUnavailable):
        run_projection(Ledger(), store, config)
    changes = [(r.leadership, r.levelno) for r in records(caplog, "eventcore.leadership")]  # type: ignore[attr-defined]
    assert changes == [
        ("acquired", logging.INFO),
        ("lost", logging.WARNING),
        ("released", logging.INFO),
    ]


def test_nothing_reaches_stderr_until_the_application_configures_logging() -> None:
    """The package logger has a NullHandler, so Python's last-resort handler stays quiet
    (retries exhausted is a WARNING; a notebook must not show it under the error)."""
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from eventcore.observability import points\n"
        "logging.getLogger('eventcore.execute').warning('retries exhausted')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr == ""
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("eventcore").handlers)
