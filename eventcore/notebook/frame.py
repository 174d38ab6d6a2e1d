"""The event log as a pandas DataFrame: one row per recorded event."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventcore.events import RecordedEvent
from eventcore.notebook._deps import require
from eventcore.notebook.log import EventSource, StreamFilter, TypeFilter, collect, short_id
from eventcore.types import StreamId

if TYPE_CHECKING:
    import pandas

__all__ = ["ENVELOPE_COLUMNS", "event_log", "flatten"]

ENVELOPE_COLUMNS = (
    "position",
    "stream",
    "version",
    "type",
    "id",
    "recorded_at",
    "correlation",
    "causation",
)
"""The columns every event log starts with; ``data.*`` (and ``meta.*``) columns follow."""


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Flatten an event (a dataclass), nested dataclasses and string-keyed dicts into dotted
    column names. Lists, tuples and other values are kept whole; stream ids become ``str``.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Address:
    ...     city: str
    >>> @dataclass(frozen=True)
    ... class Shipped:
    ...     order: StreamId
    ...     to: Address
    ...     skus: tuple[str, ...]
    >>> flatten(Shipped(StreamId("order-1"), Address("Oslo"), ("tea",)), "data")
    {'data.order': 'order-1', 'data.to.city': 'Oslo', 'data.skus': ('tea',)}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items: list[tuple[str, Any]] = [
            (f.name, getattr(value, f.name)) for f in dataclasses.fields(value)
        ]
    elif _model_fields(value):  # a Pydantic model or a msgspec Struct (eventcore.serializers)
        items = [(name, getattr(value, name)) for name in _model_fields(value)]
    elif isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
        items = list(value.items())
    else:
        return {prefix: str(value) if isinstance(value, StreamId) else value}
    flat: dict[str, Any] = {}
    for name, item in items:
        flat.update(flatten(item, f"{prefix}.{name}"))
    return flat


def _model_fields(value: Any) -> tuple[str, ...]:
    """The field names of a msgspec Struct or a Pydantic model instance, else ``()``."""
    kind = type(value)
    names = getattr(kind, "__struct_fields__", None)
    if names is None:
        model = getattr(kind, "model_fields", None)
        names = tuple(model) if isinstance(model, Mapping) else ()
    return tuple(names) if isinstance(names, tuple) else ()


def _row(event: RecordedEvent, short: bool) -> dict[str, Any]:
    def ident(value: Any) -> Any:
        if value is None:
            return None
        return short_id(value) if short else str(value)

    row: dict[str, Any] = {
        "position": event.position,
        "stream": str(event.stream_id),
        "version": event.stream_version,
        "type": event.event_type,
        "id": ident(event.event_id),
        "recorded_at": event.recorded_at,
        "correlation": ident(event.metadata.correlation_id),
        "causation": ident(event.metadata.causation_id),
    }
    row.update(flatten(event.event, "data"))
    if event.metadata.custom:
        row.update(flatten(dict(event.metadata.custom), "meta"))
    return row


def event_log(
    source: EventSource,
    stream: str | None = None,
    *,
    streams: StreamFilter = None,
    event_types: TypeFilter = None,
    short_ids: bool = True,
) -> pandas.DataFrame:
    """The events of ``source`` as a DataFrame, one row per event, in position order.

    ``source`` is a store (optionally one ``stream`` of it), an
    :class:`~eventcore.ExecutionResult`, a :class:`~eventcore.RecordedEvent` or a list of
    them; ``streams`` (a prefix, pattern, id or ids) and ``event_types`` (names or classes)
    filter it. Columns: ``position``, ``stream``, ``version``, ``type``, ``id``,
    ``recorded_at``, ``correlation``, ``causation``, then the event's fields as ``data.<name>``
    (nested dataclasses and dicts flattened with dots) and custom metadata as
    ``meta.<key>``. Ids are shortened to their last 8 hex digits unless ``short_ids=False``.
    """
    pd = require("pandas")
    events = collect(source, stream, streams=streams, event_types=event_types)
    rows = [_row(e, short_ids) for e in events]
    columns: dict[str, None] = dict.fromkeys(ENVELOPE_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(row))
    data: dict[str, Any] = {}
    for name in columns:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None]
        if (
            name not in ENVELOPE_COLUMNS
            and len(present) < len(values)
            and present
            and all(isinstance(v, int) and not isinstance(v, bool) for v in present)
        ):
            data[name] = pd.array(values, dtype="Int64")  # keep ints when some rows lack one
        elif name == "recorded_at":
            data[name] = pd.to_datetime(values, utc=True) if values else pd.to_datetime([])
        else:
            data[name] = pd.Series(values, dtype=object if not values else None)
    return pd.DataFrame(data, columns=list(columns))
