"""Identifiers: stream ids, prefixes and patterns, validated once at the boundary.

A :class:`StreamId` is a ``str`` that has been checked, so it works anywhere a string does
(dictionary keys, JSON, SQL parameters) and can be trusted inside the library.

>>> StreamId("account-alice")
StreamId('account-alice')
>>> StreamPattern("account-*").matches(StreamId("account-alice"))
True
>>> StreamPrefix("account-").matches(StreamId("my-account-1"))
False
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Final

from eventcore.errors import InvalidStreamId, InvalidStreamSelector

__all__ = ["MAX_STREAM_ID_LENGTH", "StreamId", "StreamPattern", "StreamPrefix"]

MAX_STREAM_ID_LENGTH: Final = 255
_RESERVED: Final = frozenset("*?[]")
# Characters no stream id may hold: the pattern syntax, and lone surrogates (not valid text).
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_FORBIDDEN: Final = re.compile("[*?\\[\\]\ud800-\udfff]")


class StreamId(str):
    """The id of one stream: trimmed, 1–255 characters, without ``* ? [ ]``.

    Anything else is allowed (``/``, ``:``, spaces, unicode); it carries no hierarchy.

    >>> StreamId("  order-42 ")
    StreamId('order-42')
    >>> StreamId("order-*")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eventcore.errors.InvalidStreamId: stream id 'order-*' contains '*', which is reserved ...
    """

    __slots__ = ()

    def __new__(cls, value: str) -> StreamId:
        if isinstance(value, StreamId):
            return value
        if not isinstance(value, str):
            raise InvalidStreamId(f"stream id must be a str, got {type(value).__name__} {value!r}")
        text = value.strip()
        if not text:
            raise InvalidStreamId(
                f"stream id {value!r} is empty after trimming; give it at least one character"
            )
        if len(text) > MAX_STREAM_ID_LENGTH:
            raise InvalidStreamId(
                f"stream id {text[:40]!r}... is {len(text)} characters long; "
                f"the limit is {MAX_STREAM_ID_LENGTH}"
            )
        bad = _FORBIDDEN.search(text)
        if bad is not None:
            ch = bad.group()
            if ch in _RESERVED:
                raise InvalidStreamId(
                    f"stream id {text!r} contains {ch!r}, which is reserved for patterns; "
                    "remove it (StreamPattern selects several streams)"
                )
            raise InvalidStreamId(
                f"stream id {text!r} contains the lone surrogate {ch!r}, which is not "
                "valid Unicode text"
            )
        return str.__new__(cls, text)

    def __repr__(self) -> str:
        return f"StreamId({str.__repr__(self)})"

    def __reduce__(self) -> tuple[type[StreamId], tuple[str]]:
        return (StreamId, (str(self),))


trusted_stream_id: Callable[[str], StreamId] = functools.partial(str.__new__, StreamId)
"""Wrap a value validated before (read back from a store) as a ``StreamId`` without checking
it again: one C call, on the hot paths of reading."""


class StreamPrefix(str):
    """Selects streams whose id *starts with* this text (not a substring match).

    ``%``, ``_`` and ``\\`` are ordinary characters here; stores escape them.

    >>> prefix = StreamPrefix("account-")
    >>> prefix.matches("account-1"), prefix.matches("x-account-1")
    (True, False)
    """

    __slots__ = ()

    def __new__(cls, value: str) -> StreamPrefix:
        if isinstance(value, StreamPrefix):
            return value
        if not isinstance(value, str) or not value:
            raise InvalidStreamSelector(f"stream prefix must be a non-empty str, got {value!r}")
        bad = sorted(_RESERVED.intersection(value))
        if bad:
            raise InvalidStreamSelector(
                f"stream prefix {value!r} contains {bad[0]!r}, which no stream id can contain; "
                "use StreamPattern for wildcards"
            )
        if _SURROGATE.search(value):
            raise InvalidStreamSelector(
                f"stream prefix {value!r} contains a lone surrogate, which is not valid text"
            )
        if len(value) > MAX_STREAM_ID_LENGTH:
            raise InvalidStreamSelector(
                f"stream prefix of {len(value)} characters can match no stream id "
                f"(the limit is {MAX_STREAM_ID_LENGTH})"
            )
        return str.__new__(cls, value)

    def matches(self, stream_id: str) -> bool:
        return stream_id.startswith(self)

    def __repr__(self) -> str:
        return f"StreamPrefix({str.__repr__(self)})"


class StreamPattern(str):
    """A glob matched against the *whole* stream id.

    ``*`` matches any run of characters (``/`` included), ``?`` exactly one character,
    ``[0-9]`` one character of a class and ``[!x]`` one character not in it.

    >>> p = StreamPattern("order-[0-9]*")
    >>> p.matches("order-42"), p.matches("order-x"), p.matches("my-order-1")
    (True, False, False)
    """

    __slots__ = ()

    def __new__(cls, value: str) -> StreamPattern:
        if isinstance(value, StreamPattern):
            return value
        if not isinstance(value, str) or not value:
            raise InvalidStreamSelector(f"stream pattern must be a non-empty str, got {value!r}")
        if _SURROGATE.search(value):
            raise InvalidStreamSelector(
                f"stream pattern {value!r} contains a lone surrogate, which is not valid text"
            )
        _parse(value)  # raises on malformed classes
        return str.__new__(cls, value)

    def matches(self, stream_id: str) -> bool:
        return _compiled(self).fullmatch(stream_id) is not None

    def to_regex(self) -> str:
        """The anchored regular expression this pattern denotes."""
        return "^" + "".join(_regex_part(kind, text) for kind, text in _parse(self)) + "$"

    def parts(self) -> list[tuple[str, str]]:
        """The pattern as ``(kind, text)`` parts: ``literal``, ``star``, ``one``, ``class``.

        For a class, ``text`` is its body with negation written as a leading ``!``.
        Stores use this to translate the pattern into their own syntax.
        """
        return _parse(self)

    def __repr__(self) -> str:
        return f"StreamPattern({str.__repr__(self)})"


def _parse(pattern: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    literal: list[str] = []
    i, n = 0, len(pattern)

    def flush() -> None:
        if literal:
            parts.append(("literal", "".join(literal)))
            literal.clear()

    while i < n:
        ch = pattern[i]
        if ch == "*":
            flush()
            if not parts or parts[-1][0] != "star":
                parts.append(("star", "*"))
            i += 1
        elif ch == "?":
            flush()
            parts.append(("one", "?"))
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise InvalidStreamSelector(
                    f"stream pattern {pattern!r} opens a character class at position {i} "
                    "that is never closed; add ']'"
                )
            body = pattern[i + 1 : end]
            if body in ("", "!"):
                raise InvalidStreamSelector(
                    f"stream pattern {pattern!r} has an empty character class at position {i}"
                )
            try:
                re.compile(_regex_part("class", body))
            except re.error as exc:  # for example a reversed range such as [z-a]
                raise InvalidStreamSelector(
                    f"stream pattern {pattern!r} has an invalid character class at position "
                    f"{i}: {exc}"
                ) from None
            flush()
            parts.append(("class", body))
            i = end + 1
        elif ch == "]":
            raise InvalidStreamSelector(
                f"stream pattern {pattern!r} has ']' at position {i} without a matching '['"
            )
        else:
            literal.append(ch)
            i += 1
    flush()
    return parts


def _regex_part(kind: str, text: str) -> str:
    if kind == "literal":
        return re.escape(text)
    if kind == "star":
        return ".*"
    if kind == "one":
        return "."
    negate = text.startswith("!")
    body = text[1:] if negate else text
    escaped = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
    return f"[{'^' if negate else ''}{escaped}]"


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: StreamPattern) -> re.Pattern[str]:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        compiled = re.compile(pattern.to_regex(), re.DOTALL)
        if len(_CACHE) < 1024:
            _CACHE[pattern] = compiled
    return compiled
