"""EventCore: multi-stream event sourcing.

Commands declare the streams they need; :func:`execute` reads them, folds state with a pure
``apply``, calls a pure ``handle`` and appends the new events to several streams atomically,
with optimistic concurrency checked on every stream read.
"""

from typing import TYPE_CHECKING, Any

from eventcore.checks import CommandCheckWarning
from eventcore.clock import SeededIds, TickingClock, system_clock, uuid7
from eventcore.commands import Command, require, stream
from eventcore.errors import (
    BusinessRuleViolation,
    ConcurrencyError,
    ConfigurationError,
    Conflict,
    DefinitionError,
    DeserializationError,
    EventCoreError,
    EventsRemoved,
    IdempotencyConflict,
    InvalidStreamId,
    InvalidStreamSelector,
    LeadershipUnavailable,
    SerializationError,
    StoreError,
    StoreFailure,
    StoreTimeout,
    StreamClosed,
    StreamDeleted,
    UndeclaredStream,
    ValidationError,
    VersionConflict,
)
from eventcore.events import EventTypes, Metadata, RecordedEvent, event, event_info, stream_of
from eventcore.execution import execute
from eventcore.idempotency import IdempotencyKey
from eventcore.pipeline import ExecutionResult
from eventcore.retry import RetryAttempt, RetryPolicy
from eventcore.store import EventStore
from eventcore.stores.memory import InMemoryEventStore
from eventcore.stores.sqlite import SqliteDatabase, SqliteEventStore
from eventcore.types import StreamId, StreamPattern, StreamPrefix

if TYPE_CHECKING:
    from eventcore.projections.errors import ProjectionFailed

__version__ = "0.1.0"

__all__ = [
    "BusinessRuleViolation",
    "Command",
    "CommandCheckWarning",
    "ConcurrencyError",
    "ConfigurationError",
    "Conflict",
    "DefinitionError",
    "DeserializationError",
    "EventCoreError",
    "EventStore",
    "EventTypes",
    "EventsRemoved",
    "ExecutionResult",
    "IdempotencyConflict",
    "IdempotencyKey",
    "InMemoryEventStore",
    "InvalidStreamId",
    "InvalidStreamSelector",
    "LeadershipUnavailable",
    "Metadata",
    "ProjectionFailed",
    "RecordedEvent",
    "RetryAttempt",
    "RetryPolicy",
    "SeededIds",
    "SerializationError",
    "SqliteDatabase",
    "SqliteEventStore",
    "StoreError",
    "StoreFailure",
    "StoreTimeout",
    "StreamClosed",
    "StreamDeleted",
    "StreamId",
    "StreamPattern",
    "StreamPrefix",
    "TickingClock",
    "UndeclaredStream",
    "ValidationError",
    "VersionConflict",
    "event",
    "event_info",
    "execute",
    "require",
    "stream",
    "stream_of",
    "system_clock",
    "uuid7",
]


def __getattr__(name: str) -> Any:
    # ProjectionFailed belongs to the projection layer; importing it lazily keeps
    # ``import eventcore`` from loading every projection module.
    if name == "ProjectionFailed":
        from eventcore.projections.errors import ProjectionFailed

        return ProjectionFailed
    raise AttributeError(f"module 'eventcore' has no attribute {name!r}")
