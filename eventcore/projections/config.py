"""How one projection run is configured: where its state lives and how it paces itself.

>>> from eventcore.projections import InMemoryCheckpointStore
>>> config = ProjectionConfig(InMemoryCheckpointStore(), page_size=100)
>>> config.backoff(3)  # seconds after three store failures in a row: 0.1, 0.2, 0.4, ...
0.4
>>> ProjectionConfig(InMemoryCheckpointStore(), page_size=0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
eventcore.errors.ConfigurationError: page_size must be an int >= 1, got 0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eventcore.clock import Clock, system_clock
from eventcore.errors import ConfigurationError
from eventcore.projections.checkpoints import CheckpointStore
from eventcore.projections.dead_letters import DeadLetterStore
from eventcore.projections.leadership import Leadership
from eventcore.retry import capped_backoff

__all__ = ["ProjectionConfig"]


@dataclass(frozen=True)
class ProjectionConfig:
    """Where a projection keeps its state and how it paces itself.

    - ``checkpoints``: where the position is saved (required).
    - ``leadership``: ensures one running instance per projection name (None: no check).
    - ``dead_letters``: needed by error policies that dead-letter.
    - ``page_size``: events read per round trip; also how many a crash may re-deliver to
      a non-transactional projector (the checkpoint is saved once per page).
    - ``poll_interval``: the longest continuous mode waits before looking for new events
      (wake-ups from ``wait_for_events`` usually come sooner; a stop request is noticed
      within 0.25 s at most).
    - ``max_read_failures`` / ``read_backoff``: a failing store (``StoreFailure``) is tried
      again after ``read_backoff[0]`` seconds, doubling up to ``read_backoff[1]``; after
      that many failures in a row the run raises ``ProjectionFailed``.
    - ``wait_for_leadership``: False raises ``LeadershipUnavailable`` when another
      instance leads; True waits for it (until stopped); a number waits that many seconds.
    - ``sleep`` and ``clock``: injectable for tests.
    """

    checkpoints: CheckpointStore
    leadership: Leadership | None = None
    dead_letters: DeadLetterStore | None = None
    page_size: int = 500
    poll_interval: float = 0.5
    max_read_failures: int = 5
    read_backoff: tuple[float, float] = (0.1, 5.0)
    wait_for_leadership: bool | float = False
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Clock = field(default=system_clock, repr=False)

    def __post_init__(self) -> None:
        for name in ("load", "save"):
            if not callable(getattr(self.checkpoints, name, None)):
                raise ConfigurationError(
                    f"checkpoints must be a CheckpointStore (load and save), got "
                    f"{type(self.checkpoints).__name__}"
                )
        if self.leadership is not None and not all(
            callable(getattr(self.leadership, n, None)) for n in ("acquire", "release")
        ):
            raise ConfigurationError(
                f"leadership must have acquire() and release(), got {self.leadership!r}"
            )
        if self.dead_letters is not None and not callable(
            getattr(self.dead_letters, "record", None)
        ):
            raise ConfigurationError(
                f"dead_letters must be a DeadLetterStore, got {self.dead_letters!r}"
            )
        if not _is_int(self.page_size) or self.page_size < 1:
            raise ConfigurationError(f"page_size must be an int >= 1, got {self.page_size!r}")
        if not _is_int(self.max_read_failures) or self.max_read_failures < 1:
            raise ConfigurationError(
                f"max_read_failures must be an int >= 1, got {self.max_read_failures!r}"
            )
        if not _is_seconds(self.poll_interval) or self.poll_interval <= 0:
            raise ConfigurationError(
                f"poll_interval must be seconds > 0, got {self.poll_interval!r}"
            )
        backoff = self.read_backoff
        if (
            not isinstance(backoff, tuple)
            or len(backoff) != 2
            or not all(_is_seconds(b) for b in backoff)
            or backoff[0] > backoff[1]
        ):
            raise ConfigurationError(
                f"read_backoff must be (first, max) seconds with first <= max, got {backoff!r}"
            )
        wait = self.wait_for_leadership
        if not isinstance(wait, bool) and not (_is_seconds(wait) and wait > 0):
            raise ConfigurationError(
                f"wait_for_leadership must be True, False or seconds > 0, got {wait!r}"
            )

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive store failures."""
        first, most = self.read_backoff
        return capped_backoff(failures, first, 2.0, most)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seconds(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )
