"""Projections across processes (SQLite and PostgreSQL): a projector that crashes the process
mid-batch, and leadership held by another process that then dies."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventcore import StreamId
from eventcore.errors import LeadershipUnavailable
from eventcore.projections import ProjectionConfig, ProjectionReport, run_projection
from eventcore.testing.projection_contract import Noted

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import process_worker  # noqa: E402

pytestmark = pytest.mark.slow


class Env:
    def __init__(self, backend: str, where: str, query: Any) -> None:
        self.backend = backend
        self.where = where
        self.query = query

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        command, *rest = args
        script = str(HERE / "process_worker.py")
        return subprocess.Popen(
            [sys.executable, script, command, self.backend, self.where, *rest],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    if request.param == "sqlite":
        where = str(tmp_path / "app.db")
        store, _, _ = process_worker.open_backend("sqlite", where)
        store.close()
        with sqlite3.connect(where, isolation_level=None) as conn:
            conn.execute("CREATE TABLE rm (position INTEGER)")  # no key: doubles would show
        conn.close()

        def query(sql: str) -> list[Any]:
            with sqlite3.connect(where) as c:
                rows = c.execute(sql.replace("{rm}", "rm")).fetchall()
            c.close()
            return rows

        yield Env("sqlite", where, query)
    else:
        psycopg = pytest.importorskip("psycopg")
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        where = f"{dsn}|{schema}"
        store, _, _ = process_worker.open_backend("postgres", where)
        store.close()
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"CREATE TABLE {schema}.rm (position bigint)")

            def pg_query(sql: str) -> list[Any]:
                return admin.execute(sql.replace("{rm}", f"{schema}.rm")).fetchall()  # type: ignore[no-any-return]

            yield Env("postgres", where, pg_query)
        effects = Path(process_worker.effects_path(where))
        if effects.exists():
            effects.unlink()


def fill(env: Env, count: int) -> None:
    store, _, _ = process_worker.open_backend(env.backend, env.where)
    try:
        for i in range(count):
            sid = StreamId(f"s-{i % 3}")
            store.append({sid: store.stream_version(sid)}, [Noted(sid, i)])
    finally:
        store.close()


def restart(env: Env, kind: str) -> ProjectionReport:
    """Run the projection again, in this process, to the end."""
    store, checkpoints, leadership = process_worker.open_backend(env.backend, env.where)
    try:
        projector = process_worker.make_projector(env.backend, env.where, kind, 0)
        config = ProjectionConfig(checkpoints, leadership=leadership, page_size=10)
        return run_projection(projector, store, config)
    finally:
        store.close()


def checkpoint(env: Env, name: str) -> int | None:
    store, checkpoints, _ = process_worker.open_backend(env.backend, env.where)
    try:
        return checkpoints.load(name)  # type: ignore[no-any-return]
    finally:
        store.close()


def test_a_crash_mid_batch_loses_nothing_and_the_transactional_kind_applies_once(
    env: Env,
) -> None:
    fill(env, 45)
    crashed = [env.spawn("run", kind, "23") for kind in ("plain", "tx")]
    for proc in crashed:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
    # Two pages of 10 were committed before the crash in the third page.
    assert checkpoint(env, "plain") == checkpoint(env, "tx") == 20

    assert restart(env, "plain").applied == 25
    lines = [int(x) for x in Path(process_worker.effects_path(env.where)).read_text().split()]
    assert sorted(set(lines)) == list(range(1, 46)), "nothing lost"
    doubles = sorted(p for p in set(lines) if lines.count(p) > 1)
    assert doubles == [21, 22, 23], "at-least-once: the unsaved part of the page came again"

    assert restart(env, "tx").applied == 25
    rows = [r[0] for r in env.query("SELECT position FROM {rm} ORDER BY position")]
    assert rows == list(range(1, 46)), "exactly once: the crashed page was rolled back"
    assert checkpoint(env, "tx") == 45


def test_leadership_is_held_across_processes_until_the_holder_dies(env: Env) -> None:
    fill(env, 5)
    holder = env.spawn("hold", "shared")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        store, checkpoints, leadership = process_worker.open_backend(env.backend, env.where)
        try:
            assert leadership.acquire("shared") is False
            assert leadership.acquire("other") is True
            leadership.release("other")
            projector = process_worker.make_projector(env.backend, env.where, "tx", 0)
            projector.name = "shared"
            refused = ProjectionConfig(checkpoints, leadership=leadership)
            with pytest.raises(LeadershipUnavailable) as info:
                run_projection(projector, store, refused)
            if env.backend == "sqlite":
                assert f"pid {holder.pid}" in str(info.value)
            else:
                assert ":lead:shared" in str(info.value)

            waiting = ProjectionConfig(
                checkpoints, leadership=leadership, wait_for_leadership=20.0, poll_interval=0.05
            )
            result: list[Any] = []
            runner = threading.Thread(
                target=lambda: result.append(run_projection(projector, store, waiting))
            )
            runner.start()
            time.sleep(0.2)
            assert result == [], "still waiting for the leader"
            killed_at = time.monotonic()
            os.kill(holder.pid, signal.SIGKILL)  # the holder dies without releasing
            runner.join(20)
            assert result and result[0].applied == 5
            print(f"{env.backend}: took over {time.monotonic() - killed_at:.2f}s after the kill")
        finally:
            store.close()
    finally:
        holder.kill()
        holder.communicate(timeout=10)
