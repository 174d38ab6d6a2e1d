"""The statements of the PostgreSQL event store and what to make of their rows, as plans.

One :class:`Statements` per schema holds every statement composed once; the plan functions
are shared by every face of the store (the blocking one in
:mod:`eventcore.stores.postgres.store`, an asyncio one), so a fix lands in all of them.

**Filtered reads do not depend on the planner's luck.** A read filtered by stream or event
type scans the primary key in windows of positions (``position > lo AND position <= hi``),
widening the window while it finds too few events, up to the head. Each statement is a
bounded range scan of the primary key (or of the type index, bounded the same way), the
obvious plan with or without statistics: on a table loaded a minute ago, before
``ANALYZE``, a filtered page costs what it costs a year later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from psycopg import sql

from eventcore.errors import IdempotencyConflict
from eventcore.events import Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.selection import StreamSelector
from eventcore.store import PendingEvent
from eventcore.stores._plan import Plan, Query
from eventcore.stores.postgres.filters import like_prefix, pattern_regex
from eventcore.stores.postgres.retention import check_horizon_row, horizon_query
from eventcore.types import StreamId, StreamPrefix, trusted_stream_id

__all__ = ["Row", "Statements"]

Row = tuple[Any, ...]

COLUMNS: Final = (
    "position, stream_id, stream_version, event_type, schema_version, data::text, event_id, "
    "recorded_at, metadata::text"
)

FOLD_COLUMNS: Final = "position, stream_id, stream_version, event_type, schema_version, data::text"
"""What a command's fold reads (``decode_versioned``): no id, time or metadata."""

WINDOW: Final = 10_000
"""The first window of positions a filtered read scans (at least 8 pages' worth)."""
MAX_WINDOW: Final = 1_000_000


class Statements:
    """Every statement of one schema's event store, composed once."""

    def __init__(self, schema: str) -> None:
        ident = sql.Identifier(schema)
        table = sql.SQL("{}.events").format(ident)
        select = sql.SQL("SELECT " + COLUMNS + " FROM {} ").format(table)
        self.table = table
        self.select = select
        self.stream = select + sql.SQL(
            "WHERE stream_id = %s AND stream_version > %s ORDER BY stream_version LIMIT %s"
        )
        self.streams = select + sql.SQL(
            "WHERE stream_id = ANY(%s::text[]) ORDER BY stream_id, stream_version LIMIT %s"
        )
        fold = sql.SQL("SELECT " + FOLD_COLUMNS + " FROM {} ").format(table)
        self.fold_stream = fold + sql.SQL(
            "WHERE stream_id = %s AND stream_version > %s ORDER BY stream_version LIMIT %s"
        )
        self.fold_streams = fold + sql.SQL(
            "WHERE stream_id = ANY(%s::text[]) ORDER BY stream_id, stream_version LIMIT %s"
        )
        self.at_position = select + sql.SQL("WHERE position = %s")
        self.version = sql.SQL(
            "SELECT coalesce(max(stream_version), 0) FROM {} WHERE stream_id = %s"
        ).format(table)
        self.head = sql.SQL("SELECT coalesce(max(position), 0) FROM {}").format(table)
        self.all = select + sql.SQL("WHERE position > %s ORDER BY position LIMIT %s")
        self.write_end = sql.SQL("SELECT write_end FROM {} WHERE position = %s").format(table)
        # read_all checks the retention horizon in its first statement: the latest run that
        # removed events after ``after`` as the leading columns (NULL when none did), then
        # the page (not read when a run matched) with each row's write end; one row of NULLs
        # when the page is empty. Parameters: after (horizon), after, limit.
        runs = horizon_query(schema)
        self.horizon = runs
        self.all_checked = sql.SQL(
            "SELECT h.first_position, h.last_position, h.applied_at, e.* FROM (SELECT 1) AS one "
            "LEFT JOIN ({}) AS h ON true LEFT JOIN LATERAL (SELECT " + COLUMNS + ", write_end "
            "FROM {} WHERE h.last_position IS NULL AND position > %s ORDER BY position "
            "LIMIT %s) AS e ON true ORDER BY e.position"
        ).format(runs, table)
        self.head_checked = sql.SQL(
            "SELECT h.first_position, h.last_position, h.applied_at, "
            "(SELECT coalesce(max(position), 0) FROM {}) FROM (SELECT 1) AS one "
            "LEFT JOIN ({}) AS h ON true"
        ).format(table, runs)
        self.correlation = select + sql.SQL("WHERE correlation_id = %s ORDER BY position")
        self.event = select + sql.SQL("WHERE event_id = %s")
        self.range = select + sql.SQL("WHERE position BETWEEN %s AND %s ORDER BY position")
        self.append = sql.SQL(
            "SELECT * FROM {}.eventcore_append(%s::text[], %s::bigint[], %s::uuid[], "
            "%s::text[], %s::text[], %s::integer[], %s::text[], %s::text, %s::uuid, "
            "%s::timestamptz[], %s::text, %s::text)"
        ).format(ident)
        self.key = sql.SQL(
            "SELECT fingerprint, first_position, last_position, recorded_at FROM {}.idempotency "
            "WHERE key = %s"
        ).format(ident)
        self.lock_streams = sql.SQL("SELECT {}.eventcore_lock_streams(%s::text[])").format(ident)
        self.write_lock = sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))")
        self.list_streams = sql.SQL(
            "SELECT stream_id, max(stream_version), min(position), max(position) FROM {} "
            'WHERE stream_id COLLATE "C" > %s'
        ).format(table)
        self.list_streams_end = sql.SQL(
            ' GROUP BY stream_id ORDER BY stream_id COLLATE "C" LIMIT %s'
        )
        self.times = sql.SQL(
            "SELECT position, recorded_at FROM {} WHERE position = ANY(%s::bigint[])"
        ).format(table)
        self.stats = sql.SQL(
            "SELECT coalesce(max(position), 0), count(*), count(DISTINCT stream_id) FROM {}"
        ).format(table)
        raw = sql.SQL("SELECT " + COLUMNS + ", write_end FROM {} ").format(table)
        self.export = raw + sql.SQL("WHERE position > %s ORDER BY position LIMIT %s")
        self.export_rest = raw + sql.SQL("WHERE position > %s AND position <= %s ORDER BY position")
        self.import_rows = sql.SQL(
            "INSERT INTO {} (position, event_id, stream_id, stream_version, event_type, "
            "schema_version, data, metadata, correlation_id, recorded_at, write_end) "
            "SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::text[], %s::bigint[], "
            "%s::text[], %s::integer[], %s::json[], %s::json[], %s::uuid[], "
            "%s::timestamptz[], %s::bigint[])"
        ).format(table)
        self.notify = sql.SQL("SELECT pg_notify(%s, %s)")
        self.forget_keys = sql.SQL("DELETE FROM {}.idempotency WHERE recorded_at < %s").format(
            ident
        )

    def filtered(self, where: sql.Composable, *, bounded: bool) -> sql.Composed:
        """A filtered page: in a window of positions, or up to a write's end (``bounded``:
        both ends are parameters, then the filters, then for a window the limit)."""
        tail = sql.SQL(" ORDER BY position LIMIT %s") if bounded else sql.SQL(" ORDER BY position")
        return self.select + sql.SQL("WHERE position > %s AND position <= %s") + where + tail


# -- plans --------------------------------------------------------------------------------------


def rows_plan(query: sql.Composable, params: Sequence[Any]) -> Plan[list[Row]]:
    rows: list[Row] = yield Query(query, params)
    return rows


def value_plan(query: sql.Composable, params: Sequence[Any]) -> Plan[int]:
    row = yield Query(query, params, "one")
    return int(row[0])


def count_plan(query: sql.Composable, params: Sequence[Any]) -> Plan[int]:
    count: int = yield Query(query, params, "count")
    return count


def streams_plan(
    q: Statements, ids: list[StreamId], size: int, *, fold: bool = False
) -> Plan[list[Row]]:
    """Whole streams in one query per page; a stream longer than a page is read on alone.
    ``fold``: the fold's columns only (:data:`FOLD_COLUMNS`)."""
    many, one = (q.fold_streams, q.fold_stream) if fold else (q.streams, q.stream)
    out: list[Row] = []
    pending = ids
    while pending:
        rows: list[Row] = yield Query(many, (pending, size))
        out += rows
        if len(rows) < size:
            break
        last, version = trusted_stream_id(rows[-1][1]), rows[-1][2]
        while True:
            more: list[Row] = yield Query(one, (last, version, size))
            out += more
            if len(more) < size:
                break
            version = more[-1][2]
        seen = {row[1] for row in rows}
        pending = [sid for sid in pending if sid not in seen]
    return out


def _filters(
    chosen: tuple[StreamSelector, ...] | None, names: frozenset[str] | None
) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if chosen is not None:
        ors = []
        for selector in chosen:
            if isinstance(selector, StreamPrefix):
                ors.append(sql.SQL("stream_id LIKE %s ESCAPE '\\'"))
                params.append(like_prefix(selector))
            else:
                ors.append(sql.SQL("stream_id ~ %s"))
                params.append(pattern_regex(selector))
        parts.append(sql.SQL(" AND (") + sql.SQL(" OR ").join(ors) + sql.SQL(")"))
    if names is not None:
        parts.append(sql.SQL(" AND event_type = ANY(%s::text[])"))
        params.append(sorted(names))
    return sql.Composed(parts), params


def read_all_plan(
    q: Statements,
    after: int,
    limit: int | None,
    chosen: tuple[StreamSelector, ...] | None,
    names: frozenset[str] | None,
    *,
    checked: bool = False,
) -> Plan[list[Row]]:
    """A page of the log (windowed when filtered), extended to the end of the write the
    limit would cut. ``checked``: raise ``EventsRemoved`` if retention removed events after
    ``after``, asked in the same statement as the page (an unfiltered page is one round trip
    when the limit does not cut a write)."""
    if limit == 0 or (names is not None and not names):
        if checked:
            found = yield Query(q.horizon, (after,))
            if found:
                check_horizon_row(after, found[0])
        return []
    rows: list[Row]
    end: int | None = None  # the end of the last row's write, when already known
    if chosen is None and names is None:
        where: sql.Composable = sql.SQL("")
        params: list[Any] = []
        if checked:
            found = yield Query(q.all_checked, (after, after, limit))
            check_horizon_row(after, found[0])
            rows = [r[3:12] for r in found] if found[0][3] is not None else []
            if rows and type(found[-1][12]) is int:
                end = found[-1][12]
        else:
            rows = yield Query(q.all, (after, limit))
    else:
        where, params = _filters(chosen, names)
        if checked:
            found = yield Query(q.head_checked, (after,), "one")
            check_horizon_row(after, found)
            head = int(found[3])
        else:
            head = yield from value_plan(q.head, ())
        window = q.filtered(where, bounded=True)
        rows, low, width = [], after, max(WINDOW, 8 * (limit or 0))
        while low < head and (limit is None or len(rows) < limit):
            high = min(low + width, head)
            need = None if limit is None else limit - len(rows)
            rows += yield Query(window, (low, high, *params, need))
            low, width = high, min(width * 2, MAX_WINDOW)
    if limit is not None and len(rows) == limit:
        last = rows[-1][0]
        if end is None:
            got = yield Query(q.write_end, (last,), "one")
            end = got[0] if got is not None and type(got[0]) is int else last
        if end > last:
            rows += yield Query(q.filtered(where, bounded=False), (last, end, *params))
    return rows


def recorded_write_plan(q: Statements, key: str) -> Plan[tuple[str, list[Row], Any] | None]:
    found = yield Query(q.key, (key,), "one")
    if found is None:
        return None
    rows: list[Row] = yield Query(q.range, (found[1], found[2]))
    return found[0], rows, found[3]


class Replayed:
    """The rows of a write found under an idempotency key (decoded by the store)."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows


def append_plan(
    q: Statements,
    checked: dict[StreamId, int],
    pending: list[PendingEvent],
    meta: Metadata,
    key: IdempotencyKey | None,
) -> Plan[list[RecordedEvent] | Replayed]:
    """The append: one call of ``eventcore_append`` (and, for a known idempotency key, one
    read of what it wrote)."""
    params = (
        list(checked),
        list(checked.values()),
        [p.event_id for p in pending],
        [p.stream_id for p in pending],
        [p.info.type_name for p in pending],
        [p.info.version for p in pending],
        [p.data for p in pending],
        meta.to_json(),
        meta.correlation_id,
        [p.recorded_at for p in pending],
        None if key is None else key.key,
        None if key is None else key.fingerprint,
    )
    first, last, replayed = yield Query(q.append, params, "one")
    if replayed:
        if key is None:  # pragma: no cover - the function replays only for a key
            raise IdempotencyConflict("?", "?", "?")
        rows: list[Row] = yield Query(q.range, (first, last))
        return Replayed(rows)
    versions = dict(checked)
    recorded: list[RecordedEvent] = []
    for offset, p in enumerate(pending):
        version = versions[p.stream_id] = versions[p.stream_id] + 1
        recorded.append(
            RecordedEvent(
                first + offset,
                p.stream_id,
                version,
                p.info.type_name,
                p.event,
                p.event_id,
                p.recorded_at,
                meta,
            )
        )
    return recorded


# -- listing, statistics, raw export and import ------------------------------------------------


def list_streams_plan(
    q: Statements, chosen: tuple[StreamSelector, ...] | None, after_stream: str, limit: int | None
) -> Plan[list[tuple[Any, ...]]]:
    where, params = _filters(chosen, None)
    rows: list[Row] = yield Query(
        q.list_streams + where + q.list_streams_end, (after_stream, *params, limit)
    )
    positions = sorted({p for row in rows for p in (row[2], row[3])})
    times: dict[int, Any] = {}
    if positions:
        found: list[Row] = yield Query(q.times, (positions,))
        times.update(found)
    return [(*row, times[row[2]], times[row[3]]) for row in rows]


def stats_plan(q: Statements) -> Plan[tuple[int, int, int]]:
    row = yield Query(q.stats, (), "one")
    return int(row[0]), int(row[1]), int(row[2])


def export_plan(q: Statements, after: int, limit: int | None) -> Plan[list[Row]]:
    rows: list[Row] = yield Query(q.export, (after, limit))
    if limit is not None and len(rows) == limit and rows:
        last, end = rows[-1][0], rows[-1][9]
        if type(end) is int and end > last:
            rows += yield Query(q.export_rest, (last, end))
    return rows


def import_plan(q: Statements, rows: list[Any], write_lock: str, channel: str) -> Plan[int]:
    """Lock the streams and the schema's write lock (as an append does, in that order), check
    that ``rows`` continue the log, insert them and notify, in the caller's transaction."""
    import json

    from eventcore.raw import check_continues

    streams = sorted(dict.fromkeys(row.stream_id for row in rows))
    if not streams:
        return 0
    yield Query(q.lock_streams, (streams,), "none")
    yield Query(q.write_lock, (write_lock,), "none")
    head = yield from value_plan(q.head, ())
    versions = {}
    for sid in streams:
        versions[sid] = yield from value_plan(q.version, (sid,))
    checked = check_continues(rows, head, versions)
    correlation = []
    for r in checked:
        found = json.loads(r.metadata).get("correlation_id") if r.metadata else None
        correlation.append(found or None)
    yield Query(
        q.import_rows,
        (
            [r.position for r in checked],
            [r.event_id for r in checked],
            [r.stream_id for r in checked],
            [r.stream_version for r in checked],
            [r.event_type for r in checked],
            [r.schema_version for r in checked],
            [r.data for r in checked],
            [r.metadata for r in checked],
            correlation,
            [r.recorded_at for r in checked],
            [r.write_end for r in checked],
        ),
        "none",
    )
    yield Query(q.notify, (channel, str(checked[-1].position)), "none")
    return len(checked)
