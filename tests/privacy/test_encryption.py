"""Encryption at rest and crypto-shredding on every store: personal fields sealed per data
subject, absent from the raw rows, forgotten subjects read back as placeholders, rotation,
tampering and misconfiguration refused loudly, keys never shown."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from eventcore import (
    Command,
    ConfigurationError,
    DeserializationError,
    EventTypes,
    StreamId,
    event,
    execute,
    stream,
)
from eventcore.crypto import Encryption, Forgotten, InMemoryKeyStore, SubjectForgotten
from eventcore.projections import (
    InMemoryCheckpointStore,
    ProjectionConfig,
    projector,
    run_projection,
)
from tests.privacy.conftest import MASTER, Backend
from tests.privacy.kinds import KINDS, DcRegistered, registered

KIND_NAMES = sorted(KINDS)
PERSONAL = ["Ada Lovelace 1", "ada1@example.org", "Ada Lovelace 2", "ada2@example.org"]


def encrypted(backend: Backend, kind: str = "json", keys: Any = None, **kw: Any) -> Any:
    serializer, _, cls = KINDS[kind]
    keys = keys if keys is not None else backend.key_store()
    types = EventTypes([cls, PlanChanged], serializer=None, encryption=Encryption(keys, **kw))
    if serializer.name != "json":
        types = EventTypes([cls], serializer=serializer, encryption=Encryption(keys, **kw))
    return backend.open(types), keys


@dataclass(frozen=True)
class PlanChanged:
    account: StreamId
    plan: str


def write_two(store: Any, cls: type) -> list[Any]:
    events = [registered(cls, 1), registered(cls, 2)]
    for evt in events:
        store.append({evt.account: 0}, [evt])
    return events


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_round_trip_with_plaintext_absent_from_the_database(backend: Backend, kind: str) -> None:
    cls = KINDS[kind][2]
    store, keys = encrypted(backend, kind)
    originals = write_two(store, cls)
    assert [r.event for r in store.read_all()] == originals
    # A second handle (its own registry, the same key store) reads them too.
    reader, _ = encrypted(backend, kind, keys=keys)
    assert [r.event for r in reader.read_all()] == originals
    rows = reader.export_rows()
    for row in rows:
        data = json.loads(row.data)
        assert set(data) == {"account", "customer", "plan", "$sealed"}
        assert data["$sealed"]["f"] == ["name", "email"]
        assert data["plan"] == "gold"  # not personal: stays readable and queryable
    if backend.sql:
        raw = backend.raw_rows()
        assert len(raw) == 2
        for secret in PERSONAL:
            assert all(secret not in data and secret not in meta for _, data, meta in raw)
            assert secret.encode() not in backend.raw_bytes()
        assert all('"$sealed"' in data for _, data, _ in raw)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_forgetting_a_subject_leaves_a_placeholder(backend: Backend, kind: str) -> None:
    cls = KINDS[kind][2]
    store, keys = encrypted(backend, kind)
    write_two(store, cls)
    before = list(store.read_all())
    assert keys.forget("customer-1") == 1
    assert keys.forget("customer-1") == 0
    fresh, _ = encrypted(backend, kind, keys=keys)
    for handle in (store, fresh):
        first, second = handle.read_all()
        assert isinstance(first.event, Forgotten)
        assert first.event.event_type == cls.__name__ == first.event_type
        assert first.event.subject == "customer-1"
        assert first.event.forgotten == ("name", "email")
        assert dict(first.event.kept) == {
            "account": "account-1",
            "customer": "customer-1",
            "plan": "gold",
        }
        for field in ("position", "stream_id", "stream_version", "event_id", "recorded_at"):
            assert getattr(first, field) == getattr(before[0], field)
        assert first.metadata == before[0].metadata
        assert second.event == registered(cls, 2)  # everyone else is untouched
    with pytest.raises(SubjectForgotten, match="Nothing was written"):
        store.append({StreamId("account-1"): 1}, [registered(cls, 1)])
    assert len(list(store.read_all())) == 2


class ChangePlan(Command[str | None]):
    """Folds the account's plan; a forgotten registration is skipped like any other event."""

    account: StreamId = stream()
    plan: str

    def initial_state(self) -> str | None:
        return None

    def apply(self, plan: str | None, event: object) -> str | None:
        if isinstance(event, DcRegistered | PlanChanged):
            return event.plan
        if isinstance(event, Forgotten):
            return str(event.kept.get("plan"))  # what was never personal is still there
        return plan

    def handle(self, plan: str | None) -> list[object]:
        return [] if plan == self.plan else [PlanChanged(self.account, self.plan)]


def test_commands_and_projections_keep_working_after_shredding(backend: Backend) -> None:
    store, keys = encrypted(backend)
    write_two(store, DcRegistered)
    names: dict[str, str] = {}
    forgotten: list[str] = []

    @projector("customer-names")
    def project(record: Any) -> None:
        if isinstance(record.event, DcRegistered):
            names[record.event.customer] = record.event.name
        elif isinstance(record.event, Forgotten):
            forgotten.append(record.event.subject)

    def rebuild() -> None:
        names.clear()
        forgotten.clear()
        run_projection(project, store, ProjectionConfig(checkpoints=InMemoryCheckpointStore()))

    rebuild()
    assert names == {"customer-1": "Ada Lovelace 1", "customer-2": "Ada Lovelace 2"}
    keys.forget("customer-1")
    rebuild()  # the rebuilt read model no longer holds the forgotten customer's data
    assert names == {"customer-2": "Ada Lovelace 2"}
    assert forgotten == ["customer-1"]
    result = execute(store, ChangePlan(account=StreamId("account-1"), plan="silver"))
    assert [r.event for r in result.events] == [PlanChanged(StreamId("account-1"), "silver")]
    assert execute(store, ChangePlan(account=StreamId("account-1"), plan="silver")).events == ()


def test_rotation_new_writes_use_the_new_key_old_ones_still_read(backend: Backend) -> None:
    store, keys = encrypted(backend)
    first = registered(DcRegistered, 1)
    store.append({first.account: 0}, [first])
    assert keys.rotate("customer-1").version == 2
    second = registered(DcRegistered, 1)
    store.append({first.account: 1}, [second])
    versions = [json.loads(r.data)["$sealed"]["k"] for r in store.export_rows()]
    assert versions == [1, 2]
    fresh, _ = encrypted(backend, keys=keys)
    assert [r.event for r in fresh.read_all()] == [first, second]
    keys.forget("customer-1")  # forgetting destroys every version
    assert all(isinstance(r.event, Forgotten) for r in fresh.read_all())


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("ciphertext", lambda d: {**d, "$sealed": {**d["$sealed"], "c": _flip(d["$sealed"]["c"])}}),
        ("plaintext field", lambda d: {**d, "plan": "platinum"}),
        ("header", lambda d: {**d, "$sealed": {**d["$sealed"], "f": ["name"]}}),
        ("nonce", lambda d: {**d, "$sealed": {**d["$sealed"], "n": _flip(d["$sealed"]["n"])}}),
    ],
)
def test_tampering_is_detected(sql_backend: Backend, what: str, change: Any) -> None:
    store, keys = encrypted(sql_backend)
    write_two(store, DcRegistered)
    sql_backend.alter_data(1, lambda text: json.dumps(change(json.loads(text))))
    fresh, _ = encrypted(sql_backend, keys=keys)
    with pytest.raises(DeserializationError, match=r"integrity check.*position 1"):
        list(fresh.read_all())
    (other,) = fresh.read_stream(StreamId("account-2"))
    assert other.event == registered(DcRegistered, 2)


def _flip(text: str) -> str:
    """The base64 text with its first character changed."""
    return ("B" if text[0] == "A" else "A") + text[1:]


def test_a_corrupt_sealed_part_and_plaintext_personal_data_are_refused(
    sql_backend: Backend,
) -> None:
    store, keys = encrypted(sql_backend)
    write_two(store, DcRegistered)
    sql_backend.alter_data(1, lambda t: json.dumps({**json.loads(t), "$sealed": {"s": 1}}))
    fresh, _ = encrypted(sql_backend, keys=keys)
    with pytest.raises(DeserializationError, match="sealed part is corrupt"):
        list(fresh.read_all())
    plain = {"account": "account-2", "customer": "customer-2", "name": "x", "email": "y"}
    sql_backend.alter_data(2, lambda t: json.dumps({**plain, "plan": "gold"}))
    with pytest.raises(DeserializationError, match="not encrypted"):
        list(fresh.read_stream(StreamId("account-2")))


def test_misconfiguration_refuses_to_start(sync_backend: Backend) -> None:
    with pytest.raises(ConfigurationError, match=r"no encryption.*plaintext"):
        sync_backend.open(EventTypes([DcRegistered]))
    with pytest.raises(ConfigurationError, match="needs a key store"):
        Encryption(None)  # type: ignore[arg-type]
    store = sync_backend.open(EventTypes([PlanChanged]))
    with pytest.raises(ConfigurationError, match="no encryption"):
        store.append({StreamId("account-1"): 0}, [registered(DcRegistered, 1)])
    assert list(store.read_all()) == []
    if sync_backend.sql:
        sync_backend.key_store()  # stores its master key probe
        with pytest.raises(ConfigurationError, match="master key does not open"):
            sync_backend.key_store(bytes(32))
        with pytest.raises(ConfigurationError, match="32 random bytes"):
            sync_backend.key_store(b"short")


def test_encrypted_events_without_the_encryption_are_refused(sync_backend: Backend) -> None:
    keys = sync_backend.key_store()
    writer = sync_backend.open(
        EventTypes([PlanChanged], encryption=Encryption(keys, all_events=True))
    )
    writer.append({StreamId("account-1"): 0}, [PlanChanged(StreamId("account-1"), "gold")])
    (row,) = writer.export_rows()
    assert set(json.loads(row.data)) == {"account", "$sealed"}  # the subject is the stream
    assert [r.event for r in writer.read_all()] == [PlanChanged(StreamId("account-1"), "gold")]
    with pytest.raises(DeserializationError, match="encrypted but this store has no encryption"):
        list(sync_backend.open(EventTypes([PlanChanged])).read_all())
    keys.forget("account-1")
    (record,) = writer.read_all()
    assert record.event.forgotten == ("plan",) and record.event.subject == "account-1"


@event(name="Registered", subject="customer", personal=("name",))
@dataclass(frozen=True)
class RegisteredV1:
    account: StreamId
    customer: str
    name: str


@event(name="Registered", subject="customer", personal=("name", "email"), version=2)
@dataclass(frozen=True)
class RegisteredV2:
    account: StreamId
    customer: str
    name: str
    email: str


def test_upcasters_see_the_decrypted_data(sync_backend: Backend) -> None:
    keys = sync_backend.key_store()
    old = sync_backend.open(EventTypes([RegisteredV1], encryption=Encryption(keys)))
    old.append({StreamId("a-1"): 0}, [RegisteredV1(StreamId("a-1"), "c-1", "Ada")])
    old.append({StreamId("a-2"): 0}, [RegisteredV1(StreamId("a-2"), "c-2", "Bob")])
    types = EventTypes([RegisteredV2], encryption=Encryption(keys))
    seen: list[dict[str, Any]] = []

    def upcast(data: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(data))
        return {**data, "email": ""}

    types.register_upcaster("Registered", 1, upcast)
    keys.forget("c-2")
    first, second = sync_backend.open(types).read_all()
    assert first.event == RegisteredV2(StreamId("a-1"), "c-1", "Ada", "")
    assert seen == [{"account": "a-1", "customer": "c-1", "name": "Ada"}]
    assert isinstance(second.event, Forgotten) and second.event.forgotten == ("name",)


def test_keys_and_plaintext_never_reach_logs_or_reprs(
    sync_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store, keys = encrypted(sync_backend)
    write_two(store, DcRegistered)
    list(store.read_all())
    key = keys.current_key("customer-1")
    keys.forget("customer-1")
    list(store.read_all())
    shown = " ".join(
        [caplog.text, repr(keys), repr(key), repr(Encryption(keys)), repr(store)]
        + [repr(r) for r in store.read_all()]
    )
    for secret in (key.material.hex(), MASTER.hex(), repr(key.material), repr(MASTER)):
        assert secret not in shown
    assert "Ada Lovelace 1" not in shown and "ada1@example.org" not in shown


def test_key_stores_share_the_protocol(sync_backend: Backend) -> None:
    keys = sync_backend.key_store()
    first = keys.current_key("s-1")
    assert (first.subject, first.version) == ("s-1", 1)
    assert keys.current_key("s-1") == first
    second = keys.rotate("s-1")
    assert second.version == 2 and second.material != first.material
    assert keys.key("s-1", 1) == first and keys.current_key("s-1") == second
    from eventcore.crypto import MissingKey

    with pytest.raises(MissingKey, match="no key version 3"):
        keys.key("s-1", 3)
    assert not keys.is_forgotten("s-1")
    assert keys.forget("s-1") == 2
    assert keys.is_forgotten("s-1") and keys.key("s-1", 1) is None
    with pytest.raises(SubjectForgotten):
        keys.current_key("s-1")
    with pytest.raises(SubjectForgotten):
        keys.rotate("s-1")
    assert keys.current_key("s-2").version == 1
    if sync_backend.sql:
        other = type(keys)(  # type: ignore[call-arg]
            sync_backend.path if sync_backend.base == "sqlite" else sync_backend.config,
            master_key=MASTER,
            cache_seconds=0,
        )
        sync_backend.handles.append(other)
        assert other.key("s-2", 1) == keys.current_key("s-2")  # unwrapped from the table
        keys.forget("s-2")
        assert other.key("s-2", 1) is None  # another handle sees the forgetting


def test_in_memory_key_store_works_for_every_store(backend: Backend) -> None:
    store, keys = encrypted(backend, keys=InMemoryKeyStore())
    write_two(store, DcRegistered)
    keys.forget("customer-2")
    assert [type(r.event).__name__ for r in store.read_all()] == ["DcRegistered", "Forgotten"]


def test_sqlite_forgetting_overwrites_the_wrapped_key_in_the_file(tmp_path: Any) -> None:
    import sqlite3

    from eventcore.crypto import SqliteKeyStore

    path = tmp_path / "keys.db"
    keys = SqliteKeyStore(path, master_key=MASTER)
    keys.current_key("customer-1")
    keys.current_key("customer-2")
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT subject, wrapped FROM eventcore_subject_keys"))

    def on_disk() -> bytes:
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    assert rows["customer-1"] in on_disk()
    assert keys.forget("customer-1") == 1
    assert rows["customer-1"] not in on_disk()
    assert rows["customer-2"] in on_disk()  # everyone else's key is untouched
    keys.close()


def test_rotating_the_master_key_rewraps_every_key(sql_backend: Backend) -> None:
    store, keys = encrypted(sql_backend)
    write_two(store, DcRegistered)
    keys.rotate("customer-2")
    new_master = bytes(range(100, 132))
    assert keys.rotate_master_key(new_master) == 3  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="master key does not open"):
        sql_backend.key_store(MASTER)
    reopened = sql_backend.key_store(new_master)
    fresh, _ = encrypted(sql_backend, keys=reopened)
    assert [r.event for r in fresh.read_all()] == [
        registered(DcRegistered, 1),
        registered(DcRegistered, 2),
    ]
    assert reopened.current_key("customer-2").version == 2


def test_reading_with_another_key_store_names_the_missing_key(sync_backend: Backend) -> None:
    from eventcore.crypto import MissingKey

    store, _ = encrypted(sync_backend)
    write_two(store, DcRegistered)
    stranger, _ = encrypted(sync_backend, keys=InMemoryKeyStore())
    with pytest.raises(
        MissingKey, match=r"no key version 1 of data subject 'customer-1'.*position 1"
    ):
        list(stranger.read_all())
