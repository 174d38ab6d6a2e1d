"""The OpenTelemetry instrumentation, read back through the SDK's in-memory span exporter
and metric reader, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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
    BusinessRuleViolation,
    ConcurrencyError,
    ConfigurationError,
    InMemoryEventStore,
    Metadata,
    RetryPolicy,
    SeededIds,
    SqliteEventStore,
    StreamId,
    TickingClock,
    execute,
)
from eventcore.aio import execute_async
from eventcore.observability import TRACEPARENT, instrument, instrumented, uninstrument
from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, run_projection
from eventcore.testing import InterleavingStore
from tests.bank import EVENTS, Deposit, MoneyDeposited, Transfer, Withdraw


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(name)]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def total(self, metric: str, **attributes: Any) -> float:
        return sum(
            p.value if hasattr(p, "value") else p.count
            for p in self.points(metric)
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        )


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))
    try:
        yield Otel(spans, reader, tracer_provider)
    finally:
        uninstrument()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    clock, ids = TickingClock(), SeededIds(seed=13)
    if request.param == "sqlite":
        with SqliteEventStore(tmp_path / "e.db", events=EVENTS, clock=clock, ids=ids) as s:
            yield s
        return
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("postgres_schema")
    config = PostgresConfig(dsn, schema=schema, pool_min=1, pool_max=2)
    with PostgresEventStore(config, events=EVENTS, clock=clock, ids=ids) as s:
        yield s


def test_off_by_default_and_switched_off_again(otel: Otel) -> None:
    assert instrumented()
    uninstrument()
    assert not instrumented()
    execute(InMemoryEventStore(), Deposit(account=StreamId("a"), amount=1))
    assert otel.spans.get_finished_spans() == ()


def test_execute_spans_wrap_the_database_client_spans(otel: Otel, store: Any) -> None:
    system = "sqlite" if isinstance(store, SqliteEventStore) else "postgresql"
    execute(store, Deposit(account=StreamId("acc-a"), amount=10))
    otel.spans.clear()
    result = execute(store, Transfer(source=StreamId("acc-a"), target=StreamId("acc-b"), amount=4))

    (span,) = otel.finished("execute ")
    assert span.name == "execute Transfer"
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "eventcore.command.type": "Transfer",
        "eventcore.command.streams": ("acc-a", "acc-b"),
        "eventcore.command.attempts": 1,
        "eventcore.command.conflicts": 0,
        "eventcore.command.outcome": "ok",
        "eventcore.events.count": 2,
    }
    db = [s for s in otel.spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert [s.attributes["db.operation.name"] for s in db] == ["read_streams", "append"]  # type: ignore[index]
    for child in db:
        assert child.parent is not None and child.parent.span_id == span.context.span_id
        assert child.attributes["db.system.name"] == system  # type: ignore[index]
        assert child.name.startswith(child.attributes["db.operation.name"] + " ")  # type: ignore[index, operator]
    assert db[1].attributes["eventcore.events.count"] == 2  # type: ignore[index]

    traceparent = result.events[0].metadata.custom[TRACEPARENT]
    assert traceparent.startswith(f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-")
    assert otel.total("eventcore.events.appended", **{"db.system.name": system}) == 3
    assert otel.total("eventcore.command.duration", **{"eventcore.command.outcome": "ok"}) == 2
    appends = otel.points("db.client.operation.duration")
    assert sum(p.count for p in appends if p.attributes["db.operation.name"] == "append") == 2


def test_conflicts_retries_and_outcomes(otel: Otel) -> None:
    def sneak_in(inner: Any, n: int) -> None:
        if n == 1:
            inner.append({StreamId("b"): 0}, [MoneyDeposited(StreamId("b"), 1)])

    store = InterleavingStore(InMemoryEventStore(), before_append=sneak_in)
    quick = RetryPolicy(base_delay=0.0, max_delay=0.0, jitter=0.0)
    assert execute(store, Deposit(account=StreamId("b"), amount=2), retry=quick).attempts == 2
    with pytest.raises(BusinessRuleViolation):
        execute(store, Withdraw(account=StreamId("b"), amount=99))
    store.before_append = lambda inner, n: inner.append(
        {StreamId("b"): inner.stream_version(StreamId("b"))}, [MoneyDeposited(StreamId("b"), 1)]
    )
    with pytest.raises(ConcurrencyError):
        execute(store, Deposit(account=StreamId("b"), amount=2), retry=RetryPolicy.none())

    ok, rejected, conflict = otel.finished("execute ")
    assert ok.attributes["eventcore.command.attempts"] == 2  # type: ignore[index]
    assert ok.attributes["eventcore.command.conflicts"] == 1  # type: ignore[index]
    assert rejected.attributes["eventcore.command.outcome"] == "rejected"  # type: ignore[index]
    assert rejected.status.status_code == StatusCode.UNSET  # a business answer, not a fault
    assert conflict.attributes["eventcore.command.outcome"] == "conflict"  # type: ignore[index]
    assert conflict.status.status_code == StatusCode.ERROR
    assert otel.total("eventcore.command.conflicts", **{"eventcore.command.type": "Deposit"}) == 2
    assert otel.total("eventcore.command.retries") == 1
    assert otel.total("eventcore.command.duration") == 3


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_a_projection_page_links_to_the_writing_trace_and_reports_its_lag(
    otel: Otel, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    clock = TickingClock()
    if kind == "memory":
        store: Any = InMemoryEventStore(clock=clock, ids=SeededIds(seed=1))
    elif kind == "sqlite":
        store = SqliteEventStore(
            tmp_path / "e.db", events=EVENTS, clock=clock, ids=SeededIds(seed=1)
        )
        request.addfinalizer(store.close)
    else:
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        config = PostgresConfig(
            request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("postgres_schema"),
        )
        store = PostgresEventStore(config, events=EVENTS, clock=clock, ids=SeededIds(seed=1))
        request.addfinalizer(store.close)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /deposits") as request:
        for n in range(3):
            execute(store, Deposit(account=StreamId(f"acc-{n}"), amount=1))
    seen_lag: list[tuple[float, float]] = []

    class Totals:
        name = "totals"

        def apply(self, event: object) -> None:
            seen_lag.append(
                (
                    otel.total("eventcore.projection.lag.events"),
                    otel.total("eventcore.projection.lag.seconds"),
                )
            )

    config = ProjectionConfig(InMemoryCheckpointStore(), page_size=2, clock=clock)
    run_projection(Totals(), store, config)

    pages = otel.finished("project totals")
    assert [p.attributes["eventcore.projection.page.events"] for p in pages] == [2, 1]  # type: ignore[index]
    assert all(p.kind == SpanKind.CONSUMER for p in pages)
    writers = {s.context.span_id for s in otel.finished("execute Deposit")}
    linked = {link.context.span_id for page in pages for link in page.links}
    assert linked == writers
    assert {link.context.trace_id for page in pages for link in page.links} == {
        request.get_span_context().trace_id
    }
    # while its second page ran, the projection was 1 event behind, and that event's
    # predecessor had been written a few ticks before
    assert seen_lag[0] == (0, 0) and seen_lag[2][0] == 1 and seen_lag[2][1] > 0
    assert otel.total("eventcore.projection.lag.events") == 0  # caught up
    assert otel.total("eventcore.projection.events", **{"eventcore.projection.name": "totals"}) == 3


def test_a_dead_letter_is_counted(otel: Otel) -> None:
    from eventcore.projections import ErrorPolicy, InMemoryDeadLetterStore

    class Broken:
        name = "broken"
        error_policy = ErrorPolicy(then="dead_letter")

        def apply(self, event: object) -> None:
            raise ValueError("no")

    store = InMemoryEventStore()
    execute(store, Deposit(account=StreamId("a"), amount=1))
    config = ProjectionConfig(InMemoryCheckpointStore(), dead_letters=InMemoryDeadLetterStore())
    run_projection(Broken(), store, config)
    assert (
        otel.total("eventcore.projection.dead_letters", **{"eventcore.projection.name": "broken"})
        == 1
    )


def test_execute_async_is_traced_and_keeps_the_callers_metadata(otel: Otel) -> None:
    store = InMemoryEventStore()
    meta = Metadata(custom={"user": "alice"})
    result = asyncio.run(
        execute_async(store, Deposit(account=StreamId("a"), amount=1), metadata=meta)
    )
    (span,) = otel.finished("execute Deposit")
    assert result.events[0].metadata.custom["user"] == "alice"
    assert (
        result.events[0].metadata.custom[TRACEPARENT].split("-")[2]
        == f"{span.context.span_id:016x}"
    )


def test_trace_context_recording_can_be_switched_off(otel: Otel) -> None:
    instrument(
        tracer_provider=otel.tracer_provider,
        meter_provider=MeterProvider([InMemoryMetricReader()]),
        record_trace_context=False,
    )
    result = execute(InMemoryEventStore(), Deposit(account=StreamId("a"), amount=1))
    assert dict(result.events[0].metadata.custom) == {}


def test_postgres_pool_usage_is_observed(
    otel: Otel, postgres_dsn: str, postgres_schema: str
) -> None:
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_min=1, pool_max=3)
    with PostgresEventStore(config, events=EVENTS) as store:
        execute(store, Deposit(account=StreamId("a"), amount=1))
        pool = f"{store.database.namespace}"
        points = [
            p
            for p in otel.points("db.client.connection.count")
            if p.attributes["db.client.connection.pool.name"] == pool
        ]
        states = {p.attributes["db.client.connection.state"]: p.value for p in points}
        assert set(states) == {"used", "idle"} and states["used"] == 0 and states["idle"] >= 1
        (limit,) = [
            p
            for p in otel.points("db.client.connection.max")
            if p.attributes["db.client.connection.pool.name"] == pool
        ]
        assert limit.value == 3


def test_instrument_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "eventcore.observability.otel", raising=False)
    with pytest.raises(ConfigurationError, match=r"eventcore\[otel\]"):
        instrument()
    assert not instrumented()


def test_the_core_never_imports_opentelemetry_until_instrument_is_called() -> None:
    import subprocess

    program = (
        "import sys\n"
        "import eventcore, eventcore.observability, eventcore.projections, eventcore.aio\n"
        "from eventcore import InMemoryEventStore, StreamId, execute\n"
        "from tests.bank import Deposit\n"
        "execute(InMemoryEventStore(), Deposit(account=StreamId('a'), amount=1))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_a_process_managers_commands_continue_the_projections_trace(otel: Otel) -> None:
    from eventcore.projections import ProcessManager

    class Bonus(ProcessManager):
        name = "bonus"

        def react(self, event: Any) -> Iterator[Any]:
            if str(event.stream_id) == "acc-a" and isinstance(event.event, MoneyDeposited):
                yield Deposit(account=StreamId("acc-bonus"), amount=1)

    store = InMemoryEventStore(events=EVENTS)
    with otel.tracer_provider.get_tracer("app").start_as_current_span("POST /deposits"):
        execute(store, Deposit(account=StreamId("acc-a"), amount=5))
    run_projection(Bonus(store), store, ProjectionConfig(InMemoryCheckpointStore()))

    (page,) = otel.finished("project bonus")
    first, issued = otel.finished("execute Deposit")  # the request's, then the manager's
    assert [link.context.span_id for link in page.links] == [first.context.span_id]
    assert issued.parent is not None and issued.parent.span_id == page.context.span_id
    bonus = store.read_stream(StreamId("acc-bonus"))
    assert next(iter(bonus)).metadata.custom[TRACEPARENT].split("-")[2] == (
        f"{issued.context.span_id:016x}"
    )


def test_the_asyncio_postgres_store_has_database_spans_too(
    otel: Otel, postgres_dsn: str, postgres_schema: str
) -> None:
    from eventcore.stores.postgres import AsyncPostgresEventStore, PostgresConfig

    async def scenario() -> Any:
        config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=2)
        store = await AsyncPostgresEventStore(config, events=EVENTS).open()
        try:
            await execute_async(store, Deposit(account=StreamId("acc-a"), amount=10))
            return await execute_async(
                store, Transfer(source=StreamId("acc-a"), target=StreamId("acc-b"), amount=4)
            )
        finally:
            await store.close()

    result = asyncio.run(scenario())
    (span,) = otel.finished("execute Transfer")
    db = [
        s
        for s in otel.spans.get_finished_spans()
        if s.kind == SpanKind.CLIENT
        and s.parent is not None
        and s.parent.span_id == span.context.span_id
    ]
    assert [s.attributes["db.operation.name"] for s in db] == ["read_streams", "append"]  # type: ignore[index]
    assert {s.attributes["db.system.name"] for s in db} == {"postgresql"}  # type: ignore[index]
    assert (
        result.events[0].metadata.custom[TRACEPARENT].split("-")[2]
        == f"{span.context.span_id:016x}"
    )
    assert otel.total("eventcore.events.appended", **{"db.system.name": "postgresql"}) == 3
