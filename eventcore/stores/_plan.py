"""Store operations as plans: generators that yield SQL statements and receive their results.

A plan holds everything an operation knows — which statements to run, in which order, what
to do with the rows — and no I/O. A *database* object (``SqliteDatabase``,
``PostgresDatabase``) runs it on one of its connections, inside a transaction when the
operation writes, and translates driver errors into EventCore's typed errors. The same plan
runs unchanged under a blocking driver and an asyncio one, so a fix to an operation lands in
both (the design of psycopg's sync and async faces, and of the command pipeline).

>>> def count_streams():
...     rows = yield Query("SELECT COUNT(DISTINCT stream_id) FROM events")
...     return rows[0][0]
>>> drive(count_streams(), lambda query: [(3,)])
3
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = ["Fetch", "Plan", "Query", "drive", "drive_async"]

T = TypeVar("T")

Fetch = Literal["all", "one", "count", "many", "none"]
"""What a statement's result is sent back as: ``all`` its rows (a list), ``one`` the first
row or None, ``count`` the number of rows changed, ``many`` runs it once per parameter row
(``executemany``; sends back None), ``none`` sends back None."""


@dataclass(frozen=True, slots=True)
class Query:
    """One statement of a plan. ``sql`` is a string (SQLite) or a psycopg ``Composed``."""

    sql: Any
    params: Any = ()
    fetch: Fetch = "all"


Plan = Generator[Query, Any, T]


def drive(plan: Plan[T], execute: Callable[[Query], Any]) -> T:
    """Run ``plan`` to its end, performing each statement with ``execute``.

    An error raised by ``execute`` closes the plan and propagates unchanged.
    """
    result: Any = None
    while True:
        try:
            query = plan.send(result)
        except StopIteration as done:
            value: T = done.value
            return value
        try:
            result = execute(query)
        except BaseException:
            plan.close()
            raise


async def drive_async(plan: Plan[T], execute: Callable[[Query], Awaitable[Any]]) -> T:
    """:func:`drive` for an asyncio driver: each statement is awaited."""
    result: Any = None
    while True:
        try:
            query = plan.send(result)
        except StopIteration as done:
            value: T = done.value
            return value
        try:
            result = await execute(query)
        except BaseException:
            plan.close()
            raise
