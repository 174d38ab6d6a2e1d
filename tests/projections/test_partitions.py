"""Partitioned projections: stable partitions, per-stream order, rebalancing on join and death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from eventcore import InMemoryEventStore, StreamId
from eventcore.errors import ConfigurationError
from eventcore.events import RecordedEvent
from eventcore.projections import (
    EventSelector,
    InMemoryCheckpointStore,
    InProcessLeadership,
    ProjectionConfig,
    projector,
    run_projection,
    transactional_projector,
)
from eventcore.projections.partitions import (
    Partitioning,
    PartitionProjector,
    PartitionWorker,
    partition,
)
from eventcore.testing.projection_helpers import EVENTS, Noted, append
from eventcore.types import StreamPrefix

HERE = Path(__file__).parent


def filled(streams: int = 40, per_stream: int = 3) -> InMemoryEventStore:
    store = InMemoryEventStore(events=EVENTS)
    for round_ in range(per_stream):
        for s in range(streams):
            append(store, f"acct-{s}", round_)
    return store


class Recording:
    """A projector that records (stream, version, position) per event, thread-safely."""

    name = "rec"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def apply(self, event: RecordedEvent) -> None:
        with self.lock:
            self.seen.append((str(event.stream_id), event.stream_version, event.position))


def assert_once_each_in_stream_order(seen: list[tuple[str, int, int]], store: Any) -> None:
    expected = {e.position for e in store.read_all(after=0, limit=10**6)}
    counts = Counter(position for _, _, position in seen)
    assert set(counts) == expected
    assert max(counts.values()) == 1, "an event was applied twice"
    versions: dict[str, list[int]] = {}
    for stream, version, _ in seen:
        versions.setdefault(stream, []).append(version)
    for stream, got in versions.items():
        assert got == list(range(1, len(got) + 1)), f"{stream} applied out of order: {got}"


def settle(*workers: PartitionWorker, rounds: int = 3) -> None:
    for _ in range(rounds):
        for worker in workers:
            worker.rebalance()


# -- the partitioning ----------------------------------------------------------------------


def test_partitions_are_stable_and_spread() -> None:
    parts = Partitioning(4)
    # Fixed by blake2b: the same in every process and release (a change breaks checkpoints).
    assert [parts.of(StreamId(f"acct-{i}")) for i in range(8)] == [
        parts.of(f"acct-{i}") for i in range(8)
    ]
    assert (parts.of("account-1"), parts.of("account-2")) == (0, 1)
    spread = Counter(parts.of(f"customer-{i}") for i in range(1000))
    assert set(spread) == {0, 1, 2, 3}
    assert min(spread.values()) > 200
    assert parts.name("orders", 2) == "orders.p2of4"


@pytest.mark.parametrize("count", [0, -1, True, 2.0, "4"])
def test_a_partition_count_must_be_a_positive_int(count: object) -> None:
    with pytest.raises(ConfigurationError, match="Partitioning"):
        Partitioning(count)  # type: ignore[arg-type]


def test_a_partition_keeps_the_projectors_selector_policy_and_kind() -> None:
    selector = EventSelector(streams=StreamPrefix("acct-"))
    plain = projector("p", selector=selector)(lambda e: None)
    tx = transactional_projector("t")(lambda e, tx: None)
    part = partition(plain, Partitioning(3), 1)
    assert isinstance(part, PartitionProjector)
    assert (part.name, part.selector, part.error_policy) == (
        "p.p1of3",
        selector,
        plain.error_policy,
    )
    assert not getattr(part, "transactional", False)
    assert partition(tx, Partitioning(3), 2).transactional is True
    for bad in (3, -1, True):
        with pytest.raises(ConfigurationError, match="partition index"):
            partition(plain, Partitioning(3), bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="Partitioning"):
        partition(plain, 3, 0)  # type: ignore[arg-type]


def test_the_partitions_together_apply_every_event_once_in_stream_order() -> None:
    store = filled()
    rec = Recording()
    checkpoints = InMemoryCheckpointStore()
    parts = Partitioning(3)
    for index in range(3):
        report = run_projection(partition(rec, parts, index), store, ProjectionConfig(checkpoints))
        assert report.last_position == store.head()
    assert_once_each_in_stream_order(rec.seen, store)


# -- workers -------------------------------------------------------------------------------


def workers(store: Any, rec: Recording, n: int, count: int = 4) -> list[PartitionWorker]:
    config = ProjectionConfig(
        InMemoryCheckpointStore(), leadership=InProcessLeadership(), poll_interval=0.05
    )
    return [PartitionWorker(rec, store, config, Partitioning(count)) for _ in range(n)]


def test_workers_share_the_partitions_and_rebalance_when_one_joins_and_leaves() -> None:
    store = filled()
    rec = Recording()
    first, second = workers(store, rec, 2)
    try:
        first.rebalance()
        assert first.partitions == {0, 1, 2, 3} and first.members == 1
        settle(second, first, second)
        assert first.members == second.members == 2
        assert len(first.partitions) == len(second.partitions) == 2
        assert first.partitions | second.partitions == {0, 1, 2, 3}
        assert first.wait_until(store.head(), timeout=10)
        append(store, "acct-new", 0)
        assert second.wait_until(store.head(), timeout=10)
        first.stop()  # leaves the group: its partitions are free
        second.rebalance()
        assert second.partitions == {0, 1, 2, 3} and second.members == 1
        append(store, "acct-late", 0)
        assert second.wait_until(store.head(), timeout=10)
    finally:
        first.stop()
        second.stop()
    assert_once_each_in_stream_order(rec.seen, store)


def test_more_workers_than_partitions_stand_by() -> None:
    store = filled(streams=4, per_stream=1)
    rec = Recording()
    group = workers(store, rec, 3, count=2)
    try:
        settle(*group)
        assert sorted(len(w.partitions) for w in group) == [0, 1, 1]
        idle = next(w for w in group if not w.partitions)
        assert idle.slot is None and "slot=None" in repr(idle)
    finally:
        for w in group:
            w.stop()


def test_a_worker_needs_shared_leadership_and_sane_settings() -> None:
    store = InMemoryEventStore()
    rec = Recording()
    with pytest.raises(ConfigurationError, match=r"needs config\.leadership"):
        PartitionWorker(rec, store, ProjectionConfig(InMemoryCheckpointStore()), Partitioning(2))
    config = ProjectionConfig(InMemoryCheckpointStore(), leadership=InProcessLeadership())
    for interval in (0, -1.0, float("nan"), True, "1"):
        with pytest.raises(ConfigurationError, match="rebalance_interval"):
            PartitionWorker(rec, store, config, Partitioning(2), rebalance_interval=interval)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="Partitioning"):
        PartitionWorker(rec, store, config, 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ProjectionConfig"):
        PartitionWorker(rec, store, object(), Partitioning(2))  # type: ignore[arg-type]


def test_a_failed_partition_is_reported_and_restarted() -> None:
    store = filled(streams=6, per_stream=1)
    failures: list[int] = []

    class Flaky(Recording):
        calls = 0

        def apply(self, event: RecordedEvent) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("boom")
            super().apply(event)

    rec = Flaky()
    config = ProjectionConfig(
        InMemoryCheckpointStore(), leadership=InProcessLeadership(), poll_interval=0.05
    )
    from eventcore.projections import ErrorPolicy

    rec.error_policy = ErrorPolicy(max_attempts=1, then="stop")  # type: ignore[attr-defined]
    worker = PartitionWorker(
        rec, store, config, Partitioning(2), on_error=lambda i, exc: failures.append(i)
    )
    try:
        worker.rebalance()
        deadline = time.monotonic() + 10
        while not failures and time.monotonic() < deadline:
            time.sleep(0.02)
            worker.rebalance()
        assert len(failures) == 1 and isinstance(worker.errors[failures[0]], Exception)
        worker.rebalance()  # the failed partition is started again, from its checkpoint
        assert worker.wait_until(store.head(), timeout=10)
    finally:
        worker.stop()
    assert_once_each_in_stream_order(rec.seen, store)


# -- across processes on PostgreSQL --------------------------------------------------------


def test_processes_rebalance_when_a_worker_is_killed(
    postgres_dsn: str, postgres_schema: str
) -> None:
    """Two worker processes share four partitions; one is killed with SIGKILL mid-run: the
    other takes its partitions over (its advisory locks died with its connections) and every
    event is applied exactly once, each stream in order."""
    import psycopg

    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    store = PostgresEventStore(PostgresConfig(postgres_dsn, schema=postgres_schema), events=EVENTS)
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE {postgres_schema}.rm (position bigint PRIMARY KEY, "
                "stream_id text NOT NULL, version bigint NOT NULL, pid int NOT NULL)"
            )

        def write(rounds: range) -> None:
            for round_ in rounds:
                for s in range(30):
                    sid = StreamId(f"acct-{s}")
                    store.append({sid: round_}, [Noted(sid, round_)])

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)])}
        argv = [
            sys.executable,
            str(HERE / "partition_worker.py"),
            postgres_dsn,
            postgres_schema,
            "4",
        ]
        procs = [
            subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
            )
            for _ in range(2)
        ]
        for proc in procs:  # each settles on two partitions (bounded: 40 changes at most)
            assert proc.stdout is not None
            for _ in range(40):
                line = proc.stdout.readline()
                if not line or line.count(",") == 1:
                    break
            assert line.count(",") == 1, f"a worker did not settle on two partitions: {line!r}"

        def rows_when(count: int) -> list[tuple[str, int, int, int]]:
            deadline = time.monotonic() + 60
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                while True:
                    rows = conn.execute(
                        f"SELECT stream_id, version, position, pid FROM {postgres_schema}.rm "
                        "ORDER BY position"
                    ).fetchall()
                    if len(rows) >= count or time.monotonic() > deadline:
                        return rows
                    time.sleep(0.1)

        write(range(5))
        before = rows_when(store.head())
        victim, survivor = procs
        assert {r[3] for r in before} == {victim.pid, survivor.pid}, "both workers worked"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        write(range(5, 10))
        rows = rows_when(store.head())
        after = rows[len(before) :]
        victims_streams = {r[0] for r in before if r[3] == victim.pid}
        assert {r[3] for r in after} == {survivor.pid}
        assert victims_streams & {r[0] for r in after}, "the survivor took the victim's streams"
        assert survivor.poll() is None, "the surviving worker died"
        assert survivor.stdin is not None
        survivor.stdin.close()
        assert survivor.wait(30) == 0
        assert_once_each_in_stream_order([(s, v, p) for s, v, p, _ in rows], store)
    finally:
        for proc in locals().get("procs", []):
            if proc.poll() is None:
                proc.kill()
        store.close()
