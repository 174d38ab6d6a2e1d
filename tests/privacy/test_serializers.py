"""Pluggable serializers: the same events as dataclasses, Pydantic models and msgspec
Structs round-trip identically on every store (memory, SQLite, PostgreSQL, async faces),
upcast, snapshot, and fail with typed errors writing nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel, ConfigDict

from eventcore import (
    Command,
    DefinitionError,
    DeserializationError,
    EventTypes,
    SerializationError,
    StreamId,
    event,
    execute,
    stream,
)
from eventcore.serializers import JsonSerializer, serializer_for
from eventcore.serializers.pydantic_models import PydanticSerializer
from eventcore.snapshots import InMemorySnapshotStore, SnapshotPolicy
from tests.privacy.conftest import Backend
from tests.privacy.kinds import KINDS, ordered

KIND_NAMES = sorted(KINDS)


def stored_payloads(backend: Backend, kind: str) -> list[Any]:
    serializer, cls, _ = KINDS[kind]
    store = backend.open(EventTypes([cls], serializer=serializer))
    return [json.loads(r.data) for r in store.export_rows()]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_round_trip_on_every_store(backend: Backend, kind: str) -> None:
    serializer, cls, _ = KINDS[kind]
    writer = backend.open(EventTypes([cls], serializer=serializer))
    originals = [ordered(cls, n) for n in range(1, 4)]
    for evt in originals:
        writer.append({evt.order: 0}, [evt])
    reader = backend.open(EventTypes([cls], serializer=serializer))  # a fresh registry
    records = list(reader.read_all())
    assert [r.event for r in records] == originals
    assert [type(r.event) for r in records] == [cls] * 3
    assert [r.event_type for r in records] == [cls.__name__] * 3
    assert [r.event for r in reader.read_stream(StreamId("order-2"))] == originals[1:2]


def test_the_three_serializers_store_the_same_json(backend: Backend) -> None:
    """One payload whichever serializer wrote it (a UTC time is written ``+00:00`` by the
    JSON codec, ``Z`` by Pydantic and msgspec; each reads both): a log can change
    serializer."""
    stored: dict[str, list[Any]] = {}
    for kind in KIND_NAMES:
        serializer, cls, _ = KINDS[kind]
        writer = backend.open(EventTypes([cls], serializer=serializer))
        evt = ordered(cls, 7, order=StreamId(f"order-{kind}"))
        writer.append({evt.order: 0}, [evt])
    rows = backend.open(EventTypes()).export_rows()
    for row in rows:
        stored.setdefault(row.event_type, []).append(json.loads(row.data))
    payloads = [
        {
            k: v.replace("Z", "+00:00") if k == "at" else v
            for k, v in stored[KINDS[kind][1].__name__][0].items()
            if k != "order"
        }
        for kind in KIND_NAMES
    ]
    assert payloads[0] == payloads[1] == payloads[2]
    assert payloads[0]["amount"] == "19.50" and payloads[0]["ref"].startswith("12345678")


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_events_written_by_one_serializer_read_by_another(sync_backend: Backend, kind: str) -> None:
    serializer, cls, _ = KINDS[kind]
    writer = sync_backend.open(EventTypes([cls], serializer=serializer))
    evt = ordered(cls, 1)
    writer.append({evt.order: 0}, [evt])
    (row,) = sync_backend.open(EventTypes()).export_rows()
    for other in KIND_NAMES:
        o_serializer, o_cls, _ = KINDS[other]
        types = EventTypes([o_cls], serializer=o_serializer)
        assert types.decode(o_cls.__name__, row.schema_version, row.data) == ordered(o_cls, 1)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_unserialisable_value_is_refused_and_nothing_written(
    sync_backend: Backend, kind: str
) -> None:
    serializer, cls, _ = KINDS[kind]
    store = sync_backend.open(EventTypes([cls], serializer=serializer))
    good = ordered(cls, 1)
    bad = (
        msgspec.structs.replace(good, amount=object())  # type: ignore[arg-type]
        if kind == "msgspec"
        else good.model_copy(update={"amount": object()})
        if kind == "pydantic"
        else ordered(cls, 1, amount=object())
    )
    with pytest.raises(SerializationError, match="Nothing was written"):
        store.append({good.order: 0}, [good, bad])
    assert list(store.read_all()) == []


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_unknown_type_and_corrupt_data_raise_deserialization_error(
    sql_backend: Backend, kind: str
) -> None:
    serializer, cls, _ = KINDS[kind]
    writer = sql_backend.open(EventTypes([cls], serializer=serializer))
    evt = ordered(cls, 1)
    writer.append({evt.order: 0}, [evt])
    with pytest.raises(DeserializationError, match=f"unknown event type '{cls.__name__}'"):
        list(sql_backend.open(EventTypes(serializer=serializer)).read_all())
    sql_backend.alter_data(1, lambda data: data.replace('"qty":1', '"qty":"many"'))
    with pytest.raises(DeserializationError, match=f"cannot decode {cls.__name__}.*position 1"):
        list(sql_backend.open(EventTypes([cls], serializer=serializer)).read_all())


def test_classes_are_checked_by_their_serializer() -> None:
    class Loose(BaseModel):
        order: StreamId

    class LooseStruct(msgspec.Struct):
        order: StreamId

    with pytest.raises(DefinitionError, match="ConfigDict\\(frozen=True\\)"):
        EventTypes([Loose])
    with pytest.raises(DefinitionError, match=r"msgspec\.Struct, frozen=True"):
        EventTypes([LooseStruct])
    with pytest.raises(DefinitionError, match="'pydantic' serializer"):
        EventTypes([KINDS["msgspec"][1]], serializer=PydanticSerializer())
    assert serializer_for(KINDS["pydantic"][1]).name == "pydantic"
    assert serializer_for(KINDS["msgspec"][1]).name == "msgspec"
    assert serializer_for(KINDS["json"][1]) == JsonSerializer()


def test_invalid_stream_ids_are_refused_by_every_serializer() -> None:
    for kind in ("pydantic", "msgspec"):
        serializer, cls, _ = KINDS[kind]
        codec = serializer.codec(cls)
        data = codec.encode(ordered(cls, 1))
        with pytest.raises(DeserializationError, match="order"):
            codec.decode({**data, "order": "order-*"})


# -- upcasting ----------------------------------------------------------------------------


@event(name="Shipped")
@dataclass(frozen=True)
class ShippedV1:
    order: StreamId
    carrier: str


@event(name="Shipped", version=2)
@dataclass(frozen=True)
class DcShipped:
    order: StreamId
    carrier: str
    tracked: bool


@event(name="Shipped", version=2)
class PdShipped(BaseModel):
    model_config = ConfigDict(frozen=True)
    order: StreamId
    carrier: str
    tracked: bool


@event(name="Shipped", version=2)
class MsShipped(msgspec.Struct, frozen=True):
    order: StreamId
    carrier: str
    tracked: bool


SHIPPED = {"json": DcShipped, "pydantic": PdShipped, "msgspec": MsShipped}


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_upcasting_works_with_each_serializer(sync_backend: Backend, kind: str) -> None:
    sync_backend.open(EventTypes([ShippedV1])).append(
        {StreamId("order-1"): 0}, [ShippedV1(StreamId("order-1"), "post")]
    )
    types = EventTypes([SHIPPED[kind]], serializer=KINDS[kind][0])
    types.register_upcaster("Shipped", 1, lambda data: {**data, "tracked": False})
    (record,) = sync_backend.open(types).read_all()
    assert record.event == SHIPPED[kind](order=StreamId("order-1"), carrier="post", tracked=False)


# -- snapshots ------------------------------------------------------------------------------


class Reorder(Command[Decimal]):
    order: StreamId = stream()
    factory: Any
    snapshot = SnapshotPolicy(every=2, version=1)

    def initial_state(self) -> Decimal:
        return Decimal(0)

    def apply(self, total: Decimal, event: object) -> Decimal:
        return total + event.amount  # type: ignore[attr-defined]

    def handle(self, total: Decimal) -> list[object]:
        return [self.factory(total)]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_snapshots_work_with_each_serializer(sync_backend: Backend, kind: str) -> None:
    serializer, cls, _ = KINDS[kind]
    store = sync_backend.open(EventTypes([cls], serializer=serializer))
    snapshots = InMemorySnapshotStore()
    sid = StreamId("order-1")

    def factory(total: Decimal) -> Any:
        return ordered(cls, 1, amount=total + 1)

    for _ in range(5):
        execute(store, Reorder(order=sid, factory=factory), snapshots=snapshots)
    assert [r.event.amount for r in store.read_stream(sid)] == [1, 2, 4, 8, 16]
    (info,) = snapshots.list()
    fresh = sync_backend.open(EventTypes([cls], serializer=serializer))
    result = execute(fresh, Reorder(order=sid, factory=factory), snapshots=snapshots)
    assert result.replay is not None and result.replay.loaded
    assert result.replay.events_from_snapshot >= 2
    assert [r.event.amount for r in fresh.read_stream(sid)][-1] == 32
    assert info.snapshot_id == result.replay.snapshot_id


def test_the_notebook_flattens_every_kind_of_event() -> None:
    from eventcore.notebook.frame import flatten

    for kind in KIND_NAMES:
        flat = flatten(ordered(KINDS[kind][1], 1), "data")
        assert flat["data.order"] == "order-1" and flat["data.qty"] == 1, kind
        assert sorted(flat) == sorted(f"data.{n}" for n in KINDS[kind][0].fields(KINDS[kind][1]))
