"""A write, once started, runs to its end: cancelling the task that awaits it cannot turn a
commit into a reported failure.

An append sent to the database commits entirely or not at all, but if the task awaiting it
were cancelled in between, the caller would see ``CancelledError`` for a write that may
have committed. :func:`finish` waits for the write instead: if it committed, its result is
returned (the cancellation came too late to undo it); if it failed, the cancellation is
raised. The connection is never left half-used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Cancelled", "complete", "complete_quietly", "finish"]

T = TypeVar("T")


async def finish(write: Awaitable[T]) -> T:
    """Await ``write`` (a future or coroutine already meant to run) to its end."""
    task = asyncio.ensure_future(write)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done() and not task.cancelled():
                if task.exception() is not None:
                    raise exc from task.exception()
                return task.result()
            cancelled = exc  # the write goes on; wait again
            continue
        except BaseException:
            if cancelled is not None:
                raise cancelled from None
            raise
        return result


async def complete(work: asyncio.Future[T]) -> T:
    """Wait for ``work`` (already running, in a thread say) to end even if this task is
    cancelled meanwhile; then return its result, or raise its error — or the cancellation
    when one arrived (the caller cleans up what ``work`` did before re-raising)."""
    cancelled: asyncio.CancelledError | None = None
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError as exc:
            if not work.done():
                cancelled = exc
    result = work.result()
    if cancelled is not None:
        raise Cancelled(result, cancelled)
    return result


class Cancelled(Exception):
    """``work`` finished, but the task was cancelled while it ran."""

    def __init__(self, result: object, cancelled: asyncio.CancelledError) -> None:
        super().__init__("cancelled")
        self.result = result
        self.cancelled = cancelled


async def complete_quietly(work: asyncio.Future[object]) -> None:
    """Wait for ``work`` (a clean-up) to end whatever happens to this task; a cancellation
    that arrives meanwhile is passed on once it has."""
    try:
        await complete(work)
    except Cancelled as late:
        raise late.cancelled from None
