"""EventCore in an ASGI web service (Starlette, FastAPI): ``pip install 'eventcore[web]'``.

- :class:`EventCoreService`: the lifespan that opens the store and runs the projections,
  the error handlers (problem details, RFC 9457), the correlation middleware, and the
  FastAPI dependencies :meth:`~EventCoreService.writer` (commands, with ``Idempotency-Key``
  and the write's position in ``EventCore-Position``) and
  :meth:`~EventCoreService.read_model` (read-your-writes: wait until a read model has
  reached a position, bounded by a timeout).
- :class:`AsyncProjection`: a projection run as an asyncio task for the service's lifetime.
- :class:`ThreadedProjection`: a blocking projection run for the service's lifetime.
- :func:`problem_for`: the HTTP status and body each library error becomes.

The bank as a service, built on these, is :mod:`eventcore.examples.service` (``make serve``);
the book's page "From notebook to service" walks through it.
"""

try:
    import fastapi  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "eventcore.web needs FastAPI and Starlette: pip install 'eventcore[web]'"
    ) from exc

from eventcore.web.headers import (
    CORRELATION_HEADER,
    CORRELATION_NAMESPACE,
    IDEMPOTENCY_HEADER,
    MIN_POSITION_HEADER,
    POSITION_HEADER,
    REPLAYED_HEADER,
    InvalidHeader,
    correlation_from_headers,
)
from eventcore.web.problems import PROBLEM_JSON, Problem, ReadModelBehind, problem_for
from eventcore.web.projections import AsyncProjection, ServiceProjection, ThreadedProjection
from eventcore.web.service import CorrelationMiddleware, EventCoreService, Writer, correlation_id

__all__ = [
    "CORRELATION_HEADER",
    "CORRELATION_NAMESPACE",
    "IDEMPOTENCY_HEADER",
    "MIN_POSITION_HEADER",
    "POSITION_HEADER",
    "PROBLEM_JSON",
    "REPLAYED_HEADER",
    "AsyncProjection",
    "CorrelationMiddleware",
    "EventCoreService",
    "InvalidHeader",
    "Problem",
    "ReadModelBehind",
    "ServiceProjection",
    "ThreadedProjection",
    "Writer",
    "correlation_from_headers",
    "correlation_id",
    "problem_for",
]
