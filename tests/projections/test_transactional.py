"""Transactional projectors on SQLite and PostgreSQL: read model and checkpoint commit
together, each event in a savepoint, and a checkpoint that moved under the runner stops it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventcore import StreamId
from eventcore.errors import ConfigurationError, LeadershipUnavailable, ProjectionFailed
from eventcore.events import RecordedEvent
from eventcore.projections import (
    ErrorPolicy,
    ProjectionConfig,
    SqliteCheckpointStore,
    SqliteDeadLetterStore,
    StopHandle,
    retry_dead_letters,
    run_projection,
    running_projection,
)
from eventcore.store import EventStore
from eventcore.stores.sqlite import SqliteEventStore


@dataclass(frozen=True)
class Noted:
    topic: StreamId
    n: int


@dataclass
class Backend:
    """One database holding events, checkpoints, dead letters and the read model."""

    store: EventStore
    checkpoints: Any
    dead_letters: Any
    param: str  # "?" or "%s"
    table: str
    query: Callable[[str], list[Any]]

    def insert(self, tx: Any, event: RecordedEvent) -> None:
        p = self.param
        tx.execute(
            f"INSERT INTO {self.table} (position, n) VALUES ({p}, {p})",
            (event.position, event.event.n),
        )

    def rows(self) -> list[int]:
        return [r[0] for r in self.query(f"SELECT position FROM {self.table} ORDER BY position")]


def fill(store: EventStore, count: int) -> None:
    for i in range(count):
        sid = StreamId(f"t-{i % 2}")
        store.append({sid: store.stream_version(sid)}, [Noted(sid, i)])


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "app.db"
        store = SqliteEventStore(path, events=[Noted])
        admin = sqlite3.connect(path, isolation_level=None)
        admin.execute("CREATE TABLE rm (position INTEGER, n INTEGER)")  # no key: see doubles
        checkpoints = SqliteCheckpointStore(store)
        dead_letters = SqliteDeadLetterStore(store)
        yield Backend(
            store,
            checkpoints,
            dead_letters,
            "?",
            "rm",
            lambda q: admin.execute(q).fetchall(),
        )
        checkpoints.close()
        dead_letters.close()
        admin.close()
        store.close()
    else:
        psycopg = pytest.importorskip("psycopg")
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
        from eventcore.stores.postgres.projections import (
            PostgresCheckpointStore,
            PostgresDeadLetterStore,
        )

        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        store = PostgresEventStore(
            PostgresConfig(dsn, schema=schema, pool_max=4, poll_interval=0.2), events=[Noted]
        )
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"CREATE TABLE {schema}.rm (position bigint, n integer)")
            yield Backend(
                store,
                PostgresCheckpointStore(store),
                PostgresDeadLetterStore(store),
                "%s",
                f"{schema}.rm",
                lambda q: admin.execute(q).fetchall(),
            )
        store.close()


class Model:
    """A transactional projector writing one row per event; ``fail[position]`` is how many
    attempts raise (after writing their row, which the savepoint must undo; -1: always)."""

    transactional = True

    def __init__(self, backend: Backend, name: str = "model", **kw: Any) -> None:
        self.backend = backend
        self.name = name
        self.fail: dict[int, int] = kw.pop("fail", {})
        self.error_policy = kw.pop("error_policy", ErrorPolicy.stop())
        self.attempts: dict[int, int] = {}
        self.stop_at: tuple[int, StopHandle] | None = None

    def apply(self, event: RecordedEvent, tx: Any) -> None:
        self.backend.insert(tx, event)
        tries = self.attempts[event.position] = self.attempts.get(event.position, 0) + 1
        left = self.fail.get(event.position, 0)
        if left == -1 or tries <= left:
            raise RuntimeError(f"fails at {event.position}")
        if self.stop_at and self.stop_at[0] == event.position:
            self.stop_at[1].stop()


def config(backend: Backend, **changes: Any) -> ProjectionConfig:
    return ProjectionConfig(
        backend.checkpoints,
        dead_letters=backend.dead_letters,
        page_size=4,
        poll_interval=0.05,
        sleep=lambda s: None,
        **changes,
    )


def test_writes_and_checkpoint_commit_together_exactly_once(backend: Backend) -> None:
    fill(backend.store, 10)
    model = Model(backend)
    assert run_projection(model, backend.store, config(backend)).applied == 10
    assert run_projection(model, backend.store, config(backend)).applied == 0
    fill(backend.store, 3)
    assert run_projection(model, backend.store, config(backend)).applied == 3
    assert backend.rows() == list(range(1, 14))
    assert backend.checkpoints.load("model") == 13


def test_a_failed_attempt_leaves_no_trace(backend: Backend) -> None:
    fill(backend.store, 6)
    model = Model(backend, fail={3: 2}, error_policy=ErrorPolicy.retry(3))
    report = run_projection(model, backend.store, config(backend))
    assert (report.applied, report.retries) == (6, 2)
    assert backend.rows() == [1, 2, 3, 4, 5, 6], "the rows of failed attempts rolled back"


def test_a_poison_event_commits_what_came_before(backend: Backend) -> None:
    fill(backend.store, 8)
    model = Model(backend, fail={6: -1})
    with pytest.raises(ProjectionFailed, match="position 6") as info:
        run_projection(model, backend.store, config(backend))
    assert info.value.report is not None and info.value.report.applied == 5
    assert backend.rows() == [1, 2, 3, 4, 5]
    assert backend.checkpoints.load("model") == 5


def test_dead_letters_are_recorded_in_the_same_transaction_and_retried(
    backend: Backend,
) -> None:
    fill(backend.store, 6)
    model = Model(backend, fail={2: -1, 5: -1}, error_policy=ErrorPolicy.dead_letter())
    report = run_projection(model, backend.store, config(backend))
    assert (report.applied, report.dead_lettered) == (4, 2)
    assert backend.rows() == [1, 3, 4, 6]
    assert [d.position for d in backend.dead_letters.list("model")] == [2, 5]
    model.fail = {5: -1}
    with pytest.raises(ConfigurationError, match="checkpoints="):
        retry_dead_letters(model, backend.store, backend.dead_letters)
    outcome = retry_dead_letters(
        model, backend.store, backend.dead_letters, checkpoints=backend.checkpoints
    )
    assert outcome.applied == (2,)
    assert [d.position for d in outcome.failed] == [5]
    assert backend.rows() == [1, 2, 3, 4, 6], "the failed retry's row rolled back"
    assert [d.position for d in backend.dead_letters.list("model")] == [5]


def test_a_checkpoint_moved_by_another_instance_rolls_the_page_back(backend: Backend) -> None:
    fill(backend.store, 6)
    backend.checkpoints.save("model", 2)
    real = backend.checkpoints

    class Stale:
        """Loads an old checkpoint, as an instance that lost its leadership would."""

        def load(self, name: str) -> int | None:
            return None

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    stale = ProjectionConfig(Stale(), page_size=4, sleep=lambda s: None)  # type: ignore[arg-type]
    with pytest.raises(LeadershipUnavailable, match="moved from None to 2"):
        run_projection(Model(backend), backend.store, stale)
    assert backend.rows() == []
    assert real.load("model") == 2


def test_a_stop_commits_the_event_in_hand(backend: Backend) -> None:
    fill(backend.store, 10)
    stop = StopHandle()
    model = Model(backend)
    model.stop_at = (6, stop)
    report = run_projection(model, backend.store, config(backend), mode="continuous", stop=stop)
    assert (report.stopped_reason, report.last_position) == ("stopped", 6)
    assert backend.rows() == [1, 2, 3, 4, 5, 6]
    with running_projection(model, backend.store, config(backend)) as handle:
        assert handle.wait_until(10, timeout=5)
    assert backend.rows() == list(range(1, 11))


def test_the_read_model_may_live_in_the_checkpoint_database_only(tmp_path: Path) -> None:
    """Events in one SQLite file, checkpoints and read model in another."""
    store = SqliteEventStore(tmp_path / "events.db", events=[Noted])
    checkpoints = SqliteCheckpointStore(tmp_path / "views.db")
    try:
        fill(store, 3)

        class Copy:
            name = "copy"
            transactional = True

            def apply(self, event: RecordedEvent, tx: sqlite3.Connection) -> None:
                tx.execute("CREATE TABLE IF NOT EXISTS copy (position INTEGER PRIMARY KEY)")
                tx.execute("INSERT INTO copy VALUES (?)", (event.position,))

        run_projection(Copy(), store, ProjectionConfig(checkpoints))
        with sqlite3.connect(tmp_path / "views.db") as views:
            assert views.execute("SELECT count(*) FROM copy").fetchone() == (3,)
        assert "views.db" in repr(checkpoints)
    finally:
        checkpoints.close()
        store.close()
