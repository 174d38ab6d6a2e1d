"""The command pipeline as a pure state machine (sans-IO).

:func:`command_pipeline` is a generator. It *yields* effects — :class:`ReadStream`,
:class:`AppendEvents`, :class:`Sleep` — and a shell performs each one and sends the result
back (or throws the store's error into it). It finishes by returning an
:class:`ExecutionResult`. :func:`eventcore.execute` is the synchronous shell; an asyncio shell
drives the same generator with ``await``.

>>> from eventcore.pipeline import ReadStream
>>> ReadStream(StreamId("account-1"))
ReadStream(stream_id=StreamId('account-1'))
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
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
from eventcore.types import StreamId

__all__ = [
    "AppendEvents",
    "Effect",
    "ExecutionResult",
    "ReadStream",
    "Sleep",
    "command_pipeline",
]


@dataclass(frozen=True, slots=True)
class ReadStream:
    """Read a whole stream; send back a sequence of :class:`RecordedEvent`."""

    stream_id: StreamId


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


Effect = ReadStream | AppendEvents | Sleep


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What ``execute`` did: the events it recorded and how many attempts it took.

    ``stream_versions`` holds every stream that took part, with its version after the
    command (written streams advanced, read-only ones as read).
    """

    events: tuple[RecordedEvent, ...]
    attempts: int
    stream_versions: Mapping[StreamId, int]

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
) -> Generator[Effect, Any, ExecutionResult]:
    """Run ``command``: read → fold → handle → append, retrying conflicts per ``retry``."""
    attempt = 0
    while True:
        attempt += 1
        state = command.initial_state()
        declared = command.streams()
        queue: deque[StreamId] = deque(declared)
        scheduled: set[StreamId] = set(declared)
        expected: dict[StreamId, int] = {}
        while queue:
            stream_id = queue.popleft()
            recorded: Sequence[RecordedEvent] = yield ReadStream(stream_id)
            version = 0
            for rec in recorded:
                state = command.apply(state, rec.event)
                version = rec.stream_version
            expected[stream_id] = version
            for found in command.discover_streams(state):
                sid = StreamId(found)
                if sid not in scheduled:
                    scheduled.add(sid)
                    queue.append(sid)

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
            return ExecutionResult((), attempt, dict(expected))
        try:
            written: Sequence[RecordedEvent] = yield AppendEvents(dict(expected), events, metadata)
        except VersionConflict as conflict:
            delay = retry.delay(attempt)
            if delay is None:
                raise ConcurrencyError(conflict.conflicts, attempt) from conflict
            yield Sleep(delay, RetryAttempt(attempt, delay, tuple(expected), conflict.conflicts))
            continue
        versions = dict(expected)
        for rec in written:
            versions[rec.stream_id] = rec.stream_version
        return ExecutionResult(tuple(written), attempt, versions)
