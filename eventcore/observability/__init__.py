"""Seeing what EventCore does: logs, and (with the ``otel`` extra) OpenTelemetry spans and
metrics.

**Logs** need nothing: EventCore writes to the standard :mod:`logging` loggers of
:data:`LOGGERS` (``eventcore.store``, ``eventcore.execute``, ``eventcore.projections``,
``eventcore.dead_letters``, ``eventcore.leadership``, ``eventcore.migrations``,
``eventcore.snapshots``), silent at the default level in normal operation, with the context
in each record's attributes (``command_type``, ``streams``, ``attempt``, ``position``,
``projection``, ``operation``, ``db_system``, ``error_type``...). They never carry an event's
payload or a password.

**Traces and metrics**: ``pip install eventcore[otel]`` (the OpenTelemetry API; the
application installs the SDK and its exporters), then call :func:`instrument` once::

    from eventcore.observability import instrument
    instrument()                      # the global tracer and meter providers
    instrument(tracer_provider=tp, meter_provider=mp)

Without it (the default) the instrumented paths test one module-level name and go on.

>>> from eventcore.observability import LOGGERS, instrumented
>>> "eventcore.execute" in LOGGERS, instrumented()
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventcore.errors import ConfigurationError
from eventcore.observability import points

__all__ = ["LOGGERS", "TRACEPARENT", "instrument", "instrumented", "uninstrument"]

LOGGERS: Mapping[str, str] = points.LOGGERS
"""Every logger EventCore writes to (name -> what it says)."""

TRACEPARENT = "traceparent"
"""The key of ``Metadata.custom`` under which an instrumented ``execute`` records the W3C
trace context of its span (``tracestate`` too, when there is one)."""


def instrument(
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    record_trace_context: bool = True,
) -> Any:
    """Turn on the OpenTelemetry spans and metrics (needs ``eventcore[otel]``); return the
    instrumentation. ``None`` providers mean the global ones. ``record_trace_context``:
    stamp the trace context of each ``execute`` on the events it writes (``traceparent`` in
    ``Metadata.custom``), so a projection's span links to the trace that wrote them.
    Calling it again replaces the previous instrumentation."""
    try:
        from eventcore.observability.otel import OpenTelemetry
    except ImportError as exc:
        raise ConfigurationError(
            f"OpenTelemetry is not installed ({exc}); pip install 'eventcore[otel]' and an "
            "SDK (opentelemetry-sdk) to export what it records"
        ) from exc
    instrumentation = OpenTelemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        record_trace_context=record_trace_context,
    )
    points.activate(instrumentation)
    return instrumentation


def uninstrument() -> None:
    """Switch the instrumentation off again (logging stays as configured)."""
    points.activate(None)


def instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return points.ACTIVE is not None
