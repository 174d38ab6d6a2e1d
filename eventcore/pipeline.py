"""The command pipeline as a pure state machine (sans-IO).

:func:`command_pipeline` is a generator. It *yields* effects — :class:`ReadStream`,
:class:`AppendEvents`, :class:`Sleep` — and a shell performs each one and sends the result
back (or throws the store's error into it). It finishes by returning an
:class:`ExecutionResult`. :func:`eventcore.execute` is the synchronous shell; an asyncio shell
drives the same generator with ``await``.

A shell that can read several streams at once passes ``batch_reads=True`` and receives one
:class:`ReadStreams` for a command's declared streams (then :class:`ReadStream` for each
stream ``discover_streams`` finds); the bundled shells do, and answer it with the store's
``read_streams`` (one query) where the store has one.

>>> from eventcore.pipeline import ReadStream
>>> ReadStream(StreamId("account-1"))
ReadStream(stream_id=StreamId('account-1'), after_version=0)

With snapshots on (a command with a ``snapshot`` policy and a shell given a snapshot store)
the pipeline also yields :class:`LoadSnapshot` before reading and :class:`SaveSnapshot`
before ``handle``; see :mod:`eventcore.snapshots`.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventcore.commands import Command
from eventcore.errors import (
    ConcurrencyError,
    DefinitionError,
    UndeclaredStream,
    VersionConflict,
)
from eventcore.events import Metadata, RecordedEvent, event_info, stream_of
from eventcore.retry import RetryAttempt, RetryPolicy
from eventcore.snapshots.model import (
    ReplayReport,
    Snapshot,
    SnapshotPolicy,
    SnapshotWarning,
    StreamReplay,
    check_snapshot_id,
)
from eventcore.types import StreamId

__all__ = [
    "AppendEvents",
    "Effect",
    "ExecutionResult",
    "LoadSnapshot",
    "ReadStream",
    "ReadStreams",
    "SaveSnapshot",
    "Sleep",
    "command_pipeline",
]

logger = logging.getLogger("eventcore.snapshots")


@dataclass(frozen=True, slots=True)
class ReadStream:
    """Read a stream's events after ``after_version`` (the whole stream by default); send
    back a sequence of :class:`RecordedEvent`."""

    stream_id: StreamId
    after_version: int = 0


@dataclass(frozen=True, slots=True)
class ReadStreams:
    """Read several whole streams (a command's declared streams, with ``batch_reads``); send
    back a mapping of stream id to its events in version order (an empty or absent entry
    for a stream that does not exist)."""

    stream_ids: tuple[StreamId, ...]


@dataclass(frozen=True, slots=True)
class AppendEvents:
    """Append atomically, checking every expected version; send back the recorded events
    or throw :class:`VersionConflict`."""

    expected: Mapping[StreamId, int]
    events: tuple[object, ...]
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before the next attempt; send back ``None``."""

    seconds: float
    retry: RetryAttempt


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """Load a snapshot; send back the :class:`Snapshot` or ``None`` (also when loading
    failed: a snapshot is only ever an optimisation)."""

    snapshot_id: str


@dataclass(frozen=True, slots=True)
class SaveSnapshot:
    """Save a snapshot unless the stored one is newer; send back whether it was stored
    (``False`` when saving failed: that never fails the command)."""

    snapshot: Snapshot


Effect = ReadStream | ReadStreams | AppendEvents | Sleep | LoadSnapshot | SaveSnapshot


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What ``execute`` did: the events it recorded and how many attempts it took.

    ``stream_versions`` holds every stream that took part, with its version after the
    command (written streams advanced, read-only ones as read). ``replay`` reports how the
    last attempt rebuilt the state: per stream, restored from a snapshot or read in full,
    and how many events it folded from the log.
    """

    events: tuple[RecordedEvent, ...]
    attempts: int
    stream_versions: Mapping[StreamId, int]
    replay: ReplayReport | None = field(default=None, compare=False)

    @property
    def positions(self) -> tuple[int, ...]:
        """Global positions of the recorded events (wait for projections up to the last)."""
        return tuple(e.position for e in self.events)

    @property
    def last_position(self) -> int | None:
        return self.events[-1].position if self.events else None

    def _repr_html_(self) -> str:
        from eventcore._html import result_html

        return result_html(self)


def command_pipeline(
    command: Command[Any],
    retry: RetryPolicy,
    metadata: Metadata,
    *,
    snapshots: bool = False,
    batch_reads: bool = False,
) -> Generator[Effect, Any, ExecutionResult]:
    """Run ``command``: read → fold → handle → append, retrying conflicts per ``retry``.

    With ``snapshots`` (the shell has a snapshot store) and a command that declares a
    ``snapshot`` policy, the state is restored from a snapshot and saved again before
    ``handle`` once a replay folded ``policy.every`` events.

    With ``batch_reads``, a command that declares several streams and restores no snapshot
    has them read with one :class:`ReadStreams` instead of one :class:`ReadStream` each;
    they are folded in the same order either way.
    """
    plan = _snapshot_plan(command) if snapshots else None
    trusted = True  # False once a conflict showed the snapshot claims versions that do not exist
    attempt = 0
    while True:
        attempt += 1
        state, expected, replay = yield from _replay(
            command, plan if trusted else None, plan, batch_reads
        )

        new_events = command.handle(state)
        if (
            new_events is None
            or isinstance(new_events, (str, bytes))
            or not hasattr(new_events, "__iter__")
        ):
            raise DefinitionError(
                f"{type(command).__name__}.handle() returned {new_events!r}; return a list of "
                "events (an empty list when nothing happens)"
            )
        events = tuple(new_events)
        for evt in events:
            target = stream_of(evt)
            if target not in expected:
                raise UndeclaredStream(target, event_info(type(evt)).type_name, expected)
        if not events:
            return ExecutionResult((), attempt, dict(expected), replay)
        try:
            written: Sequence[RecordedEvent] = yield AppendEvents(dict(expected), events, metadata)
        except VersionConflict as conflict:
            if replay.loaded and any(c.actual < c.expected for c in conflict.conflicts):
                trusted = False
                warnings.warn(
                    f"snapshot {replay.snapshot_id!r} claims stream versions the store does not "
                    f"have ({conflict}); replaying in full. Delete the snapshot if the events "
                    "were reset",
                    SnapshotWarning,
                    stacklevel=1,
                )
            delay = retry.delay(attempt)
            if delay is None:
                raise ConcurrencyError(conflict.conflicts, attempt) from conflict
            yield Sleep(delay, RetryAttempt(attempt, delay, tuple(expected), conflict.conflicts))
            continue
        versions = dict(expected)
        for rec in written:
            versions[rec.stream_id] = rec.stream_version
        return ExecutionResult(tuple(written), attempt, versions, replay)


@dataclass(frozen=True, slots=True)
class _Plan:
    snapshot_id: str
    every: int


def _snapshot_plan(command: Command[Any]) -> _Plan | None:
    policy = type(command).snapshot
    if policy is None:
        return None
    if not isinstance(policy, SnapshotPolicy):
        raise DefinitionError(
            f"{type(command).__name__}.snapshot must be a SnapshotPolicy, got {policy!r}"
        )
    if type(command).encode_state is Command.encode_state:
        from eventcore.snapshots.model import state_codec

        state_codec(type(command))  # an unsupported state type fails here, loudly
    return _Plan(check_snapshot_id(command.snapshot_id()), policy.every)


def _replay(
    command: Command[Any], plan: _Plan | None, saving: _Plan | None, batch_reads: bool = False
) -> Generator[Effect, Any, tuple[Any, dict[StreamId, int], ReplayReport]]:
    """Fold every stream the command needs, from a snapshot where one fits.

    Streams are read in discovery order. While no earlier stream has advanced, stream *k* of
    the snapshot restores from its checkpoint and only its newer events are read; once one
    advanced (or the order departs from the snapshot's), every later stream is read in full
    on top of the new state, so ``apply`` need not commute.
    """
    snap: Snapshot | None = None
    restored: list[Any] = []
    note: str | None = None
    if plan is not None:
        found = yield LoadSnapshot(plan.snapshot_id)
        if found is not None:
            restored, note = _restore(command, found, plan.snapshot_id)
            snap = found if restored else None
    state = command.initial_state()
    declared = command.streams()
    queue: deque[StreamId] = deque(declared)
    scheduled: set[StreamId] = set(declared)
    expected: dict[StreamId, int] = {}
    checkpoints: list[Any] = []
    rows: list[StreamReplay] = []
    applied = 0
    full = snap is None  # from here on, read every stream in full
    batch: Mapping[StreamId, Sequence[RecordedEvent]] = {}
    if batch_reads and full and len(declared) > 1:
        batch = yield ReadStreams(tuple(declared))
        batched: set[StreamId] = set(declared)
    else:
        batched = set()
    while queue:
        stream_id = queue.popleft()
        k = len(checkpoints)
        base: int | None = None
        if not full and snap is not None and k < len(snap.streams):
            if snap.streams[k][0] == stream_id:
                base = snap.streams[k][1]
                state = restored[k]
            else:
                full = True
        else:
            full = True
        recorded: Sequence[RecordedEvent]
        if stream_id in batched:
            recorded = batch.get(stream_id, ())
        else:
            recorded = yield ReadStream(stream_id, base or 0)
        version = base or 0
        count = 0
        apply = command.apply
        for rec in recorded:
            state = apply(state, rec.event)
            version = rec.stream_version
            count += 1
        if count and base is not None:
            full = True  # this stream advanced: later streams are replayed on the new state
        applied += count
        expected[stream_id] = version
        checkpoints.append(state)
        rows.append(StreamReplay(stream_id, base, count, version))
        for found_id in command.discover_streams(state):
            sid = StreamId(found_id)
            if sid not in scheduled:
                scheduled.add(sid)
                queue.append(sid)

    saved = False
    if saving is not None and applied and (applied >= saving.every or note is not None):
        snapshot, problem = _encode(command, saving.snapshot_id, expected, checkpoints)
        if snapshot is not None:
            saved = bool((yield SaveSnapshot(snapshot)))
        else:
            note = problem
    report = ReplayReport(
        tuple(rows),
        saving.snapshot_id if saving is not None else None,
        loaded=snap is not None,
        saved=saved,
        note=note,
    )
    return state, expected, report


def _restore(
    command: Command[Any], snap: Snapshot, snapshot_id: str
) -> tuple[list[Any], str | None]:
    """The decoded checkpoints, or ``[]`` and why the snapshot is ignored (with a warning)."""
    try:
        if snap.snapshot_id != snapshot_id:
            raise ValueError(f"it was stored as {snap.snapshot_id!r}")
        return [command.decode_state(c) for c in snap.checkpoints], None
    except Exception as exc:
        note = f"snapshot {snapshot_id!r} ignored and rebuilt: {exc}"
        warnings.warn(note, SnapshotWarning, stacklevel=1)
        return [], note


def _encode(
    command: Command[Any], snapshot_id: str, versions: dict[StreamId, int], states: list[Any]
) -> tuple[Snapshot | None, str]:
    """The snapshot to save, or ``None`` and why not (logged; never fails the command)."""
    try:
        checkpoints = []
        for state in states:
            data = command.encode_state(state)
            if command.decode_state(data) != state:
                raise ValueError(
                    "the state does not survive encode_state/decode_state unchanged (give the "
                    "state precise type hints, or define both hooks)"
                )
            checkpoints.append(data)
        snapshot = Snapshot(snapshot_id, tuple(versions.items()), tuple(checkpoints))
        snapshot.to_json()  # JSON-ready, or fail here rather than in the store
        return snapshot, ""
    except Exception as exc:
        problem = f"snapshot {snapshot_id!r} not saved: {exc}"
        logger.warning(problem)
        return None, problem
