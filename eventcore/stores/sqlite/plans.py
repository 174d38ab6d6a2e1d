"""The statements of the SQLite event store and what to make of their rows, as plans
(:mod:`eventcore.stores._plan`): run by :class:`~eventcore.stores.sqlite.SqliteDatabase` on a
reader, on the writer in a transaction, or inside a session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from eventcore.errors import Conflict, DeserializationError, IdempotencyConflict, VersionConflict
from eventcore.events import Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.raw import RawEvent
from eventcore.selection import StreamSelector
from eventcore.store import PendingEvent
from eventcore.stores._plan import Plan, Query
from eventcore.stores.sqlite.glob import glob
from eventcore.types import StreamId, trusted_stream_id

COLUMNS: Final = (
    "position, stream_id, stream_version, event_type, schema_version, data, event_id, "
    "recorded_at, metadata"
)
SELECT: Final = f"SELECT {COLUMNS} FROM eventcore_events"
FOLD_SELECT: Final = (
    "SELECT position, stream_id, stream_version, event_type, schema_version, data "
    "FROM eventcore_events"
)
"""The columns a command's fold reads (``decode_versioned``): no id, time or metadata."""

_IN_LIMIT: Final = 500
"""Stream ids per ``read_streams`` query (SQLite bounds the number of parameters)."""

Row = tuple[Any, ...]


class Replayed:
    """The rows of a write found under an idempotency key (decoded by the store)."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows


def rows_plan(sql: str, params: Sequence[Any]) -> Plan[list[Row]]:
    rows: list[Row] = yield Query(sql, params)
    return rows


def count_plan(sql: str, params: Sequence[Any]) -> Plan[int]:
    count: int = yield Query(sql, params, "count")
    return count


def head_plan() -> Plan[int]:
    row = yield Query("SELECT COALESCE(MAX(position), 0) FROM eventcore_events", (), "one")
    return int(row[0])


def version_plan(sid: StreamId) -> Plan[int]:
    # MAX answers from the end of the (stream_id, stream_version) index in O(log n).
    sql = "SELECT COALESCE(MAX(stream_version), 0) FROM eventcore_events WHERE stream_id = ?"
    row = yield Query(sql, (sid,), "one")
    return int(row[0])


def stream_page(
    sid: StreamId, after_version: int, size: int, select: str = SELECT
) -> Plan[list[Row]]:
    sql = f"{select} WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version LIMIT ?"
    rows: list[Row] = yield Query(sql, (sid, after_version, size))
    return rows


def whole_stream_plan(
    sid: StreamId, after_version: int, size: int, select: str = SELECT
) -> Plan[list[Row]]:
    out: list[Row] = []
    while True:
        rows = yield from stream_page(sid, after_version, size, select)
        out += rows
        if len(rows) < size:
            return out
        after_version = rows[-1][2]


def streams_plan(ids: list[StreamId], size: int, select: str = SELECT) -> Plan[list[Row]]:
    """Whole streams, ``_IN_LIMIT`` ids per query; a stream longer than a page is read on
    alone from where the page stopped. ``select``: :data:`SELECT` or :data:`FOLD_SELECT`."""
    out: list[Row] = []
    for start in range(0, len(ids), _IN_LIMIT):
        pending = ids[start : start + _IN_LIMIT]
        while pending:
            sql = (
                f"{select} WHERE stream_id IN ({', '.join('?' * len(pending))}) "
                "ORDER BY stream_id, stream_version LIMIT ?"
            )
            rows: list[Row] = yield Query(sql, (*pending, size))
            out += rows
            if len(rows) < size:
                break
            # The streams before the last one in the page are complete; the last may go on.
            last, version = trusted_stream_id(rows[-1][1]), rows[-1][2]
            while True:
                more = yield from stream_page(last, version, size, select)
                out += more
                if len(more) < size:
                    break
                version = more[-1][2]
            seen = {row[1] for row in rows}
            pending = [sid for sid in pending if sid not in seen]
    return out


def _filters(
    chosen: tuple[StreamSelector, ...] | None, names: frozenset[str] | None
) -> tuple[str, list[Any]]:
    where, params = "", []
    if chosen is not None:
        where += " AND (" + " OR ".join("stream_id GLOB ?" for _ in chosen) + ")"
        params += [glob(s) for s in chosen]
    if names is not None:
        where += f" AND event_type IN ({', '.join('?' * len(names))})"
        params += sorted(names)
    return where, params


def read_all_plan(
    after: int,
    limit: int | None,
    chosen: tuple[StreamSelector, ...] | None,
    names: frozenset[str] | None,
) -> Plan[list[Row]]:
    """A page of the log; extended to the end of the write the limit would cut."""
    if limit == 0 or (names is not None and not names):
        return []
    where, params = _filters(chosen, names)
    sql = f"{SELECT} WHERE position > ?{where} ORDER BY position LIMIT ?"
    rows: list[Row] = yield Query(sql, (after, *params, -1 if limit is None else limit))
    if limit is not None and len(rows) == limit:
        last = rows[-1][0]
        found = yield Query(
            "SELECT write_end FROM eventcore_events WHERE position = ?", (last,), "one"
        )
        end = found[0] if found is not None and type(found[0]) is int else last
        if end > last:
            rest = f"{SELECT} WHERE position > ? AND position <= ?{where} ORDER BY position"
            rows += yield Query(rest, (last, end, *params))
    return rows


def recorded_write_plan(key: str) -> Plan[tuple[str, list[Row], Any] | None]:
    sql = (
        "SELECT fingerprint, first_position, last_position, recorded_at "
        "FROM eventcore_idempotency WHERE key = ?"
    )
    found = yield Query(sql, (key,), "one")
    if found is None:
        return None
    rows: list[Row] = yield Query(
        f"{SELECT} WHERE position BETWEEN ? AND ? ORDER BY position", (found[1], found[2])
    )
    return found[0], rows, found[3]


_INSERT: Final = (
    "INSERT INTO eventcore_events (position, event_id, stream_id, stream_version, event_type, "
    "schema_version, data, metadata, recorded_at, write_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def append_plan(
    checked: dict[StreamId, int],
    pending: list[PendingEvent],
    meta: Metadata,
    key: IdempotencyKey | None,
) -> Plan[list[RecordedEvent] | Replayed]:
    """Check the key, check every expected version, insert; inside the caller's
    ``BEGIN IMMEDIATE`` transaction."""
    if key is not None:
        found = yield from recorded_write_plan(key.key)
        if found is not None:
            if found[0] != key.fingerprint:
                raise IdempotencyConflict(key.key, found[0], key.fingerprint)
            return Replayed(found[1])
    conflicts = []
    for sid, version in checked.items():
        actual = yield from version_plan(sid)
        if actual != version:
            conflicts.append(Conflict(sid, version, actual))
    if conflicts:
        raise VersionConflict(conflicts)
    if not pending:
        return []
    position = yield from head_plan()
    end = position + len(pending)
    meta_json = meta.to_json()
    versions = dict(checked)
    rows = []
    recorded = []
    record = RecordedEvent
    at: datetime | None = None  # the events of one write usually share their time
    at_text = ""
    for p in pending:
        position += 1
        version = versions[p.stream_id] = versions[p.stream_id] + 1
        if p.recorded_at is not at:
            at, at_text = p.recorded_at, p.recorded_at.isoformat()
        rows.append(
            (
                position,
                str(p.event_id),
                p.stream_id,
                version,
                p.info.type_name,
                p.info.version,
                p.data,
                meta_json,
                at_text,
                end,
            )
        )
        recorded.append(
            record(
                position,
                p.stream_id,
                version,
                p.info.type_name,
                p.event,
                p.event_id,
                p.recorded_at,
                meta,
            )
        )
    yield Query(_INSERT, rows, "many")
    if key is not None:
        yield Query(
            "INSERT INTO eventcore_idempotency (key, fingerprint, first_position, "
            "last_position, recorded_at) VALUES (?, ?, ?, ?, ?)",
            (key.key, key.fingerprint, end - len(pending) + 1, end, rows[0][8]),
            "none",
        )
    return recorded


# -- operations: listing, statistics, raw export and import ------------------------------------

RAW_COLUMNS: Final = COLUMNS + ", write_end"


def list_streams_plan(
    chosen: tuple[StreamSelector, ...] | None, after_stream: str, limit: int | None
) -> Plan[list[tuple[Any, ...]]]:
    """``(stream_id, version, first position, last position, first time, last time)`` per
    stream, by stream id, after ``after_stream``."""
    where, params = _filters(chosen, None)
    rows: list[Row] = yield Query(
        "SELECT stream_id, MAX(stream_version), MIN(position), MAX(position) "
        f"FROM eventcore_events WHERE stream_id > ?{where} GROUP BY stream_id "
        "ORDER BY stream_id LIMIT ?",
        (after_stream, *params, -1 if limit is None else limit),
    )
    positions = sorted({p for row in rows for p in (row[2], row[3])})
    times: dict[int, Any] = {}
    for start in range(0, len(positions), _IN_LIMIT):
        chunk = positions[start : start + _IN_LIMIT]
        found: list[Row] = yield Query(
            "SELECT position, recorded_at FROM eventcore_events WHERE position IN "
            f"({', '.join('?' * len(chunk))})",
            chunk,
        )
        times.update(found)
    return [(*row, times[row[2]], times[row[3]]) for row in rows]


def stats_plan() -> Plan[tuple[int, int, int]]:
    row = yield Query(
        "SELECT COALESCE(MAX(position), 0), COUNT(*), COUNT(DISTINCT stream_id) "
        "FROM eventcore_events",
        (),
        "one",
    )
    return int(row[0]), int(row[1]), int(row[2])


def export_plan(after: int, limit: int | None) -> Plan[list[Row]]:
    """Raw rows after ``after`` (with ``write_end``), whole writes."""
    raw = f"SELECT {RAW_COLUMNS} FROM eventcore_events"
    rows: list[Row] = yield Query(
        f"{raw} WHERE position > ? ORDER BY position LIMIT ?",
        (after, -1 if limit is None else limit),
    )
    if limit is not None and len(rows) == limit and rows:
        last, end = rows[-1][0], rows[-1][9]
        if type(end) is int and end > last:
            rows += yield Query(
                f"{raw} WHERE position > ? AND position <= ? ORDER BY position", (last, end)
            )
    return rows


def stream_rows_plan(sid: StreamId, after_version: int, limit: int | None) -> Plan[list[Row]]:
    """Raw rows of one stream after ``after_version``, in version order."""
    rows: list[Row] = yield Query(
        f"SELECT {RAW_COLUMNS} FROM eventcore_events WHERE stream_id = ? AND stream_version > ? "
        "ORDER BY stream_version LIMIT ?",
        (sid, after_version, -1 if limit is None else limit),
    )
    return rows


def triggers_plan() -> Plan[dict[str, bool]]:
    """The triggers on the events table, each mapped to True (SQLite cannot disable one)."""
    rows: list[Row] = yield Query(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
        ("eventcore_events",),
    )
    return {str(r[0]): True for r in rows}


def import_plan(rows: list[Any]) -> Plan[int]:
    """Check that ``rows`` continue the log, then insert them (in the caller's write
    transaction)."""
    from eventcore.raw import check_continues

    head = yield from head_plan()
    versions = {}
    for sid in dict.fromkeys(row.stream_id for row in rows):
        versions[sid] = yield from version_plan(StreamId(sid))
    checked = check_continues(rows, head, versions)
    if checked:
        yield Query(
            _INSERT,
            [
                (
                    r.position,
                    str(r.event_id),
                    r.stream_id,
                    r.stream_version,
                    r.event_type,
                    r.schema_version,
                    r.data,
                    r.metadata,
                    r.recorded_at.isoformat(),
                    r.write_end,
                )
                for r in checked
            ],
            "many",
        )
    return len(checked)


def raw_event(row: Row) -> RawEvent:
    """An exported row (:data:`RAW_COLUMNS`) as a :class:`RawEvent`, or the error naming it."""
    position = row[0]
    try:
        return RawEvent(
            position,
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            UUID(row[6]),
            datetime.fromisoformat(row[7]),
            row[8],
            row[9] if type(row[9]) is int else position,
        )
    except (TypeError, ValueError) as exc:
        raise DeserializationError(f"corrupt event row at position {position}: {exc}") from None
