"""Projections: read models that follow the global log, survive failures and restarts.

>>> from eventcore import InMemoryEventStore
>>> from eventcore.projections import (
...     InMemoryCheckpointStore, ProjectionConfig, projector, run_projection)
>>> counts = {}
>>> @projector("counts")
... def count(event):
...     counts[event.event_type] = counts.get(event.event_type, 0) + 1
>>> config = ProjectionConfig(InMemoryCheckpointStore())
>>> report = run_projection(count, InMemoryEventStore(), config)
>>> report.stopped_reason, report.applied
('caught_up', 0)

For asyncio, :func:`run_projection_async` and :func:`start_projection_async` (a running
projection as a task, ``await handle.stop()``) drive the same steps
(:mod:`eventcore.projections.aio`).

See ``book/projections.md`` for modes, checkpoints, delivery guarantees, transactional
projectors, leadership, dead letters and monitoring. The PostgreSQL backends
(``PostgresCheckpointStore``, ``PostgresDeadLetterStore``, ``PostgresLeadership``) live in
:mod:`eventcore.stores.postgres` and are importable from here too, lazily.
"""

from typing import TYPE_CHECKING, Any

from eventcore.projections.aio import run_projection_async
from eventcore.projections.aio_handle import (
    AsyncProjectionHandle,
    ProjectionStatus,
    start_projection_async,
)
from eventcore.projections.api import (
    DEFAULT_ERROR_POLICY,
    ErrorPolicy,
    EventSelector,
    FunctionProjector,
    FunctionTransactionalProjector,
    GiveUp,
    ProjectionReport,
    Projector,
    StopHandle,
    StopReason,
    TransactionalProjector,
    is_transactional,
    projector,
    transactional_projector,
)
from eventcore.projections.checkpoints import (
    CheckpointStore,
    InMemoryCheckpointStore,
    TransactionalCheckpointStore,
    projection_lag,
    wait_until,
)
from eventcore.projections.compose import (
    Composite,
    Emitter,
    TransactionalComposite,
    compose,
    emitter,
    union_selector,
)
from eventcore.projections.config import ProjectionConfig
from eventcore.projections.correlation import (
    CausationTree,
    EventNotFound,
    causation_chain,
    causation_tree,
    caused_by,
    events_of_correlation,
)
from eventcore.projections.dead_letters import (
    DeadLetter,
    DeadLetterRetry,
    DeadLetterStore,
    InMemoryDeadLetterStore,
    retry_dead_letters,
)
from eventcore.projections.errors import LeadershipUnavailable, ProjectionFailed
from eventcore.projections.idempotence import (
    IdempotentProjector,
    InMemorySeenPositions,
    SeenPositions,
    idempotency_key,
)
from eventcore.projections.leadership import InProcessLeadership, Leadership
from eventcore.projections.partitions import Partitioning, PartitionWorker, partition
from eventcore.projections.process import (
    CommandIssued,
    Issued,
    ProcessManager,
    execute_once,
    receipt_stream,
)
from eventcore.projections.runner import (
    Mode,
    ProjectionHandle,
    run_projection,
    running_projection,
)
from eventcore.projections.sqlite import (
    SqliteCheckpointStore,
    SqliteDeadLetterStore,
    SqliteLeadership,
)
from eventcore.projections.windows import (
    Expired,
    Matched,
    Unmatched,
    Window,
    WithinWindow,
    sliding,
    tumbling,
)

if TYPE_CHECKING:
    from eventcore.stores.postgres.projections import (
        PostgresCheckpointStore,
        PostgresDeadLetterStore,
        PostgresLeadership,
    )
    from eventcore.stores.postgres.projections_aio import (
        AsyncPostgresCheckpointStore,
        AsyncPostgresDeadLetterStore,
    )

__all__ = [
    "DEFAULT_ERROR_POLICY",
    "AsyncPostgresCheckpointStore",
    "AsyncPostgresDeadLetterStore",
    "AsyncProjectionHandle",
    "CausationTree",
    "CheckpointStore",
    "CommandIssued",
    "Composite",
    "DeadLetter",
    "DeadLetterRetry",
    "DeadLetterStore",
    "Emitter",
    "ErrorPolicy",
    "EventNotFound",
    "EventSelector",
    "Expired",
    "FunctionProjector",
    "FunctionTransactionalProjector",
    "GiveUp",
    "IdempotentProjector",
    "InMemoryCheckpointStore",
    "InMemoryDeadLetterStore",
    "InMemorySeenPositions",
    "InProcessLeadership",
    "Issued",
    "Leadership",
    "LeadershipUnavailable",
    "Matched",
    "Mode",
    "PartitionWorker",
    "Partitioning",
    "PostgresCheckpointStore",
    "PostgresDeadLetterStore",
    "PostgresLeadership",
    "ProcessManager",
    "ProjectionConfig",
    "ProjectionFailed",
    "ProjectionHandle",
    "ProjectionReport",
    "ProjectionStatus",
    "Projector",
    "SeenPositions",
    "SqliteCheckpointStore",
    "SqliteDeadLetterStore",
    "SqliteLeadership",
    "StopHandle",
    "StopReason",
    "TransactionalCheckpointStore",
    "TransactionalComposite",
    "TransactionalProjector",
    "Unmatched",
    "Window",
    "WithinWindow",
    "causation_chain",
    "causation_tree",
    "caused_by",
    "compose",
    "emitter",
    "events_of_correlation",
    "execute_once",
    "idempotency_key",
    "is_transactional",
    "partition",
    "projection_lag",
    "projector",
    "receipt_stream",
    "retry_dead_letters",
    "run_projection",
    "run_projection_async",
    "running_projection",
    "sliding",
    "start_projection_async",
    "transactional_projector",
    "tumbling",
    "union_selector",
    "wait_until",
]

_POSTGRES = ("PostgresCheckpointStore", "PostgresDeadLetterStore", "PostgresLeadership")
_POSTGRES_ASYNC = ("AsyncPostgresCheckpointStore", "AsyncPostgresDeadLetterStore")


def __getattr__(name: str) -> Any:
    if name in _POSTGRES:
        from eventcore.stores.postgres import projections

        return getattr(projections, name)
    if name in _POSTGRES_ASYNC:
        from eventcore.stores.postgres import projections_aio

        return getattr(projections_aio, name)
    raise AttributeError(f"module 'eventcore.projections' has no attribute {name!r}")
