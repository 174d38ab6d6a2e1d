"""Tombstones and retention on SQLite, as plans: the tombstones of some streams, the retention
runs a read must not start before, and the one sanctioned removal of events.

The triggers of migration 7 (:mod:`eventcore.stores.sqlite.schema`) do the enforcing: an
insert for a closed stream aborts with :data:`TOMBSTONE_MESSAGE`, and a DELETE aborts unless
the guard row exists — which :func:`remove_plan` inserts and removes inside its own
transaction, so no other connection ever sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from eventcore.errors import DeserializationError, StoreFailure, StreamClosed
from eventcore.raw import RawEvent
from eventcore.retention.engine import Run, check_horizon
from eventcore.stores._plan import Plan, Query
from eventcore.tombstones import tombstone_error

__all__ = ["TOMBSTONE_MESSAGE", "horizon_plan", "remove_plan", "tombstone_of", "tombstones_plan"]

TOMBSTONE_MESSAGE: Final = "eventcore stream is closed"
"""The start of the message of the trigger that refuses events for a closed stream."""

_CHUNK: Final = 500


def tombstones_plan(stream_ids: Iterable[str]) -> Plan[list[tuple[Any, ...]]]:
    """``(stream_id, state, position, recorded_at, reason)`` of the streams that have one."""
    ids = sorted(set(stream_ids))
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        sql = (
            "SELECT stream_id, state, position, recorded_at, reason FROM eventcore_tombstones "
            f"WHERE stream_id IN ({', '.join('?' * len(chunk))}) ORDER BY stream_id"
        )
        out += yield Query(sql, chunk)
    return out


def tombstone_of(rows: Sequence[tuple[Any, ...]], *, reading: bool = False) -> StreamClosed | None:
    """The error for the first tombstone row, or None when there is none."""
    if not rows:
        return None
    sid, state, position, at, reason = rows[0]
    return tombstone_error(sid, state, position, _time(at), str(reason), reading=reading)


def is_tombstoned(exc: StoreFailure) -> bool:
    """Whether a failed write was refused by the tombstone trigger."""
    return TOMBSTONE_MESSAGE in str(exc)


def runs_plan(after: int) -> Plan[list[Run]]:
    """The retention runs that removed events after position ``after``."""
    rows = yield Query(
        "SELECT first_position, last_position, applied_at FROM eventcore_retention_runs "
        "WHERE last_position > ? ORDER BY last_position DESC LIMIT 1",
        (after,),
    )
    return [(int(r[0]), int(r[1]), _time(r[2])) for r in rows]


def horizon_plan(after: int, inner: Plan[Any]) -> Plan[Any]:
    """``inner``, after checking that no retention run removed events after ``after``."""
    check_horizon(after, (yield from runs_plan(after)))
    return (yield from inner)


def all_runs_plan() -> Plan[list[Run]]:
    rows = yield Query(
        "SELECT first_position, last_position, applied_at FROM eventcore_retention_runs "
        "ORDER BY run"
    )
    return [(int(r[0]), int(r[1]), _time(r[2])) for r in rows]


def remove_plan(rows: Sequence[RawEvent], at: datetime) -> Plan[int]:
    """Delete exactly these rows, with the guard armed for this transaction only, and
    record the run; the number of rows deleted."""
    positions = sorted({r.position for r in rows})
    if not positions:
        return 0
    yield Query("INSERT INTO eventcore_retention_guard (armed) VALUES (1)", (), "none")
    count = 0
    for start in range(0, len(positions), _CHUNK):
        chunk = positions[start : start + _CHUNK]
        sql = f"DELETE FROM eventcore_events WHERE position IN ({', '.join('?' * len(chunk))})"
        count += yield Query(sql, chunk, "count")
    yield Query("DELETE FROM eventcore_retention_guard", (), "none")
    if count:
        yield Query(
            "INSERT INTO eventcore_retention_runs (first_position, last_position, events, "
            "applied_at) VALUES (?, ?, ?, ?)",
            (positions[0], positions[-1], count, at.isoformat()),
            "none",
        )
    return int(count)


def _time(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise DeserializationError(f"corrupt time {text!r} in a tombstone or run: {exc}") from None
