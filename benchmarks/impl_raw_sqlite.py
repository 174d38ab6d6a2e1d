"""The driver limit on SQLite: the library's work written by hand with ``sqlite3``.

Same table shape and indexes as EventCore's, WAL, ``synchronous=FULL`` (read back from the
connection), one connection shared under a lock as EventCore's store does. A command is one
transaction that does what ``execute`` does:

1. ``BEGIN IMMEDIATE`` (the write lock: on SQLite one writer per file, so no conflict can
   happen between the read and the write);
2. read every event of the command's streams — both accounts' histories for a transfer —
   with one ``SELECT stream_id, stream_version, event_type, data ... WHERE stream_id IN
   (...)``, decode each event's JSON and fold the balances;
3. decide (a transfer refuses to overdraw the source; the amount must be positive);
4. insert the new events at the versions read plus one (the ``UNIQUE (stream_id,
   stream_version)`` constraint is the version check), each with its own event id, time and
   the command's metadata (a correlation id, as ``execute`` stamps);
5. ``COMMIT``.

It reads only the columns the decision needs and builds no envelope objects, so it bounds
from above what a library can do with the same work and the same durability. The global
read fetches the same columns as EventCore and decodes each event's JSON.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

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
READ_ONE = (
    "SELECT stream_id, stream_version, event_type, data FROM raw_events WHERE stream_id = ? "
    "ORDER BY position"
)
READ_TWO = (
    "SELECT stream_id, stream_version, event_type, data FROM raw_events "
    "WHERE stream_id IN (?, ?) ORDER BY position"
)
READ_PAGE = (
    "SELECT position, stream_id, stream_version, event_type, data, event_id, recorded_at, "
    "metadata FROM raw_events WHERE position > ? ORDER BY position LIMIT ?"
)

_counter = itertools.count()
_counter_lock = threading.Lock()

Event = tuple[str, str, int]  # (stream, event type, amount)
Decide = Callable[[dict[str, int]], list[Event]]


class Refused(Exception):
    """The decision refused the command (a business rule)."""


def ordered_id() -> str:
    """A time-ordered unique id in UUID text form (what UUIDv7 gives), without a library."""
    with _counter_lock:
        n = next(_counter)
    h = f"{time.time_ns():016x}{n & 0xFFFF_FFFF_FFFF_FFFF:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def metadata_text(correlation_id: str) -> str:
    """The command's metadata, in the shape EventCore stores (a correlation id)."""
    return json.dumps(
        {"causation_id": None, "correlation_id": correlation_id, "custom": {}},
        separators=(",", ":"),
        sort_keys=True,
    )


def event_rows(events: Sequence[Event], versions: dict[str, int]) -> list[tuple[object, ...]]:
    """Rows for ``events`` at the versions after ``versions`` (updated in place), stamped
    with one metadata whose correlation id is the first event's id."""
    ids = [ordered_id() for _ in events]
    meta = metadata_text(ids[0]) if ids else "{}"
    rows: list[tuple[object, ...]] = []
    for event_id, (sid, event_type, amount) in zip(ids, events, strict=True):
        versions[sid] = versions.get(sid, 0) + 1
        data = json.dumps({"account": sid, "amount": amount}, separators=(",", ":"))
        now = datetime.now(UTC).isoformat()
        rows.append((event_id, sid, versions[sid], event_type, data, meta, now))
    return rows


def fold(
    rows: Iterable[Sequence[Any]], streams: Sequence[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """(balances, versions) of ``streams`` from rows of (stream, version, type, data)."""
    balances = dict.fromkeys(streams, 0)
    versions = dict.fromkeys(streams, 0)
    loads = json.loads
    for sid, version, event_type, data in rows:
        amount = loads(data)["amount"]
        balances[sid] += amount if event_type == "Deposited" else -amount
        versions[sid] = version
    return balances, versions


def deposit_decision(account: str, amount: int) -> Decide:
    def decide(balances: dict[str, int]) -> list[Event]:
        if amount <= 0:
            raise Refused("amount must be positive")
        return [(account, "Deposited", amount)]

    return decide


def transfer_decision(source: str, target: str, amount: int) -> Decide:
    def decide(balances: dict[str, int]) -> list[Event]:
        if amount <= 0:
            raise Refused("amount must be positive")
        if balances[source] < amount:
            raise Refused(f"insufficient funds in {source}")
        return [(source, "Withdrawn", amount), (target, "Deposited", amount)]

    return decide


class RawSqliteBank:
    """A :class:`~benchmarks.model.Bank` written directly against ``sqlite3``.

    One connection, shared by the threads under a lock, as EventCore's SQLite store does:
    threads wait on the lock, not in SQLite's busy handler (which sleeps in steps of
    milliseconds)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self._lock = threading.Lock()
        self.conn.executescript(SCHEMA)

    def settings(self) -> dict[str, str]:
        """journal_mode and synchronous, read back from the connection."""
        with self._lock:
            return pragmas([self.conn])

    def command(self, streams: Sequence[str], decide: Decide) -> int:
        """One transaction: lock, read and fold the streams, decide, write, commit; return
        how many events were folded."""
        conn = self.conn
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                sql = READ_TWO if len(streams) == 2 else READ_ONE
                rows = conn.execute(sql, tuple(streams)).fetchall()
                balances, versions = fold(rows, streams)
                conn.executemany(INSERT, event_rows(decide(balances), versions))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(rows)

    def _write(self, events: Sequence[Event], versions: dict[str, int]) -> None:
        """Seeding: one transaction writing at known versions (no read, no decision)."""
        conn = self.conn
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(INSERT, event_rows(events, versions))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        self._write([(a, "Deposited", opening) for a in accounts], {})

    def deposit(self, account: str, amount: int) -> None:
        self.command((account,), deposit_decision(account, amount))

    def transfer(self, source: str, target: str, amount: int) -> int:
        self.command((source, target), transfer_decision(source, target, amount))
        return 0  # no retries: the write lock is taken before the read

    def inspect(self, account: str) -> tuple[int, list[int]]:
        with self._lock:
            rows = self.conn.execute(READ_ONE, (account,)).fetchall()
        balances, _ = fold(rows, (account,))
        return balances[account], [r[1] for r in rows]

    def positions(self) -> list[int]:
        with self._lock:
            rows = self.conn.execute("SELECT position FROM raw_events ORDER BY position")
            return [r[0] for r in rows.fetchall()]

    def seed_stream(self, account: str, events: int) -> None:
        self._write([(account, "Deposited", 1)] * events, {})

    def seed_commands(self, streams: Sequence[str], per_stream: int) -> None:
        versions: dict[str, int] = {}
        for _ in range(per_stream):
            for sid in streams:
                self._write([(sid, "Deposited", 1)], versions)

    def rebuild(self, account: str) -> int:
        """One deposit on the long stream: the command reads and folds all of it."""
        return self.command((account,), deposit_decision(account, 1))

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
        with self._lock:
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
            with self._lock:
                rows = self.conn.execute(READ_PAGE, (after, page)).fetchall()
            if not rows:
                return projector.count
            for r in rows:
                projector.apply(r[0], r[1], r[3], loads(r[4]))
            after = rows[-1][0]

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class Counter:
    """The raw driver's trivial projector: counts events, checks position order."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0

    def apply(self, position: int, stream_id: str, event_type: str, data: object) -> None:
        if position <= self.last:
            raise AssertionError(f"position {position} after {self.last}")
        self.last = position
        self.count += 1


def pragmas(conns: Iterable[Any]) -> dict[str, str]:
    """The distinct journal_mode and synchronous values of ``conns`` (``synchronous`` as a
    name: 2 is FULL)."""
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    journal: set[str] = set()
    sync: set[str] = set()
    for conn in conns:
        journal.add(str(conn.execute("PRAGMA journal_mode").fetchone()[0]).upper())
        sync.add(names.get(int(conn.execute("PRAGMA synchronous").fetchone()[0]), "?"))
    return {"journal_mode": ",".join(sorted(journal)), "synchronous": ",".join(sorted(sync))}
