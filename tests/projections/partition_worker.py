"""A worker of a partitioned projection in its own process, for the rebalancing tests.

    python partition_worker.py DSN SCHEMA PARTITIONS

Runs a :class:`PartitionWorker` over the PostgreSQL store: a transactional projector writes
one row per event (``rm``: position, stream, stream version, worker pid) in the checkpoint's
transaction. Prints ``partitions [..]`` whenever the set of partitions it runs changes, and
runs until killed or until its stdin closes.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from eventcore.events import RecordedEvent
from eventcore.projections import ProjectionConfig
from eventcore.projections.partitions import Partitioning, PartitionWorker
from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
from eventcore.stores.postgres.projections import PostgresCheckpointStore, PostgresLeadership
from eventcore.testing.projection_contract import EVENTS


class Rows:
    """Exactly-once: one row per event, in the checkpoint's transaction."""

    name = "rows"
    transactional = True

    def __init__(self, schema: str) -> None:
        self.sql = (
            f"INSERT INTO {schema}.rm (position, stream_id, version, pid) VALUES (%s, %s, %s, %s)"
        )

    def apply(self, event: RecordedEvent, tx: Any) -> None:
        tx.execute(
            self.sql, (event.position, str(event.stream_id), event.stream_version, os.getpid())
        )


def main(dsn: str, schema: str, partitions: str) -> None:
    store = PostgresEventStore(PostgresConfig(dsn, schema=schema, pool_max=6), events=EVENTS)
    config = ProjectionConfig(
        PostgresCheckpointStore(store), leadership=PostgresLeadership(store), page_size=50
    )
    worker = PartitionWorker(
        Rows(schema), store, config, Partitioning(int(partitions)), rebalance_interval=0.2
    )
    worker.start()
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    shown = None
    while not closed.wait(0.05):  # until the test closes our stdin (or kills us)
        now = sorted(worker.partitions)
        if now != shown:
            print("partitions", now, flush=True)
            shown = now
    worker.stop()
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
