"""Events as frozen Pydantic v2 models (``pip install eventcore[pydantic]``).

>>> from pydantic import BaseModel, ConfigDict
>>> from eventcore import StreamId
>>> class Opened(BaseModel):
...     model_config = ConfigDict(frozen=True)
...     account: StreamId
...     owner: str
>>> codec = PydanticSerializer().codec(Opened)
>>> codec.encode(Opened(account=StreamId("account-1"), owner="Ada"))
{'account': 'account-1', 'owner': 'Ada'}
>>> codec.decode({'account': 'account-1', 'owner': 'Ada'})
Opened(account=StreamId('account-1'), owner='Ada')

Stored data is ``model_dump(mode="json")``; it is read back with ``model_validate``, so
validators run on every read (an invalid stored value raises
:class:`~eventcore.errors.DeserializationError`). ``StreamId`` fields work in models as is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from eventcore.errors import (
    ConfigurationError,
    DefinitionError,
    DeserializationError,
    SerializationError,
)
from eventcore.types import StreamId

__all__ = ["PydanticCodec", "PydanticSerializer", "stream_id_schema"]


def _pydantic() -> Any:
    try:
        import pydantic
    except ImportError:
        raise ConfigurationError(
            "Pydantic events need Pydantic v2: pip install eventcore[pydantic]"
        ) from None
    if not pydantic.VERSION.startswith("2."):
        raise ConfigurationError(
            f"Pydantic {pydantic.VERSION} is installed; EventCore needs Pydantic v2: "
            "pip install eventcore[pydantic]"
        )
    return pydantic


def stream_id_schema() -> Any:
    """The Pydantic core schema of :class:`~eventcore.StreamId`: validated as a stream id,
    stored as its text (``StreamId.__get_pydantic_core_schema__`` returns it)."""
    from pydantic_core import core_schema

    return core_schema.no_info_after_validator_function(
        StreamId,
        core_schema.str_schema(),
        serialization=core_schema.plain_serializer_function_ser_schema(str),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class PydanticCodec:
    """One model class's codec."""

    cls: type
    shareable: bool = False

    def encode(self, obj: object) -> dict[str, Any]:
        _pydantic()
        from pydantic_core import PydanticSerializationError

        name = self.cls.__name__
        if not isinstance(obj, self.cls):
            raise SerializationError(
                f"cannot encode {name}: expected {name}, got {type(obj).__name__}. "
                "Nothing was written."
            )
        try:
            data: dict[str, Any] = obj.model_dump(mode="json")  # type: ignore[attr-defined]
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            raise SerializationError(
                f"cannot encode {name}: {exc}. Give the field a type Pydantic can write as "
                "JSON. Nothing was written."
            ) from None
        return data

    def decode(self, data: object) -> Any:
        pydantic = _pydantic()
        try:
            return self.cls.model_validate(data)  # type: ignore[attr-defined]
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(model)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise DeserializationError(f"cannot decode {self.cls.__name__}: {problems}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class PydanticSerializer:
    """Frozen Pydantic v2 models (``model_config = ConfigDict(frozen=True)``) as events."""

    name: str = "pydantic"

    def __post_init__(self) -> None:
        _pydantic()

    def accepts(self, cls: type) -> bool:
        return isinstance(cls, type) and issubclass(cls, _pydantic().BaseModel)

    def fields(self, cls: type) -> tuple[str, ...]:
        if not self.accepts(cls):
            raise DefinitionError(f"{cls!r} is not a Pydantic model (a BaseModel subclass)")
        if not cls.model_config.get("frozen"):  # type: ignore[attr-defined]
            raise DefinitionError(
                f"{cls.__name__} is not frozen; events are facts and must be immutable: "
                "set model_config = ConfigDict(frozen=True)"
            )
        return tuple(cls.model_fields)  # type: ignore[attr-defined]

    def codec(self, cls: type) -> PydanticCodec:
        self.fields(cls)
        return PydanticCodec(cls)
