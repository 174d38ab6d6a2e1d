"""The hot paths' shortcuts give exactly what the plain code gives: the same values, the
same errors."""

from __future__ import annotations

import enum
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eventcore import (
    DeserializationError,
    InMemoryEventStore,
    Metadata,
    SerializationError,
    StreamId,
)
from eventcore.clock import uuid7, uuid7_many, uuid_from_int, uuid_from_text
from eventcore.codec import compile_codec
from eventcore.events import EventTypes, VersionedEvent, loads_json
from eventcore.stores._rows import FOLD_COLUMN_COUNT, _decode_slowly, decode_rows, decode_versioned
from eventcore.testing.contract import Deposited
from eventcore.testing.contract_rows import ENVELOPE_COLUMNS

# -- UUIDs and JSON -----------------------------------------------------------------------------

UUID_TEXT = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: "urn:uuid:" + str(u)),
    st.uuids().map(lambda u: " " + u.hex[1:] + "-"),
    st.text(alphabet="0123456789abcdefxX_+- {}", max_size=40),
    st.text(max_size=40),
)


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", fn(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@given(UUID_TEXT)
@example("\u0663" * 32)  # ARABIC-INDIC DIGIT THREE: int() reads other scripts' digits
@example("0x" + "a" * 30)  # int(..., 16) takes a prefix
@example("a" * 16 + "_" + "b" * 15)  # and single underscores
@example("urn:" + "a" * 28)  # 32 characters that UUID() shortens
@example("{" + "a" * 30 + "}")
def test_uuid_from_text_is_uuid_of_text(text: str) -> None:
    fast, slow = outcome(uuid_from_text, text), outcome(UUID, text)
    assert fast == slow
    if fast[0] == "value":
        assert repr(fast[1]) == repr(slow[1]) and hash(fast[1]) == hash(slow[1])
        assert fast[1].version == slow[1].version


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_uuid_from_int_is_uuid_of_int(value: int) -> None:
    made, reference = uuid_from_int(value), UUID(int=value)
    assert made == reference and str(made) == str(reference) and hash(made) == hash(reference)
    assert made.is_safe == reference.is_safe


JSON_TEXT = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3),
        max_leaves=8,
    ).flatmap(
        lambda v: st.sampled_from(
            [json.dumps(v), " " + json.dumps(v), json.dumps(v) + "\n", json.dumps(v) + " x"]
        )
    ),
    st.text(max_size=20),
    st.sampled_from(["\ufeff{}", "{}{}", "", "[1,", "NaN", '"\\ud800"']),
)


@given(JSON_TEXT)
def test_loads_json_is_json_loads(text: str) -> None:
    assert outcome(loads_json, text) == outcome(json.loads, text)


def test_loads_json_takes_bytes_like_json_loads() -> None:
    assert loads_json(b'{"a": 1}') == {"a": 1}


# -- ids in bulk --------------------------------------------------------------------------------


def test_uuid7_many_continues_the_single_id_sequence() -> None:
    ids = [uuid7(), *uuid7_many(500), uuid7(), *uuid7_many(1), *uuid7_many(0)]
    assert len(ids) == 503 == len(set(ids))
    assert ids == sorted(ids)
    assert {u.version for u in ids} == {7} and {u.variant for u in ids} == {uuid.RFC_4122}
    now_ms = time.time_ns() // 1_000_000
    assert all(abs((u.int >> 80) - now_ms) < 60_000 for u in ids)


def test_uuid7_many_borrows_the_next_millisecond_when_the_counter_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = (time.time_ns() // 1_000_000 + 10_000) * 1_000_000  # ahead of every earlier id
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    ids = uuid7_many(5000)
    ids += [uuid7() for _ in range(100)]
    assert ids == sorted(set(ids))
    millis = sorted({u.int >> 80 for u in ids})
    assert millis[0] == frozen // 1_000_000 and len(millis) >= 2


# -- rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tagged:
    account: StreamId
    tags: tuple[str, ...]
    note: str | None = None


EVENT_ID = "0190c2a4-0000-7000-8000-0000000000aa"
OWN_CORRELATION = f'{{"causation_id":null,"correlation_id":"{EVENT_ID}","custom":{{}}}}'


def row(**changes: Any) -> tuple[Any, ...]:
    base: dict[str, Any] = {
        "position": 7,
        "stream_id": "account-a",
        "stream_version": 3,
        "event_type": "Deposited",
        "schema_version": 1,
        "data": '{"account":"account-a","amount":5}',
        "event_id": EVENT_ID,
        "recorded_at": "2026-01-01T00:00:00+00:00",
        "metadata": Metadata(UUID(int=9)).to_json(),
    }
    base.update(changes)
    return tuple(base.values())


def pg(text_row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The same row as PostgreSQL's driver hands it over: a UUID and an aware datetime."""
    *head, event_id, recorded_at, meta = text_row
    if recorded_at is not None:  # a NULL stays NULL
        recorded_at = datetime.fromisoformat(recorded_at)
        if recorded_at.tzinfo is None:
            raise ValueError("a timestamptz always has a zone")
        recorded_at = recorded_at.astimezone(timezone(timedelta(hours=2)))
    return (*head, None if event_id is None else UUID(event_id), recorded_at, meta)


ROWS = [
    row(),
    row(metadata=f'{{"custom": {{}}, "causation_id": null, "correlation_id": "{UUID(int=3)}"}}'),
    row(metadata=Metadata(UUID(int=1), UUID(int=2), {"who": "me"}).to_json()),
    row(metadata='{"causation_id": null, "correlation_id": null, "custom": {}}'),
    row(metadata=OWN_CORRELATION),  # execute's default: the first event's id
    row(event_id=EVENT_ID.upper(), metadata=OWN_CORRELATION),  # same value, other text
    row(data=' {"account": "account-a", "amount": 5} '),
    row(data='{"account":"account-a","amount":5,"extra":1}'),
    row(data='{"account":"account-a","amount":5} junk'),
    row(data='{"account":"account-a","amount":true}'),
    row(data='{"account":"account-a"}'),
    row(data="[]"),
    row(event_type="Tagged", data='{"account":"account-a","tags":["x","y"]}'),
    row(event_type="Tagged", data='{"account":"account-a","tags":["x"],"note":7}'),
    row(event_type="Nobody"),
    row(schema_version=2),
    row(event_id="{0190C2A4-0000-7000-8000-0000000000AA}"),
    row(event_id="nope"),
    row(recorded_at="yesterday"),
    row(metadata="{bad"),
    row(metadata=f'{{"causation_id":null,"correlation_id":"{"z" * 36}","custom":{{}}}}'),
    # NULL or wrong-typed columns: each one a DeserializationError naming the column
    row(position=None),
    row(position=0),
    row(stream_id=None),
    row(stream_id=" account-a"),
    row(stream_id="account-*"),
    row(stream_id="a\x00"),
    row(stream_id=b"account-a"),
    row(stream_id=7),
    row(stream_version=None),
    row(stream_version=0),
    row(stream_version="3"),
    row(event_type=None),
    row(schema_version=None),
    row(schema_version="1"),
    row(schema_version=1.0),
    row(schema_version=0),
    row(data=None),
    row(data=b'{"account":"account-a","amount":5}'),
    row(data="[" * 5000 + "]" * 5000),
    row(event_id=None),
    row(recorded_at=None),
    row(recorded_at="2026-01-01T00:00:00"),
    row(metadata=None),
    row(metadata="[]"),
    row(metadata='{"custom": [], "correlation_id": null}'),
    row(metadata='{"custom": ' + "[" * 5000 + "]" * 5000 + "}"),
]

NAMED_COLUMN = {
    "position": [None, 0],
    "stream_id": [None, " account-a", "account-*", "a\x00", b"account-a", 7],
    "stream_version": [None, 0, "3"],
    "event_type": [None],
    "schema_version": [None, "1", 1.0, 0],
    "data": [None, b'{"account":"account-a","amount":5}', "[" * 5000 + "]" * 5000],
    "event_id": [None],
    "recorded_at": [None, "2026-01-01T00:00:00"],
    "metadata": [None, "[]", '{"custom": [], "correlation_id": null}'],
}


def _named_cases() -> list[tuple[str, tuple[Any, ...], bool]]:
    cases = []
    for column, values in NAMED_COLUMN.items():
        for value in values:
            stored = row(**{column: value})
            cases.append((column, stored, True))
            if column != "recorded_at" or value is None:  # a timestamptz has a zone
                cases.append((column, pg(stored), False))
    return cases


@pytest.mark.parametrize(("column", "stored", "text_envelope"), _named_cases())
def test_a_null_or_wrong_typed_column_is_named(
    column: str, stored: tuple[Any, ...], text_envelope: bool
) -> None:
    with pytest.raises(DeserializationError) as info:
        decode_rows(types(), [stored], text_envelope=text_envelope)
    text = str(info.value)
    assert f"column {column}" in text
    assert "at position" in text
    if column != "position":
        assert "at position 7" in text


def types() -> EventTypes:
    registry = EventTypes([Deposited, Tagged])
    registry.register_upcaster("Deposited", 0, lambda d: d)  # harmless, never used
    return registry


def _as_postgres(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows PostgreSQL could hold (its columns refuse a bad id or time)."""
    out = []
    for text_row in rows:
        try:
            out.append(pg(text_row))
        except ValueError:
            continue
    return out


CASES = [(r, True) for r in ROWS] + [(r, False) for r in _as_postgres(ROWS)]


@pytest.mark.parametrize(("stored", "text_envelope"), CASES, ids=range(len(CASES)))
def test_each_row_decodes_as_the_reference_decoder_does(
    stored: tuple[Any, ...], text_envelope: bool
) -> None:
    registry = types()
    fast = outcome(lambda: decode_rows(registry, [stored], text_envelope=text_envelope))
    slow = outcome(lambda: [_decode_slowly(registry, stored, text_envelope)])
    assert fast == slow
    if fast[0] == "value":
        rec = fast[1][0]
        assert repr(rec) == repr(slow[1][0])
        assert rec.recorded_at.tzinfo is UTC


PAGE_ROWS = [*ROWS, row(recorded_at=None), row(metadata=None), row(stream_id="account-b")]


def _first_failure_or_all(calls: list[Any]) -> tuple[str, Any]:
    values = []
    for call in calls:
        result = outcome(call)
        if result[0] != "value":
            return result
        values.append(result[1])
    return "value", values


@settings(max_examples=300)
@given(st.lists(st.sampled_from(range(len(PAGE_ROWS))), max_size=12), st.booleans())
def test_a_page_decodes_as_its_rows_do_alone(picks: list[int], text_envelope: bool) -> None:
    """Values carried from row to row (a run of one type, stream, time or metadata) never
    leak into a row that differs, also after a row that failed or took the slow path."""
    stored = [(i + 1, *PAGE_ROWS[k][1:]) for i, k in enumerate(picks)]
    if not text_envelope:
        stored = [pg(r) for r in stored if outcome(pg, r)[0] == "value"]
    registry = types()
    fast = outcome(lambda: decode_rows(registry, stored, text_envelope=text_envelope))
    slow = _first_failure_or_all(
        [lambda r=r: _decode_slowly(registry, r, text_envelope) for r in stored]
    )
    assert fast == slow
    if fast[0] == "value":
        assert [repr(r) for r in fast[1]] == [repr(r) for r in slow[1]]


def test_a_page_shares_equal_envelope_values_but_not_across_pages() -> None:
    registry = types()
    page = decode_rows(registry, [row(position=1), row(position=2)], text_envelope=True)
    assert page[0].metadata is page[1].metadata and page[0].stream_id is page[1].stream_id
    again = decode_rows(registry, [row(position=1)], text_envelope=True)
    assert again[0] == page[0] and again[0].metadata is not page[0].metadata


@pytest.mark.parametrize("stored", ROWS, ids=range(len(ROWS)))
def test_a_fold_row_decodes_as_the_full_row_does_but_for_the_envelope(
    stored: tuple[Any, ...],
) -> None:
    """``decode_versioned`` (what execute folds) gives the full decoder's event and version,
    and its error for a bad event column; the id, time and metadata columns it never reads."""
    registry = types()
    folded = outcome(lambda: decode_versioned(registry, [stored[:FOLD_COLUMN_COUNT]]))
    full = outcome(lambda: _decode_slowly(registry, stored, True))
    if full[0] == "value":
        assert folded == ("value", [VersionedEvent(full[1].stream_version, full[1].event)])
    elif any(f"column {name} " in full[1] for name in ENVELOPE_COLUMNS):
        assert folded[0] == "value"
    elif "column stream_id " in full[1]:
        pass  # a fold row's stream id came from the query's own parameter: never read
    else:
        assert folded == full


@settings(max_examples=200)
@given(st.lists(st.sampled_from(range(len(PAGE_ROWS))), max_size=12))
def test_a_page_of_fold_rows_decodes_as_its_rows_do_alone(picks: list[int]) -> None:
    stored = [(i + 1, *PAGE_ROWS[k][1:FOLD_COLUMN_COUNT]) for i, k in enumerate(picks)]
    registry = types()
    page = outcome(lambda: decode_versioned(registry, stored))
    alone = _first_failure_or_all([lambda r=r: decode_versioned(registry, [r]) for r in stored])
    if alone[0] == "value":
        alone = ("value", [item for one in alone[1] for item in one])
    assert page == alone


def test_a_correlation_id_equal_to_the_event_id_reuses_the_decoded_id() -> None:
    """Rows written by ``execute`` without metadata carry their first event's id as the
    correlation id: that text is decoded once."""
    (rec,) = decode_rows(types(), [row(metadata=OWN_CORRELATION)], text_envelope=True)
    assert rec.metadata.correlation_id is rec.event_id
    assert rec.event_id == UUID(EVENT_ID)
    (other,) = decode_rows(types(), [row()], text_envelope=True)
    assert other.metadata.correlation_id == UUID(int=9) != other.event_id


def test_a_bad_row_in_a_page_names_its_position() -> None:
    with pytest.raises(DeserializationError, match="at position 8"):
        decode_rows(types(), [row(), row(position=8, data="{")], text_envelope=True)


# -- the codec's exact-type shortcuts -----------------------------------------------------------


class Level(enum.IntEnum):
    LOW = 1


class Name(str):
    pass


@dataclass(frozen=True)
class Plain:
    account: StreamId
    name: str
    count: int
    flag: bool
    nothing: None


def test_subclass_values_still_go_through_the_converters() -> None:
    codec = compile_codec(Plain)
    data = codec.encode(Plain(StreamId("s"), Name("n"), Level.LOW, True, None))
    assert (
        json.dumps(data)
        == '{"account": "s", "name": "n", "count": 1, "flag": true, "nothing": null}'
    )
    assert codec.decode(json.loads(json.dumps(data))) == Plain(StreamId("s"), "n", 1, True, None)
    with pytest.raises(SerializationError, match="expected int, got bool"):
        codec.encode(Plain(StreamId("s"), "n", True, True, None))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="stream id 'a\\*'"):
        codec.encode(Plain("a*", "n", 1, True, None))  # type: ignore[arg-type]


def test_decoding_does_not_touch_the_given_dict() -> None:
    given_data = {"account": "s", "name": "n", "count": 1, "flag": False, "nothing": None}
    decoded = compile_codec(Plain).decode(given_data)
    assert type(decoded.account) is StreamId
    assert type(given_data["account"]) is str


# -- metadata -----------------------------------------------------------------------------------


def test_custom_metadata_cannot_change_after_it_was_built() -> None:
    given: dict[str, Any] = {"who": {"roles": ["clerk"]}}
    meta = Metadata(custom=given)
    given["bad"] = object()  # the caller's dict: the metadata holds a frozen copy
    given["who"]["roles"].append("admin")
    with pytest.raises(TypeError, match="read-only"):
        meta.custom["bad"] = object()  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        meta.custom["who"]["roles"].append("admin")
    store = InMemoryEventStore()
    store.append({StreamId("a"): 0}, [Deposited(StreamId("a"), 1)], metadata=meta)
    assert store.read_all()[0].metadata.custom == {"who": {"roles": ["clerk"]}}


def test_reads_share_the_frozen_metadata_instead_of_copying_it() -> None:
    """Every read returns the stored metadata object itself (it is frozen all the way down,
    so no reader can change it for another); only events holding mutable values are copied."""
    from eventcore.testing.contract_base import Opened, _opened

    a, b = StreamId("a"), StreamId("b")
    store = InMemoryEventStore(events=[Deposited, Opened])
    meta = Metadata(custom={"traceparent": "00-0af7-b7ad-01", "who": {"roles": ["clerk"]}})
    written = store.append({a: 0, b: 0}, [Deposited(a, 1), _opened(b)], metadata=meta)
    stored = written[0].metadata
    assert type(stored.custom).__name__ == "FrozenDict"
    reads = [
        *store.read_all(),
        *store.read_stream(a),
        *store.read_stream(b),
        *store.read_streams([a, b])[b],
        *store.reopen(events=[Deposited, Opened]).read_all(),  # another registry decodes
    ]
    for rec in reads:
        assert rec.metadata is stored  # the very object: no copy
        with pytest.raises(TypeError, match="read-only"):
            rec.metadata.custom["traceparent"] = "forged"  # type: ignore[index]
        with pytest.raises(TypeError, match="read-only"):
            rec.metadata.custom["who"]["roles"].append("admin")
    opened = [r for r in reads if r.stream_id == b]
    opened[0].event.tags.append("from a reader")  # events with lists are still each reader's
    assert next(store.read_stream(b)).event == _opened(b)
    assert store.read_all()[0].metadata.custom == {
        "traceparent": "00-0af7-b7ad-01",
        "who": {"roles": ["clerk"]},
    }
