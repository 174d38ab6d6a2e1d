"""Retry policies for version conflicts: capped exponential backoff with jitter, fixed, none.

>>> policy = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05, jitter=0.0)
>>> [policy.delay(n) for n in range(1, 6)]
[0.01, 0.02, 0.04, 0.05, None]
>>> RetryPolicy.none().delay(1) is None
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from eventcore.errors import ConfigurationError, Conflict, ValidationError
from eventcore.types import StreamId

__all__ = ["RetryAttempt", "RetryPolicy", "capped_backoff"]


def capped_backoff(attempt: int, base: float, multiplier: float, cap: float) -> float:
    """``min(cap, base * multiplier ** (attempt - 1))`` for any ``attempt`` >= 1, without
    overflowing: the one exponential backoff behind :class:`RetryPolicy`, the projection
    runner's ``ErrorPolicy`` and its store-failure backoff.

    >>> [capped_backoff(n, 0.1, 2.0, 1.0) for n in (1, 2, 3, 4, 5)]
    [0.1, 0.2, 0.4, 0.8, 1.0]
    >>> capped_backoff(10**18, 0.1, 2.0, 5.0)
    5.0
    """
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        raise ValidationError(f"a backoff attempt must be an int, got {attempt!r}")
    if base >= cap:
        return float(cap)
    exponent = max(attempt - 1, 0)
    try:
        grown = base * float(multiplier) ** exponent
    except OverflowError:  # thousands of attempts: the cap applies long before
        return float(cap)
    return float(min(cap, grown))


@dataclass(frozen=True, slots=True)
class RetryAttempt:
    """Passed to ``RetryPolicy.on_retry`` before each retry sleeps.

    ``attempt`` is the 1-based number of the attempt that just failed.
    """

    attempt: int
    delay: float
    streams: tuple[StreamId, ...]
    conflicts: tuple[Conflict, ...]


@dataclass(frozen=True)
class RetryPolicy:
    """How ``execute`` retries after a version conflict.

    The n-th retry waits ``min(max_delay, base_delay * multiplier**(n-1))``, varied by
    ``±jitter`` (a fraction) and never above ``max_delay``. The default allows 4 retries
    (5 attempts) starting at 10 ms, doubling, capped at 1 s, with ±20% jitter.
    """

    max_retries: int = 4
    base_delay: float = 0.010
    multiplier: float = 2.0
    max_delay: float = 1.0
    jitter: float = 0.2
    on_retry: Callable[[RetryAttempt], None] | None = field(default=None, compare=False)
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = []
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            problems.append(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        ok = set()
        for name in ("base_delay", "multiplier", "max_delay", "jitter"):
            value = getattr(self, name)
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                ok.add(name)
            else:
                problems.append(f"{name} must be a finite number, got {value!r}")
        if self.on_retry is not None and not callable(self.on_retry):
            problems.append(f"on_retry must be callable or None, got {self.on_retry!r}")
        if "base_delay" in ok and self.base_delay < 0:
            problems.append(f"base_delay must be >= 0 seconds, got {self.base_delay!r}")
        if "multiplier" in ok and self.multiplier < 1:
            problems.append(f"multiplier must be >= 1, got {self.multiplier!r}")
        if {"base_delay", "max_delay"} <= ok and self.max_delay < self.base_delay:
            problems.append(
                f"max_delay ({self.max_delay!r}) must be >= base_delay ({self.base_delay!r})"
            )
        if "jitter" in ok and not 0 <= self.jitter < 1:
            problems.append(f"jitter must be a fraction in [0, 1), got {self.jitter!r}")
        if problems:
            raise ConfigurationError("invalid RetryPolicy: " + "; ".join(problems))

    @classmethod
    def fixed(cls, delay: float, *, max_retries: int = 4, **kwargs: object) -> RetryPolicy:
        """Wait the same ``delay`` before every retry (no growth, no jitter)."""
        return cls(
            max_retries=max_retries,
            base_delay=delay,
            multiplier=1.0,
            max_delay=delay,
            jitter=0.0,
            **kwargs,  # type: ignore[arg-type]
        )

    @classmethod
    def none(cls) -> RetryPolicy:
        """Never retry: the first conflict raises ``ConcurrencyError``."""
        return cls(max_retries=0)

    def delay(self, retry: int) -> float | None:
        """Seconds to wait before the ``retry``-th retry (1-based), or None when exhausted."""
        if retry > self.max_retries:
            return None
        raw = capped_backoff(retry, self.base_delay, self.multiplier, self.max_delay)
        if self.jitter:
            rng = self.rng or random
            raw *= 1 + rng.uniform(-self.jitter, self.jitter)
        return min(raw, self.max_delay)
