"""The driver limit on PostgreSQL: the library's work written by hand with psycopg 3.

The same table shape as EventCore's (``event_id uuid``, ``data``/``metadata jsonb``,
``recorded_at timestamptz``) and the same guarantees, in the cheapest correct design for
each use:

- **optimistic** (the side-by-side table; what EventCore does today): one ``SELECT
  stream_id, stream_version, event_type, data::text ... WHERE stream_id = ANY(...)`` of the
  command's streams — both accounts' histories for a transfer — decoded from JSON and
  folded in Python; the decision; then one ``INSERT ... SELECT FROM unnest(...)`` (its own
  transaction) of the new rows at the versions read plus one and at positions ``max(position)
  + 1`` onwards. The unique keys are the checks: a stream written meanwhile violates
  ``(stream_id, stream_version)``, a concurrent commit the position key (so positions stay
  gapless and in commit order); either is retried from the read with EventCore's backoff.
  Two statements, two round trips.
- **locks first** (the contention table's reference, the design of a pessimistic mode):
  one READ COMMITTED transaction in two round trips (pipeline mode): ``BEGIN``, sorted
  ``pg_advisory_xact_lock`` per stream, the ``SELECT``; then, after the fold and the
  decision, the schema-wide write lock, the ``INSERT`` and ``COMMIT``. It never retries.

Every event gets its own id and time and the command's metadata (a correlation id). The
global read fetches the same columns as EventCore and decodes each event's JSON.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from benchmarks.impl_eventcore import CONTENTION_RETRY
from benchmarks.impl_raw_sqlite import (
    Counter,
    Decide,
    Event,
    deposit_decision,
    fold,
    metadata_text,
    ordered_id,
    transfer_decision,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_events (
    position        BIGINT      PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    data            JSONB       NOT NULL,
    metadata        JSONB       NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX IF NOT EXISTS raw_events_type ON raw_events (event_type, position);
"""

STREAM_LOCKS = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended('raw/' || s, 0) "
    "AS k FROM unnest(%s::text[]) AS s) AS keys ORDER BY k"
)
READ = (
    "SELECT stream_id, stream_version, event_type, data::text FROM raw_events "
    "WHERE stream_id = ANY(%s::text[]) ORDER BY position"
)
WRITE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('raw/write', 0))"
INSERT = """
INSERT INTO raw_events (position, event_id, stream_id, stream_version, event_type, data,
                        metadata, recorded_at)
SELECT p.base + r.ord, r.event_id::uuid, r.stream_id, r.stream_version, r.event_type,
       r.data::jsonb, r.metadata::jsonb, r.recorded_at
  FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[],
              %s::timestamptz[])
       WITH ORDINALITY AS r(event_id, stream_id, stream_version, event_type, data, metadata,
                            recorded_at, ord)
 CROSS JOIN (SELECT coalesce(max(position), 0) AS base FROM raw_events) AS p
"""
READ_PAGE = (
    "SELECT position, stream_id, stream_version, event_type, data::text, event_id, "
    "recorded_at, metadata::text FROM raw_events WHERE position > %s ORDER BY position "
    "LIMIT %s"
)


def _columns(events: Sequence[Event], versions: dict[str, int]) -> tuple[list[Any], ...]:
    """The INSERT's seven arrays for ``events`` after ``versions`` (updated in place)."""
    ids = [ordered_id() for _ in events]
    meta = metadata_text(ids[0]) if ids else "{}"
    sids, numbers, types, data, metas, times = [], [], [], [], [], []
    for sid, event_type, amount in events:
        versions[sid] = versions.get(sid, 0) + 1
        sids.append(sid)
        numbers.append(versions[sid])
        types.append(event_type)
        data.append(json.dumps({"account": sid, "amount": amount}, separators=(",", ":")))
        metas.append(meta)
        times.append(datetime.now(UTC))
    return ids, sids, numbers, types, data, metas, times


class RawPostgresBank:
    """A :class:`~benchmarks.model.Bank` written directly against psycopg."""

    def __init__(self, conninfo: str, *, locks_first: bool = False) -> None:
        self.conninfo = conninfo
        self.locks_first = locks_first
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        with self.conn.transaction():
            self.conn.execute(SCHEMA)

    @property
    def conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = psycopg.connect(self.conninfo, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def command(self, streams: Sequence[str], decide: Decide) -> tuple[int, int]:
        """Read and fold the streams, decide, write with the version check; return (events
        folded, retries)."""
        ordered = sorted(set(streams))
        if self.locks_first:
            return self._locked(ordered, decide), 0
        conn = self.conn
        attempt = 0
        while True:
            attempt += 1
            rows = conn.execute(READ, (ordered,)).fetchall()
            balances, versions = fold(rows, ordered)
            try:
                conn.execute(INSERT, _columns(decide(balances), versions))
            except psycopg.errors.UniqueViolation:
                delay = CONTENTION_RETRY.delay(attempt)
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            return len(rows), attempt - 1

    def _locked(self, ordered: list[str], decide: Decide) -> int:
        """Lock and read (one round trip), decide, write and commit (one round trip)."""
        conn = self.conn
        with conn.pipeline(), conn.transaction():
            conn.execute(STREAM_LOCKS, (ordered,))
            rows = conn.execute(READ, (ordered,)).fetchall()
            balances, versions = fold(rows, ordered)
            conn.execute(WRITE_LOCK)
            conn.execute(INSERT, _columns(decide(balances), versions))
        return len(rows)

    def _write(self, events: Sequence[Event], versions: dict[str, int]) -> None:
        """Seeding: one statement, its own transaction, at known versions (no read)."""
        self.conn.execute(INSERT, _columns(events, versions))

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        self._write([(a, "Deposited", opening) for a in accounts], {})

    def deposit(self, account: str, amount: int) -> None:
        self.command((account,), deposit_decision(account, amount))

    def transfer(self, source: str, target: str, amount: int) -> int:
        return self.command((source, target), transfer_decision(source, target, amount))[1]

    def inspect(self, account: str) -> tuple[int, list[int]]:
        rows = self.conn.execute(READ, ([account],)).fetchall()
        balances, _ = fold(rows, (account,))
        return balances[account], [r[1] for r in rows]

    def positions(self) -> list[int]:
        rows = self.conn.execute("SELECT position FROM raw_events ORDER BY position").fetchall()
        return [r[0] for r in rows]

    def seed_stream(self, account: str, events: int) -> None:
        self._write([(account, "Deposited", 1)] * events, {})

    def seed_commands(self, streams: Sequence[str], per_stream: int) -> None:
        versions: dict[str, int] = {}
        for _ in range(per_stream):
            for sid in streams:
                self._write([(sid, "Deposited", 1)], versions)

    def rebuild(self, account: str) -> int:
        """One deposit on the long stream: the command reads and folds all of it."""
        return self.command((account,), deposit_decision(account, 1))[0]

    def prepare_batch(self, account: str, events: int) -> Callable[[], None]:
        def call() -> None:
            self._write([(account, "Deposited", 1)] * events, {})

        return call

    def seed_log(self, events: int, per_stream: int) -> None:
        written = 0
        index = 0
        while written < events:
            chunk = min(per_stream, events - written)
            sid = f"bench-log-{index:05d}"
            self._write([(sid, "Deposited", 1)] * chunk, {})
            written += chunk
            index += 1

    def read_page(self, after: int, limit: int) -> tuple[int, int]:
        rows = self.conn.execute(READ_PAGE, (after, limit)).fetchall()
        if not rows:
            return after, 0
        loads = json.loads
        decoded = [loads(r[4]) for r in rows]
        return rows[-1][0], len(decoded)

    def catch_up(self, page: int) -> int:
        """A counting projector over the whole log, in pages, checkpoint in memory."""
        projector = Counter()
        after = 0
        loads = json.loads
        while True:
            rows = self.conn.execute(READ_PAGE, (after, page)).fetchall()
            if not rows:
                return projector.count
            for r in rows:
                projector.apply(r[0], r[1], r[3], loads(r[4]))
            after = rows[-1][0]

    def settings(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
