"""What every store shares about reading the log: stream filters and write boundaries.

``read_all(streams=...)`` takes one :class:`~eventcore.types.StreamPrefix` or
:class:`~eventcore.types.StreamPattern`, or several of them (an event is selected when its
stream matches any of them), so that a projection reading several categories gets one page
in one query.

**Pages end on write boundaries.** One ``append`` is one atomic write, possibly spanning
several streams. ``read_all`` never returns part of one: when ``limit`` would cut through a
write, the page goes on to that write's last (selected) event. A projection's checkpoint,
saved at the end of a page, therefore never lies inside a write, and a multi-stream read
model never shows half a transfer. ``limit`` is thus a lower bound on a full page, not an
upper one.

>>> selectors(StreamPrefix("order-"))
(StreamPrefix('order-'),)
>>> selectors([StreamPrefix("order-"), StreamPattern("cart-*")])
(StreamPrefix('order-'), StreamPattern('cart-*'))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from eventcore.errors import InvalidStreamSelector, ValidationError
from eventcore.types import StreamPattern, StreamPrefix

if TYPE_CHECKING:
    from eventcore.events import RecordedEvent

__all__ = ["Selection", "aiter_log", "iter_log", "selectors"]

StreamSelector = StreamPrefix | StreamPattern
Selection = StreamSelector | Iterable[StreamSelector] | None
"""What ``read_all(streams=...)`` accepts."""


def selectors(streams: Any) -> tuple[StreamSelector, ...] | None:
    """``read_all``'s ``streams`` as a tuple of distinct selectors (None: every stream)."""
    if streams is None:
        return None
    if isinstance(streams, (StreamPrefix, StreamPattern)):
        return (streams,)
    if isinstance(streams, (str, bytes)) or not isinstance(streams, Iterable):
        raise InvalidStreamSelector(
            f"streams must be a StreamPrefix or StreamPattern, or a list of them, got "
            f"{type(streams).__name__} {streams!r}; wrap it, for example StreamPattern('order-*')"
        )
    found = tuple(dict.fromkeys(streams))
    if not found:
        raise InvalidStreamSelector("streams=() selects nothing; pass None for every stream")
    for item in found:
        if not isinstance(item, (StreamPrefix, StreamPattern)):
            raise InvalidStreamSelector(
                f"streams must hold StreamPrefix or StreamPattern values, got "
                f"{type(item).__name__} {item!r}; wrap it, for example StreamPrefix('order-')"
            )
    return found


def iter_log(
    read_all: Callable[..., list[RecordedEvent]],
    *,
    after: int,
    streams: Selection,
    event_types: Iterable[str | type] | None,
    page_size: int,
) -> Iterator[RecordedEvent]:
    """Every selected event after ``after``, page by page (whole writes), lazily."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValidationError(f"page_size must be an int >= 1, got {page_size!r}")
    while True:
        page = read_all(after=after, limit=page_size, streams=streams, event_types=event_types)
        if not page:
            return
        yield from page
        after = page[-1].position


async def aiter_log(
    read_all: Callable[..., Awaitable[list[RecordedEvent]]],
    *,
    after: int,
    streams: Selection,
    event_types: Iterable[str | type] | None,
    page_size: int,
) -> AsyncIterator[RecordedEvent]:
    """:func:`iter_log` for an asyncio store."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValidationError(f"page_size must be an int >= 1, got {page_size!r}")
    while True:
        page = await read_all(
            after=after, limit=page_size, streams=streams, event_types=event_types
        )
        if not page:
            return
        for event in page:
            yield event
        after = page[-1].position
