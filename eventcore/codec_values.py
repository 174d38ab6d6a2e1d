"""The leaf values of the event codec (:mod:`eventcore.codec`): the converters of ``str``,
``int``, ``float``, ``Decimal``, ``UUID``, ``datetime``, ``date``, ``StreamId`` and ``Any``
JSON, each taking a value and its dotted path, and the two failures they raise (the codec
turns them into ``SerializationError`` / ``DeserializationError``).

>>> encode_decimal(Decimal("2.50"), "price")
'2.50'
>>> check_json({"tags": ["a"]}, "extra")
{'tags': ['a']}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from uuid import UUID

from eventcore.types import StreamId, trusted_stream_id

__all__ = [
    "EXACT",
    "MAX_JSON_DEPTH",
    "Convert",
    "DecodeFailure",
    "EncodeFailure",
    "check_json",
    "check_type",
    "decode_float",
    "decode_stream_id",
    "decoder_of",
    "encode_date",
    "encode_datetime",
    "encode_decimal",
    "encode_float",
    "encode_stream_id",
    "encode_uuid",
    "expect_type",
]

MAX_JSON_DEPTH: Final = 100
"""How deeply lists and objects may nest inside one ``Any`` value or ``Metadata.custom``.
Deeper data is refused on write with :class:`SerializationError` (reading it back would need
more recursion than Python allows everywhere)."""

Convert = Callable[[Any, str], Any]
"""A converter takes a value and its dotted path (for error messages)."""


class EncodeFailure(Exception):
    """A value cannot be encoded; the codec raises it as ``SerializationError``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")


class DecodeFailure(Exception):
    """A stored value cannot be decoded; the codec raises it as ``DeserializationError``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")


EXACT: dict[Any, type] = {str: str, int: int, bool: bool, type(None): type(None)}
"""Hints whose values pass both ways unchanged when their type is exactly the hint."""


def check_type(kind: type | tuple[type, ...], label: str) -> Convert:
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise EncodeFailure(where, f"expected {label}, got {type(value).__name__} {value!r}")
        return value

    return check


def expect_type(kind: type, label: str) -> Convert:
    """A decoder that only checks the stored JSON value has the hinted type (corrupt rows
    fail loudly at read time instead of handing a str to code that expects an int)."""

    def expect(value: Any, where: str) -> Any:
        if type(value) is not kind:
            raise DecodeFailure(where, f"expected {label}, found {value!r}")
        return value

    return expect


def encode_float(value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EncodeFailure(where, f"expected float, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise EncodeFailure(where, f"{value!r} is not a finite number; JSON cannot store it")
    return value


def decode_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodeFailure(where, f"expected a number, got {value!r}")
    return float(value)


def decoder_of(parse: Callable[[Any], Any], label: str) -> Convert:
    def decode(value: Any, where: str) -> Any:
        try:
            return parse(value)
        except (TypeError, ValueError, InvalidOperation, AttributeError):
            raise DecodeFailure(where, f"cannot read {value!r} as {label}") from None

    return decode


def encode_decimal(value: Any, where: str) -> str:
    if not isinstance(value, Decimal):
        raise EncodeFailure(where, f"expected Decimal, got {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise EncodeFailure(where, f"Decimal {str(value)!r} is not a finite number")
    return str(value)


def encode_uuid(value: Any, where: str) -> str:
    if not isinstance(value, UUID):
        raise EncodeFailure(where, f"expected UUID, got {type(value).__name__} {value!r}")
    return str(value)


def encode_datetime(value: Any, where: str) -> str:
    if not isinstance(value, datetime):
        raise EncodeFailure(where, f"expected datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise EncodeFailure(
            where,
            f"datetime {value.isoformat()} is naive; use a timezone-aware value "
            "such as datetime.now(UTC)",
        )
    return value.isoformat()


def encode_date(value: Any, where: str) -> str:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise EncodeFailure(where, f"expected date, got {type(value).__name__} {value!r}")
    return value.isoformat()


def encode_stream_id(value: Any, where: str) -> str:
    if isinstance(value, StreamId):
        return value
    if isinstance(value, str):
        try:
            return StreamId(value)
        except ValueError as exc:
            raise EncodeFailure(where, str(exc)) from None
    raise EncodeFailure(where, f"expected StreamId, got {type(value).__name__} {value!r}")


def decode_stream_id(value: Any, where: str) -> StreamId:
    if not isinstance(value, str):
        raise DecodeFailure(where, f"expected a stream id string, got {value!r}")
    return trusted_stream_id(value)


def check_json(value: Any, where: str, depth: int = 0) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return encode_float(value, where)
    if isinstance(value, (list, tuple, dict)) and depth >= MAX_JSON_DEPTH:
        raise EncodeFailure(
            where,
            f"lists and objects nest deeper than {MAX_JSON_DEPTH} levels; flatten the data "
            "or give it a precise type",
        )
    if isinstance(value, (list, tuple)):
        return [check_json(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise EncodeFailure(where, f"JSON object keys must be str, got {key!r}")
        return {k: check_json(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    raise EncodeFailure(
        where,
        f"{type(value).__name__} {value!r} is not JSON data; give the field a precise type "
        "(for example Decimal or UUID) instead of Any",
    )
