"""Shared fixtures: a PostgreSQL server for the PostgreSQL store tests.

``postgres_dsn`` connects to ``EVENTCORE_TEST_POSTGRES_URL`` (default: the local server on
127.0.0.1:5432, database ``test``). When it is unreachable the PostgreSQL tests are skipped
with one line, except in CI (``CI`` set), where they fail: CI must run them.
``postgres_schema`` gives each test its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_TEST_POSTGRES_URL = "postgresql://root@127.0.0.1:5432/test"

_reachable: dict[str, str | None] = {}


def _probe(dsn: str) -> str | None:
    """None when the server answers, else the reason (cached per session)."""
    if dsn not in _reachable:
        try:
            import psycopg
        except ImportError:
            _reachable[dsn] = "psycopg is not installed (pip install 'eventcore[postgres]')"
        else:
            try:
                with psycopg.connect(dsn, connect_timeout=3) as conn:
                    conn.execute("SELECT 1")
                _reachable[dsn] = None
            except psycopg.Error as exc:
                _reachable[dsn] = " ".join(str(exc).split())
    return _reachable[dsn]


_SKIP_REASON = "PostgreSQL not reachable at 127.0.0.1:5432 (set EVENTCORE_TEST_POSTGRES_URL)"
_SKIP_LINE = next(
    n
    for n, line in enumerate(Path(__file__).read_text().splitlines(), 1)
    if line.strip() == "pytest.skip(_SKIP_REASON)"
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Report every "PostgreSQL not reachable" skip at one place, so that ``-ra`` prints
    one line for all of them instead of one per test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and _SKIP_REASON in str(longrepr[2]):
        report.longrepr = (__file__, _SKIP_LINE, longrepr[2])


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of a reachable PostgreSQL server (skips, or fails in CI, when there is none)."""
    dsn = os.environ.get("EVENTCORE_TEST_POSTGRES_URL") or DEFAULT_TEST_POSTGRES_URL
    problem = _probe(dsn)
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(
                f"PostgreSQL is required in CI but not reachable ({problem}); start it "
                "(.ci/run does) or set EVENTCORE_TEST_POSTGRES_URL",
                pytrace=False,
            )
        pytest.skip(_SKIP_REASON)
    return dsn


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema name for one test; the schema is dropped (CASCADE) afterwards."""
    import psycopg

    name = f"ec_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
