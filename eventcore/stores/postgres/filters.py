"""Stream selectors in PostgreSQL syntax: prefixes as escaped ``LIKE`` patterns, glob
patterns as anchored, escaped regular expressions (for ``~``). Both are passed as parameters.
"""

from __future__ import annotations

from eventcore.types import StreamPattern, StreamPrefix

__all__ = ["like_prefix", "pattern_regex"]


def like_prefix(prefix: StreamPrefix) -> str:
    """A LIKE pattern (with ``ESCAPE '\\'``) matching ids that start with ``prefix``.

    >>> like_prefix(StreamPrefix("a_b%c\\\\"))
    'a\\\\_b\\\\%c\\\\\\\\%'
    """
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def pattern_regex(pattern: StreamPattern) -> str:
    """An anchored PostgreSQL regular expression (for ``~``) equivalent to ``pattern``.

    >>> pattern_regex(StreamPattern("order-[0-9]*.x?"))
    '^order\\\\-[0-9].*\\\\.x.$'
    """
    out = ["^"]
    for kind, text in pattern.parts():
        if kind == "literal":
            out.append("".join(_escape_regex_char(ch) for ch in text))
        elif kind == "star":
            out.append(".*")
        elif kind == "one":
            out.append(".")
        else:
            negate = text.startswith("!")
            body = text[1:] if negate else text
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[{'^' if negate else ''}{body}]")
    out.append("$")
    return "".join(out)


def _escape_regex_char(ch: str) -> str:
    # In PostgreSQL's advanced regular expressions a backslash before any ASCII character
    # that is not a letter or digit stands for that character.
    if ch.isascii() and not ch.isalnum():
        return "\\" + ch
    return ch
