"""Tombstones and retention on PostgreSQL, as plans shared by the blocking and asyncio stores.

The statement trigger of migration 8 (:mod:`eventcore.stores.postgres.schema`) refuses
events for closed streams (SQLSTATE ``EC008``, translated to ``StreamClosed``) and records
tombstones. :func:`remove_plan` is the one sanctioned removal: inside its transaction it sets
``eventcore.retention`` to the schema's guard text, which the immutability trigger checks,
deletes exactly the rows retention chose, and records the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import sql

from eventcore.errors import DeserializationError, StreamClosed
from eventcore.raw import RawEvent
from eventcore.retention.engine import Run, check_horizon
from eventcore.stores._plan import Plan, Query
from eventcore.stores.postgres.schema import retention_guard_text
from eventcore.tombstones import tombstone_error

__all__ = ["RetentionStatements", "check_horizon_row", "horizon_query", "tombstone_from_detail"]

_CHUNK: Final = 5000


class RetentionStatements:
    """The statements of tombstones and retention in one schema."""

    def __init__(self, schema: str) -> None:
        ident = sql.Identifier(schema)
        self.guard = retention_guard_text(schema)
        self.tombstones = sql.SQL(
            "SELECT stream_id, state, position, recorded_at, reason FROM {}.tombstones "
            "WHERE stream_id = ANY(%s::text[]) ORDER BY stream_id"
        ).format(ident)
        self.runs = sql.SQL(
            "SELECT first_position, last_position, applied_at FROM {}.retention_runs ORDER BY run"
        ).format(ident)
        self.arm = sql.SQL("SELECT set_config('eventcore.retention', %s, true)")
        self.delete = sql.SQL("DELETE FROM {}.events WHERE position = ANY(%s::bigint[])").format(
            ident
        )
        self.record = sql.SQL(
            "INSERT INTO {}.retention_runs (first_position, last_position, events, applied_at) "
            "VALUES (%s, %s, %s, %s)"
        ).format(ident)

    def tombstone_plan(self, stream_ids: Sequence[str]) -> Plan[StreamClosed | None]:
        """The error for the first tombstone among ``stream_ids``, or None."""
        rows = yield Query(self.tombstones, (sorted(set(stream_ids)),))
        if not rows:
            return None
        sid, state, position, at, reason = rows[0]
        return tombstone_error(sid, state, int(position), _utc(at), str(reason), reading=True)

    def runs_plan(self) -> Plan[list[Run]]:
        rows = yield Query(self.runs, ())
        return [(int(r[0]), int(r[1]), _utc(r[2])) for r in rows]

    def remove_plan(self, rows: Sequence[RawEvent], at: datetime) -> Plan[int]:
        """Arm the guard for this transaction, delete exactly these rows, record the run."""
        positions = sorted({r.position for r in rows})
        if not positions:
            return 0
        yield Query(self.arm, (self.guard,), "none")
        count = 0
        for start in range(0, len(positions), _CHUNK):
            count += yield Query(self.delete, (positions[start : start + _CHUNK],), "count")
        yield Query(self.arm, ("",), "none")
        if count:
            yield Query(self.record, (positions[0], positions[-1], count, at), "none")
        return int(count)


def horizon_query(schema: str) -> sql.Composed:
    """The latest retention run that removed events after the one parameter (a position):
    ``first_position, last_position, applied_at``, no row when none did. The reads of the
    log (:mod:`eventcore.stores.postgres.queries`) join it into their first statement, so the
    check costs no round trip of its own and sees the same snapshot as the page."""
    return sql.SQL(
        "SELECT first_position, last_position, applied_at FROM {}.retention_runs "
        "WHERE last_position > %s ORDER BY last_position DESC LIMIT 1"
    ).format(sql.Identifier(schema))


def check_horizon_row(after: int, row: Sequence[Any]) -> None:
    """Raise ``EventsRemoved`` if ``row`` (what :func:`horizon_query` gives, possibly as the
    leading columns of a joined row; all NULL when no run matched) names a run."""
    if row[1] is not None:
        check_horizon(after, [(int(row[0]), int(row[1]), _utc(row[2]))])


def tombstone_from_detail(detail: str | None) -> StreamClosed:
    """The ``StreamClosed`` (or ``StreamDeleted``) of the trigger's JSON detail."""
    try:
        found = json.loads(detail or "{}")
        at: Any = datetime.fromisoformat(found["at"])
        return tombstone_error(
            found["stream"], found["state"], int(found["position"]), at, found.get("reason", "")
        )
    except (ValueError, KeyError, TypeError):
        return tombstone_error("?", "closed", 0, "?")


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise DeserializationError(f"corrupt time {value!r} in a tombstone or retention run")
    return value.astimezone(UTC)
