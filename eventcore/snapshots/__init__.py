"""Command-state snapshots: a command's cost stays flat as its streams grow.

A command opts in with a class attribute; ``execute`` is given a snapshot store::

    class Deposit(Command[int]):
        account: StreamId = stream()
        amount: int
        snapshot = SnapshotPolicy(every=100, version=1)
        ...

    snapshots = SqliteSnapshotStore(store)          # next to the events
    result = execute(store, Deposit(account="a", amount=5), snapshots=snapshots)
    result.replay                                   # what was restored, what was read

Snapshots are a replay strategy the pipeline is given (:func:`snapshot_replay`): ``execute``
loads the snapshot named by :func:`snapshot_id_of` (the command's module and class, the
policy version, the shape of the state type and the streams), reads only the events after
each stored stream version, and saves a new snapshot (before ``handle``) when it folded at
least ``every`` events. See ``book/snapshots.md``.

:class:`PostgresSnapshotStore` lives in :mod:`eventcore.snapshots.postgres` (it needs
psycopg); it is also importable from here.
"""

from typing import TYPE_CHECKING, Any

from eventcore.pipeline import ReplayReport, StreamReplay
from eventcore.snapshots.ids import snapshot_id_of, state_shape
from eventcore.snapshots.model import (
    Snapshot,
    SnapshotInfo,
    SnapshotPolicy,
    SnapshotWarning,
    StateCodec,
    state_codec,
)
from eventcore.snapshots.replay import LoadSnapshot, SaveSnapshot, SnapshotReplay, snapshot_replay
from eventcore.snapshots.sqlite import SqliteSnapshotStore
from eventcore.snapshots.store import InMemorySnapshotStore, SnapshotStore

if TYPE_CHECKING:
    from eventcore.snapshots.postgres import PostgresSnapshotStore

__all__ = [
    "InMemorySnapshotStore",
    "LoadSnapshot",
    "PostgresSnapshotStore",
    "ReplayReport",
    "SaveSnapshot",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotPolicy",
    "SnapshotReplay",
    "SnapshotStore",
    "SnapshotWarning",
    "SqliteSnapshotStore",
    "StateCodec",
    "StreamReplay",
    "snapshot_id_of",
    "snapshot_replay",
    "snapshot_store_for",
    "state_codec",
    "state_shape",
]


def snapshot_store_for(store: Any) -> SnapshotStore:
    """A snapshot store that lives next to ``store``'s events: in the same SQLite database or
    PostgreSQL schema; in memory for an in-memory store (keep the returned object)."""
    from eventcore.stores.memory import InMemoryEventStore
    from eventcore.stores.sqlite import SqliteEventStore

    if isinstance(store, SqliteEventStore):
        return SqliteSnapshotStore(store)
    if isinstance(store, InMemoryEventStore):
        return InMemorySnapshotStore()
    if type(store).__name__ == "PostgresEventStore":
        from eventcore.snapshots.postgres import PostgresSnapshotStore

        return PostgresSnapshotStore(store)
    from eventcore.errors import ConfigurationError

    raise ConfigurationError(
        f"no snapshot store is known for {type(store).__name__}; build one explicitly "
        "(InMemorySnapshotStore, SqliteSnapshotStore or PostgresSnapshotStore)"
    )


def __getattr__(name: str) -> Any:
    if name == "PostgresSnapshotStore":
        from eventcore.snapshots.postgres import PostgresSnapshotStore

        return PostgresSnapshotStore
    raise AttributeError(f"module 'eventcore.snapshots' has no attribute {name!r}")
