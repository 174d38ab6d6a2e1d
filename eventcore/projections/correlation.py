"""Correlation and causation: which events belong to one business flow, and what caused what.

Every write carries :class:`~eventcore.events.Metadata`: a ``correlation_id`` shared by all
events of one business flow (a write without one gets its first event's id) and a
``causation_id``, the id of the event that caused this write. :func:`caused_by` builds the
metadata for a command issued *because of* an event — the causation is that event, the
correlation is inherited — and a :class:`~eventcore.projections.process.ProcessManager`
stamps it on every command it issues. Three queries read the result back:

- :func:`events_of_correlation` — every event of one flow, in position order;
- :func:`causation_chain` — from the flow's first event down to one event;
- :func:`causation_tree` — everything an event caused, directly or not.

>>> from dataclasses import dataclass
>>> from eventcore import InMemoryEventStore, SeededIds, StreamId, TickingClock
>>> @dataclass(frozen=True)
... class Noted:
...     topic: StreamId
...     text: str
>>> store = InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=3))
>>> order_1, payment_1 = StreamId("order-1"), StreamId("payment-1")
>>> order = store.append({order_1: 0}, [Noted(order_1, "placed")])[0]
>>> paid = store.append({payment_1: 0}, [Noted(payment_1, "paid")], metadata=caused_by(order))[0]
>>> shipped = store.append({order_1: 1}, [Noted(order_1, "shipped")], metadata=caused_by(paid))[0]
>>> [e.event.text for e in events_of_correlation(store, order.event_id)]
['placed', 'paid', 'shipped']
>>> [e.event.text for e in causation_chain(store, shipped.event_id)]
['placed', 'paid', 'shipped']
>>> print(causation_tree(store, order.event_id).render(lambda e: e.event.text))
placed
└── paid
    └── shipped
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventcore.errors import EventCoreError, ValidationError
from eventcore.events import Metadata, RecordedEvent
from eventcore.store import EventLookups, EventStore, check_uuid

__all__ = [
    "CausationTree",
    "EventNotFound",
    "causation_chain",
    "causation_tree",
    "caused_by",
    "events_of_correlation",
]

_SCAN_PAGE = 1000


class EventNotFound(EventCoreError, LookupError):
    """No event has the id asked for."""

    def __init__(self, event_id: UUID) -> None:
        self.event_id = event_id
        super().__init__(f"no event with id {event_id} in this store")


def caused_by(event: RecordedEvent, *, custom: Mapping[str, Any] | None = None) -> Metadata:
    """Metadata for a write caused by ``event``: ``causation_id`` is the event's id and the
    ``correlation_id`` is inherited from it, so the new events join the same flow.

    Pass it to ``execute(store, command, metadata=caused_by(event))``; ``custom`` becomes the
    free-form part of the metadata (not inherited). Anything but a ``RecordedEvent`` is a
    :class:`~eventcore.errors.ValidationError`; custom data that is not a JSON object a
    :class:`~eventcore.errors.SerializationError`.
    """
    if not isinstance(event, RecordedEvent):
        raise ValidationError(
            f"caused_by() takes a RecordedEvent (an event as read from a store), got "
            f"{type(event).__name__}; pass the record, for example the event a projection "
            "or process manager was given, not the domain event inside it"
        )
    correlation = event.metadata.correlation_id or event.event_id
    return Metadata(correlation, event.event_id, {} if custom is None else custom)


def events_of_correlation(store: EventStore, correlation_id: UUID) -> list[RecordedEvent]:
    """Every event of one business flow, in position order, whichever streams it touched.

    Uses the store's indexed ``read_correlation`` when it has one, else scans ``read_all``.
    """
    key = check_uuid("correlation_id", correlation_id)
    if isinstance(store, EventLookups):
        return store.read_correlation(key)
    return [e for e in _scan(store) if e.metadata.correlation_id == key]


def causation_chain(store: EventStore, event_id: UUID) -> list[RecordedEvent]:
    """The events that led to ``event_id``, from the root cause down to the event itself.

    Each step follows ``metadata.causation_id`` back to the event that caused the write. The
    chain stops at an event without a causation id, or whose causation id names no stored
    event (an outside message). Raises :class:`EventNotFound` for an unknown ``event_id``.
    """
    key = check_uuid("event_id", event_id)
    event = _read_event(store, key)
    if event is None:
        raise EventNotFound(key)
    known = {e.event_id: e for e in _flow(store, event)}
    chain = [event]
    seen = {event.event_id}
    cause = event.metadata.causation_id
    while cause is not None and cause not in seen:
        found = known.get(cause) or _read_event(store, cause)
        if found is None:
            break
        chain.append(found)
        seen.add(cause)
        cause = found.metadata.causation_id
    chain.reverse()
    return chain


@dataclass(frozen=True, slots=True)
class CausationTree:
    """An event and the trees of the writes it caused (children in position order)."""

    event: RecordedEvent
    children: tuple[CausationTree, ...] = ()

    def walk(self) -> Iterator[RecordedEvent]:
        """Every event of the tree, depth first, parents before their children."""
        yield self.event
        for child in self.children:
            yield from child.walk()

    def __len__(self) -> int:
        return 1 + sum(len(child) for child in self.children)

    @property
    def depth(self) -> int:
        """1 for a lone event; one more per level of causes below it."""
        return 1 + max((child.depth for child in self.children), default=0)

    def render(self, label: Callable[[RecordedEvent], str] | None = None) -> str:
        """The tree as indented text, one event per line (``label`` names each event; by
        default its position, stream and type)."""
        name = label or _default_label
        lines = [name(self.event)]
        self._render_children(name, "", lines)
        return "\n".join(lines)

    def _render_children(
        self, name: Callable[[RecordedEvent], str], indent: str, lines: list[str]
    ) -> None:
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            lines.append(f"{indent}{'└── ' if last else '├── '}{name(child.event)}")
            child._render_children(name, indent + ("    " if last else "│   "), lines)


def causation_tree(store: EventStore, root_event_id: UUID) -> CausationTree:
    """Everything ``root_event_id`` caused: the events written with it as their causation,
    then what those caused, and so on.

    The tree is searched within the root's correlation (where :func:`caused_by` puts every
    caused write), so it costs one indexed read. Raises :class:`EventNotFound` for an unknown
    id.
    """
    key = check_uuid("root_event_id", root_event_id)
    root = _read_event(store, key)
    if root is None:
        raise EventNotFound(key)
    caused: dict[UUID, list[RecordedEvent]] = {}
    for e in _flow(store, root):
        if e.metadata.causation_id is not None and e.event_id != e.metadata.causation_id:
            caused.setdefault(e.metadata.causation_id, []).append(e)
    return _build(root, caused, {root.event_id})


def _build(
    event: RecordedEvent, caused: dict[UUID, list[RecordedEvent]], seen: set[UUID]
) -> CausationTree:
    children = []
    for child in caused.get(event.event_id, ()):
        if child.event_id not in seen:  # a corrupt cycle must not recurse forever
            seen.add(child.event_id)
            children.append(_build(child, caused, seen))
    return CausationTree(event, tuple(children))


def _default_label(event: RecordedEvent) -> str:
    return f"{event.position} {event.stream_id} {event.event_type}"


def _flow(store: EventStore, event: RecordedEvent) -> list[RecordedEvent]:
    correlation = event.metadata.correlation_id
    if correlation is None:  # pragma: no cover - every store stamps one
        return [event]
    return events_of_correlation(store, correlation)


def _read_event(store: EventStore, event_id: UUID) -> RecordedEvent | None:
    if isinstance(store, EventLookups):
        return store.read_event(event_id)
    return next((e for e in _scan(store) if e.event_id == event_id), None)


def _scan(store: EventStore) -> Iterator[RecordedEvent]:
    after = 0
    while True:
        page = store.read_all(after=after, limit=_SCAN_PAGE)
        yield from page
        if len(page) < _SCAN_PAGE:
            return
        after = page[-1].position
