"""Idempotency keys: a write that is repeated (a retry after a lost acknowledgement) is
recorded once.

A caller that cannot tell whether its write committed — the connection dropped after
``COMMIT`` — retries it with the same key. The store remembers each key with a
*fingerprint* of the request and the positions it wrote, in the same transaction as the
events. Writing again with a known key writes nothing and returns the original events; the
same key with a different fingerprint is refused with
:class:`~eventcore.errors.IdempotencyConflict`, because that is a different request.

>>> key = IdempotencyKey("deposit-42", fingerprint="sha256:ab12")
>>> key.key, key.fingerprint
('deposit-42', 'sha256:ab12')
>>> idempotency_key("deposit-42", "sha256:ab12") == key
True

Keys are kept until deleted (``forget_idempotency_keys`` on the SQL stores).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from eventcore.errors import ValidationError
from eventcore.events import RecordedEvent

__all__ = [
    "MAX_KEY_LENGTH",
    "IdempotencyKey",
    "RecordedWrite",
    "append_key",
    "command_fingerprint",
    "command_key",
    "fingerprint",
    "idempotency_key",
]

MAX_KEY_LENGTH: Final = 255

_ADDRESS: Final = re.compile(r" at 0x[0-9A-Fa-f]+")


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A key and the fingerprint of the request it stands for."""

    key: str
    fingerprint: str

    def __post_init__(self) -> None:
        _check_text("idempotency key", self.key)
        _check_text("idempotency fingerprint", self.fingerprint)


@dataclass(frozen=True, slots=True)
class RecordedWrite:
    """What a store remembers of a write made with an idempotency key."""

    key: str
    fingerprint: str
    events: tuple[RecordedEvent, ...]
    recorded_at: datetime | None = None


def idempotency_key(key: object, fingerprint_if_plain: str) -> IdempotencyKey:
    """``key`` as an :class:`IdempotencyKey`; a plain ``str`` gets ``fingerprint_if_plain``."""
    if isinstance(key, IdempotencyKey):
        return key
    if isinstance(key, str):
        return IdempotencyKey(key, fingerprint_if_plain)
    raise ValidationError(
        f"idempotency_key must be a str or an IdempotencyKey, got {type(key).__name__} {key!r}"
    )


def append_key(given: str | IdempotencyKey, pending: Iterable[Any]) -> IdempotencyKey:
    """The key of one append: an :class:`IdempotencyKey` as given, or a plain ``str``
    fingerprinted by the events it writes (stream, type and data of each)."""
    if isinstance(given, IdempotencyKey):
        return given
    return idempotency_key(
        given, fingerprint((p.stream_id, p.info.type_name, p.data) for p in pending)
    )


def command_key(key: str | IdempotencyKey, command: Any) -> IdempotencyKey:
    """The key of one execution: an :class:`IdempotencyKey` as given, or a plain ``str``
    fingerprinted by the command (its class by module and name, and its fields)."""
    if isinstance(key, IdempotencyKey):
        return key
    return idempotency_key(key, command_fingerprint(command))


def command_fingerprint(command: Any) -> str:
    """A fingerprint of a command that is the same in every process: its class (module and
    qualified name) and its fields, as the event codec encodes them (``repr`` for a field
    type the codec does not know)."""
    cls = type(command)
    fields = {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
    try:
        from eventcore.codec import compile_codec

        encoded: Any = compile_codec(cls).encode(command)
    except Exception:  # a field type the codec does not handle: fall back to the reprs
        encoded = {name: _ADDRESS.sub("", repr(value)) for name, value in fields.items()}
    return fingerprint([f"{cls.__module__}.{cls.__qualname__}", encoded])


def fingerprint(parts: Iterable[Any]) -> str:
    """A stable fingerprint (``sha256:...``) of JSON-ready parts."""
    text = json.dumps(
        list(parts), separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str
    )
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"an {name} must be a non-empty str of at most {MAX_KEY_LENGTH} characters, got "
            f"{value!r}"
        )
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValidationError(
            f"an {name} cannot hold NUL or lone surrogates (no store can keep them): {value!r}"
        )
