"""A projection in another process, for the crash and leadership tests.

    python process_worker.py run  BACKEND WHERE KIND CRASH_AFTER
    python process_worker.py hold BACKEND WHERE NAME

``WHERE`` is the SQLite file, or ``DSN|SCHEMA``. ``run`` projects every event (``KIND`` is
``plain``: one line per event appended to ``<effects>``; or ``tx``: one row per event in
table ``rm`` written in the checkpoint's transaction) and kills the process with
``os._exit(3)`` right after the effect of the ``CRASH_AFTER``-th event (0: never).
``hold`` takes the leadership of ``NAME``, prints ``held`` and waits to be killed.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from eventcore.events import RecordedEvent
from eventcore.projections import (
    ProjectionConfig,
    SqliteCheckpointStore,
    SqliteLeadership,
    run_projection,
)
from eventcore.store import EventStore
from eventcore.stores.sqlite import SqliteEventStore
from eventcore.testing.projection_contract import EVENTS

PAGE_SIZE = 10


def open_backend(backend: str, where: str) -> tuple[EventStore, Any, Any]:
    """The store, its checkpoint store and its leadership."""
    if backend == "sqlite":
        store = SqliteEventStore(where, events=EVENTS)
        return store, SqliteCheckpointStore(store), SqliteLeadership(store)
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
    from eventcore.stores.postgres.projections import PostgresCheckpointStore, PostgresLeadership

    dsn, schema = where.split("|")
    pg = PostgresEventStore(PostgresConfig(dsn, schema=schema, pool_max=2), events=EVENTS)
    return pg, PostgresCheckpointStore(pg), PostgresLeadership(pg)


def effects_path(where: str) -> str:
    return (where if "|" not in where else where.split("|")[1]) + ".effects"


class Plain:
    """At-least-once: appends the position to a file (the effect outside any transaction)."""

    def __init__(self, path: str, crash_after: int) -> None:
        self.name = "plain"
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.crash_after = crash_after
        self.count = 0

    def apply(self, event: RecordedEvent) -> None:
        os.write(self.fd, f"{event.position}\n".encode())
        self.count += 1
        if self.count == self.crash_after:
            os._exit(3)


class Transactional:
    """Exactly-once: one row per event, in the checkpoint's transaction."""

    transactional = True

    def __init__(self, table: str, param: str, crash_after: int) -> None:
        self.name = "tx"
        self.sql = f"INSERT INTO {table} (position) VALUES ({param})"
        self.crash_after = crash_after
        self.count = 0

    def apply(self, event: RecordedEvent, tx: Any) -> None:
        tx.execute(self.sql, (event.position,))
        self.count += 1
        if self.count == self.crash_after:
            os._exit(3)


def make_projector(backend: str, where: str, kind: str, crash_after: int) -> Any:
    if kind == "plain":
        return Plain(effects_path(where), crash_after)
    if backend == "sqlite":
        return Transactional("rm", "?", crash_after)
    return Transactional(f"{where.split('|')[1]}.rm", "%s", crash_after)


def main(argv: list[str]) -> None:
    command, backend, where = argv[:3]
    store, checkpoints, leadership = open_backend(backend, where)
    if command == "run":
        kind, crash_after = argv[3], int(argv[4])
        projector = make_projector(backend, where, kind, crash_after)
        config = ProjectionConfig(checkpoints, leadership=leadership, page_size=PAGE_SIZE)
        report = run_projection(projector, store, config)
        print(report.applied, flush=True)
    elif command == "hold":
        if not leadership.acquire(argv[3]):
            print("refused", flush=True)
            return
        print("held", flush=True)
        time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1:])
