"""Stream selectors in SQLite ``GLOB`` syntax (case-sensitive, anchored), passed as parameters.

>>> glob(StreamPrefix("order-")), glob(StreamPattern("order-[0-9]*"))
('order-*', 'order-[0-9]*')
"""

from __future__ import annotations

from eventcore.types import StreamPattern, StreamPrefix

__all__ = ["glob"]

StreamSelector = StreamPrefix | StreamPattern


def glob(selector: StreamSelector) -> str:
    """Translate a prefix or pattern into SQLite GLOB syntax (case-sensitive, anchored).

    Stream ids cannot contain ``* ? [ ]``, so a prefix needs no escaping in GLOB; ``%`` and
    ``_`` are ordinary characters there.
    """
    if isinstance(selector, StreamPrefix):
        return f"{selector}*"
    assert isinstance(selector, StreamPattern)
    out = []
    for kind, text in selector.parts():
        if kind == "class":
            out.append(_glob_class(text))
        else:
            out.append(text)
    return "".join(out)


def _glob_class(text: str) -> str:
    """Translate one pattern class (a leading ``!`` negates) into GLOB.

    The body is read as Python's ``re`` reads it (``StreamPattern.matches`` is the reference):
    ``x-y`` is a range unless the ``-`` comes last. The characters it denotes are merged into
    sorted spans and written so that GLOB reads the same set: ``-`` first (always literal
    there) and a ``^`` that would come first moved to the end (first, it would negate).
    """
    negate = text.startswith("!")
    body = text[1:] if negate else text
    spans: list[list[int]] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi, i = ord(body[i]), ord(body[i + 2]), i + 3
        else:
            lo = hi = ord(body[i])
            i += 1
        spans.append([lo, hi])
    merged: list[list[int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        elif lo <= hi:
            merged.append([lo, hi])
    dash, caret = ord("-"), ord("^")
    has_dash = any(lo <= dash <= hi for lo, hi in merged)
    kept: list[tuple[int, int]] = []
    for lo, hi in merged:
        if lo <= dash <= hi:
            kept += [(lo, dash - 1)] if lo < dash else []
            kept += [(dash + 1, hi)] if hi > dash else []
        else:
            kept.append((lo, hi))
    caret_last = not negate and not has_dash and bool(kept) and kept[0][0] == caret
    if caret_last:
        kept = ([(caret + 1, kept[0][1])] if kept[0][1] > caret else []) + kept[1:]
        if not kept:
            return "^"  # the class is just '^': outside a class GLOB reads it literally
    items = ["-"] if has_dash else []
    for lo, hi in kept:
        items.append(chr(lo) if lo == hi else f"{chr(lo)}{'-' if hi > lo + 1 else ''}{chr(hi)}")
    if caret_last:
        items.append("^")
    return f"[{'^' if negate else ''}{''.join(items)}]"
