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

__all__ = ["finish"]

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
