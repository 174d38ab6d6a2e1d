"""Composing projections: one view from several projectors, and projections that feed others.

:func:`compose` runs several projectors as **one** projection — one pass over the log, one
checkpoint, one leadership — handing each event to every sub-projector whose selector wants
it. Build a view from small, separately testable pieces::

    view = compose("order-history", customers, orders, payments)
    run_projection(view, store, config)

An :class:`Emitter` lets one projection consume another's *output*: it writes derived events
to output streams (each write stamped ``caused_by`` the source event and carrying a receipt,
so a redelivered source event never emits twice), and a downstream projector subscribes to
those streams with an ordinary selector such as ``StreamPattern("daily-sales-*")``. Both
stages are plain projectors run by :func:`~eventcore.projections.run_projection`; nothing
of the runner is re-implemented.

>>> from eventcore import RecordedEvent, StreamPrefix
>>> from eventcore.projections.api import EventSelector, projector
>>> seen: list[str] = []
>>> @projector("a", selector=EventSelector(streams=StreamPrefix("order-")))
... def orders(event: RecordedEvent) -> None:
...     seen.append(f"orders saw {event.position}")
>>> @projector("b", selector=EventSelector(streams=StreamPrefix("payment-")))
... def payments(event: RecordedEvent) -> None:
...     seen.append(f"payments saw {event.position}")
>>> view = compose("shop", orders, payments)
>>> view.selector.stream_selectors
(StreamPrefix('order-'), StreamPrefix('payment-'))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal
from uuid import UUID

from eventcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    DefinitionError,
    VersionConflict,
)
from eventcore.events import RecordedEvent, stream_of
from eventcore.projections.api import (
    DEFAULT_ERROR_POLICY,
    ErrorPolicy,
    EventSelector,
    check_projection_name,
    is_transactional,
)
from eventcore.projections.correlation import caused_by
from eventcore.projections.process import CommandIssued, receipt_stream
from eventcore.retry import RetryAttempt, RetryPolicy
from eventcore.store import EventStore, StreamSelector

__all__ = [
    "Composite",
    "Emitter",
    "TransactionalComposite",
    "compose",
    "emitter",
    "union_selector",
]

_MAX_PARTIAL = 1000


def _selector_of(p: object) -> EventSelector | None:
    selector = getattr(p, "selector", None)
    if selector is not None and not isinstance(selector, EventSelector):
        raise ConfigurationError(
            f"{getattr(p, 'name', p)!r} has selector {selector!r}; use an EventSelector"
        )
    return selector


def union_selector(selectors: Iterable[EventSelector | None]) -> EventSelector | None:
    """One selector that lets through every event any of ``selectors`` wants (None: all).

    Streams and types are united separately, so the result may select a little more than
    the exact union (stream A with type B); sub-projectors filter again with ``matches``.
    """
    streams: list[StreamSelector] = []
    types: set[str | type] = set()
    any_stream = any_type = False
    items = list(selectors)
    if not items:
        return None
    for s in items:
        if s is None:
            return None
        for sel in s.stream_selectors:
            if sel is None:
                any_stream = True
            else:
                streams.append(sel)
        names = s.event_type_names()
        if names is None:
            any_type = True
        else:
            types.update(names)
    if any_stream and any_type:
        return None
    return EventSelector(
        streams=None if any_stream else tuple(streams),
        event_types=None if any_type else frozenset(types),
    )


class _Parts:
    """Shared by both composites: the sub-projectors with their selectors."""

    def __init__(
        self, name: str, projectors: tuple[Any, ...], error_policy: ErrorPolicy | None
    ) -> None:
        self.name = check_projection_name(name)
        if not projectors:
            raise ConfigurationError(f"compose({name!r}) needs at least one projector")
        for p in projectors:
            if not callable(getattr(p, "apply", None)):
                raise ConfigurationError(f"compose({name!r}): {p!r} has no apply(event) method")
        self.projectors = projectors
        self._selectors = tuple(_selector_of(p) for p in projectors)
        self.selector = union_selector(self._selectors)
        self.error_policy = error_policy or DEFAULT_ERROR_POLICY

    def __repr__(self) -> str:
        names = ", ".join(repr(getattr(p, "name", type(p).__name__)) for p in self.projectors)
        return f"{type(self).__name__}({self.name!r}, [{names}])"

    def _wanted(self, event: RecordedEvent) -> Iterable[tuple[int, Any]]:
        for i, (p, s) in enumerate(zip(self.projectors, self._selectors, strict=True)):
            if s is None or s.matches(event):
                yield i, p


class Composite(_Parts):
    """Several projectors run as one projection (see :func:`compose`).

    When a sub-projector fails, the ones that already applied the event are not applied
    again when the runner retries it: only the failed ones are. (A dead-lettered event
    replayed later in the same process is treated the same way; across processes,
    sub-projectors should be idempotent, as at-least-once delivery asks anyway.)
    """

    def __init__(
        self, name: str, projectors: tuple[Any, ...], error_policy: ErrorPolicy | None = None
    ) -> None:
        super().__init__(name, projectors, error_policy)
        self._partial: dict[UUID, set[int]] = {}

    def apply(self, event: RecordedEvent) -> None:
        """Hand ``event`` to every sub-projector that selects it, in the order given."""
        done = self._partial.get(event.event_id, set())
        for i, p in self._wanted(event):
            if i in done:
                continue
            try:
                p.apply(event)
            except BaseException:
                self._remember(event.event_id, done)
                raise
            done.add(i)
        self._partial.pop(event.event_id, None)

    def _remember(self, event_id: UUID, done: set[int]) -> None:
        self._partial[event_id] = done
        while len(self._partial) > _MAX_PARTIAL:  # events given up on and never replayed
            del self._partial[next(iter(self._partial))]


class TransactionalComposite(_Parts):
    """Several transactional projectors run as one, writing through one transaction.

    A failed attempt is rolled back (the runner redoes its page with a savepoint per
    event), so it undoes every sub-projector's writes and a retry applies them all again.
    """

    transactional: Literal[True] = True

    def apply(self, event: RecordedEvent, tx: Any) -> None:
        """Hand ``event`` and the open transaction to every sub-projector that selects it."""
        for _, p in self._wanted(event):
            p.apply(event, tx)


def compose(
    name: str, *projectors: Any, error_policy: ErrorPolicy | None = None
) -> Composite | TransactionalComposite:
    """One projection named ``name`` made of ``projectors``, each keeping its own selector.

    The result reads the union of their selectors (filtered in the database) and hands each
    event to the sub-projectors that want it, in the order given; it has one checkpoint and
    one ``error_policy`` (default: the runner's default). Transactional projectors compose
    into a transactional projection (all of them, or none: they need the same transaction).
    """
    kinds = {is_transactional(p) for p in projectors}
    if kinds == {True}:
        return TransactionalComposite(name, projectors, error_policy)
    if kinds == {True, False}:
        raise ConfigurationError(
            f"compose({name!r}) mixes transactional and plain projectors; their writes could "
            "not commit together with one checkpoint. Compose each kind separately"
        )
    return Composite(name, projectors, error_policy)


# -- projections that feed projections -----------------------------------------------------


class Emitter:
    """A projector that writes derived events, for other projections to consume.

    Subclass it and write :meth:`derive` (or use :func:`emitter` with a function): it
    returns the events to write because of one source event — each belongs to the stream
    its ``StreamId`` field names, as always. They are appended atomically, stamped
    ``caused_by(source)``, together with a :class:`~eventcore.projections.process.CommandIssued`
    receipt, so a source event delivered twice (after a crash) emits once.

    The append expects each output stream at the version just read and, if another writer
    got in between, retries after the ``retry`` policy's backoff (default: ``RetryPolicy``
    with ``max_conflicts - 1`` retries, 20 attempts); only the receipt's own stream decides
    "already emitted". Its own receipts are not handed to :meth:`derive`.
    """

    name: str
    selector: EventSelector | None = None
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY

    def __init__(
        self,
        store: EventStore,
        *,
        max_conflicts: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        check_projection_name(getattr(self, "name", None))
        try:
            receipt_stream(self.name, UUID(int=0))
        except ValueError as exc:
            raise DefinitionError(
                f"emitter name {self.name!r} cannot be part of a stream id: {exc}"
            ) from None
        if max_conflicts is not None and retry is not None:
            raise ConfigurationError(
                "give max_conflicts or retry, not both: retry.max_retries + 1 is the number "
                "of attempts"
            )
        if max_conflicts is not None and (
            not isinstance(max_conflicts, int)
            or isinstance(max_conflicts, bool)
            or max_conflicts < 1
        ):
            raise ConfigurationError(f"max_conflicts must be an int >= 1, got {max_conflicts!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")
        self.retry = retry or RetryPolicy(max_retries=(max_conflicts or 20) - 1)
        """How conflicts are retried: the policy's capped, jittered backoff between attempts."""
        self.store = store
        self.max_conflicts = self.retry.max_retries + 1
        self.emitted = 0
        """Events written by this instance (receipts not counted)."""
        self.duplicates = 0
        """Source events skipped because their receipt showed they had been emitted."""
        self._own_receipts = f"$receipts-{self.name}-"
        self._receipt_length = len(receipt_stream(self.name, UUID(int=0)))
        store.types.register(CommandIssued)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, emitted={self.emitted})"

    def derive(self, event: RecordedEvent) -> Iterable[object]:
        """The events to write because of ``event`` (deterministic; none: empty)."""
        raise NotImplementedError(f"{type(self).__name__} must define derive(event)")

    def apply(self, event: RecordedEvent) -> None:
        """Append what :meth:`derive` returns, once per source event. The emitter's own
        receipts (in its ``$receipts-<name>-…`` streams) are bookkeeping: they are passed over
        without calling ``derive``, as a process manager passes over its own."""
        sid = event.stream_id
        if len(sid) == self._receipt_length and sid.startswith(self._own_receipts):
            return
        derived = tuple(self.derive(event))
        if not derived:
            return
        receipt = receipt_stream(self.name, event.event_id)
        outputs = list(dict.fromkeys(stream_of(e) for e in derived))
        if receipt in outputs:
            raise DefinitionError(f"{self.name!r} cannot emit into its own receipt stream")
        marker = CommandIssued(receipt, self.name, event.event_id, 0, "emit")
        meta = caused_by(event, custom={"process": self.name})
        attempt = 0
        while True:
            attempt += 1
            if self.store.stream_version(receipt) > 0:
                self.duplicates += 1
                return
            expected = {receipt: 0, **{sid: self.store.stream_version(sid) for sid in outputs}}
            try:
                self.store.append(expected, [*derived, marker], metadata=meta)
            except VersionConflict as conflict:
                delay = self.retry.delay(attempt)
                if delay is None:
                    raise ConcurrencyError(conflict.conflicts, attempt) from conflict
                if self.retry.on_retry is not None:
                    self.retry.on_retry(
                        RetryAttempt(attempt, delay, tuple(expected), conflict.conflicts)
                    )
                time.sleep(delay)
                continue
            self.emitted += len(derived)
            return


class _FunctionEmitter(Emitter):
    def __init__(
        self,
        name: str,
        function: Callable[[RecordedEvent], Iterable[object]],
        store: EventStore,
        selector: EventSelector | None,
        error_policy: ErrorPolicy,
        retry: RetryPolicy | None,
    ) -> None:
        self.name = name
        self.selector = selector
        self.error_policy = error_policy
        self._function = function
        super().__init__(store, retry=retry)

    def derive(self, event: RecordedEvent) -> Iterable[object]:
        return self._function(event)


def emitter(
    name: str,
    *,
    store: EventStore,
    selector: EventSelector | None = None,
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY,
    retry: RetryPolicy | None = None,
) -> Callable[[Callable[[RecordedEvent], Iterable[object]]], Emitter]:
    """Turn a function ``(event) -> derived events`` into an :class:`Emitter` on ``store``
    (``retry``: how write conflicts are retried, see :class:`Emitter`)."""

    def wrap(function: Callable[[RecordedEvent], Iterable[object]]) -> Emitter:
        return _FunctionEmitter(name, function, store, selector, error_policy, retry)

    return wrap
