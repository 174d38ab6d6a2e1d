"""Data keys, one set per data subject, and the stores that keep them.

A :class:`KeyStore` hands out the current key of a subject (creating the first on demand),
finds an older key by version (so rotated keys still read what they wrote), rotates and
forgets. Forgetting is final: the subject's keys are destroyed, its events read back as
:class:`~eventcore.crypto.Forgotten` placeholders, and writing new personal data for the
same subject id is refused (:class:`SubjectForgotten`).

:class:`InMemoryKeyStore` is for tests and notebooks. The database-backed stores
(:class:`~eventcore.crypto.SqliteKeyStore`, :class:`~eventcore.crypto.PostgresKeyStore`)
keep each data key wrapped (AES-GCM) under a master key the application supplies and never
store the master key; a key management service would implement the same protocol.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from eventcore.clock import Clock, system_clock
from eventcore.crypto import cipher
from eventcore.errors import ConfigurationError, DeserializationError, SerializationError
from eventcore.stores._plan import Plan, Query

T = TypeVar("T")

__all__ = [
    "DataKey",
    "InMemoryKeyStore",
    "KeyStore",
    "KeyTable",
    "MissingKey",
    "SubjectForgotten",
    "WrappedKeyStore",
    "check_subject",
]


class SubjectForgotten(SerializationError):
    """Personal data was to be written for a subject whose keys were destroyed. Nothing was
    written: a forgotten subject id stays forgotten (give the person a new id)."""


class MissingKey(DeserializationError):
    """An event names a key the key store never had (and the subject was not forgotten):
    the wrong key store, or one restored from an older backup."""


@dataclass(frozen=True, slots=True)
class DataKey:
    """One AES-256 key of one subject. The key material never shows in a repr.

    >>> DataKey("customer-1", 2, bytes(32))
    DataKey(subject='customer-1', version=2)
    """

    subject: str
    version: int
    material: bytes = field(repr=False)


def check_subject(subject: object) -> str:
    """A subject id: a non-empty str of at most 255 characters."""
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SerializationError(
            f"a data subject id must be a non-empty str of at most 255 characters, got "
            f"{type(subject).__name__}; mark a str field as the subject. Nothing was written."
        )
    return subject


@runtime_checkable
class KeyStore(Protocol):
    """Where the data keys of the subjects live."""

    def current_key(self, subject: str) -> DataKey:
        """The key new data of ``subject`` is encrypted with, created on first use; raises
        :class:`SubjectForgotten` once the subject was forgotten."""
        ...

    def key(self, subject: str, version: int) -> DataKey | None:
        """Key ``version`` of ``subject``; ``None`` when the subject was forgotten; raises
        :class:`MissingKey` for a key that never existed."""
        ...

    def rotate(self, subject: str) -> DataKey:
        """Make a new current key for ``subject`` (older keys still decrypt)."""
        ...

    def forget(self, subject: str) -> int:
        """Destroy every key of ``subject`` and remember it was forgotten; returns the
        number of keys destroyed (0 when it had none, or was forgotten before)."""
        ...

    def is_forgotten(self, subject: str) -> bool: ...


class InMemoryKeyStore:
    """Data keys in process memory (tests, notebooks): random keys, nothing wrapped.

    >>> keys = InMemoryKeyStore()
    >>> keys.current_key("customer-1").version, keys.rotate("customer-1").version
    (1, 2)
    >>> keys.forget("customer-1"), keys.key("customer-1", 1)
    (2, None)
    >>> keys
    InMemoryKeyStore(0 subjects with keys, 1 forgotten)
    """

    def __init__(self, *, new_key: Callable[[], bytes] = cipher.new_key) -> None:
        self._new_key = new_key
        self._keys: dict[str, list[DataKey]] = {}
        self._forgotten: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"InMemoryKeyStore({len(self._keys)} subjects with keys, "
            f"{len(self._forgotten)} forgotten)"
        )

    def current_key(self, subject: str) -> DataKey:
        with self._lock:
            if subject in self._forgotten:
                raise _forgotten(subject)
            keys = self._keys.get(subject)
            if keys:
                return keys[-1]
            return self._add(subject)

    def _add(self, subject: str) -> DataKey:
        keys = self._keys.setdefault(subject, [])
        key = DataKey(subject, len(keys) + 1, cipher.check_key(self._new_key(), "a data key"))
        keys.append(key)
        return key

    def key(self, subject: str, version: int) -> DataKey | None:
        with self._lock:
            if subject in self._forgotten:
                return None
            keys = self._keys.get(subject, [])
            if 1 <= version <= len(keys):
                return keys[version - 1]
        raise _missing(subject, version)

    def rotate(self, subject: str) -> DataKey:
        with self._lock:
            if subject in self._forgotten:
                raise _forgotten(subject)
            return self._add(subject)

    def forget(self, subject: str) -> int:
        with self._lock:
            if subject in self._forgotten:
                return 0
            self._forgotten.add(subject)
            destroyed = self._keys.pop(subject, [])
        for key in destroyed:
            cipher.forget(key.material)
        return len(destroyed)

    def is_forgotten(self, subject: str) -> bool:
        return subject in self._forgotten


def _forgotten(subject: str) -> SubjectForgotten:
    return SubjectForgotten(
        f"data subject {subject!r} was forgotten (its keys were destroyed); its personal data "
        "cannot be written again under that id: give the person a new id. Nothing was written."
    )


def _missing(subject: str, version: int) -> MissingKey:
    return MissingKey(
        f"the key store has no key version {version} of data subject {subject!r}, and the "
        "subject was not forgotten: is this the key store (and master key) that wrote the "
        "events, or was it restored from an older backup?"
    )


# -- keys wrapped under a master key, in a database --------------------------------------

_PROBE = b"eventcore master key probe"
_PROBE_AAD = b"eventcore:master-key"


def _wrap_aad(subject: str, version: int) -> bytes:
    return f"eventcore:data-key:{version}:{subject}".encode()


class KeyTable(Protocol):
    """The SQL of one database for :class:`WrappedKeyStore` (each method a plan)."""

    def probe(self, blob: bytes, at: str) -> Plan[bytes]:
        """Store ``blob`` as the master-key probe unless one is stored; the stored one."""
        ...

    def keys(self, subject: str) -> Plan[tuple[bool, list[tuple[int, bytes]]]]:
        """Whether the subject was forgotten, and its ``(version, wrapped)`` in order."""
        ...

    def add(self, subject: str, version: int, wrapped: bytes, at: str) -> Plan[None]:
        """Insert a key unless that version exists."""
        ...

    def forget(self, subject: str, at: str) -> Plan[int]:
        """Record the subject as forgotten (first), then delete its keys; their number."""
        ...

    def all_keys(self) -> Plan[list[tuple[str, int, bytes]]]:
        """Lock the key table against other writers, then every ``(subject, version,
        wrapped)``."""
        ...

    def rewrap(self, keys: list[tuple[bytes, str, int]], probe: bytes) -> Plan[None]:
        """Store each ``(wrapped, subject, version)`` and the new probe."""
        ...


class _Database(Protocol):
    def read(self, operation: str, plan: Plan[T]) -> T: ...
    def write(self, operation: str, plan: Plan[T]) -> T: ...
    def transaction(self, operation: str = ...) -> AbstractContextManager[Any]: ...
    def run_in(self, tx: Any, operation: str, plan: Plan[T]) -> T: ...


class WrappedKeyStore:
    """Data keys in a database table, each wrapped with AES-GCM under ``master_key`` (32
    bytes from your secret manager; never stored). Opening checks the master key against a
    probe stored on first use, so a wrong master key refuses to start
    (:class:`ConfigurationError`) instead of writing keys nobody can read.

    Unwrapped keys are cached for ``cache_seconds`` (forgetting through this object drops
    them at once; another process may keep using a forgotten key for that long).
    """

    def __init__(
        self,
        database: object,
        table: KeyTable,
        master_key: bytes,
        *,
        clock: Clock = system_clock,
        cache_seconds: float = 30.0,
        name: str,
    ) -> None:
        cipher.require()
        self._master = cipher.check_key(master_key, "the master key")
        self._db: _Database = database  # type: ignore[assignment]
        self._table = table
        self._clock = clock
        self._ttl = cache_seconds
        self._name = name
        self._cache: dict[tuple[str, int], tuple[float, DataKey]] = {}
        self._current: dict[str, tuple[float, DataKey]] = {}
        self._lock = threading.Lock()
        nonce, sealed = cipher.encrypt(self._master, _PROBE, _PROBE_AAD)
        stored = self._db.write("key_store_probe", table.probe(nonce + sealed, self._now()))
        try:
            plain = cipher.decrypt(self._master, stored[:12], stored[12:], _PROBE_AAD)
        except cipher.AuthenticationFailed:
            plain = b""
        if plain != _PROBE:
            raise ConfigurationError(
                f"{name}: the master key does not open this database's data keys (they were "
                "wrapped under another master key). Pass the master key that created them; "
                "nothing was read or written"
            )

    def __repr__(self) -> str:
        return self._name

    def _now(self) -> str:
        return self._clock().isoformat()

    def _unwrap(self, subject: str, version: int, wrapped: bytes) -> DataKey:
        try:
            material = cipher.decrypt(
                self._master, wrapped[:12], wrapped[12:], _wrap_aad(subject, version)
            )
        except cipher.AuthenticationFailed:
            raise DeserializationError(
                f"{self._name}: key version {version} of data subject {subject!r} does not "
                "open with the master key: the stored key was altered"
            ) from None
        return DataKey(subject, version, material)

    def _load(self, subject: str) -> tuple[bool, list[DataKey]]:
        forgotten, rows = self._db.read("load_data_keys", self._table.keys(subject))
        if forgotten:
            return True, []
        keys = [self._unwrap(subject, v, w) for v, w in rows]
        expires = time.monotonic() + self._ttl
        with self._lock:
            for k in keys:
                self._cache[(subject, k.version)] = (expires, k)
            if keys:
                self._current[subject] = (expires, keys[-1])
        return False, keys

    def _create(self, subject: str, version: int) -> None:
        material = cipher.new_key()
        nonce, sealed = cipher.encrypt(self._master, material, _wrap_aad(subject, version))
        self._db.write(
            "add_data_key", self._table.add(subject, version, nonce + sealed, self._now())
        )

    def current_key(self, subject: str) -> DataKey:
        hit = self._current.get(subject)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        forgotten, keys = self._load(subject)
        if forgotten:
            raise _forgotten(subject)
        if keys:
            return keys[-1]
        self._create(subject, 1)
        return self.current_key(subject)

    def key(self, subject: str, version: int) -> DataKey | None:
        hit = self._cache.get((subject, version))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        forgotten, keys = self._load(subject)
        if forgotten:
            return None
        for k in keys:
            if k.version == version:
                return k
        raise _missing(subject, version)

    def rotate(self, subject: str) -> DataKey:
        forgotten, keys = self._load(subject)
        if forgotten:
            raise _forgotten(subject)
        self._create(subject, (keys[-1].version if keys else 0) + 1)
        forgotten, keys = self._load(subject)
        if forgotten:
            raise _forgotten(subject)
        return keys[-1]

    def forget(self, subject: str) -> int:
        with self._lock:
            self._current.pop(subject, None)
            for k in [k for k in self._cache if k[0] == subject]:
                cipher.forget(self._cache.pop(k)[1].material)
        return self._db.write("forget_subject", self._table.forget(subject, self._now()))

    def is_forgotten(self, subject: str) -> bool:
        forgotten, _ = self._db.read("load_data_keys", self._table.keys(subject))
        return forgotten

    def rotate_master_key(self, new_master_key: bytes) -> int:
        """Wrap every data key again under ``new_master_key`` and replace the probe, in one
        transaction (other writers of the key table wait); returns the number of keys
        re-wrapped. This object uses the new master key from then on; restart every other
        process with it (their old master key no longer opens the keys)."""
        new = cipher.check_key(new_master_key, "the new master key")
        with self._db.transaction("rotate_master_key") as tx:
            rows = self._db.run_in(tx, "rotate_master_key", self._table.all_keys())
            rewrapped = []
            for subject, version, wrapped in rows:
                material = self._unwrap(subject, version, wrapped).material
                nonce, sealed = cipher.encrypt(new, material, _wrap_aad(subject, version))
                rewrapped.append((nonce + sealed, subject, version))
            nonce, probe = cipher.encrypt(new, _PROBE, _PROBE_AAD)
            self._db.run_in(tx, "rotate_master_key", self._table.rewrap(rewrapped, nonce + probe))
        self._master = new
        return len(rewrapped)


def sql_table(
    keys: str,
    forgotten: str,
    master: str,
    param: str,
    quote: Callable[[str], object],
    lock: str | None = None,
) -> KeyTable:
    """A :class:`KeyTable` from the table names and the driver's parameter marker (``?``
    for sqlite3, ``%s`` for psycopg); ``quote`` turns SQL text into what the driver runs;
    ``lock`` is the statement that keeps other writers off the key table for a transaction
    (none for SQLite, whose ``BEGIN IMMEDIATE`` already does)."""
    p = param
    sql_lock = quote(lock) if lock is not None else None
    sql_all = quote(f"SELECT subject, version, wrapped FROM {keys} ORDER BY subject, version")
    sql_rewrap = quote(f"UPDATE {keys} SET wrapped = {p} WHERE subject = {p} AND version = {p}")
    sql_new_probe = quote(f"UPDATE {master} SET probe = {p} WHERE id = 1")
    sql_probe_insert = quote(
        f"INSERT INTO {master} (id, probe, created_at) VALUES (1, {p}, {p}) "
        "ON CONFLICT (id) DO NOTHING"
    )
    sql_probe = quote(f"SELECT probe FROM {master} WHERE id = 1")
    sql_forgotten = quote(f"SELECT 1 FROM {forgotten} WHERE subject = {p}")
    sql_keys = quote(f"SELECT version, wrapped FROM {keys} WHERE subject = {p} ORDER BY version")
    sql_add = quote(
        f"INSERT INTO {keys} (subject, version, wrapped, created_at) VALUES ({p}, {p}, {p}, {p}) "
        "ON CONFLICT (subject, version) DO NOTHING"
    )
    sql_mark = quote(
        f"INSERT INTO {forgotten} (subject, forgotten_at) VALUES ({p}, {p}) "
        "ON CONFLICT (subject) DO NOTHING"
    )
    sql_delete = quote(f"DELETE FROM {keys} WHERE subject = {p}")

    class Table:
        def probe(self, blob: bytes, at: str) -> Plan[bytes]:
            yield Query(sql_probe_insert, (blob, at), "none")
            row = yield Query(sql_probe, (), "one")
            return bytes(row[0])

        def keys(self, subject: str) -> Plan[tuple[bool, list[tuple[int, bytes]]]]:
            gone = yield Query(sql_forgotten, (subject,), "one")
            if gone is not None:
                return True, []
            rows = yield Query(sql_keys, (subject,), "all")
            return False, [(int(v), bytes(w)) for v, w in rows]

        def add(self, subject: str, version: int, wrapped: bytes, at: str) -> Plan[None]:
            yield Query(sql_add, (subject, version, wrapped, at), "none")

        def forget(self, subject: str, at: str) -> Plan[int]:
            yield Query(sql_mark, (subject, at), "none")
            count: int = yield Query(sql_delete, (subject,), "count")
            return count

        def all_keys(self) -> Plan[list[tuple[str, int, bytes]]]:
            if sql_lock is not None:
                yield Query(sql_lock, (), "none")
            rows = yield Query(sql_all, (), "all")
            return [(str(s), int(v), bytes(w)) for s, v, w in rows]

        def rewrap(self, keys: list[tuple[bytes, str, int]], probe: bytes) -> Plan[None]:
            if keys:
                yield Query(sql_rewrap, keys, "many")
            yield Query(sql_new_probe, (probe,), "none")

    return Table()
