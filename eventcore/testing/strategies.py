"""Hypothesis strategies for stream ids, selectors and events (needs ``hypothesis``).

:func:`events` builds instances of any event dataclass from its type hints, with values
every store can round-trip:

>>> from dataclasses import dataclass
>>> from eventcore import StreamId
>>> @dataclass(frozen=True)
... class Deposited:
...     account: StreamId
...     amount: int
>>> strategy = events(Deposited, account=stream_ids(prefix="account-"))
>>> from hypothesis import find, settings
>>> found = find(strategy, lambda e: e.amount > 10, settings=settings(database=None))
>>> found.account.startswith("account-"), found.amount
(True, 11)
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, TypeVar, Union
from uuid import UUID

from hypothesis import strategies as st

from eventcore.codec import type_hints
from eventcore.errors import ConfigurationError, DefinitionError
from eventcore.events import event_info
from eventcore.types import MAX_STREAM_ID_LENGTH, StreamId, StreamPattern, StreamPrefix

__all__ = [
    "event_histories",
    "events",
    "from_hint",
    "stream_ids",
    "stream_patterns",
    "stream_prefixes",
    "text",
]

T = TypeVar("T")

_RESERVED = "*?[]"


def text(*, min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    """Unicode text any store can keep: encodable as UTF-8, without NUL (PostgreSQL JSON
    cannot hold ``\\u0000``)."""
    return st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"),
        min_size=min_size,
        max_size=max_size,
    )


def _id_characters(ascii_only: bool) -> st.SearchStrategy[str]:
    if ascii_only:
        return st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_:/.@")
    return st.characters(
        codec="utf-8", exclude_characters=_RESERVED, exclude_categories=("Cc", "Cs")
    )


def stream_ids(
    prefix: str | None = None, *, max_size: int = 24, ascii_only: bool = False
) -> st.SearchStrategy[StreamId]:
    """Valid stream ids, optionally all starting with ``prefix``.

    Ids are trimmed, 1 to ``max_size`` characters after the prefix, and free of ``* ? [ ]``
    and control characters; ``ascii_only`` keeps them readable in failure reports.
    """
    head = "" if prefix is None else str(prefix)
    if head and (head.strip() != head or any(ch in _RESERVED for ch in head)):
        raise ConfigurationError(f"prefix {head!r} cannot start a stream id")
    room = min(max_size, MAX_STREAM_ID_LENGTH - len(head))
    if room < 1:
        raise ConfigurationError(f"prefix {head!r} leaves no room for a stream id")
    return (
        st.text(_id_characters(ascii_only), min_size=1, max_size=room)
        .map(lambda tail: head + tail)
        .filter(lambda value: value.strip() == value and value != "")
        .map(StreamId)
    )


def stream_prefixes(
    *, max_size: int = 12, ascii_only: bool = False
) -> st.SearchStrategy[StreamPrefix]:
    """Valid stream prefixes (non-empty, no pattern characters)."""
    return st.text(_id_characters(ascii_only), min_size=1, max_size=max_size).map(StreamPrefix)


_CLASSES = ("0-9", "a-z", "abc", "!0-9", "!a", "xyz-")


def stream_patterns(*, max_parts: int = 5) -> st.SearchStrategy[StreamPattern]:
    """Valid glob patterns mixing literals, ``*``, ``?`` and character classes."""
    part = st.one_of(
        st.text(_id_characters(ascii_only=True), min_size=1, max_size=6),
        st.just("*"),
        st.just("?"),
        st.sampled_from(_CLASSES).map(lambda body: f"[{body}]"),
    )
    return st.lists(part, min_size=1, max_size=max_parts).map(
        lambda parts: StreamPattern("".join(parts))
    )


def _aware_datetimes() -> st.SearchStrategy[datetime]:
    offsets = st.one_of(
        st.just(UTC),
        st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))),
    )
    return st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
    )


_SIMPLE: dict[Any, st.SearchStrategy[Any]] = {
    bool: st.booleans(),
    int: st.integers(-(2**63), 2**63 - 1),
    float: st.floats(allow_nan=False, allow_infinity=False),
    Decimal: st.decimals(allow_nan=False, allow_infinity=False, places=None),
    UUID: st.uuids(),
    date: st.dates(),
    type(None): st.none(),
}

_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def from_hint(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field type that the event codec supports."""
    if hint is StreamId:
        return stream_ids()
    if hint is str:
        return text()
    if hint is datetime:
        return _aware_datetimes()
    if hint is None:
        return st.none()
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    if hint is Any or hint is object:
        return _JSON
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _builds(hint, {})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return st.sampled_from(args)
    if origin is Union or origin is types.UnionType:
        return st.one_of(*(from_hint(a) for a in args))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(from_hint(args[0]), max_size=4).map(tuple)
    if origin is tuple and args:
        return st.tuples(*(from_hint(a) for a in args))
    if origin is list:
        return st.lists(from_hint(args[0] if args else Any), max_size=4)
    if origin is dict:
        key, value = args if args else (str, Any)
        return st.dictionaries(from_hint(key), from_hint(value), max_size=4)
    raise DefinitionError(f"no strategy for the type {hint!r}; pass one for that field")


def _builds(cls: type[T], overrides: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[T]:
    hints = type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = set(overrides) - {f.name for f in fields}
    if unknown:
        raise ConfigurationError(f"{cls.__name__} has no fields {sorted(unknown)}")
    kwargs = {
        f.name: overrides[f.name] if f.name in overrides else from_hint(hints[f.name])
        for f in fields
    }
    return st.builds(cls, **kwargs)


def events(cls: type[T], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[T]:
    """Instances of the event class ``cls``, with a strategy per field from its type hint.

    Pass a strategy as a keyword to override one field, for example
    ``events(MoneyDeposited, amount=st.integers(1, 100))``.
    """
    event_info(cls)  # a malformed event class fails here, not inside hypothesis
    return _builds(cls, fields)


def event_histories(
    *classes: type,
    streams: st.SearchStrategy[StreamId] | None = None,
    max_streams: int = 3,
    max_size: int = 12,
) -> st.SearchStrategy[list[Any]]:
    """Lists of events of ``classes`` spread over a few shared streams, so that streams
    get several events each (stream ids come from ``streams``, default :func:`stream_ids`)."""
    if not classes:
        raise ConfigurationError("event_histories() needs at least one event class")
    ids = streams if streams is not None else stream_ids(ascii_only=True)

    def over(pool: list[StreamId]) -> st.SearchStrategy[list[Any]]:
        choice = st.sampled_from(pool)
        each: list[st.SearchStrategy[Any]] = [
            events(c, **{event_info(c).stream_field: choice}) for c in classes
        ]
        return st.lists(st.one_of(*each), max_size=max_size)

    return st.lists(ids, min_size=1, max_size=max_streams, unique=True).flatmap(over)
