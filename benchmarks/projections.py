"""The projection workloads: catch-up over a long global log, and live delivery latency.

``python -m benchmarks run --only projections [--quick] [--stores ...]`` runs them alone; a
plain ``run`` runs them after the six store workloads. The figures go into the
``projections`` section of ``results.json`` and a "Projections" section of ``results.md``.

- **Catch-up**: a log of ``proj_events`` events (streams of 1,000 events, each written by
  one batched append) is projected in batch mode by a trivial counting projector with an
  in-memory checkpoint store (events per second; median of ``proj_rounds`` rounds, each
  from position 0). On SQLite and PostgreSQL a transactional projector (one upsert per
  event into a table of per-stream counts, each event in a savepoint, the checkpoint in the
  same database, committed per page) then projects the last ``proj_tx_events`` events of
  the same log, for comparison.
- **Live delivery**: a continuous projection (``running_projection``, a background thread)
  follows appends made by a second store object from the main thread, one event per append,
  ``proj_live_gap_ms`` apart; the latency is from the append's return (the commit is
  acknowledged) to the projector's ``apply``. PostgreSQL wakes the projection with
  LISTEN/NOTIFY, SQLite and memory with in-process notification.

SQLite runs on a file (WAL, ``synchronous=FULL``) in a temporary directory; PostgreSQL in
the ``eventcore_bench_proj`` schema, dropped before and after (no other schema is touched).
Goals (from the projections issue): catch-up of at least 100,000 events/s on SQLite, and
live delivery under 50 ms p99 on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from benchmarks.backends import PostgresStatus, probe_postgres
from benchmarks.config import STORES, postgres_url
from benchmarks.impl_eventcore import EVENTS, Deposited
from benchmarks.machine import CpuMeter
from benchmarks.model import percentile
from eventcore import StreamId
from eventcore.events import RecordedEvent
from eventcore.projections import (
    CheckpointStore,
    InMemoryCheckpointStore,
    ProjectionConfig,
    run_projection,
    running_projection,
    transactional_projector,
)
from eventcore.store import EventStore

SCHEMA: Final = "eventcore_bench_proj"
STREAM_EVENTS: Final = 1_000  # events per stream, and per append, when building the log
LIVE_WARMUP: Final = 10  # appends before the timed ones (connects the LISTEN connection)
COUNTS_TABLE: Final = "bench_projection_counts"
DELIVERY: Final = {
    "memory": "in-process notification",
    "sqlite": "in-process notification (one SqliteDatabase)",
    "postgres": "LISTEN/NOTIFY",
}

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class ProjectionSizes:
    """How much work the projection workloads do (``--set proj_events=...`` overrides)."""

    proj_events: int = 100_000  # events in the log that catch-up projects
    proj_page: int = 1_000  # ProjectionConfig.page_size for catch-up (the default is 500)
    proj_rounds: int = 3  # catch-up rounds of the counting projector; the median is reported
    proj_tx_events: int = 10_000  # events the transactional projector handles (log's tail)
    proj_live_appends: int = 400  # timed appends for the live-delivery latency
    proj_live_gap_ms: int = 5  # pause between two appends

    @classmethod
    def quick(cls) -> ProjectionSizes:
        return cls(proj_events=10_000, proj_rounds=1, proj_tx_events=2_000, proj_live_appends=60)

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    def override(self, assignments: Sequence[str]) -> ProjectionSizes:
        """Apply ``name=value`` overrides (integers; only ``proj_live_gap_ms`` may be 0)."""
        changes: dict[str, int] = {}
        for item in assignments:
            name, _, value = item.partition("=")
            name = name.strip().replace("-", "_")
            number = int(value)
            if number < 0 or (number == 0 and name != "proj_live_gap_ms"):
                raise ValueError(f"size {name} must be positive, got {number}")
            changes[name] = number
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def split_sets(assignments: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``--set`` items into (projection sizes, the other workloads' sizes)."""
    ours = ProjectionSizes.names()
    mine = [a for a in assignments if a.partition("=")[0].strip().replace("-", "_") in ours]
    return mine, [a for a in assignments if a not in mine]


# -- projectors ---------------------------------------------------------------------------


class CountingProjector:
    """The trivial projector: counts events and notes whether they came in position order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.last = 0
        self.in_order = True

    def apply(self, event: RecordedEvent) -> None:
        position = event.position
        if position <= self.last:
            self.in_order = False
        self.last = position
        self.count += 1


class SeenAt:
    """Records when each position reached ``apply`` (``perf_counter_ns``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: dict[int, int] = {}
        self.in_order = True
        self._last = 0

    def apply(self, event: RecordedEvent) -> None:
        self.seen[event.position] = time.perf_counter_ns()
        if event.position <= self._last:
            self.in_order = False
        self._last = event.position


# -- stores ---------------------------------------------------------------------------------


class Backend:
    """One store kind: the store holding the log, a second writer, transactional tables."""

    def __init__(self, kind: str, folder: str) -> None:
        self.kind = kind
        self._closers: list[Callable[[], None]] = []
        self._path = os.path.join(folder, "projections.db")
        self._memory: EventStore | None = None
        self._checkpoints: Any = None
        self.table = COUNTS_TABLE if kind == "sqlite" else f"{SCHEMA}.{COUNTS_TABLE}"
        if kind == "postgres":
            drop_schema()
        self.store = self.open()

    def open(self) -> EventStore:
        """A new store object on the same log (the memory store has only one)."""
        store: EventStore
        if self.kind == "memory":
            if self._memory is not None:
                return self._memory
            from eventcore import InMemoryEventStore

            store = self._memory = InMemoryEventStore(events=EVENTS)
        elif self.kind == "sqlite":
            from eventcore import SqliteEventStore

            store = SqliteEventStore(self._path, events=EVENTS, synchronous="FULL")
        else:
            from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

            store = PostgresEventStore(PostgresConfig(postgres_url(), schema=SCHEMA), events=EVENTS)
        self._closers.append(store.close)
        return store

    def writer(self) -> EventStore:
        """A second store object on the log, as a second component of the application opens
        it: on SQLite over the same :class:`SqliteDatabase` (one per file in a process, which
        wakes its readers at once; another database object or process is polled), on
        PostgreSQL with its own pool (LISTEN/NOTIFY reaches every process)."""
        if self.kind != "sqlite":
            return self.open()
        from eventcore import SqliteEventStore

        store = SqliteEventStore(self.store.database, events=EVENTS)  # type: ignore[attr-defined]
        self._closers.append(store.close)
        return store

    def transactional_checkpoints(self) -> Any:
        """The transactional checkpoint store in the log's database (SQLite, PostgreSQL),
        with the transactional projector's table created."""
        if self._checkpoints is not None:
            return self._checkpoints
        checkpoints: Any
        if self.kind == "sqlite":
            from eventcore.projections import SqliteCheckpointStore

            checkpoints = SqliteCheckpointStore(self.store)  # type: ignore[arg-type]
            self._closers.append(checkpoints.close)
        else:
            from eventcore.projections import PostgresCheckpointStore

            checkpoints = PostgresCheckpointStore(self.store)  # type: ignore[arg-type]
        with checkpoints.transaction() as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)"
            )
        self._checkpoints = checkpoints
        return checkpoints

    def counted(self) -> int:
        """Events counted by the transactional projector (its table's total)."""
        with self.transactional_checkpoints().transaction() as tx:
            row = tx.execute(f"SELECT COALESCE(SUM(n), 0) FROM {self.table}").fetchone()
        return int(row[0])

    def upsert(self) -> str:
        """The transactional projector's statement: one upsert per event, counting the
        events of each stream (a read model with one row per stream, like a balance)."""
        mark = "?" if self.kind == "sqlite" else "%s"
        return (
            f"INSERT INTO {self.table} (stream_id, n) VALUES ({mark}, 1) "
            f"ON CONFLICT (stream_id) DO UPDATE SET n = {self.table}.n + 1"
        )

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception as exc:  # a failed close must not hide the measurements
                _stderr(f"close failed: {exc!r}")
        self._closers.clear()


def drop_schema() -> None:
    """Drop the projection benchmark's schema (and nothing else)."""
    import psycopg

    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def build_log(store: EventStore, events: int) -> float:
    """Append ``events`` deposits, 1,000 per stream and per append; return the seconds."""
    start = time.perf_counter()
    written = index = 0
    while written < events:
        sid = StreamId(f"bench-proj-{index:05d}")
        chunk = min(STREAM_EVENTS, events - written)
        store.append({sid: 0}, [Deposited(sid, 1)] * chunk)
        written += chunk
        index += 1
    return time.perf_counter() - start


# -- the workloads ----------------------------------------------------------------------------


def _cell(kind: str, **fields: Any) -> dict[str, Any]:
    return {"store": kind, "status": "ok", "note": "", "checks": {}, **fields}


def catch_up(backend: Backend, sizes: ProjectionSizes, head: int, build_s: float) -> dict[str, Any]:
    """The counting projector over the whole log, ``proj_rounds`` times from position 0."""
    cell = _cell(
        backend.kind,
        projector="counting",
        checkpoints="memory",
        events=head,
        page_size=sizes.proj_page,
        log_build_s=round(build_s, 3),
        log_build_events_per_s=round(head / build_s, 1) if build_s > 0 else None,
    )
    rates: list[float] = []
    seconds: list[float] = []
    checks = {"applied_every_event": True, "position_order": True, "checkpoint_at_head": True}
    for r in range(max(1, sizes.proj_rounds)):
        projector = CountingProjector(f"bench-count-{r}")
        config = ProjectionConfig(InMemoryCheckpointStore(), page_size=sizes.proj_page)
        gc.collect()
        t0 = time.perf_counter()
        report = run_projection(projector, backend.store, config)
        elapsed = time.perf_counter() - t0
        seconds.append(elapsed)
        rates.append(projector.count / elapsed if elapsed > 0 else 0.0)
        checks["applied_every_event"] &= projector.count == head == report.applied
        checks["position_order"] &= projector.in_order
        checks["checkpoint_at_head"] &= report.last_position == head
    middle = sorted(range(len(rates)), key=rates.__getitem__)[(len(rates) - 1) // 2]
    cell.update(
        seconds=round(seconds[middle], 6),
        events_per_s=round(rates[middle], 1),
        round_rates=[round(x, 1) for x in rates],
        checks=checks,
    )
    return cell


def catch_up_transactional(backend: Backend, sizes: ProjectionSizes, head: int) -> dict[str, Any]:
    """A transactional projector (one upsert per event, each in a savepoint; checkpoint in
    the same database, committed per page) over the last ``proj_tx_events`` of the log."""
    count = min(sizes.proj_tx_events, head)
    cell = _cell(
        backend.kind,
        projector="transactional",
        checkpoints=backend.kind,
        events=count,
        page_size=sizes.proj_page,
    )
    checkpoints = backend.transactional_checkpoints()
    name = "bench-transactional"
    checkpoints.save(name, head - count)  # start at the tail: the rate is what matters
    upsert = backend.upsert()

    @transactional_projector(name)
    def count_in_table(event: RecordedEvent, tx: Any) -> None:
        tx.execute(upsert, (str(event.stream_id),))

    config = ProjectionConfig(checkpoints, page_size=sizes.proj_page)
    gc.collect()
    t0 = time.perf_counter()
    report = run_projection(count_in_table, backend.store, config)
    elapsed = time.perf_counter() - t0
    cell.update(
        seconds=round(elapsed, 6),
        events_per_s=round(count / elapsed, 1) if elapsed > 0 else None,
        round_rates=[round(count / elapsed, 1)] if elapsed > 0 else [],
        checks={
            "applied_every_event": report.applied == count,
            "table_counts_every_event": backend.counted() == count,
            "checkpoint_at_head": checkpoints.load(name) == head,
        },
    )
    return cell


def _percentiles(values_ms: Sequence[float]) -> dict[str, float] | None:
    if not values_ms:
        return None
    ordered = sorted(values_ms)
    out = {n: round(percentile(ordered, q), 4) for n, q in (("p50", 0.5), ("p95", 0.95))}
    out["p99"] = round(percentile(ordered, 0.99), 4)
    out["max"] = round(ordered[-1], 4)
    return out


def live(backend: Backend, sizes: ProjectionSizes) -> dict[str, Any]:
    """Append one event at a time from this thread; a continuous projection follows."""
    cell = _cell(
        backend.kind,
        delivery=DELIVERY[backend.kind],
        appends=sizes.proj_live_appends,
        gap_ms=sizes.proj_live_gap_ms,
    )
    reader = backend.store
    writer = backend.writer()  # a second store object does the appends
    checkpoints: CheckpointStore = InMemoryCheckpointStore()
    projector = SeenAt("bench-live")
    start = reader.head()
    checkpoints.save(projector.name, start)  # follow from the end of the catch-up log
    sid = StreamId("bench-live-0001")
    version = writer.stream_version(sid)
    gap = sizes.proj_live_gap_ms / 1000
    before: dict[int, int] = {}
    after: dict[int, int] = {}
    caught_up = True
    clock = time.perf_counter_ns
    config = ProjectionConfig(checkpoints)
    with running_projection(projector, reader, config) as handle:
        for i in range(LIVE_WARMUP + sizes.proj_live_appends):
            t0 = clock()
            position = writer.append({sid: version}, [Deposited(sid, 1)])[0].position
            t1 = clock()
            version += 1
            if i < LIVE_WARMUP:  # settle: wait for each, so the listener is connected
                caught_up &= handle.wait_until(position, 10.0)
            else:
                before[position], after[position] = t0, t1
            time.sleep(gap)
        caught_up &= handle.wait_until(writer.head(), 10.0)
    seen = projector.seen
    missing = [p for p in after if p not in seen]
    latency = [max(0, seen[p] - after[p]) / 1e6 for p in after if p in seen]
    with_append = [(seen[p] - before[p]) / 1e6 for p in after if p in seen]
    database = getattr(reader, "database", None)
    listener = database.listener() if hasattr(database, "listener") else None
    cell.update(
        latency_ms=_percentiles(latency),
        latency_from_append_start_ms=_percentiles(with_append),
        append_ms=_percentiles([(after[p] - before[p]) / 1e6 for p in after]),
        samples=len(latency),
        seen_before_append_returned=sum(1 for p in after if p in seen and seen[p] < after[p]),
        listener_connected=None if listener is None else bool(listener.connected),
        checks={
            "every_append_seen": not missing,
            "applied_once_each": len(seen) == LIVE_WARMUP + sizes.proj_live_appends,
            "position_order": projector.in_order,
            "caught_up": caught_up,
        },
    )
    return cell


# -- the run ------------------------------------------------------------------------------------


def _failed(kind: str, what: str, exc: BaseException, log: Log, **fields: Any) -> dict[str, Any]:
    log(traceback.format_exc())
    return _cell(kind, status="error", note=f"{what}: {type(exc).__name__}: {exc}", **fields)


def _skipped(kind: str, note: str, **fields: Any) -> dict[str, Any]:
    return _cell(kind, status="skipped", note=note, **fields)


def run_projections(
    sizes: ProjectionSizes,
    stores: Sequence[str] = STORES,
    *,
    pg: PostgresStatus | None = None,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Run both workloads on each store; return the ``projections`` section."""
    meter = CpuMeter()
    if "postgres" in stores and pg is None:
        pg = probe_postgres()
    catch: list[dict[str, Any]] = []
    follow: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eventcore-projbench-") as folder:
        for kind in stores:
            if kind == "postgres" and (pg is None or not pg.store_importable):
                reachable = pg is not None and pg.reachable
                why = "eventcore.stores.postgres not importable" if reachable else "no server"
                catch.append(_skipped(kind, why, projector="counting"))
                catch.append(_skipped(kind, why, projector="transactional"))
                follow.append(_skipped(kind, why, delivery=DELIVERY[kind]))
                continue
            _run_store(kind, folder, sizes, catch, follow, log)
    if "postgres" in stores and pg is not None and pg.reachable:
        try:
            drop_schema()
        except Exception as exc:
            notes.append(f"could not drop schema {SCHEMA}: {exc!r}")
    section: dict[str, Any] = {
        "sizes": sizes.as_dict(),
        "catch_up": catch,
        "live": follow,
        "cpu": meter.report(),
        "notes": notes,
    }
    from benchmarks.projections_report import goals

    section["goals"] = goals(section)
    for cell in catch + follow:
        if cell["status"] == "error":
            notes.append(f"projections/{cell['store']}: {cell['note']}")
    return section


def _run_store(
    kind: str,
    folder: str,
    sizes: ProjectionSizes,
    catch: list[dict[str, Any]],
    follow: list[dict[str, Any]],
    log: Log,
) -> None:
    try:
        backend = Backend(kind, folder)
    except Exception as exc:
        catch.append(_failed(kind, "setup", exc, log, projector="counting"))
        follow.append(_failed(kind, "setup", exc, log, delivery=DELIVERY[kind]))
        return
    try:
        try:
            build_s = build_log(backend.store, sizes.proj_events)
            head = backend.store.head()
            cell = catch_up(backend, sizes, head, build_s)
        except Exception as exc:
            cell = _failed(kind, "catch-up", exc, log, projector="counting")
            head = 0
        catch.append(cell)
        log(_progress("catch-up", cell))
        if kind != "memory" and cell["status"] == "ok":
            try:
                cell = catch_up_transactional(backend, sizes, head)
            except Exception as exc:
                cell = _failed(kind, "transactional catch-up", exc, log, projector="transactional")
            catch.append(cell)
            log(_progress("catch-up", cell))
        try:
            cell = live(backend, sizes)
        except Exception as exc:
            cell = _failed(kind, "live delivery", exc, log, delivery=DELIVERY[kind])
        follow.append(cell)
        log(_progress("live", cell))
    finally:
        backend.close()


def _progress(what: str, cell: dict[str, Any]) -> str:
    head = f"{'projections':>12} {cell['store']:>8} {what:>9} "
    if "projector" in cell:
        head += f"{cell['projector']:>13}: "
    else:
        head += f"{cell['delivery']:>23}: "
    if cell["status"] != "ok":
        return head + f"{cell['status']} ({cell['note']})"
    checks = "ok" if all(cell["checks"].values()) else f"CHECK FAILED {cell['checks']}"
    if "events_per_s" in cell:
        rates = ", ".join(f"{r:,.0f}" for r in cell["round_rates"])
        return head + f"{cell['events_per_s']:>12,.0f} events/s (rounds {rates})  checks {checks}"
    lat = cell["latency_ms"] or {}
    return head + (
        f"p50 {lat.get('p50', 0):.2f} ms p95 {lat.get('p95', 0):.2f} ms "
        f"p99 {lat.get('p99', 0):.2f} ms over {cell['samples']} appends  checks {checks}"
    )


def failures(document: dict[str, Any]) -> int:
    """Cells of the projections section that errored or whose checks failed."""
    section = document.get("projections") or {}
    cells = list(section.get("catch_up", ())) + list(section.get("live", ()))
    return sum(
        1
        for c in cells
        if c["status"] == "error" or (c["status"] == "ok" and not all(c["checks"].values()))
    )
