"""Snapshots as a replay strategy: the pipeline is given it, and knows nothing else of them.

:func:`snapshot_replay` builds the strategy for one execution of a command. On every attempt
it yields :class:`LoadSnapshot`, restores what fits, lets
:func:`~eventcore.pipeline.replay_streams` read the rest, and yields :class:`SaveSnapshot`
before ``handle`` when the replay folded enough events. The shell that chose the strategy
performs the two effects (``execute(..., snapshots=store)`` does); a snapshot problem never
fails the command.

>>> from eventcore import Command, Metadata, RetryPolicy, StreamId, stream
>>> from eventcore.pipeline import ReadStream, command_pipeline
>>> from eventcore.snapshots import SnapshotPolicy
>>> class Count(Command[int]):
...     counter: StreamId = stream()
...     snapshot = SnapshotPolicy(every=10, name="Count")
...     def initial_state(self) -> int:
...         return 0
>>> command = Count(counter="c-1")
>>> pipeline = command_pipeline(
...     command, RetryPolicy.none(), Metadata(), replay=snapshot_replay(command))
>>> next(pipeline)
LoadSnapshot(snapshot_id='Count/v1/9b0d1b68cb67/c-1')
>>> pipeline.send(None)  # no snapshot yet: the stream is read from its first event
ReadStream(stream_id=StreamId('c-1'), after_version=0)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from eventcore.commands import Command
from eventcore.errors import VersionConflict
from eventcore.pipeline import (
    FULL_REPLAY,
    Effect,
    Fold,
    Replayed,
    ReplayReport,
    ReplayStrategy,
    Resume,
    StreamReplay,
    replay_streams,
)
from eventcore.snapshots.ids import snapshot_id_of
from eventcore.snapshots.model import (
    Snapshot,
    SnapshotWarning,
    StateCodec,
    snapshot_policy,
    state_codec,
)
from eventcore.types import StreamId

__all__ = ["LoadSnapshot", "SaveSnapshot", "SnapshotEffect", "SnapshotReplay", "snapshot_replay"]

logger = logging.getLogger("eventcore.snapshots")


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


SnapshotEffect = LoadSnapshot | SaveSnapshot
"""The effects the snapshot strategy adds to the pipeline's own."""


def snapshot_replay(command: Command[Any]) -> ReplayStrategy[SnapshotEffect]:
    """The replay strategy for one execution of ``command`` with a snapshot store: a
    :class:`SnapshotReplay` when the class declares a ``snapshot`` policy, else the plain
    full replay.

    Raises :class:`~eventcore.errors.DefinitionError` at once for a bad policy or id, or a
    state type that cannot be encoded.
    """
    policy = snapshot_policy(type(command))
    if policy is None:
        return FULL_REPLAY
    return SnapshotReplay(snapshot_id_of(command), policy.every, state_codec(type(command)))


class SnapshotReplay:
    """Rebuild the state from the snapshot ``snapshot_id`` where it fits, and save a new
    one before ``handle`` once a replay folded ``every`` events from the log.

    Streams are read in discovery order. While no earlier stream has advanced, stream *k*
    of the snapshot restores from its checkpoint and only its newer events are read; once
    one advanced (or the order departs from the snapshot's), every later stream is read in
    full on top of the new state, so ``apply`` need not commute. A snapshot whose state no
    longer decodes is ignored with a :class:`SnapshotWarning` and rebuilt; one that claims
    versions the streams do not have is distrusted for the rest of the execution.
    """

    def __init__(self, snapshot_id: str, every: int, codec: StateCodec) -> None:
        self.snapshot_id = snapshot_id
        self.every = every
        self.codec = codec
        self._trusted = True

    def __repr__(self) -> str:
        return f"SnapshotReplay({self.snapshot_id!r}, every={self.every})"

    def replay(
        self, command: Command[Any], *, batch_reads: bool
    ) -> Generator[Effect | SnapshotEffect, Any, Replayed]:
        resume: Resume | None = None
        note: str | None = None
        if self._trusted:
            found = yield LoadSnapshot(self.snapshot_id)
            if found is not None:
                restored, note = self._restore(found)
                if restored:
                    resume = _resume_from(found, restored)
        fold = yield from replay_streams(command, batch_reads=batch_reads, resume=resume)
        applied = sum(row.events_applied for row in fold.streams)
        saved = False
        if applied and (applied >= self.every or note is not None):
            snapshot, problem = self._encode(fold)
            if snapshot is not None:
                saved = bool((yield SaveSnapshot(snapshot)))
            else:
                note = problem
        report = ReplayReport(
            fold.streams, self.snapshot_id, loaded=resume is not None, saved=saved, note=note
        )
        return Replayed(fold.state, fold.versions, report)

    def conflicted(self, replayed: Replayed, conflict: VersionConflict) -> None:
        """A conflict whose actual version is *lower* than a restored one proves the
        snapshot wrong (the events were reset, the snapshots were not): stop loading it."""
        if replayed.report.loaded and any(c.actual < c.expected for c in conflict.conflicts):
            self._trusted = False
            warnings.warn(
                f"snapshot {self.snapshot_id!r} claims stream versions the store does not "
                f"have ({conflict}); replaying in full. Delete the snapshot if the events "
                "were reset",
                SnapshotWarning,
                stacklevel=1,
            )

    def _restore(self, snap: Snapshot) -> tuple[list[Any], str | None]:
        """The decoded checkpoints, or ``[]`` and why the snapshot is ignored (warned)."""
        try:
            if snap.snapshot_id != self.snapshot_id:
                raise ValueError(f"it was stored as {snap.snapshot_id!r}")
            return [self.codec.decode(c) for c in snap.checkpoints], None
        except Exception as exc:
            note = f"snapshot {self.snapshot_id!r} ignored and rebuilt: {exc}"
            warnings.warn(note, SnapshotWarning, stacklevel=1)
            return [], note

    def _encode(self, fold: Fold) -> tuple[Snapshot | None, str]:
        """The snapshot to save, or ``None`` and why not (logged; never fails the command)."""
        try:
            checkpoints = []
            for state in fold.checkpoints:
                data = self.codec.encode(state)
                if self.codec.decode(data) != state:
                    raise ValueError(
                        "the state does not survive encode and decode unchanged (give the "
                        "state precise type hints, or the policy encode= and decode=)"
                    )
                checkpoints.append(data)
            snapshot = Snapshot(self.snapshot_id, tuple(fold.versions.items()), tuple(checkpoints))
            snapshot.to_json()  # JSON-ready, or fail here rather than in the store
            return snapshot, ""
        except Exception as exc:
            problem = f"snapshot {self.snapshot_id!r} not saved: {exc}"
            logger.warning(problem)
            return None, problem


def _resume_from(snap: Snapshot, restored: list[Any]) -> Resume:
    """Stream *k* resumes from checkpoint *k* while every stream before it was restored and
    had no new events, and the order is still the snapshot's."""

    def resume(
        k: int, stream_id: StreamId, folded: Sequence[StreamReplay]
    ) -> tuple[int, Any] | None:
        if k >= len(snap.streams) or snap.streams[k][0] != stream_id:
            return None
        if any(row.snapshot_version is None or row.events_applied for row in folded):
            return None
        return snap.streams[k][1], restored[k]

    return resume
