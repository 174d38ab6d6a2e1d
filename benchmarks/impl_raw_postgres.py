"""The driver limit on PostgreSQL: the same SQL work hand-written with psycopg 3.

The same table shape as EventCore's and the same guarantees: a command is one READ COMMITTED
transaction that takes ``pg_advisory_xact_lock`` on each stream (sorted, so two commands never
deadlock), then one schema-wide advisory lock held until commit (so positions are
``max(position) + 1`` onwards: gapless and in commit order) — one statement — then one
``INSERT ... SELECT`` that reads each stream's version once and writes all the rows, then
``COMMIT``: sent as one pipelined batch, one round trip. No events are read and no business
decision is made: this bounds what a library can do on the same server with the same
guarantees.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from benchmarks.impl_raw_sqlite import ordered_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_events (
    position        BIGINT      PRIMARY KEY,
    event_id        TEXT        NOT NULL UNIQUE,
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

# Stream locks in sorted key order, then the write lock: one statement.
LOCKS = (
    "SELECT pg_advisory_xact_lock(k) FROM ("
    "SELECT DISTINCT 0 AS g, hashtextextended('raw/' || s, 0) AS k FROM unnest(%s::text[]) AS s "
    "UNION ALL SELECT 1, hashtextextended('raw/write', 0)) AS keys ORDER BY g, k"
)
INSERT = """
WITH r AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])
           WITH ORDINALITY AS r(event_id, stream_id, event_type, data, ord)
), v AS MATERIALIZED (
    SELECT s.stream_id,
           coalesce((SELECT max(e.stream_version) FROM raw_events e
                      WHERE e.stream_id = s.stream_id), 0) AS base
      FROM (SELECT DISTINCT stream_id FROM r) AS s
), p AS MATERIALIZED (
    SELECT coalesce(max(position), 0) AS base FROM raw_events
)
INSERT INTO raw_events (position, event_id, stream_id, stream_version, event_type, data,
                        metadata, recorded_at)
SELECT p.base + r.ord, r.event_id, r.stream_id,
       v.base + row_number() OVER (PARTITION BY r.stream_id ORDER BY r.ord),
       r.event_type, r.data::jsonb, '{}'::jsonb, %s
  FROM r JOIN v USING (stream_id) CROSS JOIN p
"""


class RawPostgresBank:
    """A :class:`~benchmarks.model.Bank` written directly against psycopg."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
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

    def _command(self, streams: Sequence[str], events: list[tuple[str, str, int]]) -> None:
        """One transaction in one round trip: stream locks, write lock, insert, commit."""
        ordered = sorted(set(streams))
        ids, sids, types, data = [], [], [], []
        for sid, event_type, amount in events:
            ids.append(ordered_id())
            sids.append(sid)
            types.append(event_type)
            data.append(json.dumps({"account": sid, "amount": amount}, separators=(",", ":")))
        conn = self.conn
        with conn.pipeline(), conn.transaction():
            conn.execute(LOCKS, (ordered,))
            conn.execute(INSERT, (ids, sids, types, data, datetime.now(UTC)))

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        self._command(accounts, [(a, "Deposited", opening) for a in accounts])

    def deposit(self, account: str, amount: int) -> None:
        self._command((account,), [(account, "Deposited", amount)])

    def transfer(self, source: str, target: str, amount: int) -> int:
        self._command(
            (source, target), [(source, "Withdrawn", amount), (target, "Deposited", amount)]
        )
        return 0

    def _fold(self, account: str) -> tuple[int, list[int]]:
        rows = self.conn.execute(
            "SELECT stream_version, event_type, data::text FROM raw_events WHERE stream_id = %s "
            "ORDER BY stream_version",
            (account,),
        ).fetchall()
        balance = 0
        for _, event_type, data in rows:
            amount = json.loads(data)["amount"]
            balance += amount if event_type == "Deposited" else -amount
        return balance, [r[0] for r in rows]

    def inspect(self, account: str) -> tuple[int, list[int]]:
        return self._fold(account)

    def seed_stream(self, account: str, events: int) -> None:
        self._command((account,), [(account, "Deposited", 1)] * events)

    def rebuild(self, account: str) -> int:
        """Read and decode the stream, fold it, then the one-transaction command."""
        _, versions = self._fold(account)
        self.deposit(account, 1)
        return len(versions)

    def prepare_batch(self, account: str, events: int) -> Callable[[], None]:
        def call() -> None:
            self._command((account,), [(account, "Deposited", 1)] * events)

        return call

    def seed_log(self, events: int, per_stream: int) -> None:
        written = 0
        index = 0
        while written < events:
            chunk = min(per_stream, events - written)
            sid = f"bench-log-{index:05d}"
            self._command((sid,), [(sid, "Deposited", 1)] * chunk)
            written += chunk
            index += 1

    def read_page(self, after: int, limit: int) -> tuple[int, int]:
        rows = self.conn.execute(
            "SELECT position, stream_id, stream_version, event_type, data::text FROM raw_events "
            "WHERE position > %s ORDER BY position LIMIT %s",
            (after, limit),
        ).fetchall()
        if not rows:
            return after, 0
        decoded = [json.loads(r[4]) for r in rows]
        return rows[-1][0], len(decoded)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
