"""Fixtures of the ``eventcore`` command's tests: a target on SQLite and on PostgreSQL (its
own schema per test), and two ways to run the command (in process with click's CliRunner,
and as a subprocess ``python -m eventcore``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import Target
from click.testing import CliRunner, Result

from eventcore.cli.app import cli

HERE = Path(__file__).parent


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
