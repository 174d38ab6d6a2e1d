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

How the state is rebuilt before ``handle`` is a :class:`ReplayStrategy` the pipeline is
given. The default, :data:`FULL_REPLAY`, folds every stream from its first event. Other
strategies may yield effects of their own, which the shell that chose them performs: the
snapshot strategy of :mod:`eventcore.snapshots` yields ``LoadSnapshot`` and ``SaveSnapshot``
and restores from a checkpoint per stream (:func:`replay_streams` does the folding for
both).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from eventcore.commands import Command
from eventcore.errors import (
    ConcurrencyError,
    DefinitionError,
    IdempotencyConflict,
    UndeclaredStream,
    VersionConflict,
)
from eventcore.events import Metadata, RecordedEvent, VersionedEvent, event_info, stream_of
from eventcore.idempotency import IdempotencyKey, RecordedWrite
from eventcore.observability import points
from eventcore.retry import RetryAttempt, RetryPolicy
from eventcore.types import StreamId

__all__ = [
    "FULL_REPLAY",
    "AppendEvents",
    "Effect",
    "ExecutionResult",
    "Fold",
    "FullReplay",
    "LookupWrite",
    "ReadStream",
    "ReadStreams",
    "ReplayReport",
    "ReplayStrategy",
    "Replayed",
    "Resume",
    "Sleep",
    "StreamReplay",
    "command_pipeline",
    "replay_streams",
]

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)


@dataclass(frozen=True, slots=True)
class ReadStream:
    """Read a stream's events after ``after_version`` (the whole stream by default); send
    back an iterable of :class:`RecordedEvent` or :class:`VersionedEvent` (the fold uses
    ``event`` and ``stream_version`` only) in version order, iterated once (a lazy one
    keeps a long stream out of memory: the fold consumes it as it comes)."""

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
    idempotency_key: IdempotencyKey | None = None


@dataclass(frozen=True, slots=True)
class LookupWrite:
    """Read what was written under an idempotency key; send back the store's
    :class:`~eventcore.idempotency.RecordedWrite` or ``None``."""

    key: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before the next attempt; send back ``None``."""

    seconds: float
    retry: RetryAttempt


Effect = ReadStream | ReadStreams | AppendEvents | LookupWrite | Sleep
"""The effects of the pipeline itself; a replay strategy may add its own."""


# -- how the state was rebuilt ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamReplay:
    """One stream of a replay: resumed from a saved state at ``snapshot_version`` (``None``:
    read from its first event), then ``events_applied`` events folded from the log, ending at
    ``version``."""

    stream_id: StreamId
    snapshot_version: int | None
    events_applied: int
    version: int

    @property
    def from_snapshot(self) -> bool:
        return self.snapshot_version is not None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """How ``execute`` rebuilt the state on its last attempt, stream by stream.

    ``snapshot_id`` is ``None`` when snapshots were not in use for the command;
    ``loaded``: a snapshot was found and used; ``saved``: a new one was stored; ``note``
    says why a snapshot was ignored or not saved.

    >>> report = ReplayReport((StreamReplay(StreamId("account-1"), None, 3, 3),))
    >>> print(report)
    account-1: full read, 3 from the log -> version 3
    """

    streams: tuple[StreamReplay, ...]
    snapshot_id: str | None = None
    loaded: bool = False
    saved: bool = False
    note: str | None = None

    @property
    def events_applied(self) -> int:
        """Events folded from the log (not counting those the snapshot stood for)."""
        return sum(s.events_applied for s in self.streams)

    @property
    def events_from_snapshot(self) -> int:
        """Events the snapshot stood for, on the streams restored from it."""
        return sum(s.snapshot_version or 0 for s in self.streams)

    def __str__(self) -> str:
        lines = [
            f"{s.stream_id}: "
            + (f"snapshot @{s.snapshot_version} + " if s.from_snapshot else "full read, ")
            + f"{s.events_applied} from the log -> version {s.version}"
            for s in self.streams
        ]
        if self.snapshot_id is not None:
            flags = [w for w, on in (("loaded", self.loaded), ("saved", self.saved)) if on]
            lines.insert(0, f"snapshot {self.snapshot_id} ({', '.join(flags) or 'not used'})")
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from eventcore._html import replay_html

        return replay_html(self)


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What ``execute`` did: the events it recorded and how many attempts it took.

    ``stream_versions`` holds every stream that took part, with its version after the
    command (written streams advanced, read-only ones as read; for a ``replayed`` result, the
    streams the original write wrote). ``replay`` reports how the
    last attempt rebuilt the state: per stream, restored from a snapshot or read in full,
    and how many events it folded from the log.
    """

    events: tuple[RecordedEvent, ...]
    attempts: int
    stream_versions: Mapping[StreamId, int]
    replay: ReplayReport | None = field(default=None, compare=False)
    replayed: bool = field(default=False, compare=False, repr=False)
    """True when the command's idempotency key had been used: ``events`` are the original
    write's, nothing was decided or written now (``attempts`` is 0)."""

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


def _original(found: RecordedWrite, key: IdempotencyKey) -> ExecutionResult:
    if found.fingerprint != key.fingerprint:
        raise IdempotencyConflict(key.key, found.fingerprint, key.fingerprint)
    versions: dict[StreamId, int] = {}
    for rec in found.events:
        versions[rec.stream_id] = rec.stream_version
    return ExecutionResult(tuple(found.events), 0, versions, None, replayed=True)


# -- the replay strategy --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay strategy hands the pipeline: the state ``handle`` decides on, the
    version of every stream read (all of them are checked at append), and the report that
    becomes ``result.replay``."""

    state: Any
    versions: Mapping[StreamId, int]
    report: ReplayReport


class ReplayStrategy(Protocol[E_co]):
    """How the pipeline rebuilds a command's state before ``handle``.

    ``replay`` is a generator: it yields effects (the pipeline's own, such as
    :class:`ReadStream`, or effects of type ``E_co`` that the shell which chose the strategy
    performs) and returns a :class:`Replayed`. It runs once per attempt. ``conflicted`` tells
    it that the append after ``replayed`` met ``conflict``; the pipeline then retries (or
    gives up, per its retry policy). A strategy may keep what it learns between the attempts
    of one execution; the shells build one per execution.
    """

    def replay(
        self, command: Command[Any], *, batch_reads: bool
    ) -> Generator[Effect | E_co, Any, Replayed]: ...

    def conflicted(self, replayed: Replayed, conflict: VersionConflict) -> None: ...


class FullReplay:
    """The default strategy: fold every stream the command reads from its first event."""

    def __repr__(self) -> str:
        return "FULL_REPLAY"

    def replay(
        self, command: Command[Any], *, batch_reads: bool
    ) -> Generator[Effect, Any, Replayed]:
        fold = yield from replay_streams(command, batch_reads=batch_reads)
        return Replayed(fold.state, fold.versions, ReplayReport(fold.streams))

    def conflicted(self, replayed: Replayed, conflict: VersionConflict) -> None:
        """Nothing to learn: the next attempt reads everything again."""


FULL_REPLAY = FullReplay()
"""The strategy :func:`command_pipeline` uses unless it is given another."""


@dataclass(frozen=True, slots=True)
class Fold:
    """What :func:`replay_streams` folded: the state, the version of every stream read, the
    state after each stream (its checkpoint, in the order read) and a row per stream."""

    state: Any
    versions: dict[StreamId, int]
    checkpoints: tuple[Any, ...]
    streams: tuple[StreamReplay, ...]


Resume = Callable[[int, StreamId, Sequence[StreamReplay]], tuple[int, Any] | None]
"""``resume(k, stream_id, folded)``: called before reading the ``k``-th stream (``folded``
holds the rows of the streams before it); returns ``(version, state)`` to go on from that
state and read only the events after ``version``, or ``None`` to fold the stream from its
first event on top of the state so far."""


def replay_streams(
    command: Command[Any], *, batch_reads: bool = False, resume: Resume | None = None
) -> Generator[Effect, Any, Fold]:
    """Fold every stream the command needs: the declared ones, then, breadth-first, each
    stream ``discover_streams`` names (read once, and part of the concurrency check).

    With ``batch_reads`` and no ``resume``, a command that declares several streams has
    them read with one :class:`ReadStreams` instead of one :class:`ReadStream` each; they
    are folded in the same order either way.
    """
    state = command.initial_state()
    declared = command.streams()
    queue: deque[StreamId] = deque(declared)
    scheduled: set[StreamId] = set(declared)
    versions: dict[StreamId, int] = {}
    checkpoints: list[Any] = []
    rows: list[StreamReplay] = []
    batch: Mapping[StreamId, Sequence[RecordedEvent | VersionedEvent]] = {}
    batched: set[StreamId] = set()
    if batch_reads and resume is None and len(declared) > 1:
        batch = yield ReadStreams(tuple(declared))
        batched = set(declared)
    apply = command.apply
    while queue:
        stream_id = queue.popleft()
        start = resume(len(rows), stream_id, rows) if resume is not None else None
        base: int | None = None
        if start is not None:
            base, state = start
        recorded: Iterable[RecordedEvent | VersionedEvent]  # lazy from the sync shell
        if stream_id in batched:
            recorded = batch.get(stream_id, ())
        else:
            recorded = yield ReadStream(stream_id, base or 0)
        version = base or 0
        count = 0
        for rec in recorded:
            state = apply(state, rec.event)
            version = rec.stream_version
            count += 1
        versions[stream_id] = version
        checkpoints.append(state)
        rows.append(StreamReplay(stream_id, base, count, version))
        for found_id in command.discover_streams(state):
            sid = StreamId(found_id)
            if sid not in scheduled:
                scheduled.add(sid)
                queue.append(sid)
    return Fold(state, versions, tuple(checkpoints), tuple(rows))


# -- the pipeline -----------------------------------------------------------------------------


def command_pipeline(
    command: Command[Any],
    retry: RetryPolicy,
    metadata: Metadata,
    *,
    replay: ReplayStrategy[E] = FULL_REPLAY,
    batch_reads: bool = False,
    idempotency: IdempotencyKey | None = None,
) -> Generator[Effect | E, Any, ExecutionResult]:
    """Run ``command``: rebuild the state → handle → append, retrying conflicts per
    ``retry``.

    ``replay`` rebuilds the state on every attempt (:data:`FULL_REPLAY` unless given
    another, such as the snapshot strategy ``eventcore.snapshots.snapshot_replay(command)``);
    ``batch_reads`` lets it read the declared streams with one :class:`ReadStreams`.

    With ``idempotency``, the pipeline first looks the key up (:class:`LookupWrite`): a key
    already used for the same command returns the original write (``replayed``) without
    reading or deciding, one used for another raises ``IdempotencyConflict``; otherwise the
    key goes with the append, which records it in the same transaction (and, should another
    execution with the key commit in between, returns that one's events instead).
    """
    if idempotency is not None:
        found = yield LookupWrite(idempotency.key)
        if found is not None:
            return _original(found, idempotency)
    attempt = 0
    while True:
        attempt += 1
        replayed = yield from replay.replay(command, batch_reads=batch_reads)
        expected = dict(replayed.versions)

        new_events = command.handle(replayed.state)
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
            return ExecutionResult((), attempt, expected, replayed.report)
        try:
            written: Sequence[RecordedEvent] = yield AppendEvents(
                dict(expected), events, metadata, idempotency
            )
        except VersionConflict as conflict:
            replay.conflicted(replayed, conflict)
            delay = retry.delay(attempt)
            points.conflict(command, attempt, expected, conflict.conflicts, delay)
            if delay is None:
                raise ConcurrencyError(conflict.conflicts, attempt) from conflict
            yield Sleep(delay, RetryAttempt(attempt, delay, tuple(expected), conflict.conflicts))
            continue
        versions = dict(expected)
        for rec in written:
            versions[rec.stream_id] = rec.stream_version
        return ExecutionResult(tuple(written), attempt, versions, replayed.report)
