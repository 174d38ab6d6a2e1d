"""The asyncio projection runner tells what it does exactly as the blocking one: the same log
records (start, pages, apply errors, dead letters, store failures, leadership, stop) and the
same page spans, on the in-memory, SQLite and PostgreSQL stores; a page span ends on every
way out of a run (caught up, stopped, failed, cancelled). The asyncio PostgreSQL pool feeds
the pool metric like the blocking one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from eventcore import (
    InMemoryEventStore,
    SeededIds,
    SqliteEventStore,
    StoreFailure,
    StreamId,
    TickingClock,
    execute,
)
from eventcore.aio import execute_async
from eventcore.observability import instrument, uninstrument
from eventcore.projections import (
    ErrorPolicy,
    InMemoryCheckpointStore,
    InMemoryDeadLetterStore,
    InProcessLeadership,
    ProjectionConfig,
    ProjectionFailed,
    SqliteCheckpointStore,
    run_projection,
    run_projection_async,
    start_projection_async,
)
from eventcore.stores.memory import AsyncInMemoryEventStore
from eventcore.stores.sqlite.aio import AsyncSqliteEventStore
from tests.bank import EVENTS, Deposit

SECRET = "card-4242-4242"
WATCHED = ("eventcore.projections", "eventcore.dead_letters", "eventcore.leadership")
FIELDS = ("projection", "position", "mode", "events", "head", "attempt", "error_type")
FIELDS += ("operation", "stopped_reason", "applied", "dead_lettered", "leadership", "stream")


class Ledger:
    """Fails twice on the event at position 2 (a message holding a secret), then gives up
    on it: it is dead-lettered."""

    name = "ledger"
    error_policy = ErrorPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, then="dead_letter")

    def __init__(self) -> None:
        self.seen: list[int] = []

    def apply(self, event: Any) -> None:
        if event.position == 2:
            raise ValueError(f"cannot book {SECRET}")
        self.seen.append(event.position)


class FlakyCheckpoints:
    """A checkpoint store whose first load fails (the runner backs off and retries)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = False

    def load(self, name: str) -> int | None:
        if not self.failed:
            self.failed = True
            raise StoreFailure("load checkpoint", "the database went away")
        return self.inner.load(name)  # type: ignore[no-any-return]

    def save(self, name: str, position: int) -> None:
        self.inner.save(name, position)


KINDS = ["memory", "sqlite", "postgresql"]


def _written(kind: str, tmp_path: Path, clock: TickingClock, request: pytest.FixtureRequest) -> Any:
    ids = SeededIds(seed=3)
    if kind == "memory":
        store: Any = InMemoryEventStore(events=EVENTS, clock=clock, ids=ids)
    elif kind == "sqlite":
        store = SqliteEventStore(tmp_path / "events.db", events=EVENTS, clock=clock, ids=ids)
        request.addfinalizer(store.close)
    else:
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        config = PostgresConfig(
            request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("postgres_schema"),
            pool_max=2,
        )
        store = PostgresEventStore(config, events=EVENTS, clock=clock, ids=ids)
        request.addfinalizer(store.close)
    for n in range(3):
        execute(store, Deposit(account=StreamId(f"acc-{n}"), amount=1))
    return store


def _asynchronous(kind: str, store: Any) -> Any:
    if kind == "memory":
        return AsyncInMemoryEventStore(store=store)
    if kind == "sqlite":
        return AsyncSqliteEventStore(store=store)
    from eventcore.stores.postgres import AsyncPostgresEventStore

    return AsyncPostgresEventStore(store.config, events=EVENTS)


def _config(kind: str, tmp_path: Path, runner: str, clock: TickingClock) -> ProjectionConfig:
    checkpoints: Any = InMemoryCheckpointStore()
    if kind == "sqlite":
        checkpoints = SqliteCheckpointStore(tmp_path / f"checkpoints-{runner}.db")
    return ProjectionConfig(
        FlakyCheckpoints(checkpoints),
        dead_letters=InMemoryDeadLetterStore(),
        leadership=InProcessLeadership(),
        page_size=2,
        sleep=lambda _: None,
        read_backoff=(0.0, 0.0),
        clock=clock,
    )


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[Any, ...]]:
    return [
        (r.name, r.levelname, r.getMessage(), *(getattr(r, f, None) for f in FIELDS))
        for r in caplog.records
        if r.name in WATCHED
    ]


def _both_runners(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    clock = TickingClock()
    store = _written(kind, tmp_path, clock, request)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    blocking = run_projection(Ledger(), store, _config(kind, tmp_path, "blocking", clock))
    from_blocking = _logged(caplog)
    caplog.clear()

    async def main() -> Any:
        async with _asynchronous(kind, store) as astore:
            config = _config(kind, tmp_path, "async", clock)
            return await run_projection_async(Ledger(), astore, config)

    asynchronous = asyncio.run(main())
    assert blocking == asynchronous
    return from_blocking, _logged(caplog)


@pytest.mark.parametrize("kind", KINDS)
def test_the_asyncio_runner_logs_what_the_blocking_one_logs(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    from_blocking, from_async = _both_runners(kind, tmp_path, caplog, request)
    assert from_async == from_blocking
    said = [(name, level, message) for name, level, message, *_ in from_async]
    projections, letters, leadership = WATCHED
    assert said == [
        (leadership, "INFO", "projection ledger: leadership acquired"),
        (
            projections,
            "WARNING",
            "projection ledger: load checkpoint failed (1 in a row); backing off",
        ),
        (projections, "INFO", "projection ledger started (batch) after position 0"),
        (projections, "DEBUG", "projection ledger: page of 2 events, head 3"),
        (
            projections,
            "WARNING",
            "projection ledger: apply raised ValueError on MoneyDeposited "
            "at position 2 (attempt 1)",
        ),
        (
            projections,
            "WARNING",
            "projection ledger: apply raised ValueError on MoneyDeposited "
            "at position 2 (attempt 2)",
        ),
        (
            letters,
            "WARNING",
            "projection ledger dead-lettered MoneyDeposited at position 2 "
            "after 2 attempts (ValueError)",
        ),
        (projections, "DEBUG", "projection ledger: page of 1 events, head 3"),
        (leadership, "INFO", "projection ledger: leadership released"),
        (
            projections,
            "INFO",
            "projection ledger caught up at position 3 (2 applied, 0 skipped, 1 dead-lettered)",
        ),
    ]
    assert SECRET not in repr(from_async)


def test_the_asyncio_runner_says_it_waits_for_the_leader_and_stops_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    leadership = InProcessLeadership()
    assert leadership.acquire("ledger")
    config = ProjectionConfig(
        InMemoryCheckpointStore(),
        dead_letters=InMemoryDeadLetterStore(),
        leadership=leadership,
        wait_for_leadership=0.01,
        poll_interval=0.005,
    )
    with pytest.raises(Exception, match="ledger"):
        asyncio.run(run_projection_async(Ledger(), AsyncInMemoryEventStore(), config))
    changes = [(r.leadership, r.getMessage()) for r in caplog.records if r.name == WATCHED[2]]  # type: ignore[attr-defined]
    assert [change for change, _ in changes] == ["waiting"]
    assert "held by" in changes[0][1]

    class Stops(Ledger):
        error_policy = ErrorPolicy.stop()

    caplog.clear()
    store = InMemoryEventStore(events=EVENTS)
    for n in range(3):
        execute(store, Deposit(account=StreamId(f"acc-{n}"), amount=1))
    with pytest.raises(ProjectionFailed):
        asyncio.run(
            run_projection_async(
                Stops(),
                AsyncInMemoryEventStore(store=store),
                ProjectionConfig(InMemoryCheckpointStore()),
            )
        )
    (stopped,) = [
        r for r in caplog.records if "stopped" in vars(r) or "failed at" in r.getMessage()
    ]
    assert stopped.levelno == logging.WARNING and stopped.stopped_reason == "failed"  # type: ignore[attr-defined]
    assert stopped.position == 1  # type: ignore[attr-defined]


# -- page spans ---------------------------------------------------------------------------


class Otel:
    def __init__(self, spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self.spans = spans
        self.reader = reader

    def pages(self, projection: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == f"project {projection}"]

    def total(self, metric: str) -> float:
        data = self.reader.get_metrics_data()
        return sum(
            p.value
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
            for p in m.data.data_points
        )


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))
    try:
        yield Otel(spans, reader)
    finally:
        uninstrument()


def _shape(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    return [
        (
            s.name,
            s.kind,
            s.status.status_code,
            dict(s.attributes or {}),
            [link.context.span_id for link in s.links],
        )
        for s in spans
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_the_asyncio_runner_has_the_page_spans_of_the_blocking_one(
    kind: str, tmp_path: Path, otel: Otel, request: pytest.FixtureRequest
) -> None:
    clock = TickingClock()
    store = _written(kind, tmp_path, clock, request)
    writers = {s.context.span_id for s in otel.spans.get_finished_spans()}
    assert len(writers) >= 3  # the execute spans the pages link to
    run_projection(Ledger(), store, _config(kind, tmp_path, "blocking", clock))
    from_blocking = _shape(otel.pages("ledger"))
    otel.spans.clear()

    async def main() -> None:
        async with _asynchronous(kind, store) as astore:
            await run_projection_async(Ledger(), astore, _config(kind, tmp_path, "async", clock))

    asyncio.run(main())
    from_async = _shape(otel.pages("ledger"))
    assert from_async == from_blocking
    assert [(s[1], s[3]["eventcore.projection.page.events"]) for s in from_async] == [
        (SpanKind.CONSUMER, 2),
        (SpanKind.CONSUMER, 1),
    ]
    assert {span_id for s in from_async for span_id in s[4]} <= writers
    assert otel.total("eventcore.projection.events") == 6  # 3 per run
    assert otel.total("eventcore.projection.dead_letters") == 2


class Blocked:
    """Applies the first event, then waits in the second until released (or cancelled)."""

    name = "blocked"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def apply(self, event: Any) -> None:
        if event.position == 2:
            self.entered.set()
            await asyncio.wait_for(self.release.wait(), 30)


def _store() -> InMemoryEventStore:
    store = InMemoryEventStore(events=EVENTS)
    for n in range(3):
        execute(store, Deposit(account=StreamId(f"acc-{n}"), amount=1))
    return store


def _run_until_entered(otel: Otel, end: Callable[[asyncio.Task[Any], Any], Any]) -> Any:
    async def main() -> Any:
        projector = Blocked()
        task = asyncio.ensure_future(
            run_projection_async(
                projector,
                AsyncInMemoryEventStore(store=_store()),
                ProjectionConfig(InMemoryCheckpointStore()),
            )
        )
        await asyncio.wait_for(projector.entered.wait(), 5)
        assert otel.pages("blocked") == []  # the page is in hand: its span is open
        return await end(task, projector)

    return asyncio.run(main())


def test_a_cancelled_asyncio_run_ends_its_page_span(otel: Otel) -> None:
    async def cancel(task: asyncio.Task[Any], projector: Any) -> None:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    _run_until_entered(otel, cancel)
    (page,) = otel.pages("blocked")
    assert page.end_time is not None
    assert page.attributes["eventcore.projection.page.events"] == 3  # type: ignore[index]


def test_a_stopped_asyncio_handle_ends_its_page_span(otel: Otel) -> None:
    async def main() -> Any:
        projector = Blocked()
        store = AsyncInMemoryEventStore(store=_store())
        handle = start_projection_async(
            projector, store, ProjectionConfig(InMemoryCheckpointStore())
        )
        await asyncio.wait_for(projector.entered.wait(), 5)
        handle.request_stop()  # noticed once the event in hand is done
        projector.release.set()
        return await handle.stop(timeout=5)

    report = asyncio.run(main())
    assert report.stopped_reason == "stopped" and report.last_position == 2
    (page,) = otel.pages("blocked")
    assert page.end_time is not None and page.status.status_code == StatusCode.UNSET


def test_a_failed_asyncio_page_ends_its_span_in_error(otel: Otel) -> None:
    class Stops(Ledger):
        name = "stops"
        error_policy = ErrorPolicy.stop()

    with pytest.raises(ProjectionFailed):
        asyncio.run(
            run_projection_async(
                Stops(),
                AsyncInMemoryEventStore(store=_store()),
                ProjectionConfig(InMemoryCheckpointStore()),
            )
        )
    (page,) = otel.pages("stops")
    assert page.status.status_code == StatusCode.ERROR


# -- the asyncio PostgreSQL pool ----------------------------------------------------------


def _pool(otel: Otel, metric: str, namespace: str) -> list[Any]:
    data = otel.reader.get_metrics_data()
    return [
        p
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for m in scope.metrics
        if m.name == metric
        for p in m.data.data_points
        if p.attributes["db.client.connection.pool.name"] == namespace
    ]


def test_the_asyncio_postgres_pool_usage_is_observed(
    otel: Otel, postgres_dsn: str, postgres_schema: str
) -> None:
    from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

    def usage(namespace: str) -> dict[str, int]:
        points = _pool(otel, "db.client.connection.count", namespace)
        return {p.attributes["db.client.connection.state"]: p.value for p in points}

    async def scenario() -> tuple[str, dict[str, int], dict[str, int], list[Any]]:
        config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_min=1, pool_max=3)
        async with AsyncPostgresEventStore(config, events=EVENTS) as store:
            await execute_async(store, Deposit(account=StreamId("a"), amount=1))
            namespace = store.database.namespace
            async with store.database.connection("hold one"):
                holding = usage(namespace)
            after = usage(namespace)
            limit = _pool(otel, "db.client.connection.max", namespace)
        return namespace, holding, after, limit

    namespace, holding, after, limit = asyncio.run(scenario())
    assert holding["used"] == 1
    assert after["used"] == 0 and after["idle"] >= 1
    assert [p.value for p in limit] == [3]
    assert _pool(otel, "db.client.connection.count", namespace) == []  # closed: not reported
