"""Helpers for at-least-once delivery: recognise an event delivered again.

A plain projector's checkpoint is saved after its effects, once per page, so after a crash
(or a failed checkpoint save, or a leadership hand-over) the events since the last save
are delivered again. Three ways to make that harmless, best first:

1. A :class:`~eventcore.projections.TransactionalProjector` (SQLite, PostgreSQL): effects
   and checkpoint commit together, nothing is delivered twice.
2. Idempotent effects: upserts keyed by the entity, or rows that remember the last
   ``event.position`` applied and ignore older ones; for external systems, pass
   :func:`idempotency_key` (stable across redeliveries) as their idempotency key.
3. :class:`IdempotentProjector`: skip positions already recorded in a
   :class:`SeenPositions` store. It is exactly as durable as that store, and the record is
   written *after* the effect, so it only closes the gap when the store is saved together
   with the read model (for example both in one document) — the in-memory store covers
   redeliveries within one process (a checkpoint save that failed, a hand-over between
   runners sharing the object).

>>> from eventcore.projections import projector
>>> applied = []
>>> guarded = IdempotentProjector(projector("p")(lambda e: applied.append(e.position)))
>>> guarded.name
'p'
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

from eventcore.errors import ConfigurationError
from eventcore.events import RecordedEvent
from eventcore.projections.api import check_projection_name, is_transactional

__all__ = ["IdempotentProjector", "InMemorySeenPositions", "SeenPositions", "idempotency_key"]


def idempotency_key(name: str, event: RecordedEvent) -> str:
    """A key that is the same every time projection ``name`` receives ``event``: give it to
    external systems that de-duplicate (payment APIs, message brokers, e-mail services)."""
    return f"{name}:{event.event_id}"


@runtime_checkable
class SeenPositions(Protocol):
    """Remembers which positions a projection has applied."""

    def contains(self, name: str, position: int) -> bool: ...

    def add(self, name: str, position: int) -> None: ...


class InMemorySeenPositions:
    """Seen positions in process memory (thread-safe).

    ``keep`` bounds the memory: only the most recent ``keep`` positions per projection are
    remembered (events arrive in position order, so older ones are not delivered again
    except by a dead-letter retry, which should then apply them).
    """

    def __init__(self, *, keep: int = 100_000) -> None:
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
            raise ConfigurationError(f"keep must be an int >= 1, got {keep!r}")
        self._keep = keep
        self._seen: dict[str, dict[int, None]] = {}
        self._lock = threading.Lock()

    def contains(self, name: str, position: int) -> bool:
        with self._lock:
            return position in self._seen.get(name, ())

    def add(self, name: str, position: int) -> None:
        with self._lock:
            seen = self._seen.setdefault(name, {})
            seen[position] = None
            while len(seen) > self._keep:
                del seen[next(iter(seen))]


class IdempotentProjector:
    """Wraps a plain projector so that a position it has applied is not applied again
    (see the module docstring for how far that guarantee reaches)."""

    def __init__(self, inner: Any, seen: SeenPositions | None = None) -> None:
        if is_transactional(inner):
            raise ConfigurationError(
                "a transactional projector is applied exactly once already; do not wrap it"
            )
        self.name = check_projection_name(getattr(inner, "name", None))
        if not callable(getattr(inner, "apply", None)):
            raise ConfigurationError(f"projector {self.name!r} has no apply() method")
        self.inner = inner
        self.seen: SeenPositions = seen if seen is not None else InMemorySeenPositions()
        self.selector = getattr(inner, "selector", None)
        self.error_policy = getattr(inner, "error_policy", None)

    def apply(self, event: RecordedEvent) -> None:
        if self.seen.contains(self.name, event.position):
            return
        self.inner.apply(event)
        self.seen.add(self.name, event.position)

    def __repr__(self) -> str:
        return f"IdempotentProjector({self.inner!r})"
