"""Clocks and event-id factories, injectable so that tests and notebooks are deterministic.

Stores take ``clock=`` and ``ids=``. Production uses :func:`system_clock` and :func:`uuid7`;
notebooks and tests use :class:`TickingClock` and :class:`SeededIds`:

>>> clock = TickingClock()
>>> clock().isoformat(), clock().isoformat()
('2026-01-01T09:00:00+00:00', '2026-01-01T09:00:01+00:00')
>>> ids = SeededIds(seed=7)
>>> str(ids())
'018f3173-7000-752e-89a7-834df2a74de4'
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

__all__ = ["Clock", "IdFactory", "SeededIds", "TickingClock", "system_clock", "uuid7"]

Clock = Callable[[], datetime]
"""A function returning the current time as a timezone-aware UTC ``datetime``."""

IdFactory = Callable[[], UUID]
"""A function returning a new, time-ordered event id."""


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def _make_uuid7(unix_ms: int, rand_a: int, rand_b: int) -> UUID:
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= (rand_a & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand_b & 0x3FFF_FFFF_FFFF_FFFF
    return UUID(int=value)


class _Uuid7:
    """UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter that keeps ids
    strictly increasing within one millisecond in this process, then 62 random bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> UUID:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                self._counter += 1
                if self._counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
                ms = self._last_ms
            else:
                self._last_ms = ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            counter = self._counter
        return _make_uuid7(ms, counter, int.from_bytes(os.urandom(8), "big"))


uuid7: IdFactory = _Uuid7()
"""Return a new UUIDv7: time-ordered, unique, monotonic within this process."""


class TickingClock:
    """A deterministic clock: each call returns ``start`` plus one more ``step``.

    The first call returns ``start`` itself.
    """

    def __init__(
        self,
        start: datetime = datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        step: timedelta = timedelta(seconds=1),
    ) -> None:
        if start.tzinfo is None:
            from eventcore.errors import ConfigurationError

            raise ConfigurationError(
                f"TickingClock start {start.isoformat()} is naive; pass a timezone-aware "
                "datetime such as datetime(2026, 1, 1, tzinfo=UTC)"
            )
        self._next = start.astimezone(UTC)
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._next
            self._next = now + self._step
        return now

    def __repr__(self) -> str:
        return f"TickingClock(next={self._next.isoformat()}, step={self._step})"


class SeededIds:
    """Deterministic UUIDv7s for tests and notebooks: the timestamp starts at ``start`` and
    advances one millisecond per id; the random bits come from ``random.Random(seed)``."""

    def __init__(self, seed: int = 0, start: datetime = datetime(2024, 5, 1, tzinfo=UTC)) -> None:
        self._rng = random.Random(seed)
        self._ms = int(start.timestamp() * 1000)
        self._seed = seed
        self._lock = threading.Lock()

    def __call__(self) -> UUID:
        with self._lock:
            ms = self._ms
            self._ms += 1
            return _make_uuid7(ms, self._rng.getrandbits(12), self._rng.getrandbits(62))

    def __repr__(self) -> str:
        return f"SeededIds(seed={self._seed})"
