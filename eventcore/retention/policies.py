"""Retention policies: which events of which streams ``apply_retention`` may remove.

A policy names its streams with a :class:`~eventcore.types.StreamPrefix` or
:class:`~eventcore.types.StreamPattern` and says what to keep. For each stream the *first*
policy (in the order given) that matches it applies — :class:`PurgeDeleted` matches deleted
streams only; a stream no policy matches is left alone. Whatever a policy says, every
stream keeps its last event, so its version (and its tombstone, if it has one) survive.

>>> KeepLast(StreamPrefix("sensor-"), 100)
KeepLast(streams=StreamPrefix('sensor-'), count=100)
>>> KeepLast(StreamPrefix("sensor-"), 0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
eventcore.errors.ConfigurationError: KeepLast count must be an int >= 1, got 0; ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from eventcore.errors import ConfigurationError
from eventcore.raw import RawEvent
from eventcore.store import MAX_POSITION
from eventcore.tombstones import DELETION
from eventcore.types import StreamPattern, StreamPrefix

__all__ = [
    "KeepLast",
    "KeepYounger",
    "PurgeDeleted",
    "RetentionPolicy",
    "TruncateBefore",
    "check_policies",
]


def _check_selector(who: str, streams: object) -> None:
    if not isinstance(streams, (StreamPrefix, StreamPattern)):
        raise ConfigurationError(
            f"{who} streams must be a StreamPrefix or StreamPattern, got "
            f"{type(streams).__name__} {streams!r}; for example StreamPrefix('order-')"
        )


def _check_int(who: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_POSITION:
        raise ConfigurationError(
            f"{who} {name} must be an int >= 1, got {value!r}; every stream keeps at least "
            "its last event"
        )


@dataclass(frozen=True)
class KeepLast:
    """Keep the last ``count`` events of each matching stream."""

    streams: StreamPrefix | StreamPattern
    count: int

    def __post_init__(self) -> None:
        _check_selector("KeepLast", self.streams)
        _check_int("KeepLast", "count", self.count)

    def applies(self, rows: Sequence[RawEvent]) -> bool:
        return True

    def removable(self, rows: Sequence[RawEvent], now: datetime) -> list[RawEvent]:
        return list(rows[: max(0, len(rows) - self.count)])


@dataclass(frozen=True)
class KeepYounger:
    """Keep the events recorded less than ``age`` before the store's clock says now."""

    streams: StreamPrefix | StreamPattern
    age: timedelta

    def __post_init__(self) -> None:
        _check_selector("KeepYounger", self.streams)
        if not isinstance(self.age, timedelta) or self.age <= timedelta(0):
            raise ConfigurationError(
                f"KeepYounger age must be a positive timedelta, got {self.age!r}"
            )

    def applies(self, rows: Sequence[RawEvent]) -> bool:
        return True

    def removable(self, rows: Sequence[RawEvent], now: datetime) -> list[RawEvent]:
        cutoff = now - self.age
        return [r for r in rows if r.recorded_at < cutoff]


@dataclass(frozen=True)
class TruncateBefore:
    """Remove the events before stream version ``version`` (after a snapshot or a closing
    event that makes them redundant)."""

    streams: StreamPrefix | StreamPattern
    version: int

    def __post_init__(self) -> None:
        _check_selector("TruncateBefore", self.streams)
        _check_int("TruncateBefore", "version", self.version)

    def applies(self, rows: Sequence[RawEvent]) -> bool:
        return True

    def removable(self, rows: Sequence[RawEvent], now: datetime) -> list[RawEvent]:
        return [r for r in rows if r.stream_version < self.version]


@dataclass(frozen=True)
class PurgeDeleted:
    """Remove every event of a deleted matching stream but its deletion. It applies to
    deleted streams only: a stream that is not deleted goes on to the next policy."""

    streams: StreamPrefix | StreamPattern

    def __post_init__(self) -> None:
        _check_selector("PurgeDeleted", self.streams)

    def applies(self, rows: Sequence[RawEvent]) -> bool:
        return bool(rows) and rows[-1].event_type == DELETION

    def removable(self, rows: Sequence[RawEvent], now: datetime) -> list[RawEvent]:
        return list(rows[:-1]) if self.applies(rows) else []


RetentionPolicy = KeepLast | KeepYounger | TruncateBefore | PurgeDeleted
"""One retention policy."""


def check_policies(policies: object) -> tuple[RetentionPolicy, ...]:
    """The policies as a tuple, or ``ConfigurationError`` naming the bad one."""
    if isinstance(policies, (KeepLast, KeepYounger, TruncateBefore, PurgeDeleted)):
        return (policies,)
    if isinstance(policies, (str, bytes)) or not isinstance(policies, Sequence) or not policies:
        raise ConfigurationError(
            f"policies must be a non-empty list of retention policies, got {policies!r}"
        )
    for policy in policies:
        if not isinstance(policy, (KeepLast, KeepYounger, TruncateBefore, PurgeDeleted)):
            raise ConfigurationError(
                f"not a retention policy: {policy!r}; use KeepLast, KeepYounger, "
                "TruncateBefore or PurgeDeleted"
            )
    return tuple(policies)
