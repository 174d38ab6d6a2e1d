"""OpenTelemetry spans and metrics for EventCore (the ``otel`` extra: ``opentelemetry-api``).

Imported by :func:`eventcore.observability.instrument` only. What it records:

Spans
    ``execute {Command}`` (internal) around every ``execute``/``execute_async``:
    ``eventcore.command.type``, ``eventcore.command.streams``, ``eventcore.command.attempts``,
    ``eventcore.command.conflicts``, ``eventcore.command.outcome`` (``ok``, ``replayed``,
    ``rejected`` for a business rule, ``conflict`` when the retries ran out, ``error``).
    ``{operation} {db.namespace}`` (client) around every SQLite and PostgreSQL read and
    write, after the database client conventions: ``db.system.name`` (``sqlite`` or
    ``postgresql``), ``db.namespace``, ``db.operation.name`` (``append``, ``read_stream``,
    ``read_all``...), ``error.type``. ``project {name}`` (consumer) around each projection
    page, with a link to the trace of every write on the page.

Metrics
    ``eventcore.command.duration`` (s, histogram), ``eventcore.command.conflicts`` and
    ``eventcore.command.retries`` (counters), ``db.client.operation.duration`` (s,
    histogram; the append latency is its ``db.operation.name=append`` series),
    ``eventcore.events.appended``, ``eventcore.projection.events`` and
    ``eventcore.projection.dead_letters`` (counters), ``eventcore.projection.lag.events``
    and ``eventcore.projection.lag.seconds`` (gauges, per ``eventcore.projection.name``),
    ``db.client.connection.count`` (``db.client.connection.state`` ``used``/``idle``) and
    ``db.client.connection.max`` for the blocking PostgreSQL store's pools.

The trace context of the ``execute`` span is stamped on the events it writes
(``traceparent`` in ``Metadata.custom``, see :data:`eventcore.observability.TRACEPARENT`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eventcore.errors import BusinessRuleViolation, ConcurrencyError
from eventcore.events import Metadata, RecordedEvent
from eventcore.observability import points

__all__ = ["OpenTelemetry"]

T = TypeVar("T")

SCOPE = "eventcore"
MAX_LINKS = 128
"""Links per projection-page span (the SDK's default limit)."""

_PROPAGATOR = TraceContextTextMapPropagator()
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class OpenTelemetry:
    """The instrumentation :func:`eventcore.observability.instrument` installs."""

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        record_trace_context: bool = True,
    ) -> None:
        from eventcore import __version__

        self.record_trace_context = bool(record_trace_context)
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.command_duration = meter.create_histogram(
            "eventcore.command.duration",
            unit="s",
            description="Time execute() took, retries included",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.conflicts = meter.create_counter(
            "eventcore.command.conflicts",
            unit="{conflict}",
            description="Version conflicts met by commands",
        )
        self.retries = meter.create_counter(
            "eventcore.command.retries", unit="{retry}", description="Attempts retried"
        )
        self.db_duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.appended = meter.create_counter(
            "eventcore.events.appended", unit="{event}", description="Events appended"
        )
        self.projected = meter.create_counter(
            "eventcore.projection.events",
            unit="{event}",
            description="Events handed to projections, per page",
        )
        self.dead_letters = meter.create_counter(
            "eventcore.projection.dead_letters",
            unit="{event}",
            description="Events a projection dead-lettered",
        )
        self.lag_events = meter.create_gauge(
            "eventcore.projection.lag.events",
            unit="{event}",
            description="Events between a projection's position and the head it last read",
        )
        self.lag_seconds = meter.create_gauge(
            "eventcore.projection.lag.seconds",
            unit="s",
            description="Age of the newest event a projection handled while behind (0 at the head)",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._pool_usage],
            unit="{connection}",
            description="Connections of the PostgreSQL pools, used or idle",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[self._pool_max],
            unit="{connection}",
            description="The most connections each PostgreSQL pool may open",
        )

    def __repr__(self) -> str:
        return f"OpenTelemetry(record_trace_context={self.record_trace_context})"

    # -- execute ---------------------------------------------------------------------------

    def execute(self, command: Any, metadata: Any, run: Callable[[Any], T]) -> T:
        with self._command(command, metadata) as (call, finish):
            try:
                result = run(call)
            except BaseException as exc:
                finish(None, exc)
                raise
            finish(result, None)
        return result

    async def execute_async(self, command: Any, metadata: Any, run: Callable[[Any], Any]) -> Any:
        with self._command(command, metadata) as (call, finish):
            try:
                result = await run(call)
            except BaseException as exc:
                finish(None, exc)
                raise
            finish(result, None)
            return result

    @contextlib.contextmanager
    def _command(self, command: Any, metadata: Any) -> Iterator[tuple[Any, Any]]:
        command_type = points.command_type(command)
        streams = [str(s) for s in _declared(command)]
        start = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"execute {command_type}",
            kind=SpanKind.INTERNAL,
            attributes={
                "eventcore.command.type": command_type,
                "eventcore.command.streams": streams,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            stamped = self._stamp(metadata) if self.record_trace_context else metadata

            def finish(result: Any, error: BaseException | None) -> None:
                attempts, conflicts, outcome = _outcome(result, error)
                span.set_attribute("eventcore.command.attempts", attempts)
                span.set_attribute("eventcore.command.conflicts", conflicts)
                span.set_attribute("eventcore.command.outcome", outcome)
                if result is not None:
                    span.set_attribute("eventcore.events.count", len(result.events))
                if error is not None and outcome != "rejected":
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                labels = {"eventcore.command.type": command_type}
                if conflicts:
                    self.conflicts.add(conflicts, labels)
                if attempts > 1:
                    self.retries.add(attempts - 1, labels)
                self.command_duration.record(
                    time.perf_counter() - start, {**labels, "eventcore.command.outcome": outcome}
                )

            yield stamped, finish

    def _stamp(self, metadata: Any) -> Any:
        """``metadata`` with the current trace context in its custom part (a value the
        caller already put under ``traceparent`` is kept)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        if not carrier:
            return metadata
        if metadata is None:
            return Metadata(custom=carrier)
        if isinstance(metadata, Metadata):
            return dataclasses.replace(metadata, custom={**carrier, **metadata.custom})
        if isinstance(metadata, Mapping):
            return {**carrier, **metadata}
        return metadata  # not metadata at all: execute() raises its ConfigurationError

    # -- databases -------------------------------------------------------------------------

    def database(self, system: str, namespace: str, operation: str, call: Callable[[], T]) -> T:
        with self._db_call(system, namespace, operation) as done:
            result = call()
            done(result)
        return result

    async def database_async(
        self, system: str, namespace: str, operation: str, call: Callable[[], Any]
    ) -> Any:
        with self._db_call(system, namespace, operation) as done:
            result = await call()
            done(result)
        return result

    @contextlib.contextmanager
    def _db_call(
        self, system: str, namespace: str, operation: str
    ) -> Iterator[Callable[[Any], None]]:
        """A client span and the duration metric around one database call; the caller
        passes the call's result to the function it is given."""
        attributes = {"db.system.name": system, "db.operation.name": operation}
        start = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"{operation} {namespace}",
            kind=SpanKind.CLIENT,
            attributes={**attributes, "db.namespace": namespace},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            def done(result: Any) -> None:
                self.db_duration.record(time.perf_counter() - start, attributes)
                if operation == "append" and isinstance(result, list):
                    span.set_attribute("eventcore.events.count", len(result))
                    self.appended.add(len(result), {"db.system.name": system})

            try:
                yield done
            except BaseException as exc:
                error_type = type(exc).__name__
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
                self.db_duration.record(
                    time.perf_counter() - start, {**attributes, "error.type": error_type}
                )
                raise

    def _pool_usage(self, options: CallbackOptions) -> Iterable[Observation]:
        for db, stats in _pools():
            pool = {"db.client.connection.pool.name": db.namespace}
            yield Observation(stats["used"], {**pool, "db.client.connection.state": "used"})
            yield Observation(stats["idle"], {**pool, "db.client.connection.state": "idle"})

    def _pool_max(self, options: CallbackOptions) -> Iterable[Observation]:
        for db, stats in _pools():
            yield Observation(stats["max"], {"db.client.connection.pool.name": db.namespace})

    # -- projections -----------------------------------------------------------------------

    @contextlib.contextmanager
    def page(
        self,
        projection: str,
        events: Sequence[RecordedEvent],
        end: int,
        head: int,
        now: Callable[[], Any],
    ) -> Iterator[None]:
        labels = {"eventcore.projection.name": projection}
        attributes: dict[str, Any] = {
            **labels,
            "eventcore.projection.page.events": len(events),
            "eventcore.projection.page.end": end,
            "eventcore.projection.head": head,
        }
        with self.tracer.start_as_current_span(
            f"project {projection}",
            kind=SpanKind.CONSUMER,
            links=_links(events),
            attributes=attributes,
        ):
            yield
        self.projected.add(len(events), labels)
        behind = max(0, head - end)
        self.lag_events.set(behind, labels)
        age = 0.0
        if behind and events:
            age = max(0.0, (now() - events[-1].recorded_at).total_seconds())
        self.lag_seconds.set(age, labels)

    def dead_lettered(self, projection: str) -> None:
        self.dead_letters.add(1, {"eventcore.projection.name": projection})


def _declared(command: Any) -> tuple[Any, ...]:
    streams = getattr(command, "streams", None)
    try:
        return tuple(streams()) if callable(streams) else ()
    except Exception:  # a broken command: execute() reports it
        return ()


def _outcome(result: Any, error: BaseException | None) -> tuple[int, int, str]:
    """``(attempts, conflicts, outcome)`` of one execution."""
    if error is None:
        if getattr(result, "replayed", False):
            return 0, 0, "replayed"
        attempts = int(getattr(result, "attempts", 1))
        return attempts, attempts - 1, "ok"
    if isinstance(error, ConcurrencyError):
        return error.attempts, error.attempts, "conflict"
    attempts = 1
    if isinstance(error, BusinessRuleViolation):
        return attempts, 0, "rejected"
    return attempts, 0, "error"


def _links(events: Sequence[RecordedEvent]) -> list[Link]:
    """A link to the span that wrote each event (once per span, at most MAX_LINKS)."""
    found: dict[tuple[int, int], Link] = {}
    for event in events:
        custom = event.metadata.custom
        if "traceparent" not in custom:
            continue
        carrier = {k: str(custom[k]) for k in ("traceparent", "tracestate") if k in custom}
        context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
        key = (context.trace_id, context.span_id)
        if context.is_valid and key not in found:
            found[key] = Link(context, {"eventcore.position": event.position})
            if len(found) >= MAX_LINKS:
                break
    return list(found.values())


def _pools() -> Iterator[tuple[Any, dict[str, int]]]:
    for db in list(points.DATABASES):
        if getattr(db, "closed", True):
            continue
        try:
            stats = db.pool_stats()
        except Exception:  # closing meanwhile: nothing to report
            continue
        yield db, stats
