"""The JSON codec: every supported type round-trips; bad classes and values fail early."""

import enum
import json
import re
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, InitVar, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar, Literal, Optional
from uuid import UUID

import pytest
from hypothesis import given, settings

from eventcore import (
    DefinitionError,
    DeserializationError,
    EventStore,
    EventTypes,
    InMemoryEventStore,
    SerializationError,
    SqliteEventStore,
    StreamId,
    event,
)
from eventcore.codec import _plain_dataclass, check_json_value, compile_codec
from eventcore.testing.strategies import events

# -- a class with every supported type ---------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: Literal["EUR", "USD"]


@dataclass(frozen=True)
class Line:
    sku: str
    price: Money
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Everything:
    stream: StreamId
    text: str
    number: int
    ratio: float
    flag: bool
    nothing: None
    price: Decimal
    ident: UUID
    when: datetime
    day: date
    colour: Colour
    level: Level
    other_stream: StreamId | None
    maybe: Optional[int]  # noqa: UP045 - the old spelling is supported too
    names: tuple[str, ...]
    pair: tuple[int, str]
    items: list[Line]
    by_name: dict[str, int]
    by_stream: dict[StreamId, Decimal]
    by_number: dict[int, str]
    by_uuid: dict[UUID, bool]
    by_colour: dict[Colour, int]
    by_level: dict[Level, str]
    money: Money
    extra: Any
    nested: list[dict[str, tuple[int, ...]]]
    __event_stream__ = "stream"


SAMPLE = Everything(
    stream=StreamId("all-1"),
    text='héllo "wörld" \n\t 🎉',
    number=-(2**70),
    ratio=-0.0,
    flag=True,
    nothing=None,
    price=Decimal("-12.3400"),
    ident=UUID("12345678-1234-5678-1234-567812345678"),
    when=datetime(
        2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5, minutes=-30))
    ),
    day=date(1999, 12, 31),
    colour=Colour.GREEN,
    level=Level.HIGH,
    other_stream=None,
    maybe=7,
    names=("a", "b"),
    pair=(1, "one"),
    items=[
        Line("tea", Money(Decimal("2.50"), "EUR"), ("hot",)),
        Line("cup", Money(Decimal(1), "USD")),
    ],
    by_name={"x": 1},
    by_stream={StreamId("s-1"): Decimal("1E+3")},
    by_number={1: "one", -2: "minus two"},
    by_uuid={UUID(int=5): False},
    by_colour={Colour.RED: 1},
    by_level={Level.LOW: "low"},
    money=Money(Decimal("0.01"), "USD"),
    extra={"list": [1, 2.5, None, True, "s"], "nested": {"k": []}},
    nested=[{"a": (1, 2)}, {}],
)


def test_encoded_form_is_plain_json() -> None:
    data = compile_codec(Everything).encode(SAMPLE)
    assert json.loads(json.dumps(data)) == data
    assert data["price"] == "-12.3400"
    assert data["when"] == "2026-03-01T12:30:15.123456-05:30"
    assert data["day"] == "1999-12-31"
    assert data["colour"] == "green"
    assert data["level"] == 2
    assert data["by_number"] == {"1": "one", "-2": "minus two"}
    assert data["by_colour"] == {"red": 1}
    assert data["by_level"] == {"1": "low"}
    assert data["items"][0] == {
        "sku": "tea",
        "price": {"amount": "2.50", "currency": "EUR"},
        "tags": ["hot"],
    }


def test_every_supported_type_round_trips_through_the_codec() -> None:
    codec = compile_codec(Everything)
    decoded = codec.decode(json.loads(json.dumps(codec.encode(SAMPLE))))
    assert decoded == SAMPLE
    assert type(decoded.stream) is StreamId
    assert type(decoded.names) is tuple
    assert type(decoded.pair) is tuple
    assert type(decoded.items) is list
    assert type(decoded.items[0].price) is Money
    assert decoded.colour is Colour.GREEN
    assert decoded.level is Level.HIGH
    assert list(decoded.by_colour) == [Colour.RED]
    assert list(decoded.by_level) == [Level.LOW]
    assert list(decoded.by_uuid) == [UUID(int=5)]
    assert list(decoded.by_number) == [1, -2]
    assert str(decoded.price) == "-12.3400"  # Decimal keeps its exponent
    assert decoded.when.utcoffset() == timedelta(hours=-5, minutes=-30)
    assert type(decoded.nested[0]["a"]) is tuple


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    s: EventStore = (
        InMemoryEventStore() if request.param == "memory" else SqliteEventStore(":memory:")
    )
    yield s
    s.close()


def test_every_supported_type_round_trips_through_a_store(store: EventStore) -> None:
    store.append({SAMPLE.stream: 0}, [SAMPLE])
    (recorded,) = store.read_stream(SAMPLE.stream)
    assert recorded.event == SAMPLE
    assert recorded.event is not SAMPLE


@settings(derandomize=True, database=None, max_examples=60, deadline=None)
@given(events(Everything))
def test_generated_events_round_trip(evt: Everything) -> None:
    codec = compile_codec(Everything)
    assert codec.decode(json.loads(json.dumps(codec.encode(evt)))) == evt


def test_optional_nested_dataclass_and_defaults() -> None:
    @dataclass(frozen=True)
    class WithDefaults:
        stream: StreamId
        money: Money | None = None
        tags: list[str] = field(default_factory=list)

    codec = compile_codec(WithDefaults)
    for value in (
        WithDefaults(StreamId("a")),
        WithDefaults(StreamId("a"), Money(Decimal(1), "EUR"), ["x"]),
    ):
        assert codec.decode(codec.encode(value)) == value


# -- unsupported hints fail at definition time --------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize(
    ("hint", "message"),
    [
        (Opaque, "Bad.value: type Opaque cannot be stored in an event"),
        (set[int], "cannot be stored in an event"),
        (int | str, "is ambiguous in JSON; only 'X | None' is supported"),
        (dict[float, int], "dict keys of type float are not supported"),
        (dict[tuple[int, int], int], "are not supported; use str, StreamId, int, UUID or an Enum"),
        (list[Opaque], "Bad.value\\[\\]: type Opaque"),
        (bytes, "type bytes cannot be stored"),
    ],
)
def test_unsupported_hints_fail_when_the_class_is_declared(hint: object, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):

        @event
        @dataclass(frozen=True)
        class Bad:
            stream: StreamId
            value: hint  # type: ignore[valid-type]


def test_enum_with_unstorable_values_is_refused() -> None:
    class Shape(enum.Enum):
        SQUARE = (1, 2)

    with pytest.raises(DefinitionError, match=re.escape("enum Shape.SQUARE has value (1, 2)")):

        @event
        @dataclass(frozen=True)
        class Drawn:
            stream: StreamId
            shape: Shape


def test_recursive_classes_are_refused() -> None:
    with pytest.raises(DefinitionError, match="contains itself"):
        compile_codec(Node)


@dataclass(frozen=True)
class Node:
    stream: StreamId
    child: "Node | None"


def test_unresolvable_forward_reference_is_a_definition_error() -> None:
    @dataclass(frozen=True)
    class Dangling:
        stream: StreamId
        other: "NoSuchClass"  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(DefinitionError, match="cannot resolve the type hints of Dangling"):
        compile_codec(Dangling)


# -- bad values fail at append, naming the field --------------------------------------------


def _with(**changes: Any) -> Everything:
    return Everything(**{**SAMPLE.__dict__, **changes})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            _with(when=datetime(2026, 1, 1, 9, 0)),
            "Everything.when: datetime 2026-01-01T09:00:00 is naive",
        ),
        (_with(ratio=float("nan")), "Everything.ratio: nan is not a finite number"),
        (_with(ratio=float("inf")), "Everything.ratio: inf is not a finite number"),
        (_with(number="7"), "Everything.number: expected int, got str '7'"),
        (_with(number=True), "Everything.number: expected int, got bool True"),
        (_with(flag=1), "Everything.flag: expected bool, got int 1"),
        (_with(price=1.5), "Everything.price: expected Decimal, got float 1.5"),
        (_with(ident="12345678-1234-5678-1234-567812345678"), "Everything.ident: expected UUID"),
        (
            _with(day=datetime(2026, 1, 1, tzinfo=UTC)),
            "Everything.day: expected date, got datetime",
        ),
        (_with(colour="red"), "Everything.colour: expected Colour, got 'red'"),
        (_with(money=Money(Decimal(1), "GBP")), "Everything.money.currency: 'GBP' is not one of"),
        (
            _with(items=[Line("tea", Money(Decimal("nan"), "EUR"))]),
            "Everything.items\\[0\\].price.amount: Decimal 'NaN' is not a finite number",
        ),
        (
            _with(items=[Line("tea", Money(1, "EUR"))]),  # type: ignore[arg-type]
            "Everything.items\\[0\\].price.amount: expected Decimal, got int 1",
        ),
        (_with(pair=(1, 2)), "Everything.pair\\[1\\]: expected str, got int 2"),
        (_with(pair=(1,)), "Everything.pair: expected a tuple of 2 items"),
        (_with(names="ab"), "Everything.names: expected a tuple, got str"),
        (_with(by_number={"1": "x"}), "Everything.by_number: expected int, got str '1'"),
        (_with(by_name={"x": "1"}), "Everything.by_name\\['x'\\]: expected int, got str"),
        (_with(extra={"k": {1, 2}}), "Everything.extra.k: set .* is not JSON data"),
        (_with(extra={1: "x"}), "Everything.extra: JSON object keys must be str"),
        (_with(other_stream="bad*"), "Everything.other_stream: stream id 'bad\\*' contains"),
        (_with(nothing=0), "Everything.nothing: expected None, got int 0"),
    ],
)
def test_bad_values_fail_at_append_with_the_field_path(
    store: EventStore, bad: Everything, message: str
) -> None:
    with pytest.raises(SerializationError, match=message) as info:
        store.append({bad.stream: 0}, [SAMPLE, bad])
    assert "Nothing was written" in str(info.value)
    assert store.head() == 0
    assert list(store.read_stream(SAMPLE.stream)) == []


def test_invalid_stream_value_fails_at_append(store: EventStore) -> None:
    @dataclass(frozen=True)
    class Noted:
        stream: StreamId

    with pytest.raises(
        SerializationError,
        match=re.escape("cannot encode Noted: Noted.stream: stream id 'a*' contains"),
    ):
        store.append({StreamId("a"): 0}, [Noted("a*")])  # type: ignore[arg-type]
    assert store.head() == 0


def test_text_that_is_not_utf8_fails_at_append(store: EventStore) -> None:
    with pytest.raises(SerializationError, match="cannot encode Everything"):
        store.append({SAMPLE.stream: 0}, [_with(text="lone \ud800 surrogate")])
    assert store.head() == 0


def test_check_json_value() -> None:
    check_json_value({"a": [1, "x", None, 2.5, {"b": False}]})
    with pytest.raises(
        SerializationError, match=re.escape("meta.a[1]: nan is not a finite number")
    ):
        check_json_value({"a": [1, float("nan")]}, "meta")


# -- corrupt stored data fails on read ----------------------------------------------------------


@dataclass(frozen=True)
class Priced:
    stream: StreamId
    amount: Decimal
    __event_type__ = "priced"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "stored data of priced at position 9 is not valid JSON"),
        ("[1, 2]", "cannot decode Priced: Priced: expected an object, got list"),
        ('{"stream": "s"}', "missing \\['amount'\\], unexpected \\[\\]"),
        ('{"stream": "s", "amount": "1", "x": 1}', "unexpected \\['x'\\]"),
        ('{"stream": "s", "amount": "abc"}', "Priced.amount: cannot read 'abc' as Decimal"),
        ('{"stream": "s", "amount": null}', "Priced.amount: cannot read None as Decimal"),
    ],
)
def test_corrupt_data_is_a_deserialization_error(data: str, message: str) -> None:
    types = EventTypes([Priced])
    with pytest.raises(DeserializationError, match=message) as info:
        types.decode("priced", 1, data, " at position 9")
    assert "at position 9" in str(info.value)


def test_unknown_type_name_is_a_deserialization_error() -> None:
    types = EventTypes([Priced])
    with pytest.raises(
        DeserializationError,
        match=re.escape("unknown event type 'Other'; this store knows: priced. Pass the class"),
    ):
        types.decode("Other", 1, "{}")


@pytest.mark.parametrize(
    ("field_name", "raw", "message"),
    [
        ("when", "yesterday", "Everything.when: cannot read 'yesterday' as datetime"),
        ("day", 20260101, "Everything.day: cannot read 20260101 as date"),
        ("ident", "nope", "Everything.ident: cannot read 'nope' as UUID"),
        ("colour", "blue", "Everything.colour: cannot read 'blue' as Colour"),
        ("ratio", "1.5", "Everything.ratio: expected a number"),
        ("stream", 5, "Everything.stream: expected a stream id string"),
        ("names", "ab", "Everything.names: expected a list"),
        ("pair", [1], "Everything.pair: expected 2 items"),
        ("by_name", [], "Everything.by_name: expected an object"),
        ("by_number", {"one": "x"}, "Everything.by_number: cannot read 'one' as an int key"),
        ("money", "1 EUR", "Everything.money: expected an object, got str"),
    ],
)
def test_corrupt_field_names_its_path(field_name: str, raw: object, message: str) -> None:
    codec = compile_codec(Everything)
    data = codec.encode(SAMPLE)
    data[field_name] = raw
    with pytest.raises(DeserializationError, match=message):
        codec.decode(data)


# -- building instances without calling the class -------------------------------------------


@dataclass(frozen=True)
class Moved:
    account: StreamId
    to: str
    times: int = 1


@dataclass(frozen=True)
class Checked:
    amount: int
    calls: ClassVar[list[int]] = []

    def __post_init__(self) -> None:
        Checked.calls.append(self.amount)


@dataclass(frozen=True)
class Doubled:
    amount: int

    def __init__(self, amount: int) -> None:
        object.__setattr__(self, "amount", amount * 2)


@dataclass(frozen=True, slots=True)
class Slotted:
    amount: int


@dataclass(frozen=True)
class Derived:
    amount: int
    half: int = field(init=False, default=0)


@dataclass
class Guarded:
    amount: int

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value * 10 if name == "amount" else value)  # type: ignore[operator]


@dataclass(frozen=True)
class WithInitVar:
    amount: int
    scale: InitVar[int] = 1


def test_plain_dataclasses_are_built_without_the_call() -> None:
    assert _plain_dataclass(Moved) and _plain_dataclass(Everything)
    for cls in (Checked, Doubled, Slotted, Derived, Guarded, WithInitVar):
        assert not _plain_dataclass(cls), cls.__name__


def test_a_built_instance_is_what_the_class_makes() -> None:
    codec = compile_codec(Moved)
    for data in (
        {"account": "a", "to": "b", "times": 3},
        {"to": "b", "times": 3, "account": "a"},  # keys in another order, as jsonb keeps them
        {"account": "a", "to": "b"},  # the default fills times
    ):
        made = codec.decode(dict(data))
        called = Moved(**{**data, "account": StreamId(data["account"])})  # type: ignore[arg-type]
        assert made == called and repr(made) == repr(called) and hash(made) == hash(called)
        assert vars(made) == vars(called) and list(vars(made)) == list(vars(called))
        assert type(made.account) is StreamId
        with pytest.raises(FrozenInstanceError):
            made.to = "c"  # type: ignore[misc]


def test_classes_with_their_own_construction_are_still_called() -> None:
    Checked.calls.clear()
    assert compile_codec(Checked).decode({"amount": 4}) == Checked(4)
    assert Checked.calls == [4, 4]  # __post_init__ ran for the decoded instance too
    assert compile_codec(Doubled).decode({"amount": 4}).amount == 8
    assert compile_codec(Slotted).decode({"amount": 4}) == Slotted(4)
    assert compile_codec(Guarded).decode({"amount": 4}).amount == 40


def test_a_class_without_fields_is_called_unless_plain() -> None:
    @dataclass(frozen=True)
    class Ping:
        pass

    @dataclass(frozen=True)
    class Pong:
        def __post_init__(self) -> None:
            raise ValueError("pong")

    assert compile_codec(Ping).decode({}) == Ping()
    with pytest.raises(ValueError, match="pong"):
        compile_codec(Pong).decode({})


def test_data_that_does_not_fit_a_plain_class_is_refused_as_before() -> None:
    codec = compile_codec(Moved)
    with pytest.raises(DeserializationError, match="missing"):
        codec.decode({"account": "a"})
    with pytest.raises(DeserializationError, match=r"missing \['times'\], unexpected \['via'\]"):
        codec.decode({"account": "a", "to": "b", "via": "c"})  # as many keys as fields
    with pytest.raises(DeserializationError, match=r"Moved\.to: expected a string, found 5"):
        codec.decode({"account": "a", "to": 5, "times": 1})


# -- which decoded events may be shared between readers -------------------------------------


@dataclass(frozen=True)
class Flat:
    account: StreamId
    amount: Decimal
    at: datetime
    level: Level
    kind: Literal["a", "b"]
    ref: UUID | None
    pair: tuple[int, str]
    many: tuple[date, ...]
    address: Moved


@dataclass
class Loose:
    amount: int


@dataclass(frozen=True)
class HoldsLoose:
    inner: Loose


@pytest.mark.parametrize(
    ("cls", "shareable"),
    [
        (Flat, True),
        (Moved, True),
        (Everything, False),  # lists, dicts and Any
        (HoldsLoose, False),  # a dataclass that is not frozen
    ],
)
def test_shareable_means_immutable_all_the_way_down(cls: type, shareable: bool) -> None:
    assert compile_codec(cls).shareable is shareable
