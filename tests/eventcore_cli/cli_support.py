"""A small domain for the ``eventcore`` command's tests: events, a log writer, a projector
for ``dead-letters retry``, and raw-row writers for ``verify`` and the 100k round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from eventcore import RecordedEvent, SeededIds, StreamId, TickingClock
from eventcore.events import Metadata
from eventcore.raw import RawEvent


@dataclass(frozen=True)
class Deposited:
    account: StreamId
    amount: int


@dataclass(frozen=True)
class Withdrawn:
    account: StreamId
    amount: int


EVENTS = [Deposited, Withdrawn]


def clock_and_ids() -> dict[str, Any]:
    return {"clock": TickingClock(), "ids": SeededIds(seed=7)}


def fill(store: Any) -> None:
    """Six events on three accounts, one write of two events (positions 3-4)."""
    a, b, c = StreamId("account-a"), StreamId("account-b"), StreamId("order-1")
    store.append({a: 0}, [Deposited(a, 10)])
    store.append({b: 0}, [Deposited(b, 20)])
    store.append({a: 1, b: 1}, [Withdrawn(a, 5), Deposited(b, 5)])  # one write
    store.append({c: 0}, [Deposited(c, 1)], metadata=Metadata(custom={"by": "ops"}))
    store.append({a: 2}, [Deposited(a, 7)])


class Ledger:
    """A projector that fails on the events listed in ``FAILING`` (retry tests)."""

    name = "ledger"
    FAILING: ClassVar[set[int]] = set()

    def __init__(self) -> None:
        self.applied: list[int] = []

    def apply(self, event: RecordedEvent) -> None:
        if event.position in Ledger.FAILING:
            raise RuntimeError(f"cannot apply {event.position}")
        self.applied.append(event.position)


def raw_log(count: int, streams: int = 1000) -> list[RawEvent]:
    """``count`` raw rows on ``streams`` streams, one event per write (fast to import)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    meta = Metadata().to_json()
    versions = [0] * streams
    rows = []
    for position in range(1, count + 1):
        n = position % streams
        versions[n] += 1
        rows.append(
            RawEvent(
                position,
                f"account-{n}",
                versions[n],
                "Deposited",
                1,
                f'{{"account":"account-{n}","amount":{position}}}',
                UUID(int=position),
                start + timedelta(seconds=position),
                meta,
                position,
            )
        )
    return rows


@dataclass
class Target:
    """One store the command works on; ``args`` select it on the command line."""

    kind: str
    args: list[str]
    spec: str
    schema: str | None
    opened: list[Any] = field(default_factory=list)

    def store(self, **options: Any) -> Any:
        options = {"events": EVENTS, **clock_and_ids(), **options}
        if self.kind == "sqlite":
            from eventcore.stores.sqlite import SqliteEventStore

            store = SqliteEventStore(self.spec, **options)
        else:
            from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

            config = PostgresConfig(self.spec, schema=self.schema or "eventcore")
            store = PostgresEventStore(config, **options)
        self.opened.append(store)
        return store

    def part(self, kind: str, store: Any) -> Any:
        """The checkpoint, dead-letter, leadership or snapshot store beside ``store``."""
        if self.kind == "sqlite":
            from eventcore.projections.sqlite import (
                SqliteCheckpointStore,
                SqliteDeadLetterStore,
                SqliteLeadership,
            )
            from eventcore.snapshots.sqlite import SqliteSnapshotStore

            made = {
                "checkpoints": SqliteCheckpointStore,
                "dead_letters": SqliteDeadLetterStore,
                "leadership": SqliteLeadership,
                "snapshots": SqliteSnapshotStore,
            }[kind](store)
        else:
            from eventcore.snapshots.postgres import PostgresSnapshotStore
            from eventcore.stores.postgres.projections import (
                PostgresCheckpointStore,
                PostgresDeadLetterStore,
                PostgresLeadership,
            )

            made = {
                "checkpoints": PostgresCheckpointStore,
                "dead_letters": PostgresDeadLetterStore,
                "leadership": PostgresLeadership,
                "snapshots": PostgresSnapshotStore,
            }[kind](store)
        self.opened.append(made)
        return made

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement on the database directly, bypassing the store (to corrupt it)."""
        if self.kind == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.spec, isolation_level=None)
            try:
                conn.execute(statement, params)
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.spec, autocommit=True) as conn:
                conn.execute(statement.replace("{schema}", self.schema or "eventcore"), params)

    def close(self) -> None:
        for thing in reversed(self.opened):
            thing.close()
