"""The work :mod:`benchmarks.instructions` counts under callgrind, one case per interpreter.

``python -m benchmarks.instruction_cases CASE setup|work FOLDER`` builds the case's data and
warms its code paths (``setup``), and with ``work`` also does the measured work; it prints
how many units (commands, events) the work covered, and checks that the work was done.
Counting both and subtracting leaves the instructions of the work alone.

Cases:

- ``transfer-memory``: ``execute`` of a two-stream transfer on the in-memory store, among
  50 accounts after 1,000 warm-up transfers (streams of about 40 events, as in the
  ``transfers`` workload): the fixed per-command cost, with no driver underneath;
- ``transfer-sqlite``: the same on a SQLite file (WAL, ``synchronous=FULL``: the fsync is
  the kernel's and not counted);
- ``transfer-raw-sqlite``: the raw driver's transfer (``benchmarks.impl_raw_sqlite``) on
  the same plan: read and fold both histories, decide, write, in one transaction;
- ``page-memory-20k`` / ``page-memory-100k``: paging through an in-memory log of 20,000 /
  100,000 events with ``read_all(after=..., limit=1000)`` to the end (per event: linear
  paging gives both the same figure);
- ``catch-up``: ``run_projection`` of a counting projector over a SQLite log of 20,000
  events (20 streams of 1,000, one batched append each), pages of 1,000;
- ``decode``: ``decode_rows`` of one page of 1,000 of those rows, 20 times.

The parent puts the measured tree's ``eventcore`` first on ``sys.path`` before importing
this module (``--root`` of :mod:`benchmarks.instructions`).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from typing import Any, Final

TRANSFER_ACCOUNTS: Final = 50
TRANSFER_WARMUP: Final = 1_000
TRANSFERS: Final = 200
PAGE: Final = 1_000
LOG_EVENTS: Final = 20_000  # the SQLite log of catch-up and decode
DECODE_REPEATS: Final = 20


def _transfer_plan(count: int) -> list[tuple[str, str, int]]:
    from benchmarks.workloads import account_ids, transfer_plan

    rng = random.Random(20260101)
    return transfer_plan(rng, account_ids(TRANSFER_ACCOUNTS), count)


def _transfers(bank: Any, work: bool) -> int:
    from benchmarks.workloads import OPENING, account_ids

    bank.open_accounts(account_ids(TRANSFER_ACCOUNTS), OPENING)
    plan = _transfer_plan(TRANSFER_WARMUP + TRANSFERS)
    for source, target, amount in plan[:TRANSFER_WARMUP]:
        bank.transfer(source, target, amount)
    if not work:
        return TRANSFERS
    for source, target, amount in plan[TRANSFER_WARMUP:]:
        bank.transfer(source, target, amount)
    balance, versions = bank.inspect(plan[-1][0])
    assert versions == list(range(1, len(versions) + 1)) and balance > 0
    return TRANSFERS


def transfer_memory(folder: str, work: bool) -> int:
    from benchmarks.impl_eventcore import EVENTS, EventCoreBank
    from eventcore import InMemoryEventStore

    return _transfers(EventCoreBank(InMemoryEventStore(events=list(EVENTS))), work)


def transfer_sqlite(folder: str, work: bool) -> int:
    from benchmarks.impl_eventcore import EVENTS, EventCoreBank
    from eventcore import SqliteEventStore

    path = os.path.join(folder, f"transfer-ec-{'work' if work else 'setup'}.db")
    store = SqliteEventStore(path, events=list(EVENTS), synchronous="FULL")
    return _transfers(EventCoreBank(store), work)


def transfer_raw_sqlite(folder: str, work: bool) -> int:
    from benchmarks.impl_raw_sqlite import RawSqliteBank

    path = os.path.join(folder, f"transfer-raw-{'work' if work else 'setup'}.db")
    return _transfers(RawSqliteBank(path), work)


def _paging(events: int, work: bool) -> int:
    from benchmarks.impl_eventcore import EVENTS, Deposited
    from eventcore import InMemoryEventStore, StreamId

    store = InMemoryEventStore(events=list(EVENTS))
    for index in range(events // PAGE):
        sid = StreamId(f"page-{index:05d}")
        store.append({sid: 0}, [Deposited(sid, 1) for _ in range(PAGE)])
    store.read_all(after=0, limit=PAGE)  # warm
    if not work:
        return events
    after, seen = 0, 0
    while True:
        page = store.read_all(after=after, limit=PAGE)
        if not page:
            break
        after = page[-1].position
        seen += len(page)
    assert seen == events, seen
    return events


def page_memory_20k(folder: str, work: bool) -> int:
    return _paging(20_000, work)


def page_memory_100k(folder: str, work: bool) -> int:
    return _paging(100_000, work)


def _log_store(folder: str) -> Any:
    from benchmarks.projections import EVENTS
    from eventcore import SqliteEventStore

    return SqliteEventStore(os.path.join(folder, "log.db"), events=EVENTS)


def build_log(folder: str) -> None:
    """The SQLite log of ``catch-up`` and ``decode`` (written once, by this tree)."""
    from benchmarks.projections import build_log as build

    store = _log_store(folder)
    if store.head() == 0:
        build(store, LOG_EVENTS)
    store.close()


def _first_page(store: Any) -> list[Any]:
    from eventcore.stores._rows import decode_rows

    try:  # this tree: the database runs a plan on a reader connection
        from eventcore.stores.sqlite import COLUMNS
        from eventcore.stores.sqlite.plans import rows_plan

        sql = f"SELECT {COLUMNS} FROM eventcore_events ORDER BY position LIMIT {PAGE}"
        rows: list[Any] = store.database.read("bench", rows_plan(sql, ()))
    except ImportError:  # an older tree measured side by side: its private connection
        from eventcore.stores.sqlite import _COLUMNS  # type: ignore[attr-defined]

        old = f"SELECT {_COLUMNS} FROM eventcore_events ORDER BY position LIMIT {PAGE}"
        rows = store._conn.execute(old).fetchall()
    decode_rows(store.types, rows, text_envelope=True)  # warm: codecs compiled, caches filled
    return rows


def catch_up(folder: str, work: bool) -> int:
    from benchmarks.projections import CountingProjector
    from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, run_projection

    store = _log_store(folder)
    _first_page(store)
    if work:
        projector = CountingProjector("count")
        config = ProjectionConfig(InMemoryCheckpointStore(), page_size=PAGE)
        run_projection(projector, store, config)
        assert projector.count == LOG_EVENTS, projector.count
    return LOG_EVENTS


def decode(folder: str, work: bool) -> int:
    from eventcore.stores._rows import decode_rows

    store = _log_store(folder)
    rows = _first_page(store)
    if work:
        for _ in range(DECODE_REPEATS):
            decode_rows(store.types, rows, text_envelope=True)
    return DECODE_REPEATS * PAGE


CASES: Final[dict[str, tuple[Callable[[str, bool], int], str]]] = {
    "transfer-memory": (transfer_memory, "command"),
    "transfer-sqlite": (transfer_sqlite, "command"),
    "transfer-raw-sqlite": (transfer_raw_sqlite, "command"),
    "page-memory-20k": (page_memory_20k, "event"),
    "page-memory-100k": (page_memory_100k, "event"),
    "catch-up": (catch_up, "event"),
    "decode": (decode, "event"),
}
NEEDS_LOG: Final = frozenset({"catch-up", "decode"})


def main(argv: list[str]) -> int:
    case, mode, folder = argv
    run, _ = CASES[case]
    print(run(folder, mode == "work"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
