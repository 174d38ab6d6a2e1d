"""The points where EventCore tells what it does: one logger per concern, one function per
point, and the one module-level switch the optional OpenTelemetry instrumentation turns on.

Standard library only. Library modules call the functions below (one call per point); each
logs with its context in ``extra`` (so a JSON handler gets fields, not only text) and, when
:data:`ACTIVE` is set (``eventcore.observability.instrument``), feeds the metrics too. With
nothing configured the loggers are silent at the default level: normal events are DEBUG or
INFO, failures and exhausted retries WARNING. No function here receives an event's payload
or a connection string: they log types, stream ids, positions and already-masked messages.

>>> import logging
>>> sorted(LOGGERS)[:3]
['eventcore.dead_letters', 'eventcore.execute', 'eventcore.leadership']
>>> logging.getLogger("eventcore.execute").getEffectiveLevel() >= logging.WARNING
True
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from eventcore.events import RecordedEvent

__all__ = [
    "ACTIVE",
    "DATABASES",
    "LOGGERS",
    "Instrumentation",
    "activate",
    "command_type",
    "conflict",
    "dead_lettered",
    "leadership",
    "migrated",
    "page",
    "projection_error",
    "projection_io_failed",
    "projection_started",
    "projection_stopped",
    "reconnecting",
    "store_failure",
]

T = TypeVar("T")

# A library's loggers print nothing until the application configures logging: without a
# handler, Python's last-resort handler would print every WARNING to stderr (a refused
# command in a notebook would show a log line under its traceback).
logging.getLogger("eventcore").addHandler(logging.NullHandler())

STORE = logging.getLogger("eventcore.store")
EXECUTE = logging.getLogger("eventcore.execute")
PROJECTIONS = logging.getLogger("eventcore.projections")
DEAD_LETTERS = logging.getLogger("eventcore.dead_letters")
LEADERSHIP = logging.getLogger("eventcore.leadership")
MIGRATIONS = logging.getLogger("eventcore.migrations")

LOGGERS: Mapping[str, str] = {
    "eventcore.store": "store failures (WARNING) and reconnects (INFO), every backend",
    "eventcore.execute": "version conflicts: each retry (INFO), retries exhausted (WARNING)",
    "eventcore.projections": "start and stop (INFO), pages and catch-up (DEBUG), "
    "apply errors and store failures (WARNING)",
    "eventcore.dead_letters": "an event dead-lettered by a projection (WARNING)",
    "eventcore.leadership": "leadership taken, released (INFO), waited for (INFO), lost (WARNING)",
    "eventcore.migrations": "schema migrations applied (INFO)",
    "eventcore.snapshots": "snapshot failures, which never fail a command (WARNING)",
}
"""Every logger EventCore writes to, and what it says."""


class Instrumentation(Protocol):
    """What the optional instrumentation does at the points that need more than a log line
    (``eventcore.observability.otel.OpenTelemetry`` is the implementation)."""

    def execute(self, command: Any, metadata: Any, run: Callable[[Any], T]) -> T: ...

    async def execute_async(self, command: Any, metadata: Any, run: Callable[[Any], Any]) -> Any:
        """Like :meth:`execute`, for ``execute_async`` (``run`` returns an awaitable)."""

    def database(self, system: str, namespace: str, operation: str, call: Callable[[], T]) -> T: ...

    async def database_async(
        self, system: str, namespace: str, operation: str, call: Callable[[], Any]
    ) -> Any:
        """Like :meth:`database`, for an asyncio database (``call`` returns an awaitable)."""

    def page(
        self, projection: str, events: Sequence[RecordedEvent], end: int, head: int, now: Any
    ) -> AbstractContextManager[None]: ...

    def dead_lettered(self, projection: str) -> None: ...


ACTIVE: Instrumentation | None = None
"""The instrumentation in use, or None (the default): the hot paths test only this name."""

DATABASES: weakref.WeakSet[Any] = weakref.WeakSet()
"""Open databases with a connection pool (their ``pool_stats()`` feeds the pool metric)."""

_NO_PAGE: AbstractContextManager[None] = nullcontext()


def activate(instrumentation: Instrumentation | None) -> Instrumentation | None:
    """Install ``instrumentation`` (None to switch it off); return the previous one."""
    global ACTIVE
    previous, ACTIVE = ACTIVE, instrumentation
    return previous


# -- execute ----------------------------------------------------------------------------------


def command_type(command: object) -> str:
    """The name logs and spans give a command: its class's, or for a library wrapper (a
    private class holding the user's command in ``inner``, such as a process manager's
    exactly-once step) the wrapped command's."""
    cls = type(command)
    inner = getattr(command, "inner", None)
    if inner is not None and cls.__name__.startswith("_"):
        cls = type(inner)
    return cls.__name__


def conflict(
    command: object,
    attempt: int,
    streams: Iterable[object],
    conflicting: Iterable[object],
    delay: float | None,
) -> None:
    """A version conflict ended ``attempt``: retried after ``delay`` seconds, or (None) the
    retries are exhausted and ``ConcurrencyError`` follows."""
    exhausted = delay is None
    level = logging.WARNING if exhausted else logging.INFO
    if not EXECUTE.isEnabledFor(level):
        return
    names = sorted({str(getattr(c, "stream_id", c)) for c in conflicting})
    name = command_type(command)
    extra = {
        "command_type": name,
        "streams": sorted(str(s) for s in streams),
        "attempt": attempt,
        "conflicting_streams": names,
    }
    if exhausted:
        EXECUTE.warning(
            "%s gave up after %d attempts: version conflicts on %s (raise the RetryPolicy's "
            "max_retries, or split the hot stream)",
            name,
            attempt,
            ", ".join(names),
            extra=extra,
        )
    else:
        EXECUTE.info(
            "%s attempt %d met a version conflict on %s; retrying in %.3fs",
            name,
            attempt,
            ", ".join(names),
            delay,
            extra={**extra, "delay": delay},
        )


# -- stores -----------------------------------------------------------------------------------


def store_failure(system: str, operation: str, error: BaseException) -> None:
    """A driver error became ``error`` (a typed EventCore error whose message is masked)."""
    from eventcore.errors import StoreFailure

    if isinstance(error, StoreFailure) and STORE.isEnabledFor(logging.WARNING):
        STORE.warning(
            "%s %s failed: %s",
            system,
            operation,
            error,
            extra={"db_system": system, "operation": operation, "error_type": type(error).__name__},
        )


def reconnecting(system: str, operation: str, why: str) -> None:
    """A dead connection was found and replaced (or the statement runs again on another)."""
    STORE.info(
        "%s %s: %s", system, operation, why, extra={"db_system": system, "operation": operation}
    )


def migrated(system: str, where: str, before: int, after: int) -> None:
    """Schema migrations brought ``where`` (a file name or a schema) from ``before`` to
    ``after``."""
    MIGRATIONS.info(
        "%s %s migrated from schema version %d to %d",
        system,
        where,
        before,
        after,
        extra={"db_system": system, "where": where, "from_version": before, "to_version": after},
    )


# -- projections ------------------------------------------------------------------------------


def projection_started(name: str, position: int, mode: str) -> None:
    PROJECTIONS.info(
        "projection %s started (%s) after position %d",
        name,
        mode,
        position,
        extra={"projection": name, "position": position, "mode": mode},
    )


def projection_stopped(name: str, report: Any) -> None:
    """The run ended: ``report`` is its ProjectionReport (counts and stop reason)."""
    reason = report.stopped_reason
    PROJECTIONS.log(
        logging.WARNING if reason == "failed" else logging.INFO,
        "projection %s %s at position %d (%d applied, %d skipped, %d dead-lettered)",
        name,
        reason.replace("_", " "),
        report.last_position,
        report.applied,
        report.skipped,
        report.dead_lettered,
        extra={
            "projection": name,
            "position": report.last_position,
            "stopped_reason": reason,
            "applied": report.applied,
            "dead_lettered": report.dead_lettered,
        },
    )


def projection_error(name: str, event: RecordedEvent, error: BaseException, attempt: int) -> None:
    """``apply`` raised on ``event`` (its type and message are not logged: they are the
    application's and may hold the payload; the dead letter keeps them)."""
    PROJECTIONS.warning(
        "projection %s: apply raised %s on %s at position %d (attempt %d)",
        name,
        type(error).__name__,
        event.event_type,
        event.position,
        attempt,
        extra=_event_extra(name, event, error, attempt),
    )


def projection_io_failed(name: str, operation: str, failures: int, position: int) -> None:
    PROJECTIONS.warning(
        "projection %s: %s failed (%d in a row); backing off",
        name,
        operation,
        failures,
        extra={
            "projection": name,
            "operation": operation,
            "attempt": failures,
            "position": position,
        },
    )


def page(
    name: str, events: Sequence[RecordedEvent], end: int, head: int, now: Callable[[], Any]
) -> AbstractContextManager[None]:
    """Around one page of a projection (its events, up to position ``end``; the ``head``
    the run read): a span and the lag metrics when instrumented."""
    if PROJECTIONS.isEnabledFor(logging.DEBUG):
        PROJECTIONS.debug(
            "projection %s: page of %d events, head %d",
            name,
            len(events),
            head,
            extra={"projection": name, "events": len(events), "head": head},
        )
    active = ACTIVE
    if active is None:
        return _NO_PAGE
    return active.page(name, events, end, head, now)


def dead_lettered(name: str, event: RecordedEvent, error: BaseException, attempts: int) -> None:
    DEAD_LETTERS.warning(
        "projection %s dead-lettered %s at position %d after %d attempts (%s)",
        name,
        event.event_type,
        event.position,
        attempts,
        type(error).__name__,
        extra=_event_extra(name, event, error, attempts),
    )
    active = ACTIVE
    if active is not None:
        active.dead_lettered(name)


def leadership(name: str, change: str, detail: str = "") -> None:
    """``change``: ``acquired``, ``waiting``, ``released`` or ``lost``."""
    LEADERSHIP.log(
        logging.WARNING if change == "lost" else logging.INFO,
        "projection %s: leadership %s%s",
        name,
        change,
        f" ({detail})" if detail else "",
        extra={"projection": name, "leadership": change},
    )


def _event_extra(
    name: str, event: RecordedEvent, error: BaseException, attempt: int
) -> dict[str, Any]:
    return {
        "projection": name,
        "event_type": event.event_type,
        "stream": str(event.stream_id),
        "position": event.position,
        "attempt": attempt,
        "error_type": type(error).__name__,
    }
