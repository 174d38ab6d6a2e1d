"""Stored rows to :class:`RecordedEvent`: the hot path of every read of the SQL stores.

A row is ``(position, stream_id, stream_version, event_type, schema_version, data, event_id,
recorded_at, metadata)``. Each row takes the fast path — the type's codec looked up once per
page, stream ids, times and metadata decoded once per distinct value in the page, no error
text built — and any row the fast path cannot take (an unknown type, an older schema version
that needs upcasting, corrupt data) is decoded again by :func:`_decode_slowly`, the reference
implementation, which upcasts or raises the precise :class:`DeserializationError`. The fast
path accepts nothing the reference would refuse: it calls the same parsers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventcore.clock import uuid_from_text
from eventcore.errors import DeserializationError
from eventcore.events import EventTypes, Metadata, RecordedEvent
from eventcore.types import StreamId

__all__ = ["decode_rows"]


_PARSE = json.JSONDecoder().raw_decode
"""JSON text to value without ``json.loads``'s whitespace handling (a third of its cost);
the caller checks that the value ends the text."""


_PLAIN_METADATA = (
    ('{"causation_id":null,"correlation_id":"', '","custom":{}}'),  # Metadata.to_json
    ('{"custom": {}, "causation_id": null, "correlation_id": "', '"}'),  # PostgreSQL jsonb
)
"""The stored text of the metadata ``execute`` stamps by default (a correlation id, nothing
else), as written and as PostgreSQL's ``jsonb`` gives it back."""


class _Slow(Exception):
    """This row needs the reference decoder (an upcast, or an error to explain)."""


def decode_rows(
    types: EventTypes, rows: Iterable[Sequence[Any]], *, text_envelope: bool
) -> list[RecordedEvent]:
    """Decode one page of rows. ``text_envelope``: event ids and times are stored as text
    (SQLite); otherwise they arrive as ``UUID`` and aware ``datetime`` (PostgreSQL)."""
    by_name = types._by_name
    parse = _PARSE
    trusted = StreamId._trusted
    record = RecordedEvent
    codecs: dict[str, tuple[int, Callable[[Any, str], Any], str]] = {}
    streams: dict[str, StreamId] = {}
    times: dict[Any, datetime] = {}
    metas: dict[Any, Metadata] = {}
    out: list[RecordedEvent] = []
    append = out.append
    for row in rows:
        position, sid, version, type_name, schema, data, event_id, recorded_at, meta = row
        try:
            codec = codecs.get(type_name)
            if codec is None:
                info = by_name[type_name]
                codec = codecs[type_name] = (info.version, info.codec._decode, info.cls.__name__)
            if schema != codec[0]:
                raise _Slow
            payload, end = parse(data)
            if end != len(data):
                raise _Slow  # text after the value: let json.loads say what is wrong
            event = codec[1](payload, codec[2])
            stream = streams.get(sid)
            if stream is None:
                stream = streams[sid] = trusted(sid)
            recorded = times.get(recorded_at)
            if recorded is None:
                recorded = times[recorded_at] = _parse_time(recorded_at, text_envelope)
            meta_obj = metas.get(meta)
            if meta_obj is None:
                meta_obj = metas[meta] = _metadata(meta)
            append(
                record(
                    position,
                    stream,
                    version,
                    type_name,
                    event,
                    uuid_from_text(event_id) if text_envelope else event_id,
                    recorded,
                    meta_obj,
                )
            )
        except Exception:
            append(_decode_slowly(types, row, text_envelope))
    return out


def _metadata(text: Any) -> Metadata:
    """``Metadata.from_json(text)``, without parsing JSON for the commonest text: only a
    correlation id (36 hex digits and dashes need no JSON unescaping)."""
    if type(text) is str:
        for head, tail in _PLAIN_METADATA:
            if (
                len(text) == len(head) + 36 + len(tail)
                and text.startswith(head)
                and text.endswith(tail)
            ):
                start = len(head)
                return Metadata._trusted(uuid_from_text(text[start : start + 36]), None, {})
    return Metadata.from_json(text)


def _parse_time(value: Any, text: bool) -> datetime:
    if text:
        return datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise _Slow
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def _decode_slowly(types: EventTypes, row: Sequence[Any], text_envelope: bool) -> RecordedEvent:
    """One row, every field checked in turn, errors naming the row."""
    position, sid, version, type_name, schema, data, event_id, recorded_at, meta = row
    where = f" at position {position} (stream {sid!r}, version {version})"
    envelope_id: UUID
    if text_envelope:
        try:
            meta_obj = Metadata.from_json(meta)
        except DeserializationError as exc:
            raise DeserializationError(f"corrupt event row{where}: {exc}") from None
        try:
            envelope_id = UUID(event_id)
            recorded = datetime.fromisoformat(recorded_at)
        except (TypeError, ValueError) as exc:
            raise DeserializationError(f"corrupt event row{where}: {exc}") from None
    else:
        meta_obj = Metadata.from_json(meta)
        if recorded_at.tzinfo is None:  # pragma: no cover - timestamptz always has a zone
            raise DeserializationError(f"corrupt event row{where}: naive recorded_at")
        envelope_id, recorded = event_id, recorded_at.astimezone(UTC)
    return RecordedEvent(
        position,
        StreamId._trusted(sid),
        version,
        type_name,
        types.decode(type_name, schema, data, where),
        envelope_id,
        recorded,
        meta_obj,
    )
