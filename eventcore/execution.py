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
from typing import TYPE_CHECKING, Any, Literal

from eventcore import checks as dev_checks
from eventcore.commands import Command
from eventcore.errors import ConfigurationError, StoreError
from eventcore.events import Metadata
from eventcore.idempotency import IdempotencyKey, command_key
from eventcore.observability import points
from eventcore.pipeline import (
    AppendEvents,
    Effect,
    ExecutionResult,
    LookupWrite,
    ReadStream,
    ReadStreams,
    Sleep,
    command_pipeline,
)
from eventcore.retry import RetryPolicy
from eventcore.store import EventStore, read_versioned, read_versioned_streams

if TYPE_CHECKING:  # the snapshot package is imported only when snapshots are used
    from eventcore.snapshots.replay import SnapshotEffect
    from eventcore.snapshots.store import SnapshotStore

__all__ = ["Concurrency", "execute"]

_DEFAULT_RETRY = RetryPolicy()


Concurrency = Literal["optimistic", "pessimistic"]
"""How ``execute`` keeps other writers out: ``optimistic`` reads, decides and appends, and
retries when the append finds a stream moved; ``pessimistic`` runs each attempt in a store
session (:mod:`eventcore.session`) that locks the declared streams first, so no conflict on
them is possible (a discovered stream is still version-checked)."""


def execute(
    store: EventStore,
    command: Command[Any],
    *,
    retry: RetryPolicy = _DEFAULT_RETRY,
    metadata: Metadata | Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    snapshots: SnapshotStore | None = None,
    idempotency_key: str | IdempotencyKey | None = None,
    concurrency: Concurrency | None = None,
    checks: bool | None = None,
) -> ExecutionResult:
    """Read the command's streams, fold, handle, and append atomically.

    Every stream read — declared, discovered, written or only read — is version-checked at
    append. A version conflict restarts from a fresh read after the policy's delay;
    business-rule violations and other store errors are raised at once.

    ``metadata`` (a :class:`Metadata`, or a dict used as its ``custom`` part) is stamped on
    every event the command writes and is the same on every attempt.

    ``snapshots``: a snapshot store, used for commands that declare a ``snapshot`` policy
    (restore, read only newer events, save before ``handle``); a snapshot failure is logged
    and never fails the command. ``result.replayed`` tells what was restored and read.

    ``idempotency_key``: executing the command again with the same key (a retry after a lost
    acknowledgement, in this process or another) returns the original result and writes
    nothing (``result.replayed`` is True); the same key for another command raises
    ``IdempotencyConflict``. ``concurrency``: ``"optimistic"`` (the default) or
    ``"pessimistic"`` (see :data:`Concurrency`); a command may set it as a class attribute.

    ``checks=True`` (or ``EVENTCORE_CHECKS=1``) first runs the development-mode checks of
    :mod:`eventcore.checks` (a dry run that reads and warns, writes nothing); ``False``
    turns them off for this call even when the variable is set.
    """
    if checks or (checks is None and dev_checks.ENABLED):
        dev_checks.check_command(store, command)
    if points.ACTIVE is not None:  # the OpenTelemetry span and metrics (instrument())
        return points.ACTIVE.execute(
            command,
            metadata,
            lambda meta: _execute(
                store, command, retry, meta, sleep, snapshots, idempotency_key, concurrency
            ),
        )
    return _execute(store, command, retry, metadata, sleep, snapshots, idempotency_key, concurrency)


def _execute(
    store: EventStore,
    command: Command[Any],
    retry: RetryPolicy,
    metadata: Metadata | Mapping[str, Any] | None,
    sleep: Callable[[float], None],
    snapshots: SnapshotStore | None,
    idempotency_key: str | IdempotencyKey | None,
    concurrency: Concurrency | None,
) -> ExecutionResult:
    pipeline = start_pipeline(
        "execute", command, retry, metadata, snapshots, idempotency_key=idempotency_key
    )
    sessions = _Sessions(store, command, choose_concurrency(store, command, concurrency))
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            try:
                if to_throw is not None:
                    effect = pipeline.throw(to_throw)
                else:
                    effect = pipeline.send(to_send)
            except StopIteration as done:
                sessions.end()
                result: ExecutionResult = done.value
                return result
            to_send, to_throw = None, None
            try:
                # The fold needs each event and its version only: a store that can read
                # them without the envelopes (the SQL stores) does, at half the cost.
                if isinstance(effect, ReadStreams):
                    to_send = read_versioned_streams(sessions.target(), effect.stream_ids)
                elif isinstance(effect, ReadStream):
                    # The store's lazy pages go to the fold as they come: a long stream is
                    # never held in memory whole (its events die young). A read error then
                    # surfaces from inside the fold, and propagates the same way.
                    reader = sessions.target()
                    to_send = read_versioned(reader, effect.stream_id, effect.after_version)
                elif isinstance(effect, AppendEvents):
                    to_send = sessions.target().append(
                        effect.expected, effect.events, **append_options(effect)
                    )
                    sessions.end()
                elif isinstance(effect, LookupWrite):
                    to_send = store.read_idempotent_write(effect.key)
                elif isinstance(effect, Sleep):
                    if retry.on_retry is not None:
                        retry.on_retry(effect.retry)
                    sleep(effect.seconds)
                else:  # LoadSnapshot or SaveSnapshot: only the snapshot strategy yields others
                    to_send = _perform_snapshot_effect(snapshots, effect)
            except StoreError as exc:
                sessions.end(exc)
                to_throw = exc
    except BaseException as exc:
        sessions.end(exc)
        raise


class _Sessions:
    """The store the effects of one attempt go to: the store itself (optimistic), or a
    session locking the declared streams, opened at the attempt's first read and ended
    after its append (pessimistic)."""

    def __init__(self, store: EventStore, command: Command[Any], mode: Concurrency) -> None:
        self.store = store
        self.lock = command.streams()
        self.pessimistic = mode == "pessimistic"
        self.manager: Any = None
        self.session: Any = None

    def target(self) -> Any:
        if not self.pessimistic:
            return self.store
        if self.manager is None:
            manager = self.store.session(lock=self.lock)  # type: ignore[attr-defined]
            self.session = manager.__enter__()
            self.manager = manager  # only once entered: a failed entry has nothing to leave
        return self.session

    def end(self, error: BaseException | None = None) -> None:
        manager, self.manager, self.session = self.manager, None, None
        if manager is None:
            return
        if error is None:
            manager.__exit__(None, None, None)
        else:
            manager.__exit__(type(error), error, error.__traceback__)


def append_options(effect: AppendEvents) -> dict[str, Any]:
    """The keyword arguments of an append (the key only when there is one, so that a store
    written before idempotency keys still takes the others)."""
    if effect.idempotency_key is None:
        return {"metadata": effect.metadata}
    return {"metadata": effect.metadata, "idempotency_key": effect.idempotency_key}


def choose_concurrency(store: object, command: Command[Any], given: object) -> Concurrency:
    """The call's choice, else the command class's ``concurrency``, else optimistic."""
    mode = given if given is not None else getattr(type(command), "concurrency", None)
    if mode is None:
        return "optimistic"
    if mode not in ("optimistic", "pessimistic"):
        raise ConfigurationError(f"concurrency must be 'optimistic' or 'pessimistic', got {mode!r}")
    if mode == "pessimistic" and not callable(getattr(store, "session", None)):
        raise ConfigurationError(
            f"pessimistic execution needs a store with sessions (store.session(lock=...)); "
            f"{type(store).__name__} has none"
        )
    return mode


def _perform_snapshot_effect(snapshots: SnapshotStore | None, effect: SnapshotEffect) -> Any:
    from eventcore.snapshots.store import perform

    return perform(snapshots, effect)


def start_pipeline(
    shell: str,
    command: Command[Any],
    retry: RetryPolicy,
    metadata: Metadata | Mapping[str, Any] | None,
    snapshots: object,
    *,
    idempotency_key: str | IdempotencyKey | None = None,
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
    key = None if idempotency_key is None else command_key(idempotency_key, command)
    if snapshots is None:
        return command_pipeline(command, retry, meta, batch_reads=True, idempotency=key)
    from eventcore.snapshots.replay import snapshot_replay
    from eventcore.snapshots.store import SnapshotStore

    if not isinstance(snapshots, SnapshotStore):
        raise ConfigurationError(
            f"snapshots must be a snapshot store (InMemorySnapshotStore, SqliteSnapshotStore, "
            f"PostgresSnapshotStore...), got {type(snapshots).__name__}"
        )
    replay = snapshot_replay(command)
    return command_pipeline(command, retry, meta, replay=replay, batch_reads=True, idempotency=key)


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
