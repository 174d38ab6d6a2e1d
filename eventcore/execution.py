"""``execute``: the synchronous shell that drives the command pipeline against a store.

>>> from dataclasses import dataclass
>>> from eventcore import Command, InMemoryEventStore, StreamId, require, stream
>>> @dataclass(frozen=True)
... class Deposited:
...     account: StreamId
...     amount: int
>>> class Deposit(Command[int]):
...     account: StreamId = stream()
...     amount: int
...     def initial_state(self) -> int:
...         return 0
...     def apply(self, balance: int, event: Deposited) -> int:
...         return balance + event.amount
...     def handle(self, balance: int) -> list[Deposited]:
...         require(self.amount > 0, "amount must be positive")
...         return [Deposited(self.account, self.amount)]
>>> store = InMemoryEventStore()
>>> result = execute(store, Deposit(account="account-1", amount=10))
>>> result.attempts, result.positions, dict(result.stream_versions)
(1, (1,), {StreamId('account-1'): 1})
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from eventcore.commands import Command
from eventcore.errors import ConfigurationError, StoreError
from eventcore.events import Metadata
from eventcore.pipeline import (
    AppendEvents,
    Effect,
    ExecutionResult,
    ReadStream,
    ReadStreams,
    Sleep,
    command_pipeline,
)
from eventcore.retry import RetryPolicy
from eventcore.store import EventStore, read_streams

if TYPE_CHECKING:  # the snapshot package is imported only when snapshots are used
    from eventcore.snapshots.replay import SnapshotEffect
    from eventcore.snapshots.store import SnapshotStore

__all__ = ["execute"]

_DEFAULT_RETRY = RetryPolicy()


def execute(
    store: EventStore,
    command: Command[Any],
    *,
    retry: RetryPolicy = _DEFAULT_RETRY,
    metadata: Metadata | Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    snapshots: SnapshotStore | None = None,
) -> ExecutionResult:
    """Read the command's streams, fold, handle, and append atomically.

    Every stream read — declared, discovered, written or only read — is version-checked at
    append. A version conflict restarts from a fresh read after the policy's delay;
    business-rule violations and other store errors are raised at once.

    ``metadata`` (a :class:`Metadata`, or a dict used as its ``custom`` part) is stamped on
    every event the command writes and is the same on every attempt.

    ``snapshots``: a snapshot store, used for commands that declare a ``snapshot`` policy
    (restore, read only newer events, save before ``handle``); a snapshot failure is logged
    and never fails the command. ``result.replay`` tells what was restored and read.
    """
    pipeline = start_pipeline("execute", command, retry, metadata, snapshots)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            effect = pipeline.throw(to_throw) if to_throw is not None else pipeline.send(to_send)
        except StopIteration as done:
            result: ExecutionResult = done.value
            return result
        to_send, to_throw = None, None
        try:
            if isinstance(effect, ReadStreams):
                to_send = read_streams(store, effect.stream_ids)
            elif isinstance(effect, ReadStream):
                if effect.after_version:
                    after = effect.after_version
                    to_send = list(store.read_stream(effect.stream_id, after_version=after))
                else:
                    to_send = list(store.read_stream(effect.stream_id))
            elif isinstance(effect, AppendEvents):
                to_send = store.append(effect.expected, effect.events, metadata=effect.metadata)
            elif isinstance(effect, Sleep):
                if retry.on_retry is not None:
                    retry.on_retry(effect.retry)
                sleep(effect.seconds)
            else:  # LoadSnapshot or SaveSnapshot: only the snapshot strategy yields others
                to_send = _perform_snapshot_effect(snapshots, effect)
        except StoreError as exc:
            to_throw = exc


def _perform_snapshot_effect(snapshots: SnapshotStore | None, effect: SnapshotEffect) -> Any:
    from eventcore.snapshots.store import perform

    return perform(snapshots, effect)


def start_pipeline(
    shell: str,
    command: Command[Any],
    retry: RetryPolicy,
    metadata: Metadata | Mapping[str, Any] | None,
    snapshots: object,
) -> Generator[Effect | SnapshotEffect, Any, ExecutionResult]:
    """Check a shell's arguments and start the command pipeline (shared by every shell).

    Without ``snapshots`` the pipeline replays in full; with a snapshot store it is given the
    snapshot strategy of the command (:func:`eventcore.snapshots.snapshot_replay`), whose
    effects the shell performs on that store.
    """
    if not isinstance(command, Command):
        raise ConfigurationError(
            f"{shell}() takes a Command instance, got {type(command).__name__}"
        )
    if not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    meta = _metadata(metadata)
    if snapshots is None:
        return command_pipeline(command, retry, meta, batch_reads=True)
    from eventcore.snapshots.replay import snapshot_replay
    from eventcore.snapshots.store import SnapshotStore

    if not isinstance(snapshots, SnapshotStore):
        raise ConfigurationError(
            f"snapshots must be a snapshot store (InMemorySnapshotStore, SqliteSnapshotStore, "
            f"PostgresSnapshotStore...), got {type(snapshots).__name__}"
        )
    replay = snapshot_replay(command)
    return command_pipeline(command, retry, meta, replay=replay, batch_reads=True)


def _metadata(metadata: Metadata | Mapping[str, Any] | None) -> Metadata:
    if metadata is None:
        return Metadata()
    if isinstance(metadata, Metadata):
        return metadata
    if isinstance(metadata, Mapping):
        return Metadata(custom=dict(metadata))
    raise ConfigurationError(
        f"metadata must be a Metadata or a dict, got {type(metadata).__name__}"
    )
