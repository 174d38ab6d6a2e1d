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
# Characters no stream id, prefix or pattern may hold: NUL (PostgreSQL cannot store it in
# text, and SQLite's GLOB and C strings stop at it) and lone surrogates (not valid text).
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
# Characters no stream id may hold: the pattern syntax, and the unstorable ones.
_FORBIDDEN: Final = re.compile("[*?\\[\\]\x00\ud800-\udfff]")


def _unstorable(what: str, value: str) -> str | None:
    """The complaint about a character no store can keep in ``value``, or None."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return None
    ch = bad.group()
    if ch == "\x00":
        return (
            f"{what} {value!r} contains the NUL character '\\x00' at position {bad.start()}, "
            "which no store can keep (PostgreSQL refuses it in text); remove it"
        )
    return (
        f"{what} {value!r} contains the lone surrogate {ch!r}, which is not valid Unicode "
        "text; remove it"
    )


class StreamId(str):
    """The id of one stream: trimmed, 1–255 characters, without ``* ? [ ]``.

    Anything else is allowed (``/``, ``:``, spaces, unicode); it carries no hierarchy.
    Refused too: what no store can keep — the NUL character and lone surrogates.

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
            raise InvalidStreamId(_unstorable("stream id", text) or f"stream id {text!r}")
        return str.__new__(cls, text)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: object) -> object:
        """Lets a Pydantic v2 model declare ``StreamId`` fields (``eventcore[pydantic]``)."""
        from eventcore.serializers.pydantic_models import stream_id_schema

        return stream_id_schema()

    def __repr__(self) -> str:
        return f"StreamId({str.__repr__(self)})"

    def __reduce__(self) -> tuple[type[StreamId], tuple[str]]:
        return (StreamId, (str(self),))


trusted_stream_id: Callable[[str], StreamId] = functools.partial(str.__new__, StreamId)
"""Wrap a value validated before (read back from a store) as a ``StreamId`` without checking
it again: one C call, on the hot paths of reading."""

_VALID_ID: Final = re.compile(
    "(?!\\s)[^*?\\[\\]\x00\ud800-\udfff]{1,255}(?<!\\s)", re.DOTALL
).fullmatch
"""Exactly the texts ``StreamId`` accepts unchanged: 1 to ``MAX_STREAM_ID_LENGTH`` (255)
characters, none reserved or unstorable, no space at either end (``\\s`` is
``str.isspace``, which ``str.strip`` removes)."""


def stored_stream_id(value: object) -> StreamId | None:
    """``value`` read back from a store as a ``StreamId``, or None unless ``StreamId(value)``
    would accept it unchanged: the check of :class:`StreamId` in one regular expression.

    >>> stored_stream_id("order-1"), stored_stream_id(" order-1"), stored_stream_id(None)
    (StreamId('order-1'), None, None)
    """
    if type(value) is not str or _VALID_ID(value) is None:
        return None
    return trusted_stream_id(value)


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
        problem = _unstorable("stream prefix", value)
        if problem is not None:
            raise InvalidStreamSelector(problem)
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
    """A glob matched against the *whole* stream id, the same way by every store.

    The grammar (anything else is refused with :class:`~eventcore.errors.InvalidStreamSelector`)::

        pattern := part+
        part    := "*"            any run of characters, "/" included (also none)
                 | "?"            exactly one character
                 | "[" ["!"] body "]"   one character of the class ("!": not of it)
                 | any other character except "]"   itself
        body    := ["-"] item+ ["-"]  |  "-"
        item    := c | c "-" c    a character, or a range of code points (low <= high)
        c       := any character except "]" and "-"

    So a literal ``-`` in a class comes first or last (``[-a]``, ``[a-]``), and every other
    ``-`` joins the two characters of one range: ``[a-c-e]`` or ``[--a]`` is refused as
    ambiguous. ``^``, ``\\``, ``[`` and ``!`` (after the first place) are ordinary characters
    in a class; ranges compare code points. No part of a pattern may hold NUL or a lone
    surrogate.

    >>> p = StreamPattern("order-[0-9]*")
    >>> p.matches("order-42"), p.matches("order-x"), p.matches("my-order-1")
    (True, False, False)
    >>> StreamPattern("[a-c-e]*")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eventcore.errors.InvalidStreamSelector: stream pattern '[a-c-e]*' has an ambiguous '-' ...
    """

    __slots__ = ()

    def __new__(cls, value: str) -> StreamPattern:
        if isinstance(value, StreamPattern):
            return value
        if not isinstance(value, str) or not value:
            raise InvalidStreamSelector(f"stream pattern must be a non-empty str, got {value!r}")
        problem = _unstorable("stream pattern", value)
        if problem is not None:
            raise InvalidStreamSelector(problem)
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
            _class_spans(pattern, i, body)  # raises on an empty or ambiguous class
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


def _class_spans(pattern: str, at: int, text: str) -> tuple[bool, list[tuple[str, str]]]:
    """Read one class body (``text``, from ``pattern[at]``) by the grammar of
    :class:`StreamPattern`: whether it is negated, and its ``(low, high)`` spans."""
    negate = text.startswith("!")
    body = text[1:] if negate else text
    if not body:
        raise InvalidStreamSelector(
            f"stream pattern {pattern!r} has an empty character class at position {at}; "
            "put at least one character between '[' and ']'"
        )
    spans: list[tuple[str, str]] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "-":
            if (i == 0 or i == n - 1) and not (i == 0 and n > 1 and body[1] == "-"):
                spans.append(("-", "-"))
                i += 1
                continue
            raise InvalidStreamSelector(
                f"stream pattern {pattern!r} has an ambiguous '-' in the character class at "
                f"position {at}: a '-' either joins two characters into a range ([a-e]) or "
                "stands for itself as the first or last character of the class ([-ae], "
                "[ae-]); write the class one of those ways"
            )
        if i + 2 < n and body[i + 1] == "-":
            high = body[i + 2]
            if high == "-":
                raise InvalidStreamSelector(
                    f"stream pattern {pattern!r} has a range ending in '-' in the character "
                    f"class at position {at}; put a literal '-' first or last in the class"
                )
            if ord(high) < ord(ch):
                raise InvalidStreamSelector(
                    f"stream pattern {pattern!r} has an invalid character class at position "
                    f"{at}: the range {ch}-{high} is reversed; write it {high}-{ch}"
                )
            spans.append((ch, high))
            i += 3
        else:
            spans.append((ch, ch))
            i += 1
    return negate, spans


def _regex_part(kind: str, text: str) -> str:
    if kind == "literal":
        return re.escape(text)
    if kind == "star":
        return ".*"
    if kind == "one":
        return "."
    negate, spans = _class_spans(text, 0, text)
    body = "".join(
        re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in spans
    )
    return f"[{'^' if negate else ''}{body}]"


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: StreamPattern) -> re.Pattern[str]:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        compiled = re.compile(pattern.to_regex(), re.DOTALL)
        if len(_CACHE) < 1024:
            _CACHE[pattern] = compiled
    return compiled
