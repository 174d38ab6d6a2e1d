"""Sealing personal fields: the codec wrapper an :class:`Encryption` gives each event class.

The stored payload keeps the fields that are not personal (the stream and the subject among
them) in plaintext and replaces the personal ones by one ``"$sealed"`` entry::

    {"customer": "customer-7", "$sealed": {"s": "customer-7", "k": 1, "f": ["name", "email"],
                                            "n": "<nonce>", "c": "<ciphertext and tag>"}}

``s`` is the subject, ``k`` its key version, ``f`` the names of the sealed fields. The
AES-GCM associated data binds the ciphertext to the event type, the schema version, the
header and every plaintext field, so altering any of them fails the tag check
(:class:`~eventcore.errors.DeserializationError`). Once the subject's keys are gone, the
event reads back as a :class:`Forgotten` placeholder.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from eventcore.crypto import cipher
from eventcore.crypto.keys import KeyStore, check_subject
from eventcore.errors import ConfigurationError, DeserializationError, SerializationError
from eventcore.events import EventInfo, loads_json
from eventcore.frozen import freeze_json
from eventcore.serializers import EventCodec

__all__ = ["SEALED", "Encryption", "Forgotten", "SealedCodec"]

SEALED: Final = "$sealed"
"""The payload key of the sealed part (no field name can start with ``$``)."""


@dataclass(frozen=True, slots=True, repr=False)
class Forgotten:
    """What an event of a forgotten data subject reads back as.

    The record around it (type, stream, positions, ids, time, metadata) is intact; ``kept``
    holds the fields that were never personal, as stored (JSON values), and ``forgotten``
    names the personal fields that are gone for good. Commands and projections that match on
    the event's class skip it; code that wants to say what was forgotten matches on this.

    >>> gone = Forgotten("CustomerRegistered", "c-7", ("name", "email"), {"customer": "c-7"})
    >>> gone
    Forgotten(event_type='CustomerRegistered', subject='c-7', forgotten=('name', 'email'), ...)
    >>> gone.kept
    {'customer': 'c-7'}
    """

    event_type: str
    subject: str
    forgotten: tuple[str, ...]
    kept: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Forgotten(event_type={self.event_type!r}, subject={self.subject!r}, "
            f"forgotten={self.forgotten!r}, ...)"
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "kept", freeze_json(dict(self.kept)))
        object.__setattr__(self, "forgotten", tuple(self.forgotten))


class Encryption:
    """Encrypt events' personal fields per data subject, with keys from ``keys``.

    Give it to the store's registry: ``events=EventTypes([...], encryption=Encryption(keys))``
    (any store, sync or async). A class declares its personal data with
    ``@event(subject=..., personal=...)``; with ``all_events=True`` every other class is
    sealed too, its subject being its stream (every field but the stream is sealed).

    Refuses to start without the ``cryptography`` package or without a key store
    (:class:`~eventcore.errors.ConfigurationError`).

    >>> from eventcore.crypto import InMemoryKeyStore
    >>> Encryption(InMemoryKeyStore())
    Encryption(InMemoryKeyStore(0 subjects with keys, 0 forgotten), all_events=False)
    >>> Encryption(None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eventcore.errors.ConfigurationError: Encryption needs a key store ...
    """

    def __init__(self, keys: KeyStore, *, all_events: bool = False) -> None:
        cipher.require()
        if not isinstance(keys, KeyStore):
            raise ConfigurationError(
                f"Encryption needs a key store (InMemoryKeyStore, SqliteKeyStore, "
                f"PostgresKeyStore or your own KeyStore), got {type(keys).__name__}; without "
                "one nothing could be encrypted, and EventCore never falls back to plaintext"
            )
        self.keys = keys
        self.all_events = all_events

    def __repr__(self) -> str:
        return f"Encryption({self.keys!r}, all_events={self.all_events})"

    def seal(self, info: EventInfo) -> SealedCodec:
        """The codec that seals ``info``'s personal fields (every field but the stream and
        the subject when it declares none)."""
        return SealedCodec(info, self.keys)

    def forget(self, subject: str) -> int:
        """Crypto-shred ``subject``: destroy its keys (see :meth:`KeyStore.forget`)."""
        return self.keys.forget(subject)


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def _unb64(text: object) -> bytes:
    if type(text) is not str:
        raise ValueError("not base64 text")
    return binascii.a2b_base64(text, strict_mode=True)


_CANONICAL: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _canonical(value: object) -> bytes:
    return _CANONICAL.encode(value).encode("utf-8")


class SealedCodec:
    """An event class's codec that seals its personal fields (see the module docstring)."""

    shareable: Final = False  # every read decrypts afresh: a shredded key takes effect

    def __init__(self, info: EventInfo, keys: KeyStore) -> None:
        self.cls = info.cls
        self._inner: EventCodec = info.codec
        self._keys = keys
        self._type = info.type_name
        self._version = info.version
        self._subject_field = info.subject_field or info.stream_field
        self._personal = info.personal or None  # None: every field but stream and subject
        self._kept_always = {info.stream_field, self._subject_field}

    def __repr__(self) -> str:
        return f"SealedCodec({self._type})"

    def _aad(self, version: int, subject: str, key: int, names: list[str], kept: object) -> bytes:
        return _canonical(["eventcore-sealed-v1", self._type, version, subject, key, names, kept])

    def encode(self, obj: object) -> dict[str, Any]:
        data = self._inner.encode(obj)
        subject = check_subject(data.get(self._subject_field))
        names = (
            list(self._personal)
            if self._personal is not None
            else [n for n in data if n not in self._kept_always]
        )
        secret = {n: data.pop(n) for n in names if n in data}
        key = self._keys.current_key(subject)
        aad = self._aad(self._version, subject, key.version, names, data)
        try:
            plaintext = _canonical(secret)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"cannot encode {self._type}: {exc}. Nothing was written."
            ) from None
        nonce, sealed = cipher.encrypt(key.material, plaintext, aad)
        data[SEALED] = {"s": subject, "k": key.version, "f": names, "n": _b64(nonce)}
        data[SEALED]["c"] = _b64(sealed)
        return data

    def unseal(self, data: object, version: int) -> dict[str, Any] | Forgotten:
        """The plaintext payload of stored ``data`` (of schema ``version``), or the
        placeholder of a forgotten subject."""
        if type(data) is not dict or SEALED not in data:
            raise DeserializationError(
                f"cannot decode {self._type}: the stored data is not encrypted, but the class "
                "holds personal data; it was not written by an encrypting store (EventCore "
                "does not read personal data stored in plaintext)"
            )
        kept = {k: v for k, v in data.items() if k != SEALED}
        head = data[SEALED]
        try:
            subject, key_version, names = head["s"], head["k"], head["f"]
            nonce, sealed = _unb64(head["n"]), _unb64(head["c"])
            if (
                not isinstance(subject, str)
                or type(key_version) is not int
                or not isinstance(names, list)
                or not all(isinstance(n, str) for n in names)
            ):
                raise ValueError("bad header")
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise DeserializationError(
                f"cannot decode {self._type}: its sealed part is corrupt (an altered or "
                "truncated row)"
            ) from None
        key = self._keys.key(subject, key_version)
        if key is None:
            return Forgotten(self._type, subject, tuple(names), kept)
        aad = self._aad(version, subject, key_version, names, kept)
        try:
            secret = loads_json(cipher.decrypt(key.material, nonce, sealed, aad))
        except cipher.AuthenticationFailed:
            raise DeserializationError(
                f"cannot decode {self._type}: the encrypted data failed its integrity check "
                "(the ciphertext, its header or a plaintext field was altered, or the key is "
                "not the one that encrypted it)"
            ) from None
        if not isinstance(secret, dict) or sorted(secret) != sorted(n for n in names):
            raise DeserializationError(
                f"cannot decode {self._type}: the decrypted fields do not match the header"
            )
        kept.update(secret)
        return kept

    def decode(self, data: object) -> Any:
        plain = self.unseal(data, self._version)
        if isinstance(plain, Forgotten):
            return plain
        return self._inner.decode(plain)

    def decode_upcast(
        self, data: object, version: int, upcast: Callable[[dict[str, Any]], Any]
    ) -> Any:
        """Decode data of an older schema: unseal, upcast the plaintext, decode."""
        plain = self.unseal(data, version)
        if isinstance(plain, Forgotten):
            return plain
        return self._inner.decode(upcast(plain))
