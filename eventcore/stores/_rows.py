"""Stored rows to :class:`RecordedEvent`: the hot path of every read of the SQL stores.

A row is ``(position, stream_id, stream_version, event_type, schema_version, data, event_id,
recorded_at, metadata)``. Each row takes the fast path — the type's codec looked up once per
page, stream ids, times and metadata decoded once per run of equal values, no error
text built — and any row the fast path cannot take (an unknown type, an older schema version
that needs upcasting, corrupt data) is decoded again by :func:`_decode_slowly`, the reference
implementation, which upcasts or raises the precise :class:`DeserializationError` naming
the position and the column. The fast path accepts nothing the reference would refuse: it
checks the same column types (exact ``int``, ``str``, ``UUID``, aware ``datetime``; no
NULL anywhere), validates each stream id as :class:`StreamId` does, and calls the same
parsers.
"""

from __future__ import annotations

import dataclasses
import json
import json.scanner
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from eventcore.clock import uuid_from_text
from eventcore.codec import ClassCodec
from eventcore.errors import DeserializationError
from eventcore.events import (
    EventInfo,
    EventTypes,
    Metadata,
    RecordedEvent,
    VersionedEvent,
    loads_json,
    trusted_metadata,
)
from eventcore.frozen import EMPTY
from eventcore.serializers import EventCodec
from eventcore.tombstones import DELETION
from eventcore.types import StreamId, stored_stream_id, trusted_stream_id

__all__ = [
    "FOLD_COLUMN_COUNT",
    "decode_envelope",
    "decode_rows",
    "decode_versioned",
    "deletion_at",
    "versioned_streams",
]


_PARSE: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed names the parameter's type oddly
)
"""JSON text to ``(value, end)`` from index 0: what ``JSONDecoder.raw_decode`` calls (the C
scanner), without ``json.loads``'s whitespace handling (a third of its cost) or
``raw_decode``'s Python frame. It raises ``StopIteration`` where ``raw_decode`` raises
``JSONDecodeError``; the caller checks that the value ends the text."""


_PLAIN_METADATA = (
    ('{"causation_id":null,"correlation_id":"', '","custom":{}}'),  # Metadata.to_json
    ('{"custom": {}, "causation_id": null, "correlation_id": "', '"}'),  # PostgreSQL jsonb
)
"""The stored text of the metadata ``execute`` stamps by default (a correlation id, nothing
else), as written and as PostgreSQL's ``jsonb`` gives it back."""
_PLAIN_PARTS = tuple(
    (head, tail, len(head), len(head) + 36 + len(tail)) for head, tail in _PLAIN_METADATA
)


def _record_builder() -> Callable[..., RecordedEvent]:
    """``RecordedEvent(position, ...)`` without its generated ``__init__``: each slot set
    through its descriptor, which skips the name lookups of ``object.__setattr__`` (half the
    cost of the call). Checked against the real constructor once; if this Python builds the
    class differently, the class itself is used."""
    names = [f.name for f in dataclasses.fields(RecordedEvent)]
    if len(names) != 8:  # pragma: no cover - a RecordedEvent grown another field
        return RecordedEvent
    s0, s1, s2, s3, s4, s5, s6, s7 = (getattr(RecordedEvent, n).__set__ for n in names)
    new = object.__new__

    def build(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any, g: Any, h: Any) -> RecordedEvent:
        rec: RecordedEvent = new(RecordedEvent)
        s0(rec, a)
        s1(rec, b)
        s2(rec, c)
        s3(rec, d)
        s4(rec, e)
        s5(rec, f)
        s6(rec, g)
        s7(rec, h)
        return rec

    probe: tuple[Any, ...] = tuple(range(len(names)))
    try:
        same = build(*probe) == RecordedEvent(*probe)
    except Exception:  # pragma: no cover - a RecordedEvent without these slots
        same = False
    return build if same else RecordedEvent


_record = _record_builder()


_NOTHING: Any = object()
"""Equal to no stored value (a column may hold NULL)."""


class _Slow(Exception):
    """This row needs the reference decoder (an upcast, or an error to explain)."""


def decode_rows(
    types: EventTypes, rows: Iterable[Sequence[Any]], *, text_envelope: bool
) -> list[RecordedEvent]:
    """Decode one page of rows. ``text_envelope``: event ids and times are stored as text
    (SQLite); otherwise they arrive as ``UUID`` and aware ``datetime`` (PostgreSQL)."""
    by_name = types.by_name
    parse = _PARSE
    record = _record
    parse_time = datetime.fromisoformat if text_envelope else _utc
    # Rows of one write sit together and share their stream, metadata and often their time;
    # each is decoded once per run of equal values (a comparison, no hashing). Codecs and
    # stream ids are also kept per page, for logs where writes interleave.
    codecs: dict[str, _Codec] = {}
    streams: dict[str, StreamId] = {}
    last_type: Any = _NOTHING
    last_sid: Any = _NOTHING
    last_time: Any = _NOTHING
    last_meta: Any = _NOTHING
    want_schema, cls_name = 0, ""
    decode: Callable[[Any, str], Any] = _never
    stream: Any = None
    recorded: Any = None
    meta_obj: Any = None
    out: list[RecordedEvent] = []
    append = out.append
    for row in rows:
        position, sid, version, type_name, schema, data, event_id, recorded_at, meta = row
        try:
            if (
                type(position) is not int
                or position < 1
                or type(version) is not int
                or version < 1
                or type(schema) is not int
            ):
                raise _Slow
            if type_name != last_type:
                want_schema, decode, cls_name = _codec(codecs, by_name, type_name)
                last_type = type_name
            if schema != want_schema:
                raise _Slow
            payload, end = parse(data, 0)
            if end != len(data):
                raise _Slow  # text after the value: let json.loads say what is wrong
            event = decode(payload, cls_name)
            if sid != last_sid:
                stream = streams.get(sid)
                if stream is None:
                    stream = streams[sid] = _stream_id(sid)
                last_sid = sid
            if recorded_at != last_time:
                recorded = parse_time(recorded_at)
                if recorded.tzinfo is None:
                    raise _Slow
                last_time = recorded_at
            envelope_id = uuid_from_text(event_id) if text_envelope else _uuid(event_id)
            if meta != last_meta:
                meta_obj = _metadata(meta, event_id, envelope_id)
                last_meta = meta
            append(
                record(position, stream, version, type_name, event, envelope_id, recorded, meta_obj)
            )
        except Exception:
            append(_decode_slowly(types, row, text_envelope))
    return out


_Codec = tuple[int, Callable[[Any, str], Any], str]
"""A type's schema version, its fast decoder and its class name, as a page decodes it."""


def _codec(codecs: dict[str, _Codec], by_name: Mapping[str, EventInfo], type_name: str) -> _Codec:
    """The fast decoding of ``type_name``, kept in ``codecs`` for the rest of the page (an
    unknown name raises ``KeyError``: the row goes to the reference decoder)."""
    codec = codecs.get(type_name)
    if codec is None:
        info = by_name[type_name]
        codec = codecs[type_name] = (info.version, _fast_decoder(info.codec), info.cls.__name__)
    return codec


def _fast_decoder(codec: EventCodec) -> Callable[[Any, str], Any]:
    """The codec's decoder taking ``(data, where)``: the JSON codec's own inner function
    (no error text built), any other codec's ``decode``."""
    if type(codec) is ClassCodec:
        return codec.unchecked_decode
    decode = codec.decode
    return lambda data, where: decode(data)


def _never(data: Any, where: str) -> Any:  # pragma: no cover - replaced before the first row
    raise _Slow


def _metadata(text: Any, event_id: Any, envelope_id: UUID) -> Metadata:
    """``Metadata.from_json(text)``, without parsing JSON for the commonest text: only a
    correlation id (36 hex digits and dashes need no JSON unescaping). ``execute`` takes the
    first event's id as the correlation id when none is given, so the row's own event id
    (stored as ``event_id``, already decoded as ``envelope_id``) is reused when the text is
    the same."""
    if type(text) is str:
        size = len(text)
        for head, tail, start, total in _PLAIN_PARTS:
            if size == total and text.startswith(head) and text.endswith(tail):
                digits = text[start : start + 36]
                correlation = envelope_id if digits == event_id else uuid_from_text(digits)
                return trusted_metadata(correlation, None, EMPTY)
    return Metadata.from_json(text)


def _stream_id(sid: Any) -> StreamId:
    """A stored stream id, checked as :class:`StreamId` checks it (once per page)."""
    stream = stored_stream_id(sid)
    if stream is None:
        raise _Slow
    return stream


def _uuid(value: Any) -> UUID:
    if type(value) is not UUID:
        raise _Slow
    return value


def _utc(value: Any) -> datetime:
    """A ``timestamptz`` read by the driver (aware), in UTC."""
    if type(value) is not datetime or value.tzinfo is None:
        raise _Slow
    return value.astimezone(UTC)


def decode_envelope(types: EventTypes, row: Sequence[Any], text_envelope: bool) -> RecordedEvent:
    """One row through the reference decoder: every column checked, an error naming the
    position and the column (``verify`` uses it with a registry that accepts any type)."""
    return _decode_slowly(types, row, text_envelope)


def _decode_slowly(types: EventTypes, row: Sequence[Any], text_envelope: bool) -> RecordedEvent:
    """One row, every column checked in turn; an error names the row and the column."""
    position, sid, version, type_name, schema, data, event_id, recorded_at, meta = row
    where = _where(position, sid, version)

    def corrupt(column: str, problem: str) -> DeserializationError:
        return _corrupt(where, column, problem)

    holds = _holds
    if type(position) is not int or position < 1:
        raise corrupt("position", holds(position, "an int >= 1"))
    if type(sid) is not str:
        raise corrupt("stream_id", holds(sid, "a stream id (text)"))
    try:
        checked = StreamId(sid)
    except ValueError as exc:
        raise corrupt("stream_id", f"holds an invalid stream id: {exc}") from None
    if checked != sid:
        raise corrupt("stream_id", f"holds {_shown(sid)}, which is not trimmed")
    _check_event_columns(where, version, type_name, schema, data)
    envelope_id: UUID
    if text_envelope:
        if type(event_id) is not str:
            raise corrupt("event_id", holds(event_id, "a UUID (text)"))
        try:
            envelope_id = UUID(event_id)
        except ValueError as exc:
            raise corrupt("event_id", f"holds {_shown(event_id)}, not a UUID: {exc}") from None
        if type(recorded_at) is not str:
            raise corrupt("recorded_at", holds(recorded_at, "an ISO 8601 time (text)"))
        try:
            recorded = datetime.fromisoformat(recorded_at)
        except ValueError as exc:
            raise corrupt(
                "recorded_at", f"holds {_shown(recorded_at)}, not a time: {exc}"
            ) from None
    else:
        if type(event_id) is not UUID:
            raise corrupt("event_id", holds(event_id, "a UUID"))
        envelope_id = event_id
        if type(recorded_at) is not datetime:
            raise corrupt("recorded_at", holds(recorded_at, "a timestamp with time zone"))
        recorded = recorded_at
    if recorded.tzinfo is None or recorded.utcoffset() is None:
        raise corrupt("recorded_at", f"holds the naive time {recorded_at!r}; expected a zone")
    if not text_envelope:
        recorded = recorded.astimezone(UTC)
    if type(meta) is not str:
        raise corrupt("metadata", holds(meta, "JSON text"))
    try:
        meta_obj = Metadata.from_json(meta)
    except DeserializationError as exc:
        raise corrupt("metadata", f"cannot be read: {exc}") from None
    event = _decode_data(types, where, type_name, schema, data)
    return RecordedEvent(
        position, trusted_stream_id(sid), version, type_name, event, envelope_id, recorded, meta_obj
    )


def _check_event_columns(where: str, version: Any, type_name: Any, schema: Any, data: Any) -> None:
    """The columns of the event itself, after the position (and the stream id), in order."""
    if type(version) is not int or version < 1:
        raise _corrupt(where, "stream_version", _holds(version, "an int >= 1"))
    if type(type_name) is not str:
        raise _corrupt(where, "event_type", _holds(type_name, "an event type name (text)"))
    if type(schema) is not int or schema < 1:
        raise _corrupt(where, "schema_version", _holds(schema, "an int >= 1"))
    if type(data) is not str:
        raise _corrupt(where, "data", _holds(data, "JSON text"))


def _decode_data(types: EventTypes, where: str, type_name: str, schema: int, data: str) -> Any:
    """The event from its checked columns: JSON, then the registry (upcasting on the way)."""
    try:
        payload = loads_json(data)
    except ValueError as exc:
        raise _corrupt(where, "data", f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise _corrupt(where, "data", "nests too deeply for Python's recursion limit") from None
    return types.decode(type_name, schema, payload, where)


def _where(position: Any, sid: Any, version: Any) -> str:
    return f" at position {_shown(position)} (stream {_shown(sid)}, version {_shown(version)})"


def _corrupt(where: str, column: str, problem: str) -> DeserializationError:
    return DeserializationError(f"corrupt event row{where}: column {column} {problem}")


def _holds(value: Any, expected: str) -> str:
    found = "NULL" if value is None else f"{type(value).__name__} {_shown(value)}"
    return f"holds {found}; expected {expected}"


# -- a command's fold: the event and its version, no envelope ---------------------------------

FOLD_COLUMN_COUNT: Final = 6
"""A fold row holds the first six columns of a stored row: ``(position, stream_id,
stream_version, event_type, schema_version, data)``."""


def _versioned_builder() -> Callable[[Any, Any], VersionedEvent]:
    """``VersionedEvent(version, event)`` through its slots' setters (as ``_record``)."""
    set_version, set_event = (
        getattr(VersionedEvent, f.name).__set__ for f in dataclasses.fields(VersionedEvent)
    )
    new = object.__new__

    def build(version: Any, event: Any) -> VersionedEvent:
        item: VersionedEvent = new(VersionedEvent)
        set_version(item, version)
        set_event(item, event)
        return item

    return build if build(1, 2) == VersionedEvent(1, 2) else VersionedEvent


_versioned = _versioned_builder()


def decode_versioned(types: EventTypes, rows: Iterable[Sequence[Any]]) -> list[VersionedEvent]:
    """Decode fold rows (:data:`FOLD_COLUMN_COUNT` columns) into the events and
    their versions, for ``execute``. The columns used are checked as :func:`decode_rows`
    checks them, and a row the fast path cannot take (an upcast, corrupt data) goes through
    the reference decoder, which names the position and the column; the envelope columns
    (id, time, metadata) are neither read nor checked."""
    by_name = types.by_name
    parse = _PARSE
    build = _versioned
    codecs: dict[str, _Codec] = {}
    last_type: Any = _NOTHING
    want_schema, cls_name = 0, ""
    decode: Callable[[Any, str], Any] = _never
    out: list[VersionedEvent] = []
    append = out.append
    for row in rows:
        position, _, version, type_name, schema, data = row
        try:
            if (
                type(position) is not int
                or position < 1
                or type(version) is not int
                or version < 1
                or type(schema) is not int
            ):
                raise _Slow
            if type_name != last_type:
                want_schema, decode, cls_name = _codec(codecs, by_name, type_name)
                last_type = type_name
            if schema != want_schema:
                raise _Slow
            payload, end = parse(data, 0)
            if end != len(data):
                raise _Slow
            append(build(version, decode(payload, cls_name)))
        except Exception:
            append(_versioned_slowly(types, row))
    return out


def versioned_streams(
    types: EventTypes, ids: Sequence[StreamId], rows: Sequence[Sequence[Any]]
) -> tuple[dict[StreamId, list[VersionedEvent]], list[int]]:
    """The fold rows of several whole streams (as ``read_streams`` selects them), decoded
    and grouped by stream (an empty list for a stream without events); and the positions of
    the streams' last events that are deletions, which the caller reads whole to raise
    ``StreamDeleted`` as ``read_streams`` does."""
    found: dict[StreamId, list[VersionedEvent]] = {sid: [] for sid in ids}
    last: dict[str, Sequence[Any]] = {}
    for row, item in zip(rows, decode_versioned(types, rows), strict=True):
        found[row[1]].append(item)
        last[row[1]] = row
    return found, [row[0] for row in last.values() if row[3] == DELETION]


def deletion_at(rows: Sequence[Sequence[Any]]) -> int | None:
    """The position of the last fold row if it is a stream's deletion (a read to the end of
    the stream), else None."""
    return rows[-1][0] if rows and rows[-1][3] == DELETION else None


def _versioned_slowly(types: EventTypes, row: Sequence[Any]) -> VersionedEvent:
    """One fold row, each column it uses checked in turn (as :func:`_decode_slowly`)."""
    position, sid, version, type_name, schema, data = row
    where = _where(position, sid, version)
    if type(position) is not int or position < 1:
        raise _corrupt(where, "position", _holds(position, "an int >= 1"))
    _check_event_columns(where, version, type_name, schema, data)
    return VersionedEvent(version, _decode_data(types, where, type_name, schema, data))


def _shown(value: object) -> str:
    """``repr(value)`` for an error message, cut to about 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"
