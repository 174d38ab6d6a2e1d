"""Events as frozen msgspec ``Struct`` s (``pip install eventcore[msgspec]``).

>>> import msgspec
>>> from eventcore import StreamId
>>> class Opened(msgspec.Struct, frozen=True):
...     account: StreamId
...     owner: str
>>> codec = MsgspecSerializer().codec(Opened)
>>> codec.encode(Opened(StreamId("account-1"), "Ada"))
{'account': 'account-1', 'owner': 'Ada'}
>>> codec.decode({'account': 'account-1', 'owner': 'Ada'})
Opened(account=StreamId('account-1'), owner='Ada')

Stored data is ``msgspec.to_builtins(obj)`` (decimals, UUIDs and times as strings); it is
read back with ``msgspec.convert(data, cls, strict=False)``, which checks every field's type.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from eventcore.errors import (
    ConfigurationError,
    DefinitionError,
    DeserializationError,
    SerializationError,
    ValidationError,
)
from eventcore.types import StreamId

__all__ = ["MsgspecCodec", "MsgspecSerializer"]


def _msgspec() -> Any:
    try:
        import msgspec
    except ImportError:
        raise ConfigurationError(
            "msgspec events need msgspec: pip install eventcore[msgspec]"
        ) from None
    return msgspec


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is StreamId and isinstance(value, str):
        try:
            return StreamId(value)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
    raise NotImplementedError(f"msgspec cannot read {kind!r}")


def _enc_hook(value: Any) -> Any:
    if isinstance(value, StreamId):
        return str(value)
    raise NotImplementedError(f"{type(value).__name__} {value!r} is not JSON data")


@dataclasses.dataclass(frozen=True, slots=True)
class MsgspecCodec:
    """One ``Struct`` class's codec."""

    cls: type
    shareable: bool = False

    def encode(self, obj: object) -> dict[str, Any]:
        msgspec = _msgspec()
        name = self.cls.__name__
        if not isinstance(obj, self.cls):
            raise SerializationError(
                f"cannot encode {name}: expected {name}, got {type(obj).__name__}. "
                "Nothing was written."
            )
        try:
            data = msgspec.to_builtins(obj, enc_hook=_enc_hook, str_keys=True)
        except (TypeError, NotImplementedError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"cannot encode {name}: {exc}. Give the field a type msgspec can write as "
                "JSON. Nothing was written."
            ) from None
        if not isinstance(data, dict):  # array_like=True structs
            raise SerializationError(
                f"cannot encode {name}: it encodes as {type(data).__name__}, not an object; "
                "do not use array_like=True for events. Nothing was written."
            )
        return data

    def decode(self, data: object) -> Any:
        msgspec = _msgspec()
        try:
            return msgspec.convert(data, self.cls, strict=False, dec_hook=_dec_hook)
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            raise DeserializationError(f"cannot decode {self.cls.__name__}: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class MsgspecSerializer:
    """Frozen msgspec Structs (``class E(msgspec.Struct, frozen=True)``) as events."""

    name: str = "msgspec"

    def __post_init__(self) -> None:
        _msgspec()

    def accepts(self, cls: type) -> bool:
        return isinstance(cls, type) and issubclass(cls, _msgspec().Struct)

    def fields(self, cls: type) -> tuple[str, ...]:
        if not self.accepts(cls):
            raise DefinitionError(f"{cls!r} is not a msgspec Struct")
        if not cls.__struct_config__.frozen:  # type: ignore[attr-defined]
            raise DefinitionError(
                f"{cls.__name__} is not frozen; events are facts and must be immutable: "
                f"declare it as class {cls.__name__}(msgspec.Struct, frozen=True)"
            )
        return tuple(cls.__struct_fields__)  # type: ignore[attr-defined]

    def codec(self, cls: type) -> MsgspecCodec:
        self.fields(cls)
        return MsgspecCodec(cls)
