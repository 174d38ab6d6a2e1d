"""Pluggable serializers: how an event class becomes stored JSON data, and back.

A :class:`Serializer` says which event classes it handles, what their stored fields are and
gives one :class:`EventCodec` per class. Every store encodes and decodes through the
serializer of its event-type registry (:class:`~eventcore.EventTypes`), so one choice
covers the memory, SQLite and PostgreSQL stores and their async faces alike.

- :class:`JsonSerializer` — the default, standard library only: frozen dataclasses through
  :mod:`eventcore.codec`.
- :class:`~eventcore.serializers.pydantic_models.PydanticSerializer` — frozen Pydantic v2
  models (``pip install eventcore[pydantic]``).
- :class:`~eventcore.serializers.msgspec_structs.MsgspecSerializer` — frozen msgspec
  ``Struct`` s (``pip install eventcore[msgspec]``).

Without a serializer given, each class is handled by the serializer of its kind (a dataclass
by :class:`JsonSerializer`, a Pydantic model by the Pydantic adapter, a ``Struct`` by the
msgspec adapter); the adapters are imported only when such a class is seen, so the core
needs none of those packages. The stored form is always JSON, so the stores, upcasters and
encryption see the same data whichever serializer wrote it.

>>> from dataclasses import dataclass
>>> from eventcore import StreamId
>>> @dataclass(frozen=True)
... class Opened:
...     account: StreamId
...     owner: str
>>> json = JsonSerializer()
>>> json.accepts(Opened), json.fields(Opened)
(True, ('account', 'owner'))
>>> codec = json.codec(Opened)
>>> codec.encode(Opened(StreamId("account-1"), "Ada")) == {'account': 'account-1', 'owner': 'Ada'}
True
>>> codec.decode({'account': 'account-1', 'owner': 'Ada'})
Opened(account=StreamId('account-1'), owner='Ada')
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Protocol, runtime_checkable

from eventcore.codec import compile_codec
from eventcore.errors import DefinitionError

__all__ = ["EventCodec", "JsonSerializer", "Serializer", "serializer_for"]


@runtime_checkable
class EventCodec(Protocol):
    """Encodes instances of one event class to JSON-ready data and decodes them back.

    ``encode`` raises :class:`~eventcore.errors.SerializationError` for a value it cannot
    store (nothing is written then); ``decode`` raises
    :class:`~eventcore.errors.DeserializationError` for stored data that does not fit the
    class. ``shareable`` says decoded instances hold nothing mutable, so one instance may be
    handed to every reader (when unsure, ``False``: readers then get fresh copies).
    """

    @property
    def cls(self) -> type: ...

    @property
    def shareable(self) -> bool: ...

    def encode(self, obj: object) -> dict[str, Any]: ...

    def decode(self, data: object) -> Any: ...


@runtime_checkable
class Serializer(Protocol):
    """Turns event classes of one kind into codecs.

    ``fields`` names the stored fields of a class (its stream field is found among them by
    its ``StreamId`` type hint) and raises :class:`~eventcore.errors.DefinitionError` for a
    class it cannot store (not frozen, an unsupported field type).
    """

    @property
    def name(self) -> str: ...

    def accepts(self, cls: type) -> bool: ...

    def fields(self, cls: type) -> tuple[str, ...]: ...

    def codec(self, cls: type) -> EventCodec: ...


@dataclasses.dataclass(frozen=True, slots=True)
class JsonSerializer:
    """The default: frozen dataclasses to JSON with :mod:`eventcore.codec` (no dependency)."""

    name: str = "json"

    def accepts(self, cls: type) -> bool:
        return isinstance(cls, type) and dataclasses.is_dataclass(cls)

    def fields(self, cls: type) -> tuple[str, ...]:
        if not isinstance(cls, type):
            raise DefinitionError(f"{cls!r} is not a class; events are frozen dataclass instances")
        if not dataclasses.is_dataclass(cls):
            raise DefinitionError(
                f"{cls.__name__} is not a dataclass; declare events as @dataclass(frozen=True)"
                " (or as a frozen Pydantic model or msgspec Struct: see eventcore.serializers)"
            )
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen:
            raise DefinitionError(
                f"{cls.__name__} is not frozen; events are facts and must be immutable: "
                "use @dataclass(frozen=True)"
            )
        return tuple(f.name for f in dataclasses.fields(cls))

    def codec(self, cls: type) -> EventCodec:
        return compile_codec(cls)


def _is_subclass(cls: object, module: str, attr: str) -> bool:
    """Whether ``cls`` subclasses ``module.attr``, without importing ``module`` (a class of
    that kind exists only once its library was imported)."""
    mod = sys.modules.get(module)
    base = getattr(mod, attr, None) if mod is not None else None
    return isinstance(cls, type) and isinstance(base, type) and issubclass(cls, base)


def serializer_for(cls: object) -> Serializer:
    """The serializer of ``cls``'s kind: a Pydantic model's, a msgspec ``Struct``'s, or
    :class:`JsonSerializer` (which explains what is wrong with anything else).

    >>> serializer_for(int).name
    'json'
    """
    if _is_subclass(cls, "pydantic", "BaseModel"):
        from eventcore.serializers.pydantic_models import PydanticSerializer

        return PydanticSerializer()
    if _is_subclass(cls, "msgspec", "Struct"):
        from eventcore.serializers.msgspec_structs import MsgspecSerializer

        return MsgspecSerializer()
    return _JSON


_JSON = JsonSerializer()
