"""Transactional projectors on SQLite and PostgreSQL: read model and checkpoint commit
together, a failed attempt leaves no trace (the page is redone with a savepoint per event),
and a checkpoint that moved under the runner stops it."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventcore import StreamId
from eventcore.errors import ConfigurationError, LeadershipUnavailable
from eventcore.events import RecordedEvent
from eventcore.projections import (
    ErrorPolicy,
    ProjectionConfig,
    ProjectionFailed,
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
    attempts raise (after writing their row, which must be undone; -1: always).
    ``stop_at``: stop the run when applying that position (before raising, if it fails)."""

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
        if self.stop_at and self.stop_at[0] == event.position:
            self.stop_at[1].stop()
        left = self.fail.get(event.position, 0)
        if left == -1 or tries <= left:
            raise RuntimeError(f"fails at {event.position}")


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


# -- the fast path: no savepoints until an apply fails -----------------------------------------


class Spy:
    """A transactional checkpoint store wrapper counting transactions, the ones rolled back,
    and the SAVEPOINT statements run in them (the projector's ``tx`` is a recording proxy)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.transactions = 0
        self.rolled_back = 0
        self.savepoints = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        self.transactions += 1
        try:
            with self.real.transaction() as tx:
                yield Recording(tx, self)
        except BaseException:
            self.rolled_back += 1
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class Recording:
    """Passes everything to the real connection, counting ``SAVEPOINT`` statements."""

    def __init__(self, tx: Any, spy: Spy) -> None:
        self.tx = tx
        self.spy = spy

    def execute(self, query: Any, params: Any = ()) -> Any:
        if isinstance(query, str) and query.startswith("SAVEPOINT"):
            self.spy.savepoints += 1
        return self.tx.execute(query, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)


def spied(backend: Backend) -> tuple[Spy, ProjectionConfig]:
    spy = Spy(backend.checkpoints)
    return spy, dataclasses.replace(config(backend), checkpoints=spy)


def test_a_page_without_failures_takes_no_savepoint(backend: Backend) -> None:
    fill(backend.store, 10)
    spy, cfg = spied(backend)
    report = run_projection(Model(backend), backend.store, cfg)
    assert (report.applied, report.last_position) == (10, 10)
    assert (spy.transactions, spy.rolled_back, spy.savepoints) == (3, 0, 0)
    assert backend.rows() == list(range(1, 11))
    assert backend.checkpoints.load("model") == 10


def test_a_failure_rolls_its_page_back_and_redoes_it_with_savepoints(backend: Backend) -> None:
    fill(backend.store, 10)
    spy, cfg = spied(backend)
    model = Model(backend, fail={6: 1}, error_policy=ErrorPolicy.retry(2))
    report = run_projection(model, backend.store, cfg)
    assert (report.applied, report.retries, report.last_position) == (10, 1, 10)
    # pages 1-4 and 9-10 fast; 5-8 fast (rolled back at 6), then redone: a savepoint for 5,
    # for the second attempt of 6 (its first was the failure on the fast path), 7 and 8
    assert (spy.transactions, spy.rolled_back, spy.savepoints) == (4, 1, 4)
    assert model.attempts == {1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 1, 8: 1, 9: 1, 10: 1}
    assert backend.rows() == list(range(1, 11))


def test_a_stop_during_a_failing_attempt_finishes_the_event_in_hand(backend: Backend) -> None:
    fill(backend.store, 10)
    stop = StopHandle()
    model = Model(backend, fail={6: 1}, error_policy=ErrorPolicy.retry(2))
    model.stop_at = (6, stop)
    report = run_projection(model, backend.store, config(backend), mode="continuous", stop=stop)
    assert (report.stopped_reason, report.last_position, report.retries) == ("stopped", 6, 1)
    assert backend.rows() == [1, 2, 3, 4, 5, 6]


@dataclass(frozen=True)
class Expected:
    """What a run does when every event has its own savepoint (the careful semantics)."""

    rows: list[int]
    letters: list[tuple[int, int]]  # (position, attempts)
    counts: tuple[int, int, int, int]  # applied, skipped, dead_lettered, retries
    checkpoint: int
    attempts: dict[int, int]  # apply calls per failing event
    failed_at: int | None
    savepoints: int  # SAVEPOINTs run redoing the pages that failed on the fast path
    redone: int  # pages redone


def careful(count: int, fail: dict[int, int], policy: ErrorPolicy, page: int) -> Expected:
    rows: list[int] = []
    letters: list[tuple[int, int]] = []
    applied = skipped = dead = retries = 0
    attempts: dict[int, int] = {}
    checkpoint, failed_at, last = count, None, count
    for p in range(1, count + 1):
        left = fail.get(p, 0)
        tries = 1
        while (left == -1 or tries <= left) and tries < policy.max_attempts:
            tries += 1
        retries += tries - 1
        if p in fail:
            attempts[p] = tries
        if not (left == -1 or tries <= left):
            applied += 1
            rows.append(p)
        elif policy.then == "stop":
            checkpoint, failed_at, last = p - 1, p, p
            break
        elif policy.then == "skip":
            skipped += 1
        else:
            dead += 1
            letters.append((p, tries))
    redone = {(p - 1) // page for p in fail if p <= last}
    savepoints = 0
    for index in redone:  # a savepoint per careful attempt, but the first failure's
        first = index * page + 1
        in_page = range(first, min(first + page - 1, last) + 1)
        savepoints += sum(attempts.get(p, 1) for p in in_page) - 1
    return Expected(
        rows,
        letters,
        (applied, skipped, dead, retries),
        checkpoint,
        attempts,
        failed_at,
        savepoints,
        len(redone),
    )


@pytest.mark.parametrize(
    ("fail", "policy"),
    [
        ({6: -1}, ErrorPolicy.dead_letter()),
        ({5: -1, 8: -1}, ErrorPolicy.skip()),
        ({2: 1, 3: -1, 9: 2}, ErrorPolicy.retry(3, then="dead_letter")),
        ({4: -1, 7: 1}, ErrorPolicy.retry(2, then="dead_letter")),
        ({3: 1, 7: -1}, ErrorPolicy.retry(2, then="stop")),
        ({6: -1}, ErrorPolicy.stop()),
    ],
)
def test_a_page_redone_after_a_failure_ends_as_with_a_savepoint_per_event(
    backend: Backend, fail: dict[int, int], policy: ErrorPolicy
) -> None:
    fill(backend.store, 10)
    spy, cfg = spied(backend)
    model = Model(backend, fail=dict(fail), error_policy=policy)
    want = careful(10, fail, policy, cfg.page_size)
    try:
        report = run_projection(model, backend.store, cfg)
        failed_at = None
    except ProjectionFailed as exc:
        assert exc.report is not None
        report, failed_at = exc.report, exc.position
        assert str(exc.cause) == f"fails at {exc.position}"
        assert f"after {want.attempts[exc.position]} attempt" in str(exc)
    counts = (report.applied, report.skipped, report.dead_lettered, report.retries)
    assert (counts, report.last_position, failed_at) == (
        want.counts,
        want.checkpoint,
        want.failed_at,
    )
    assert backend.rows() == want.rows
    assert backend.checkpoints.load("model") == want.checkpoint
    letters = backend.dead_letters.list("model")
    assert [(d.position, d.attempts) for d in letters] == want.letters
    assert all(d.message == f"fails at {d.position}" for d in letters)
    assert all(d.error_type == "builtins.RuntimeError" for d in letters)
    assert {p: model.attempts[p] for p in want.attempts} == want.attempts
    assert (spy.rolled_back, spy.savepoints) == (want.redone, want.savepoints)
