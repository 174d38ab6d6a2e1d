"""The ``eventsourcing`` library (9.5) doing the same work: an ``Account`` aggregate, one
application per store (POPO, SQLite, PostgreSQL), no snapshots, no cache.

A command gets the aggregates (replaying every event), decides and saves (optimistic: a
conflict raises ``IntegrityError`` and is retried with EventCore's backoff). Catch-up is the
library's pull path for process applications (what ``NotificationLogReader.select`` does,
with the benchmark's page size): ``recorder.select_notifications`` page by page, each
notification mapped back to a domain event and counted (its SQLite recorder has no
subscriptions)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from benchmarks.impl_eventcore import CONTENTION_RETRY


class Account(Aggregate):
    """A bank account: the aggregate the library's users would write."""

    @event("Opened")
    def __init__(self, balance: int) -> None:
        self.balance = balance

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount

    @event("Withdrawn")
    def withdraw(self, amount: int) -> None:
        self.balance -= amount


class InsufficientFunds(Exception):
    pass


class BenchBank(Application[UUID]):
    """The application; the environment chooses the persistence module."""

    name = "BenchBank"


class EventsourcingBank:
    """A :class:`~benchmarks.model.Bank` over an ``eventsourcing`` application."""

    def __init__(self, env: dict[str, str], close: Callable[[], None] | None = None) -> None:
        self.app = BenchBank(env=env)
        self._ids: dict[str, UUID] = {}
        self._close = close

    def _new(self, account: str, balance: int) -> Account:
        aggregate = Account(balance)
        self._ids[account] = aggregate.id
        return aggregate

    def _get(self, account: str) -> Account:
        aggregate: Account = self.app.repository.get(self._ids[account])
        return aggregate

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        self.app.save(*[self._new(a, opening) for a in accounts])

    def deposit(self, account: str, amount: int) -> None:
        aggregate = self._get(account)
        aggregate.deposit(amount)
        self.app.save(aggregate)

    def transfer(self, source: str, target: str, amount: int) -> int:
        attempt = 0
        while True:
            attempt += 1
            src = self._get(source)
            dst = self._get(target)
            if src.balance < amount:
                raise InsufficientFunds(source)
            src.withdraw(amount)
            dst.deposit(amount)
            try:
                self.app.save(src, dst)
            except IntegrityError:
                delay = CONTENTION_RETRY.delay(attempt)
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            return attempt - 1

    def inspect(self, account: str) -> tuple[int, list[int]]:
        versions = [e.originator_version for e in self.app.events.get(self._ids[account])]
        return self._get(account).balance, versions

    def seed_stream(self, account: str, events: int) -> None:
        aggregate = self._new(account, 1)
        for _ in range(events - 1):
            aggregate.deposit(1)
        self.app.save(aggregate)

    def seed_commands(self, streams: Sequence[str], per_stream: int) -> None:
        """One ``save`` per event, round-robin over ``streams``: the log as commands write it
        (the aggregates stay in memory, so seeding does not replay them)."""
        aggregates = {sid: self._new(sid, 1) for sid in streams}
        for sid in streams:
            self.app.save(aggregates[sid])
        for _ in range(per_stream - 1):
            for sid in streams:
                aggregates[sid].deposit(1)
                self.app.save(aggregates[sid])

    def rebuild(self, account: str) -> int:
        aggregate = self._get(account)
        folded = aggregate.version
        aggregate.deposit(1)
        self.app.save(aggregate)
        return folded

    def prepare_batch(self, account: str, events: int) -> Callable[[], None]:
        aggregate = self._new(account, 1)
        for _ in range(events - 1):
            aggregate.deposit(1)

        def call() -> None:
            self.app.save(aggregate)

        return call

    def seed_log(self, events: int, per_stream: int) -> None:
        written = 0
        index = 0
        while written < events:
            chunk = min(per_stream, events - written)
            aggregate = self._new(f"bench-log-{index:05d}", 1)
            for _ in range(chunk - 1):
                aggregate.deposit(1)
            self.app.save(aggregate)
            written += chunk
            index += 1

    def read_page(self, after: int, limit: int) -> tuple[int, int]:
        notifications = self.app.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        if not notifications:
            return after, 0
        to_domain_event = self.app.mapper.to_domain_event
        decoded: list[Any] = [to_domain_event(n) for n in notifications]
        return notifications[-1].id, len(decoded)

    def catch_up(self, page: int) -> int:
        select = self.app.recorder.select_notifications
        to_domain_event = self.app.mapper.to_domain_event
        count, last = 0, 0
        while True:
            notifications = select(start=last, limit=page, inclusive_of_start=False)
            if not notifications:
                return count
            for notification in notifications:
                to_domain_event(notification)
                if notification.id <= last:
                    raise AssertionError(f"notification {notification.id} after {last}")
                last = notification.id
                count += 1

    def settings(self) -> dict[str, str]:
        """SQLite: journal_mode and synchronous read back from one of its connections."""
        datastore = getattr(self.app.recorder, "datastore", None)
        if datastore is None or type(datastore).__name__ != "SQLiteDatastore":
            return {}
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal = str(cursor.fetchone()[0]).upper()
            cursor.execute("PRAGMA synchronous")
            sync = names.get(int(cursor.fetchone()[0]), "?")
        return {"journal_mode": journal, "synchronous": sync}

    def close(self) -> None:
        self.app.close()
        if self._close is not None:
            self._close()
