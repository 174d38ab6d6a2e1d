"""One error hierarchy for everything EventCore raises.

Every message says what happened and what to do about it::

    EventCoreError
    ├── ValidationError            bad input at the boundary (also a ValueError)
    │   ├── InvalidStreamId
    │   └── InvalidStreamSelector  (a bad prefix or pattern)
    ├── DefinitionError            a command or event class is malformed (also a TypeError)
    ├── ConfigurationError         a store or policy was configured wrongly (also a ValueError)
    ├── BusinessRuleViolation      ``require`` failed inside ``handle``; never retried
    ├── ConcurrencyError           version conflicts outlasted the retry policy
    ├── LeadershipUnavailable      another instance holds the leadership of a projection
    ├── ProjectionFailed           a projection gave up (poison event, read failures);
    │                              defined in eventcore.projections, the layer that raises it
    └── StoreError
        ├── VersionConflict        a stream moved since it was read
        ├── UndeclaredStream       an event for a stream the command did not read
        ├── SerializationError     an event cannot be encoded (nothing is written)
        ├── DeserializationError   a stored row cannot be decoded
        ├── IdempotencyConflict    an idempotency key reused for a different request
        ├── StreamClosed           an append to a closed stream (nothing is written)
        │   └── StreamDeleted      the stream was deleted: reads and appends say so
        ├── EventsRemoved          a read starts before events retention removed
        └── StoreFailure           the database failed; the driver error is ``__cause__``
            └── StoreTimeout       a lock or statement timeout expired
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "BusinessRuleViolation",
    "ConcurrencyError",
    "ConfigurationError",
    "Conflict",
    "DefinitionError",
    "DeserializationError",
    "EventCoreError",
    "EventsRemoved",
    "IdempotencyConflict",
    "InvalidStreamId",
    "InvalidStreamSelector",
    "LeadershipUnavailable",
    "SerializationError",
    "StoreError",
    "StoreFailure",
    "StoreTimeout",
    "StreamClosed",
    "StreamDeleted",
    "UndeclaredStream",
    "ValidationError",
    "VersionConflict",
]


class EventCoreError(Exception):
    """Base class of every error raised by EventCore."""

    def _repr_html_(self) -> str:
        """The class and message for Jupyter; for version conflicts, a table of the streams
        that moved (expected version, version found)."""
        conflicts: Sequence[Conflict] = getattr(self, "conflicts", ())
        return (
            '<div style="border-left:4px solid #c0392b;padding:4px 8px">'
            f"<b>{escape(type(self).__name__)}</b>: {escape(_no_address(str(self)))}"
            f"{_conflicts_html(conflicts) if conflicts else ''}</div>"
        )

    def _render_traceback_(self) -> list[str]:
        """How IPython and Jupyter show this error: ``Type: message`` and the frames of the
        caller's own code, without EventCore's internals (a plain Python traceback stays
        complete; ``EVENTCORE_FULL_TRACEBACK=1`` keeps it complete in notebooks too)."""
        from eventcore._traceback import render_traceback

        return render_traceback(self)


class ValidationError(EventCoreError, ValueError):
    """A value given to EventCore breaks a rule; the message names the value and the rule."""


class InvalidStreamId(ValidationError):
    """A stream id is empty, too long or contains a character reserved for patterns."""


class InvalidStreamSelector(ValidationError):
    """A stream prefix or pattern cannot be used."""


class DefinitionError(EventCoreError, TypeError):
    """A command or event class is malformed; raised when the class is defined or registered."""


class ConfigurationError(EventCoreError, ValueError):
    """A store, retry policy or other component was configured with an unusable value."""


class BusinessRuleViolation(EventCoreError):
    """A business rule checked in ``handle`` failed. Never retried: the decision is final.

    Subclass it for typed domain errors::

        class InsufficientFunds(BusinessRuleViolation):
            pass
    """


@dataclass(frozen=True, slots=True)
class Conflict:
    """One stream whose version differs from what the command read."""

    stream_id: str
    expected: int
    actual: int

    def __str__(self) -> str:
        return f"{str(self.stream_id)!r}: expected version {self.expected}, found {self.actual}"


def _describe(conflicts: Sequence[Conflict]) -> str:
    return "; ".join(str(c) for c in conflicts)


_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


def _no_address(text: str) -> str:
    """Drop memory addresses (``<Foo object at 0x7f...>``): notebook outputs must be stable."""
    return _ADDRESS.sub("", text)


def _conflicts_html(conflicts: Sequence[Conflict]) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(c.stream_id))}</td><td>{c.expected}</td><td>{c.actual}</td></tr>"
        for c in conflicts
    )
    return (
        '<table style="border-collapse:collapse;font-family:monospace;font-size:90%">'
        "<thead><tr><th>stream</th><th>expected version</th><th>found</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


class StoreError(EventCoreError):
    """Base class for errors reported by an event store."""


class VersionConflict(StoreError):
    """A stream changed between read and append; nothing was written.

    ``conflicts`` lists every stream that moved, with the version the writer expected and
    the version found.
    """

    def __init__(self, conflicts: Iterable[Conflict]) -> None:
        self.conflicts: tuple[Conflict, ...] = tuple(conflicts)
        super().__init__(
            f"version conflict on {_describe(self.conflicts)}; nothing was written. "
            "Read the streams again and retry (execute() does this for you)."
        )


class ConcurrencyError(EventCoreError):
    """Version conflicts persisted through every attempt the retry policy allowed."""

    def __init__(self, conflicts: Iterable[Conflict], attempts: int) -> None:
        self.conflicts: tuple[Conflict, ...] = tuple(conflicts)
        self.attempts = attempts
        super().__init__(
            f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}: "
            f"{_describe(self.conflicts)}. Other writers keep changing these streams; "
            "allow more retries (RetryPolicy) or reduce contention on them."
        )


class UndeclaredStream(StoreError):
    """An event targets a stream that the command neither declared nor discovered."""

    def __init__(self, stream_id: str, event_type: str, participating: Iterable[str]) -> None:
        self.stream_id = stream_id
        self.event_type = event_type
        names = ", ".join(repr(str(s)) for s in sorted(participating)) or "none"
        super().__init__(
            f"event {event_type} targets stream {str(stream_id)!r}, which this write did not read "
            f"(streams read: {names}); nothing was written. Declare the stream on the "
            "command with stream() or return it from discover_streams()."
        )


class SerializationError(StoreError):
    """An event or metadata value cannot be encoded; nothing was written."""


class DeserializationError(StoreError):
    """A stored event cannot be decoded into its class (unknown type, changed schema, bad row)."""


class IdempotencyConflict(StoreError):
    """An idempotency key was used again for a different request; nothing was written.

    The same key with the same request returns the original result instead. Use a new key
    for a new request.
    """

    def __init__(self, key: str, stored: str, given: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was already used for another request (fingerprint "
            f"{stored}, this one {given}); nothing was written. A retry must repeat the same "
            "request; use a new key for a new one"
        )


class StoreFailure(StoreError):
    """The underlying database failed. The driver's exception is kept as ``__cause__``."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        super().__init__(f"{operation} failed: {detail}")


class StoreTimeout(StoreFailure):
    """The database gave up waiting: a lock timeout or a statement timeout expired.

    Nothing was written. Another transaction held a lock too long, or a statement ran longer
    than allowed; retry later, shorten the other work, or raise the timeout.
    """


class LeadershipUnavailable(EventCoreError):
    """Another instance holds the leadership of this projection, so this one must not run it.

    ``projection`` names the projection; ``holder`` describes the current holder when the
    backend can tell (a process id, an application name), else ``None``.
    """

    def __init__(self, projection: str, detail: str = "", *, holder: str | None = None) -> None:
        self.projection = projection
        self.holder = holder
        held = f" (held by {holder})" if holder else ""
        super().__init__(
            f"projection {projection!r} is already running in another instance{held}"
            f"{'; ' + detail if detail else ''}. Only one instance may run a projection at a "
            "time: stop the other one, or pass wait_for_leadership=True (or a timeout in "
            "seconds) to wait for it"
        )


class StreamClosed(StoreError):
    """An event targeted a stream that was closed (or deleted); nothing was written.

    ``stream_id`` names the stream, ``position`` and ``closed_at`` say where and when its
    tombstone was written, ``reason`` is the text given when it was closed.
    """

    state = "closed"

    def __init__(
        self,
        stream_id: str,
        position: int,
        closed_at: object,
        reason: str = "",
        *,
        reading: bool = False,
    ) -> None:
        self.stream_id = stream_id
        self.position = position
        self.closed_at = closed_at
        self.reason = reason
        why = f" ({reason})" if reason else ""
        where = f"at position {position} ({_when(closed_at)})" if position else "by this write"
        then = (
            "its events stay in the global log (read_all) until retention removes them"
            if reading
            else f"nothing was written. A {self.state} stream takes no more events: write to "
            "a new stream instead"
        )
        super().__init__(f"stream {str(stream_id)!r} was {self.state} {where}{why}; {then}")


class StreamDeleted(StreamClosed):
    """The stream was deleted: reading it or appending to it says so, and when."""

    state = "deleted"


class EventsRemoved(StoreError):
    """A read starts before events that retention removed (``store.apply_retention``).

    ``after`` is the position the read started from; ``horizon`` the last position removed.
    Reading on would silently skip the removed events, so the read is refused instead.
    """

    def __init__(self, after: int, horizon: int, removed_at: object) -> None:
        self.after = after
        self.horizon = horizon
        self.removed_at = removed_at
        super().__init__(
            f"events after position {after} up to position {horizon} were removed by "
            f"retention ({_when(removed_at)}); reading from {after} would silently skip them. "
            "Restore them from the archive (eventcore.retention.restore), or read what is "
            "left on purpose through eventcore.retention.skipping_removed(store)"
        )


def _when(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)
