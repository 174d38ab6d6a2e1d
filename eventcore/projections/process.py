"""Process managers: react to events by issuing commands, with exactly-once effects.

A :class:`ProcessManager` is a projector. The runner delivers it the events its
``selector`` picks; for each one, :meth:`~ProcessManager.react` returns the commands to
issue, and the manager executes them with ``metadata=caused_by(event)`` — the new events'
causation is the triggering event and their correlation is inherited, so
:func:`~eventcore.projections.correlation.causation_tree` shows what the event led to.

**The guarantee, precisely.** The runner delivers each event *at least once*: its
checkpoint is saved after a page of events, so a crash between a command's append and that
save delivers the event again. The manager turns that into **exactly-once effects** with a
*receipt*: command number *k* issued for event *E* runs as one atomic append that also
writes a :class:`CommandIssued` event to the receipt stream ``$receipts-<name>-<E's id>``,
expecting the version that stream had when the command read it. So:

- *at most once*: a second run of the same (event, step) reads the receipt in its fold and
  decides nothing; if two runs race, both expect the same receipt-stream version and the
  store's version check lets only one append commit — the other retries, reads the
  receipt, and stops. Neither a crash, a redelivery, a runner retry nor a second instance
  can make the command's events appear twice.
- *at least once*: the checkpoint moves past *E* only after ``apply`` returned, i.e. after
  every command for *E* committed (with its receipt) or was refused by a business rule.

Both hold as long as ``react`` is deterministic: the same event gives the same commands in
the same order (decide from the event, not from the clock or a query that may change).
A refused command (:class:`~eventcore.errors.BusinessRuleViolation`) writes nothing, not
even a receipt; :meth:`~ProcessManager.rejected` decides what happens (by default the
error goes to the projection's error policy). Without receipts (``receipts = False``)
delivery stays at least once, and the commands must be idempotent themselves — for
example a command whose state folds the trigger ids already handled.

>>> from dataclasses import dataclass
>>> from eventcore import Command, InMemoryEventStore, SeededIds, StreamId, TickingClock, stream
>>> @dataclass(frozen=True)
... class OrderPaid:
...     order: StreamId
>>> @dataclass(frozen=True)
... class OrderShipped:
...     order: StreamId
>>> class Ship(Command[bool]):
...     order: StreamId = stream()
...     def initial_state(self) -> bool:
...         return False
...     def apply(self, shipped: bool, event: object) -> bool:
...         return shipped or isinstance(event, OrderShipped)
...     def handle(self, shipped: bool) -> list[object]:
...         return [] if shipped else [OrderShipped(self.order)]
>>> class Shipping(ProcessManager):
...     name = "shipping"
...     def react(self, event):
...         if isinstance(event.event, OrderPaid):
...             yield Ship(order=event.event.order)
>>> store = InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=1))
>>> paid = store.append({StreamId("order-1"): 0}, [OrderPaid(StreamId("order-1"))])[0]
>>> shipping = Shipping(store)
>>> shipping.apply(paid)
>>> shipping.apply(paid)  # delivered again after a crash: the receipt stops it
>>> [e.event_type for e in store.read_all()]
['OrderPaid', 'OrderShipped', 'CommandIssued']
>>> shipping.issued, shipping.duplicates
(1, 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventcore.commands import Command, stream
from eventcore.errors import BusinessRuleViolation, ConfigurationError, DefinitionError
from eventcore.events import RecordedEvent, event
from eventcore.execution import execute
from eventcore.pipeline import ExecutionResult
from eventcore.projections.api import DEFAULT_ERROR_POLICY, ErrorPolicy, EventSelector
from eventcore.projections.correlation import caused_by
from eventcore.retry import RetryPolicy
from eventcore.store import EventStore
from eventcore.types import StreamId

__all__ = [
    "CommandIssued",
    "Issued",
    "ProcessManager",
    "execute_once",
    "receipt_stream",
]


@event(name="CommandIssued")
@dataclass(frozen=True)
class CommandIssued:
    """The receipt of one command a process manager issued for one triggering event.

    Written in the same atomic append as the command's own events; its stream
    (``receipt``) holds one receipt per step issued for the trigger.
    """

    receipt: StreamId
    process: str
    trigger: UUID
    step: int
    command: str


def receipt_stream(process: str, trigger: UUID) -> StreamId:
    """The stream holding the receipts of ``process`` for the event ``trigger``."""
    return StreamId(f"$receipts-{process}-{trigger}")


class _Once(Command[tuple[Any, frozenset[int]]]):
    """Runs ``inner`` unless the receipt stream already records ``step``; appends the
    receipt atomically with the inner command's events."""

    receipt: StreamId = stream()
    inner: Command[Any]
    process: str
    trigger: UUID
    step: int

    def streams(self) -> tuple[StreamId, ...]:
        return tuple(dict.fromkeys((self.receipt, *self.inner.streams())))

    def initial_state(self) -> tuple[Any, frozenset[int]]:
        return self.inner.initial_state(), frozenset()

    def apply(self, state: tuple[Any, frozenset[int]], event: Any) -> tuple[Any, frozenset[int]]:
        inner, done = state
        if isinstance(event, CommandIssued) and event.receipt == self.receipt:
            return inner, done | {event.step}
        return self.inner.apply(inner, event), done

    def discover_streams(self, state: tuple[Any, frozenset[int]]) -> Iterable[StreamId]:
        return self.inner.discover_streams(state[0])

    def handle(self, state: tuple[Any, frozenset[int]]) -> list[object]:
        inner, done = state
        if self.step in done:
            return []
        events = list(self.inner.handle(inner))
        name = type(self.inner).__name__
        return [*events, CommandIssued(self.receipt, self.process, self.trigger, self.step, name)]


@dataclass(frozen=True, slots=True)
class Issued:
    """What happened to one command issued for one event.

    ``result`` is None when the receipt showed the command had already run (``duplicate``).
    """

    trigger: RecordedEvent
    step: int
    command: Command[Any]
    result: ExecutionResult | None

    @property
    def duplicate(self) -> bool:
        return self.result is None


def execute_once(
    store: EventStore,
    command: Command[Any],
    *,
    trigger: RecordedEvent,
    process: str,
    step: int = 0,
    retry: RetryPolicy | None = None,
) -> Issued:
    """Execute ``command`` because of ``trigger``, at most once per (process, trigger, step).

    The command's events are stamped ``caused_by(trigger)`` and appended together with a
    :class:`CommandIssued` receipt; if the receipt is already there nothing is written and
    the result says ``duplicate``. Business-rule violations propagate (nothing written).
    """
    if not isinstance(command, Command):
        raise ConfigurationError(
            f"process {process!r} issued {command!r}, which is not a Command instance"
        )
    receipt = receipt_stream(process, trigger.event_id)
    once = _Once(
        receipt=receipt, inner=command, process=process, trigger=trigger.event_id, step=step
    )
    meta = caused_by(trigger, custom={"process": process, "step": step})
    result = execute(store, once, retry=retry or RetryPolicy(), metadata=meta)
    if not result.events:
        return Issued(trigger, step, command, None)
    return Issued(trigger, step, command, result)


class ProcessManager:
    """Reacts to events by issuing commands; a projector for :func:`run_projection`.

    Subclass it, set ``name`` (and usually ``selector``) and write :meth:`react`; create it
    with the store the commands run against::

        class Shipping(ProcessManager):
            name = "shipping"
            selector = EventSelector(event_types={PaymentReceived})

            def react(self, event):
                if event.event.amount >= 100:
                    yield ShipOrder(order=event.event.order)

        run_projection(Shipping(store), store, config)

    See the module docstring for the exactly-once guarantee.
    """

    name: str
    selector: EventSelector | None = None
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY
    receipts: bool = True
    """Write a receipt with every command (exactly-once effects); False: plain ``execute``
    (at-least-once; the commands must be idempotent themselves)."""

    def __init__(self, store: EventStore, *, retry: RetryPolicy | None = None) -> None:
        name = getattr(self, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError(
                f"{type(self).__name__} needs a name: set name = '...' on the class"
            )
        try:
            receipt_stream(name, UUID(int=0))
        except ValueError as exc:
            raise DefinitionError(
                f"{type(self).__name__}.name {name!r} cannot be part of a stream id: {exc}"
            ) from None
        self.store = store
        self._own_receipts = f"$receipts-{name}-"
        self._receipt_length = len(receipt_stream(name, UUID(int=0)))
        self.retry = retry or RetryPolicy()
        self.issued = 0
        """Commands that ran (wrote their events, or decided nothing) in this instance."""
        self.duplicates = 0
        """Commands skipped because their receipt showed they had already run."""
        self.rejections = 0
        """Commands refused by a business rule and passed to :meth:`rejected`."""
        if self.receipts:
            store.types.register(CommandIssued)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, issued={self.issued}, "
            f"duplicates={self.duplicates})"
        )

    def react(self, event: RecordedEvent) -> Iterable[Command[Any]]:
        """The commands to issue because of ``event`` (none: an empty iterable).

        Must be deterministic: the same event always gives the same commands in the same
        order, because a redelivered event is matched to its receipts by step number.
        """
        raise NotImplementedError(f"{type(self).__name__} must define react(event)")

    def rejected(
        self, event: RecordedEvent, command: Command[Any], error: BusinessRuleViolation
    ) -> None:
        """Called when a business rule refuses a command. By default re-raise, so the
        projection's error policy decides (retry, skip, dead-letter or stop); override it to
        record or ignore the refusal (return normally and the manager goes on)."""
        raise error

    def apply(self, event: RecordedEvent) -> None:
        """Issue the commands ``react`` returns for ``event``, in order. The manager's own
        receipts (:class:`CommandIssued` events in its ``$receipts-<name>-…`` streams) are
        bookkeeping, not facts to react to: they are passed over without calling ``react``
        (a manager without a selector reads them too)."""
        sid = event.stream_id
        if len(sid) == self._receipt_length and sid.startswith(self._own_receipts):
            return
        commands = self.react(event)
        if commands is None:
            raise DefinitionError(
                f"{type(self).__name__}.react() returned None; return a list of commands "
                "(an empty list when the event needs none) or yield them"
            )
        for step, command in enumerate(commands):
            try:
                if self.receipts:
                    done = execute_once(
                        self.store,
                        command,
                        trigger=event,
                        process=self.name,
                        step=step,
                        retry=self.retry,
                    )
                else:
                    meta = caused_by(event, custom={"process": self.name, "step": step})
                    result = execute(self.store, command, retry=self.retry, metadata=meta)
                    done = Issued(event, step, command, result)
            except BusinessRuleViolation as refused:
                self.rejections += 1
                self.rejected(event, command, refused)
                continue
            if done.duplicate:
                self.duplicates += 1
            else:
                self.issued += 1
