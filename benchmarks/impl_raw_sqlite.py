"""The driver limit on SQLite: the same SQL work hand-written with ``sqlite3``.

Same table shape and indexes as EventCore's, WAL, ``synchronous=FULL``. A command is one
``BEGIN IMMEDIATE`` transaction: one version read per stream, one insert (``executemany``)
and one commit. It reads no events and makes no business decision (the accounts are funded
so that none is needed), so it bounds from above what a library can do with the same
durability.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_events (
    position        INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE UNIQUE INDEX IF NOT EXISTS raw_events_event_id ON raw_events (event_id);
CREATE INDEX IF NOT EXISTS raw_events_type ON raw_events (event_type, position);
"""

INSERT = (
    "INSERT INTO raw_events (event_id, stream_id, stream_version, event_type, data, metadata, "
    "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
VERSION = "SELECT COALESCE(MAX(stream_version), 0) FROM raw_events WHERE stream_id = ?"

_counter = itertools.count()
_counter_lock = threading.Lock()


def ordered_id() -> str:
    """A time-ordered unique id (what UUIDv7 gives), without a library."""
    with _counter_lock:
        n = next(_counter)
    return f"{time.time_ns():024x}-{n:012x}"


def row(stream_id: str, version: int, event_type: str, amount: int) -> tuple[object, ...]:
    data = json.dumps({"account": stream_id, "amount": amount}, separators=(",", ":"))
    now = datetime.now(UTC).isoformat()
    return (ordered_id(), stream_id, version, event_type, data, "{}", now)


class RawSqliteBank:
    """A :class:`~benchmarks.model.Bank` written directly against ``sqlite3``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.conn.executescript(SCHEMA)

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _command(self, streams: Sequence[str], events: list[tuple[str, str, int]]) -> None:
        """One transaction: version reads, one insert, one commit."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            versions = {sid: conn.execute(VERSION, (sid,)).fetchone()[0] for sid in streams}
            rows = []
            for sid, event_type, amount in events:
                versions[sid] += 1
                rows.append(row(sid, versions[sid], event_type, amount))
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        self._command(accounts, [(a, "Deposited", opening) for a in accounts])

    def deposit(self, account: str, amount: int) -> None:
        self._command((account,), [(account, "Deposited", amount)])

    def transfer(self, source: str, target: str, amount: int) -> int:
        self._command(
            (source, target), [(source, "Withdrawn", amount), (target, "Deposited", amount)]
        )
        return 0

    def inspect(self, account: str) -> tuple[int, list[int]]:
        rows = self.conn.execute(
            "SELECT stream_version, event_type, data FROM raw_events WHERE stream_id = ? "
            "ORDER BY stream_version",
            (account,),
        ).fetchall()
        balance = 0
        for _, event_type, data in rows:
            amount = json.loads(data)["amount"]
            balance += amount if event_type == "Deposited" else -amount
        return balance, [r[0] for r in rows]

    def seed_stream(self, account: str, events: int) -> None:
        self._command((account,), [(account, "Deposited", 1)] * events)

    def rebuild(self, account: str) -> int:
        """Read and decode the stream, fold it, then the one-transaction command."""
        rows = self.conn.execute(
            "SELECT stream_version, event_type, data FROM raw_events WHERE stream_id = ? "
            "ORDER BY stream_version",
            (account,),
        ).fetchall()
        balance = 0
        for _, event_type, data in rows:
            amount = json.loads(data)["amount"]
            balance += amount if event_type == "Deposited" else -amount
        self.deposit(account, 1)
        return len(rows)

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
            "SELECT position, stream_id, stream_version, event_type, data FROM raw_events "
            "WHERE position > ? ORDER BY position LIMIT ?",
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


def remove_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
