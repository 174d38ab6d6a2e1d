"""Event classes: type names, streams, the per-store registry, upcasting and metadata."""

import copy
import json
import pickle
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from eventcore import (
    DefinitionError,
    DeserializationError,
    EventTypes,
    InMemoryEventStore,
    Metadata,
    RecordedEvent,
    SerializationError,
    SqliteEventStore,
    StreamId,
    event,
    event_info,
    stream_of,
)
from eventcore.codec import MAX_JSON_DEPTH
from eventcore.events import UpcasterNotImplemented
from eventcore.frozen import FrozenDict, FrozenList
from eventcore.testing import scenario

# -- type names and streams -------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    account: StreamId
    owner: str


def test_type_name_is_the_class_name_and_the_stream_its_streamid_field() -> None:
    info = event_info(Opened)
    assert (info.type_name, info.stream_field, info.version, info.cls) == (
        "Opened",
        "account",
        1,
        Opened,
    )
    assert stream_of(Opened(StreamId("a-1"), "Ann")) == StreamId("a-1")


def test_event_decorator_sets_name_stream_and_version() -> None:
    @event(name="transfer-recorded", stream="target", version=3)
    @dataclass(frozen=True)
    class TransferRecorded:
        source: StreamId
        target: StreamId
        amount: int

    info = event_info(TransferRecorded)
    assert (info.type_name, info.stream_field, info.version) == ("transfer-recorded", "target", 3)
    assert stream_of(TransferRecorded(StreamId("s"), StreamId("t"), 1)) == "t"


def test_bare_event_decorator_checks_the_class_at_once() -> None:
    @event
    @dataclass(frozen=True)
    class Plain:
        stream: StreamId

    assert event_info(Plain).type_name == "Plain"


def test_dunder_attributes_work_without_the_decorator() -> None:
    @dataclass(frozen=True)
    class Renamed:
        __event_type__ = "renamed.v2"
        __event_stream__ = "b"
        __event_version__ = 2
        a: StreamId
        b: StreamId

    info = event_info(Renamed)
    assert (info.type_name, info.stream_field, info.version) == ("renamed.v2", "b", 2)


def test_a_subclass_does_not_inherit_the_type_name() -> None:
    @dataclass(frozen=True)
    class Base:
        __event_type__ = "base"
        s: StreamId

    @dataclass(frozen=True)
    class Child(Base):
        pass

    assert event_info(Child).type_name == "Child"


def test_type_names_are_trimmed() -> None:
    @event(name="  spaced  ")
    @dataclass(frozen=True)
    class Spaced:
        s: StreamId

    assert event_info(Spaced).type_name == "spaced"


def test_a_stream_field_holding_a_plain_str_is_validated() -> None:
    assert type(stream_of(Opened("a-1", "Ann"))) is StreamId  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match=r"Opened.account is not a valid stream id"):
        stream_of(Opened("", "Ann"))  # type: ignore[arg-type]


def _define(*, decorator: Any = None, frozen: bool = True, **fields: Any) -> type:
    cls = type("Bad", (), {"__annotations__": fields})
    cls = dataclass(frozen=frozen)(cls)
    return decorator(cls) if decorator is not None else event(cls)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: _define(amount=int),
            "Bad has no StreamId field, so EventCore cannot tell which stream it belongs to; "
            "add one (for example 'account: StreamId')",
        ),
        (
            lambda: _define(a=StreamId, b=StreamId),
            "Bad has several StreamId fields ['a', 'b']; say which one is its stream with "
            "@event(stream='a') or __event_stream__ = 'a'",
        ),
        (
            lambda: _define(decorator=event(stream="c"), a=StreamId, b=StreamId),
            "Bad names 'c' as its stream field, but its StreamId fields are ['a', 'b']",
        ),
        (
            lambda: _define(decorator=event(stream="n"), a=StreamId, n=int),
            "Bad names 'n' as its stream field, but its StreamId fields are ['a']",
        ),
        (
            lambda: _define(frozen=False, a=StreamId),
            "Bad is not frozen; events are facts and must be immutable",
        ),
        (
            lambda: event(type("Loose", (), {"__annotations__": {"a": StreamId}})),
            "Loose is not a dataclass; declare events as @dataclass(frozen=True)",
        ),
        (lambda: event_info(Opened(StreamId("a"), "x")), "is not a class"),  # type: ignore[arg-type]
        (
            lambda: _define(decorator=event(name=""), a=StreamId),
            "Bad.__event_type__ must be a non-empty str of at most 200 characters, got ''",
        ),
        (
            lambda: _define(decorator=event(name="x" * 201), a=StreamId),
            "must be a non-empty str of at most 200 characters",
        ),
        (
            lambda: _define(decorator=event(version=0), a=StreamId),
            "Bad.__event_version__ must be an int >= 1, got 0",
        ),
        (
            lambda: _define(decorator=event(version=True), a=StreamId),
            "Bad.__event_version__ must be an int >= 1, got True",
        ),
    ],
)
def test_malformed_event_classes_fail_when_declared(make: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)) as info:
        make()
    assert isinstance(info.value, TypeError)


def test_appending_a_malformed_event_is_a_serialization_error_and_writes_nothing() -> None:
    @dataclass
    class Mutable:
        s: StreamId

    store = InMemoryEventStore()
    with pytest.raises(SerializationError, match=r"cannot store .* Mutable is not frozen"):
        store.append({StreamId("a"): 0}, [Mutable(StreamId("a"))])
    assert store.head() == 0


# -- the registry -------------------------------------------------------------------------


def test_registry_maps_names_to_classes_and_is_per_store() -> None:
    types = EventTypes([Opened])
    assert types.class_for("Opened") is Opened
    assert types.register(Opened) is event_info(Opened)  # registering twice is harmless
    assert types.names_for(["x", Opened]) == frozenset({"x", "Opened"})
    with pytest.raises(DeserializationError, match="unknown event type 'Nope'"):
        types.class_for("Nope")
    assert EventTypes() is not types
    with pytest.raises(DeserializationError, match="this store knows: none"):
        EventTypes().class_for("Opened")


def test_two_classes_with_one_type_name_clash_in_one_registry() -> None:
    @dataclass(frozen=True)
    class Opened:  # same name as the module-level class
        account: StreamId

    types = EventTypes([globals()["Opened"]])
    with pytest.raises(DefinitionError, match="event type name 'Opened' is used by both") as info:
        types.register(Opened)
    assert "give one of them another name with @event(name=...)" in str(info.value)
    assert EventTypes([Opened]).class_for("Opened") is Opened  # other registries are independent


def test_a_clash_at_append_is_a_serialization_error_and_writes_nothing() -> None:
    @dataclass(frozen=True)
    class Opened:
        account: StreamId

    store = scenario().given(globals()["Opened"](StreamId("a"), "Ann")).store
    with pytest.raises(SerializationError, match="is used by both"):
        store.append({StreamId("b"): 0}, [Opened(StreamId("b"))])
    assert store.head() == 1


def test_classes_auto_register_on_append_and_unknown_names_fail_on_read(tmp_path: Any) -> None:
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as writer:
        writer.append({StreamId("a"): 0}, [Opened(StreamId("a"), "Ann")])
        assert writer.types.class_for("Opened") is Opened
    with SqliteEventStore(path) as reader, pytest.raises(DeserializationError) as info:
        list(reader.read_stream(StreamId("a")))
    assert "unknown event type 'Opened' at position 1" in str(info.value)
    assert "SqliteEventStore(path, events=[Opened, ...])" in str(info.value)
    with SqliteEventStore(path, events=[Opened]) as reader:
        assert [e.event for e in reader.read_stream(StreamId("a"))] == [
            Opened(StreamId("a"), "Ann")
        ]


# -- upcasting ----------------------------------------------------------------------------------


@event(name="renamed", version=1)
@dataclass(frozen=True)
class RenamedV1:
    account: StreamId
    name: str


@event(name="renamed", version=3)
@dataclass(frozen=True)
class RenamedV3:
    account: StreamId
    first: str
    last: str
    title: str = ""


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data.pop("name").partition(" ")
    return {**data, "first": first, "last": last}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "title": "Dr"}


def test_upcasters_chain_from_the_stored_version_to_the_current_one(tmp_path: Any) -> None:
    path = tmp_path / "old.db"
    with SqliteEventStore(path, events=[RenamedV1]) as old:
        old.append({StreamId("a"): 0}, [RenamedV1(StreamId("a"), "Ada Lovelace")])
    with SqliteEventStore(path, events=[RenamedV3]) as new:
        with pytest.raises(DeserializationError) as info:
            list(new.read_stream(StreamId("a")))
        assert "stored with schema version 1 but the class is version 3" in str(info.value)
        assert "register_upcaster('renamed', 1, fn)" in str(info.value)
        new.types.register_upcaster("renamed", 1, _v1_to_v2)
        with pytest.raises(DeserializationError, match="register_upcaster\\('renamed', 2, fn\\)"):
            list(new.read_stream(StreamId("a")))
        new.types.register_upcaster("renamed", 2, _v2_to_v3)
        (rec,) = new.read_stream(StreamId("a"))
    assert rec.event == RenamedV3(StreamId("a"), "Ada", "Lovelace", "Dr")


def test_data_newer_than_the_class_is_refused() -> None:
    types = EventTypes([RenamedV1])
    with pytest.raises(DeserializationError, match="schema version 3, newer than the class's"):
        types.decode("renamed", 3, '{"account": "a", "first": "x", "last": "y"}')


# -- metadata -----------------------------------------------------------------------------------


def test_metadata_round_trips_through_json() -> None:
    meta = Metadata(UUID(int=1), UUID(int=2), {"user": "ann", "n": [1, 2.5, None]})
    assert Metadata.from_json(meta.to_json()) == meta
    assert Metadata.from_json(meta.to_json().encode()) == meta
    assert Metadata.from_json({"custom": {"a": 1}}) == Metadata(custom={"a": 1})
    assert Metadata().to_json() == '{"causation_id":null,"correlation_id":null,"custom":{}}'


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"correlation_id": "abc"},
            "Metadata.correlation_id must be a UUID or None, got str 'abc'; put other "
            "identifiers in Metadata.custom",
        ),
        ({"causation_id": 5}, "Metadata.causation_id must be a UUID or None, got int 5"),
        ({"custom": [("a", 1)]}, "Metadata.custom must be a dict, got list"),
        ({"custom": {"when": object}}, "Metadata.custom.when: type"),
        ({"custom": {"x": float("inf")}}, "Metadata.custom.x: inf is not a finite number"),
        ({"custom": {1: "x"}}, "Metadata.custom: JSON object keys must be str, got 1"),
        ({"custom": {"s": "\ud800"}}, "Metadata.custom is not valid Unicode text"),
    ],
)
def test_metadata_is_validated_when_built(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SerializationError, match=re.escape(message)):
        Metadata(**kwargs)


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '{"correlation_id": "nope"}',
        "[]",
        '{"custom": 5}',
        '{"custom": []}',
        '{"correlation_id": 5}',
        '{"correlation_id": ""}',
        '{"custom": {"a": ' + "[" * 5000 + "]" * 5000 + "}}",
        "null",
    ],
)
def test_corrupt_stored_metadata_is_a_deserialization_error(text: str) -> None:
    with pytest.raises(DeserializationError, match=r"stored metadata .* is corrupt"):
        Metadata.from_json(text)


def test_a_write_without_correlation_id_is_correlated_by_its_first_event() -> None:
    store = InMemoryEventStore()
    written = store.append(
        {StreamId("a"): 0, StreamId("b"): 0},
        [Opened(StreamId("a"), "A"), Opened(StreamId("b"), "B")],
        metadata=Metadata(causation_id=UUID(int=9), custom={"k": 1}),
    )
    first = written[0].event_id
    assert [r.metadata for r in written] == [Metadata(first, UUID(int=9), {"k": 1})] * 2
    given = Metadata(correlation_id=UUID(int=7))
    (again,) = store.append({StreamId("a"): 1}, [Opened(StreamId("a"), "A")], metadata=given)
    assert again.metadata == given


@dataclass(frozen=True)
class WithDefaultFactory:
    s: StreamId
    tags: list[str] = field(default_factory=list)


def test_events_with_mutable_defaults_still_round_trip() -> None:
    store = InMemoryEventStore()
    store.append({StreamId("a"): 0}, [WithDefaultFactory(StreamId("a"), ["x"])])
    assert [r.event for r in store.read_all()] == [WithDefaultFactory(StreamId("a"), ["x"])]


# -- metadata is immutable all the way down, and hashable ---------------------------------------


def test_metadata_custom_is_frozen_and_hashable() -> None:
    given: dict[str, Any] = {"who": {"roles": ["clerk"]}, "tags": ("a", "b")}
    meta = Metadata(UUID(int=1), None, given)
    given["who"]["roles"].append("admin")
    assert meta.custom == {"who": {"roles": ["clerk"]}, "tags": ["a", "b"]}
    assert type(meta.custom) is FrozenDict and type(meta.custom["tags"]) is FrozenList
    for change in (
        lambda: meta.custom.update(x=1),
        lambda: meta.custom.pop("who"),
        lambda: meta.custom.setdefault("x", 1),
        lambda: meta.custom.clear(),
        lambda: meta.custom["who"].__setitem__("roles", []),
        lambda: meta.custom["who"]["roles"].append("x"),
        lambda: meta.custom["who"]["roles"].sort(),
        lambda: meta.custom["tags"].__iadd__(["c"]),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    again = Metadata.from_json(meta.to_json())
    assert again == meta and hash(again) == hash(meta) and len({meta, again}) == 1
    assert meta.to_json() == json.dumps(
        {
            "causation_id": None,
            "correlation_id": str(UUID(int=1)),
            "custom": given | {"who": {"roles": ["clerk"]}},
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def test_frozen_metadata_pickles_copies_and_converts() -> None:
    meta = Metadata(custom={"a": [1, {"b": None}]})
    assert pickle.loads(pickle.dumps(meta)) == meta
    assert type(pickle.loads(pickle.dumps(meta)).custom["a"]) is FrozenList
    assert copy.deepcopy(meta).custom is meta.custom
    assert dict(meta.custom) == {"a": [1, {"b": None}]}
    assert Metadata().custom is Metadata(custom={}).custom  # one shared empty object


def test_recorded_events_hash_by_position_and_event_id() -> None:
    @dataclass(frozen=True)
    class Listed:
        account: StreamId
        items: list[int]

    at = datetime(2026, 1, 1, tzinfo=UTC)
    rec = RecordedEvent(
        1, StreamId("a"), 1, "Listed", Listed(StreamId("a"), [1]), UUID(int=1), at, Metadata()
    )
    twin = replace(rec, event=Listed(StreamId("a"), [1]))
    assert rec == twin and hash(rec) == hash(twin) == hash((1, UUID(int=1)))
    assert len({rec, twin, replace(rec, position=2)}) == 2


# -- nesting, schema versions and upcasters ---------------------------------------------------


@dataclass(frozen=True)
class Nested:
    account: StreamId
    value: Any


def _nest(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 5000])
def test_deep_nesting_is_a_serialization_error(depth: int) -> None:
    types = EventTypes([Nested])
    with pytest.raises(SerializationError, match=f"nest deeper than {MAX_JSON_DEPTH} levels"):
        types.encode(Nested(StreamId("a"), _nest(depth)))
    with pytest.raises(SerializationError, match="nest deeper than"):
        Metadata(custom={"deep": _nest(depth)})
    types.encode(Nested(StreamId("a"), _nest(MAX_JSON_DEPTH)))


@pytest.mark.parametrize("depth", [1000, 5000, 100_000])
def test_deeply_nested_stored_data_is_a_deserialization_error(depth: int) -> None:
    types = EventTypes([Nested])
    data = '{"account": "a", "value": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(DeserializationError, match="nests too deeply") as info:
        types.decode("Nested", 1, data, " at position 4")
    assert "at position 4" in str(info.value)


@pytest.mark.parametrize("version", [None, 0, -1, "1", 1.0, True])
def test_a_stored_schema_version_that_is_not_an_int_is_a_deserialization_error(
    version: Any,
) -> None:
    types = EventTypes([Opened])
    with pytest.raises(DeserializationError, match=r"stored schema version .* is not an int >= 1"):
        types.decode("Opened", version, '{"account": "a", "owner": "o"}', " at position 3")


def test_an_upcaster_that_raises_is_a_deserialization_error_naming_the_event() -> None:
    types = EventTypes([RenamedV3])
    types.register_upcaster("renamed", 1, _v1_to_v2)
    types.register_upcaster("renamed", 2, lambda data: {**data, "title": data["honorific"]})
    stored = '{"account": "a", "name": "Ada Lovelace"}'
    with pytest.raises(DeserializationError) as info:
        types.decode("renamed", 1, stored, " at position 9 (stream 'a', version 1)")
    assert str(info.value) == (
        "the upcaster of renamed from schema version 2 to 3 failed at position 9 (stream 'a', "
        "version 1): KeyError: 'honorific'; fix the upcaster so that it accepts this stored data"
    )
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(DeserializationError, match="upcaster of renamed from schema version 1"):
        types.decode("renamed", 1, '{"account": "a"}', " at position 9")


def test_an_upcaster_stub_is_still_caught_as_not_implemented() -> None:
    """Exercise stubs raise NotImplementedError; checks catch it by that name."""
    types = EventTypes([RenamedV3])
    types.register_upcaster("renamed", 1, _v1_to_v2)

    def stub(data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    types.register_upcaster("renamed", 2, stub)
    with pytest.raises(NotImplementedError) as info:
        types.decode("renamed", 1, '{"account": "a", "name": "Ada L"}', " at position 2")
    assert isinstance(info.value, UpcasterNotImplemented)
    assert isinstance(info.value, DeserializationError)
    assert "upcaster of renamed from schema version 2 to 3 failed at position 2" in str(info.value)
