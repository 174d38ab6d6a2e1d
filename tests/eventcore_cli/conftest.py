"""Fixtures of the ``eventcore`` command's tests: a target on SQLite and on PostgreSQL (its
own schema per test), and two ways to run the command (in process with click's CliRunner,
and as a subprocess ``python -m eventcore``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventcore.cli.app import cli

HERE = Path(__file__).parent


@dataclass
class Target:
    """One store the command works on; ``args`` select it on the command line."""

    kind: str
    args: list[str]
    spec: str
    schema: str | None
    opened: list[Any] = field(default_factory=list)

    def store(self, **options: Any) -> Any:
        from cli_support import EVENTS, clock_and_ids

        options = {"events": EVENTS, **clock_and_ids(), **options}
        if self.kind == "sqlite":
            from eventcore.stores.sqlite import SqliteEventStore

            store = SqliteEventStore(self.spec, **options)
        else:
            from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

            config = PostgresConfig(self.spec, schema=self.schema or "eventcore")
            store = PostgresEventStore(config, **options)
        self.opened.append(store)
        return store

    def part(self, kind: str, store: Any) -> Any:
        """The checkpoint, dead-letter, leadership or snapshot store beside ``store``."""
        if self.kind == "sqlite":
            from eventcore.projections.sqlite import (
                SqliteCheckpointStore,
                SqliteDeadLetterStore,
                SqliteLeadership,
            )
            from eventcore.snapshots.sqlite import SqliteSnapshotStore

            made = {
                "checkpoints": SqliteCheckpointStore,
                "dead_letters": SqliteDeadLetterStore,
                "leadership": SqliteLeadership,
                "snapshots": SqliteSnapshotStore,
            }[kind](store)
        else:
            from eventcore.snapshots.postgres import PostgresSnapshotStore
            from eventcore.stores.postgres.projections import (
                PostgresCheckpointStore,
                PostgresDeadLetterStore,
                PostgresLeadership,
            )

            made = {
                "checkpoints": PostgresCheckpointStore,
                "dead_letters": PostgresDeadLetterStore,
                "leadership": PostgresLeadership,
                "snapshots": PostgresSnapshotStore,
            }[kind](store)
        self.opened.append(made)
        return made

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement on the database directly, bypassing the store (to corrupt it)."""
        if self.kind == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.spec, isolation_level=None)
            try:
                conn.execute(statement, params)
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.spec, autocommit=True) as conn:
                conn.execute(statement.replace("{schema}", self.schema or "eventcore"), params)

    def close(self) -> None:
        for thing in reversed(self.opened):
            thing.close()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "sqlite":
        path = str(tmp_path / "log.db")
        made = Target("sqlite", ["--db", path], path, None)
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        made = Target("postgres", ["--db", dsn, "--schema", schema], dsn, schema)
    yield made
    made.close()


@pytest.fixture
def pg_target(postgres_dsn: str, postgres_schema: str) -> Iterator[Target]:
    made = Target(
        "postgres",
        ["--db", postgres_dsn, "--schema", postgres_schema],
        postgres_dsn,
        postgres_schema,
    )
    yield made
    made.close()


@pytest.fixture
def sqlite_target(tmp_path: Path) -> Iterator[Target]:
    path = str(tmp_path / "log.db")
    made = Target("sqlite", ["--db", path], path, None)
    yield made
    made.close()


@pytest.fixture
def run() -> Any:
    """``run(*args)``: the command in process; the result's ``exit_code``, ``stdout`` and
    ``stderr`` are separate."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def run_process() -> Any:
    """``run_process(*args)``: ``python -m eventcore`` as a subprocess (bounded in time)."""

    def invoke(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
        env.pop("EVENTCORE_POSTGRES_URL", None)
        return subprocess.run(
            [sys.executable, "-m", "eventcore", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    return invoke
