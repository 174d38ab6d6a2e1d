"""A JSON codec for event dataclasses, compiled once per class from its type hints.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Decimal``, ``UUID``,
timezone-aware ``datetime``, ``date``, ``Enum`` subclasses, ``StreamId``, ``Literal``,
``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[K, V]`` (keys ``str``,
``StreamId``, ``int``, ``UUID`` or an Enum), nested frozen-or-not dataclasses, and ``Any``
(JSON values only). Anything else is refused when the class is checked, so a bad field never
reaches the database. Values are checked against the hints when encoding: a wrong value fails
at append time, never at read time.

>>> from dataclasses import dataclass
>>> from decimal import Decimal
>>> @dataclass(frozen=True)
... class Priced:
...     sku: str
...     price: Decimal
>>> codec = compile_codec(Priced)
>>> codec.encode(Priced("tea", Decimal("2.50")))
{'sku': 'tea', 'price': '2.50'}
>>> codec.decode({'sku': 'tea', 'price': '2.50'})
Priced(sku='tea', price=Decimal('2.50'))
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Union
from uuid import UUID

from eventcore.codec_values import (
    EXACT,
    MAX_JSON_DEPTH,
    Convert,
    DecodeFailure,
    EncodeFailure,
    check_json,
    check_type,
    decode_float,
    decode_stream_id,
    decoder_of,
    encode_date,
    encode_datetime,
    encode_decimal,
    encode_float,
    encode_stream_id,
    encode_uuid,
    expect_type,
)
from eventcore.errors import DefinitionError, DeserializationError, SerializationError
from eventcore.types import StreamId, trusted_stream_id

__all__ = ["MAX_JSON_DEPTH", "ClassCodec", "check_json_value", "compile_codec", "type_hints"]


@dataclass(frozen=True, slots=True)
class ClassCodec:
    """Encode an instance of ``cls`` to a JSON-ready dict, and decode it back."""

    cls: type
    _encode: Convert
    _decode: Convert
    shareable: bool = False
    """Decoded instances hold no mutable container (no list, dict, ``Any`` value or
    dataclass that is not frozen, at any depth), so one instance may be handed to every
    reader: none can change what another sees."""

    def encode(self, obj: object) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self._encode(obj, self.cls.__name__)
        except EncodeFailure as exc:
            raise SerializationError(
                f"cannot encode {self.cls.__name__}: {exc}. Nothing was written."
            ) from None
        except RecursionError:
            raise SerializationError(
                f"cannot encode {self.cls.__name__}: its data nests too deeply for Python's "
                "recursion limit; flatten it. Nothing was written."
            ) from None
        return result

    @property
    def unchecked_decode(self) -> Callable[[Any, str], Any]:
        """The decoder without the error translation of :meth:`decode`: ``(data, where)``,
        raising an internal error on bad data. For the stores' row decoder, which catches
        everything and falls back to :meth:`decode` to explain it."""
        return self._decode

    def decode(self, data: object) -> Any:
        try:
            return self._decode(data, self.cls.__name__)
        except DecodeFailure as exc:
            raise DeserializationError(f"cannot decode {self.cls.__name__}: {exc}") from None
        except RecursionError:
            raise DeserializationError(
                f"cannot decode {self.cls.__name__}: the stored data nests too deeply for "
                "Python's recursion limit"
            ) from None


_CODECS: dict[type, ClassCodec] = {}


def compile_codec(cls: type) -> ClassCodec:
    """Build (once) the codec for a dataclass, or raise :class:`DefinitionError`."""
    codec = _CODECS.get(cls)
    if codec is None:
        enc, dec = _dataclass_converters(cls, cls.__name__, stack=())
        codec = ClassCodec(cls, enc, dec, _immutable(cls, ()))
        _CODECS[cls] = codec
    return codec


def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` that also resolves ``StreamId`` written as a string
    annotation in a scope that did not import it (doctests, notebooks)."""
    return typing.get_type_hints(cls, localns={"StreamId": StreamId})


def check_json_value(value: object, path: str = "value") -> None:
    """Raise :class:`SerializationError` unless ``value`` is plain JSON data."""
    try:
        check_json(value, path)
    except EncodeFailure as exc:
        raise SerializationError(f"{exc}. Nothing was written.") from None
    except RecursionError:  # only in an already deep call stack: the depth is checked
        raise SerializationError(
            f"{path}: the data nests too deeply for Python's recursion limit; flatten it. "
            "Nothing was written."
        ) from None


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


def _dataclass_converters(cls: type, path: str, stack: tuple[type, ...]) -> tuple[Convert, Convert]:
    if not dataclasses.is_dataclass(cls):
        raise DefinitionError(f"{path}: {cls.__name__} is not a dataclass")
    if cls in stack:
        raise DefinitionError(
            f"{path}: {cls.__name__} contains itself; recursive event types are not supported"
        )
    try:
        hints = type_hints(cls)
    except Exception as exc:  # NameError for unresolvable forward references, and friends
        raise DefinitionError(
            f"cannot resolve the type hints of {cls.__name__} ({exc}); define the classes it "
            "refers to at module level"
        ) from None
    fields = [f for f in dataclasses.fields(cls) if f.init]
    # Per field: the converters, and the exact type a value may have to skip them (the
    # common case of a plain str, int, bool or stream id: no call, no path text). A value of
    # any other type goes through the converter, which converts it or raises.
    enc_steps: list[tuple[str, type | None, Convert | None]] = []
    DecodeStep = tuple[str, type | None, Callable[[Any], Any] | None, Convert | None]
    dec_steps: list[DecodeStep] = []
    for f in fields:
        hint = hints[f.name]
        enc, dec = _converters(hint, f"{path}.{f.name}", (*stack, cls))
        exact = EXACT.get(hint) if isinstance(hint, type) else None
        enc_steps.append((f.name, StreamId if hint is StreamId else exact, enc))
        wrap = trusted_stream_id if hint is StreamId and dec is not None else None
        dec_steps.append((f.name, str if hint is StreamId else exact, wrap, dec))
    names = tuple(f.name for f in fields)
    enc_plan = tuple(enc_steps)
    dec_plan = tuple((n, e, w, c) for n, e, w, c in dec_steps if c is not None)
    # Only wrapping or converting changes the data: then decode works on a copy.
    copy = any(wrap is not None or exact is None for _, exact, wrap, _ in dec_plan)
    cls_name = cls.__name__
    # A plain dataclass is built the way its generated __init__ would build it (one
    # attribute per field, in field order) without the call, when the data holds exactly
    # its fields: half the cost, on the hot path of every read.
    build_plan = tuple(dec_steps) if _plain_dataclass(cls) else None
    field_count = len(names)
    new = object.__new__

    def encode(obj: Any, where: str) -> dict[str, Any]:
        if type(obj) is not cls and not isinstance(obj, cls):
            raise EncodeFailure(where, f"expected {cls_name}, got {type(obj).__name__}")
        out: dict[str, Any] = {}
        for name, exact, conv in enc_plan:
            value = getattr(obj, name)
            if conv is None or type(value) is exact:
                out[name] = value
            else:
                out[name] = conv(value, f"{where}.{name}")
        return out

    def decode(data: Any, where: str) -> Any:
        if type(data) is not dict:
            raise DecodeFailure(where, f"expected an object, got {type(data).__name__}")
        if build_plan is not None and len(data) == field_count:
            obj = new(cls)
            attrs = obj.__dict__
            try:
                for name, exact, wrap, conv in build_plan:
                    value = data[name]
                    if conv is None or type(value) is exact:
                        attrs[name] = value if wrap is None else wrap(value)
                    else:
                        attrs[name] = conv(value, f"{where}.{name}")
            except KeyError:
                pass  # another field instead of this one: the class call says which
            else:
                return obj
        if copy:
            data = dict(data)
        for name, exact, wrap, conv in dec_plan:
            try:
                value = data[name]
            except KeyError:
                continue  # a default fills it, or the class call below reports it
            if type(value) is exact:
                if wrap is not None:
                    data[name] = wrap(value)
            else:
                data[name] = conv(value, f"{where}.{name}")
        try:
            return cls(**data)
        except TypeError as exc:
            missing = [n for n in names if n not in data]
            extra = [n for n in data if n not in names]
            raise DecodeFailure(
                where,
                f"fields do not match the class (missing {missing}, unexpected {extra}): {exc}",
            ) from None

    return encode, decode


_IMMUTABLE_LEAVES: frozenset[Any] = frozenset(
    {str, int, float, bool, type(None), None, Decimal, UUID, datetime, date, StreamId}
)


def _immutable(hint: Any, stack: tuple[type, ...]) -> bool:
    """Whether every value the codec decodes for ``hint`` is immutable all the way down (a
    hint the codec accepted: anything unknown counts as mutable)."""
    if hint in _IMMUTABLE_LEAVES:
        return True
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return True
    if origin is Literal:
        return True
    if origin is Union or origin is types.UnionType or origin is tuple:
        return all(a is Ellipsis or _immutable(a, stack) for a in typing.get_args(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        params = getattr(hint, "__dataclass_params__", None)
        if params is None or not params.frozen or hint in stack:
            return False
        hints = type_hints(hint)
        return all(_immutable(hints[f.name], (*stack, hint)) for f in dataclasses.fields(hint))
    return False  # list, dict, Any, a bare tuple of Any


def _plain_dataclass(cls: type) -> bool:
    """Whether ``cls(**data)`` only stores each field in the instance's ``__dict__``.

    True when the dataclass wrote ``__init__`` (not the class's author), there is no
    ``__post_init__``, every field is an ``__init__`` argument (no ``InitVar``, no
    ``init=False``), instances have a ``__dict__`` (no ``slots=True``), ``__new__`` is
    object's, and nothing intercepts the assignments (no ``__setattr__`` of its own on a
    class that is not frozen, no data descriptor named like a field). Then decoding may build
    the instance without the call, which costs half as much (the hot path of every read).
    Anything else is built by calling the class.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.init:
        return False
    fields = dataclasses.fields(cls)
    klass: Any = cls  # the class's own special methods, looked at as plain attributes
    init = klass.__init__
    code = getattr(init, "__code__", None)
    return (
        code is not None
        and code.co_filename == "<string>"  # where the dataclass module exec()s its __init__
        and getattr(init, "__qualname__", "") == f"{cls.__qualname__}.__init__"
        and code.co_varnames[: len(fields) + 1] == ("self", *(f.name for f in fields))
        and not hasattr(cls, "__post_init__")
        and klass.__new__ is object.__new__
        and (params.frozen or klass.__setattr__ is object.__setattr__)
        and all(f.init for f in fields)
        and len(fields) == len(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        and all("__slots__" not in vars(base) for base in cls.__mro__[:-1])
        and not any(
            hasattr(type(inspect.getattr_static(cls, f.name, None)), "__set__") for f in fields
        )
    )


_KEY_TYPES = (str, int, UUID)


def _key_converters(hint: Any, path: str) -> tuple[Convert, Convert]:
    if hint is str:
        return check_type(str, "str"), lambda v, w: v
    if hint is StreamId:
        return encode_stream_id, decode_stream_id
    if hint is int:
        return (
            lambda v, w: str(check_type(int, "int")(v, w)),
            decoder_of(int, "an int key"),
        )
    if hint is UUID:
        return encode_uuid, decoder_of(UUID, "a UUID key")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        enc, dec = _enum_converters(hint, path)
        return (lambda v, w: str(enc(v, w))), (lambda v, w: dec(_enum_key(hint, v), w))
    raise DefinitionError(
        f"{path}: dict keys of type {_type_name(hint)} are not supported; use str, StreamId, "
        "int, UUID or an Enum"
    )


def _enum_key(cls: type[enum.Enum], raw: str) -> Any:
    for member in cls:
        if str(member.value) == raw:
            return member.value
    return raw


def _enum_converters(cls: type[enum.Enum], path: str) -> tuple[Convert, Convert]:
    for member in cls:
        if not isinstance(member.value, (str, int)) or isinstance(member.value, bool):
            raise DefinitionError(
                f"{path}: enum {cls.__name__}.{member.name} has value {member.value!r}; "
                "only str and int enum values can be stored"
            )

    def encode(value: Any, where: str) -> Any:
        if not isinstance(value, cls):
            raise EncodeFailure(where, f"expected {cls.__name__}, got {value!r}")
        return value.value

    return encode, decoder_of(cls, cls.__name__)


def _converters(
    hint: Any, path: str, stack: tuple[type, ...]
) -> tuple[Convert | None, Convert | None]:
    """Return (encoder, decoder) for a hint; ``None`` means the value passes unchanged."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return check_json, None
    if hint is type(None) or hint is None:
        return check_type(type(None), "None"), expect_type(type(None), "null")
    if hint is bool:
        return check_type(bool, "bool"), expect_type(bool, "a boolean")
    if hint is StreamId:
        return encode_stream_id, decode_stream_id
    if hint is str:
        return check_type(str, "str"), expect_type(str, "a string")
    if hint is int:
        return check_type(int, "int"), expect_type(int, "an integer")
    if hint is float:
        return encode_float, decode_float
    if hint is Decimal:
        return encode_decimal, decoder_of(Decimal, "Decimal")
    if hint is UUID:
        return encode_uuid, decoder_of(UUID, "UUID")
    if hint is datetime:
        return encode_datetime, decoder_of(datetime.fromisoformat, "datetime")
    if hint is date:
        return encode_date, decoder_of(date.fromisoformat, "date")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_converters(hint, path)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_converters(hint, path, stack)
    if origin is Literal:
        allowed = args

        def check_literal(value: Any, where: str) -> Any:
            if value not in allowed:
                raise EncodeFailure(where, f"{value!r} is not one of {allowed!r}")
            return value

        def decode_literal(value: Any, where: str) -> Any:
            if value not in allowed:
                raise DecodeFailure(where, f"stored {value!r} is not one of {allowed!r}")
            return value

        return check_literal, decode_literal
    if origin is Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        if len(members) != 1 or len(args) != 2:
            raise DefinitionError(
                f"{path}: union {hint!r} is ambiguous in JSON; only 'X | None' is supported"
            )
        enc, dec = _converters(members[0], path, stack)

        def enc_optional(value: Any, where: str) -> Any:
            return None if value is None else (value if enc is None else enc(value, where))

        def dec_optional(value: Any, where: str) -> Any:
            return None if value is None or dec is None else dec(value, where)

        return enc_optional, (dec_optional if dec is not None else None)
    if origin in (list, tuple) or hint in (list, tuple):
        return _sequence_converters(hint, origin or hint, args, path, stack)
    if origin in (dict, Mapping) or hint is dict:
        key_hint, value_hint = args if args else (str, Any)
        kenc, kdec = _key_converters(key_hint, path)
        venc, vdec = _converters(value_hint, f"{path}[]", stack)

        def enc_dict(value: Any, where: str) -> Any:
            if not isinstance(value, Mapping):
                raise EncodeFailure(where, f"expected a dict, got {type(value).__name__}")
            return {
                kenc(k, where): (v if venc is None else venc(v, f"{where}[{k!r}]"))
                for k, v in value.items()
            }

        def dec_dict(value: Any, where: str) -> Any:
            if not isinstance(value, dict):
                raise DecodeFailure(where, f"expected an object, got {value!r}")
            return {
                kdec(k, where): (v if vdec is None else vdec(v, f"{where}[{k!r}]"))
                for k, v in value.items()
            }

        return enc_dict, dec_dict
    raise DefinitionError(
        f"{path}: type {_type_name(hint)} cannot be stored in an event. Supported: str, int, "
        "float, bool, None, Decimal, UUID, datetime, date, Enum, StreamId, Literal, "
        "X | None, list, tuple, dict and nested dataclasses"
    )


def _sequence_converters(
    hint: Any, origin: Any, args: tuple[Any, ...], path: str, stack: tuple[type, ...]
) -> tuple[Convert, Convert]:
    make = tuple if origin is tuple else list
    label = "tuple" if origin is tuple else "list"
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        item_convs = [_converters(a, f"{path}[{i}]", stack) for i, a in enumerate(args)]
        size = len(item_convs)

        def enc_fixed(value: Any, where: str) -> Any:
            if not isinstance(value, (tuple, list)) or len(value) != size:
                raise EncodeFailure(where, f"expected a tuple of {size} items, got {value!r}")
            return [
                v if e is None else e(v, f"{where}[{i}]")
                for i, (v, (e, _)) in enumerate(zip(value, item_convs, strict=True))
            ]

        def dec_fixed(value: Any, where: str) -> Any:
            if not isinstance(value, list) or len(value) != size:
                raise DecodeFailure(where, f"expected {size} items, got {value!r}")
            return tuple(
                v if d is None else d(v, f"{where}[{i}]")
                for i, (v, (_, d)) in enumerate(zip(value, item_convs, strict=True))
            )

        return enc_fixed, dec_fixed
    item_hint = args[0] if args else Any
    ienc, idec = _converters(item_hint, f"{path}[]", stack)

    def enc_seq(value: Any, where: str) -> Any:
        if not isinstance(value, (list, tuple)):
            raise EncodeFailure(where, f"expected a {label}, got {type(value).__name__}")
        if ienc is None:
            return list(value)
        return [ienc(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def dec_seq(value: Any, where: str) -> Any:
        if not isinstance(value, list):
            raise DecodeFailure(where, f"expected a list, got {value!r}")
        if idec is None:
            return make(value)
        return make(idec(v, f"{where}[{i}]") for i, v in enumerate(value))

    return enc_seq, dec_seq
