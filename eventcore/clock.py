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
from uuid import UUID, SafeUUID

__all__ = ["Clock", "IdFactory", "SeededIds", "TickingClock", "system_clock", "uuid7"]

Clock = Callable[[], datetime]
"""A function returning the current time as a timezone-aware UTC ``datetime``."""

IdFactory = Callable[[], UUID]
"""A function returning a new, time-ordered event id."""


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown


def _uuid_from_int_fast(value: int) -> UUID:
    uuid = _new(UUID)
    _set(uuid, "int", value)
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def _uuid_from_int_checked(value: int) -> UUID:
    return UUID(int=value)


def _fast_uuid_works() -> bool:
    probe = 0x018F3173_7000_752E_89A7_834DF2A74DE4
    try:
        fast = _uuid_from_int_fast(probe)
        slow = UUID(int=probe)
        return fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    except Exception:  # pragma: no cover - a Python whose UUID is built differently
        return False


uuid_from_int = _uuid_from_int_fast if _fast_uuid_works() else _uuid_from_int_checked
"""``UUID(int=value)`` for a value known to lie in ``[0, 2**128)``, without re-checking it
(the hot path of id generation and of reading stored ids)."""


def uuid_from_text(text: str) -> UUID:
    """``UUID(text)``, the same values accepted and the same errors raised, faster for the
    36-character form stores keep (about half the cost of ``UUID(text)``)."""
    if type(text) is str:
        digits = text.replace("-", "")
        # UUID(text) drops "urn:", "uuid:" and braces, then calls int(hex, 16) on the same
        # 32 characters: text holding any of those fails int() here and goes to UUID(text).
        if len(digits) == 32:
            try:
                return uuid_from_int(int(digits, 16))
            except ValueError:
                pass  # not hex: let UUID() raise its own error
    return UUID(text)


def _make_uuid7(unix_ms: int, rand_a: int, rand_b: int) -> UUID:
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= (rand_a & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand_b & 0x3FFF_FFFF_FFFF_FFFF
    return uuid_from_int(value)


class _Uuid7:
    """UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter that keeps ids
    strictly increasing within one millisecond in this process, then 62 random bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> UUID:
        noise = os.urandom(10)
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._last_ms = ms
                self._counter = int.from_bytes(noise[8:], "big") & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
        return _make_uuid7(ms, counter, int.from_bytes(noise[:8], "big"))

    def many(self, count: int) -> list[UUID]:
        """``count`` new ids, strictly increasing, as ``count`` calls would give them, with
        one clock reading and one ``os.urandom`` call for the whole batch."""
        if count <= 0:
            return []
        noise = os.urandom(8 * count + 2)
        stamps: list[int] = []
        with self._lock:
            ms = time.time_ns() // 1_000_000
            last, counter = self._last_ms, self._counter
            if ms > last:
                last = ms
                counter = int.from_bytes(noise[-2:], "big") & 0x3FF
            else:
                counter += 1
            for _ in range(count):
                if counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                    last += 1
                    counter = 0
                stamps.append((last & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64)
                counter += 1
            self._last_ms, self._counter = last, counter - 1
        variant = 0b10 << 62
        mask = 0x3FFF_FFFF_FFFF_FFFF
        from_bytes = int.from_bytes
        return [
            uuid_from_int(stamp | variant | (from_bytes(noise[8 * i : 8 * i + 8], "big") & mask))
            for i, stamp in enumerate(stamps)
        ]


_UUID7 = _Uuid7()

uuid7: IdFactory = _UUID7
"""Return a new UUIDv7: time-ordered, unique, monotonic within this process."""

uuid7_many: Callable[[int], list[UUID]] = _UUID7.many
"""``count`` ids from :data:`uuid7` at once (what stores use for a write of many events)."""


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
