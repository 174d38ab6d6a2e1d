"""EventCore doing the work: commands through ``execute``, batches through ``append``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventcore import Command, RetryPolicy, StreamId, execute, require, stream
from eventcore.store import EventStore


@dataclass(frozen=True)
class Deposited:
    account: StreamId
    amount: int


@dataclass(frozen=True)
class Withdrawn:
    account: StreamId
    amount: int


EVENTS: tuple[type, ...] = (Deposited, Withdrawn)


def _delta(event: object) -> int:
    if isinstance(event, Deposited):
        return event.amount
    if isinstance(event, Withdrawn):
        return -event.amount
    return 0


class Deposit(Command[int]):
    """Read one account, fold its balance, deposit."""

    account: StreamId = stream()
    amount: int

    def initial_state(self) -> int:
        return 0

    def apply(self, balance: int, event: object) -> int:
        return balance + _delta(event)

    def handle(self, balance: int) -> list[object]:
        require(self.amount > 0, "amount must be positive")
        return [Deposited(self.account, self.amount)]


class Transfer(Command[tuple[int, int]]):
    """Read both accounts, check the source's balance, withdraw and deposit atomically."""

    source: StreamId = stream()
    target: StreamId = stream()
    amount: int

    def initial_state(self) -> tuple[int, int]:
        return (0, 0)

    def apply(self, state: tuple[int, int], event: Deposited | Withdrawn) -> tuple[int, int]:
        source, target = state
        delta = _delta(event)
        if event.account == self.source:
            return (source + delta, target)
        return (source, target + delta)

    def handle(self, state: tuple[int, int]) -> list[object]:
        require(self.amount > 0, "amount must be positive")
        require(state[0] >= self.amount, f"insufficient funds in {self.source}")
        return [Withdrawn(self.source, self.amount), Deposited(self.target, self.amount)]


# Contention: many quick retries with jitter, so that every command eventually succeeds.
CONTENTION_RETRY = RetryPolicy(max_retries=50, base_delay=0.0005, max_delay=0.02, jitter=0.5)


class EventCoreBank:
    """A :class:`~benchmarks.model.Bank` over any EventCore store."""

    def __init__(self, store: EventStore, close: Callable[[], None] | None = None) -> None:
        self.store = store
        self._close = close

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        ids = [StreamId(a) for a in accounts]
        self.store.append({sid: 0 for sid in ids}, [Deposited(sid, opening) for sid in ids])

    def deposit(self, account: str, amount: int) -> None:
        execute(self.store, Deposit(account=StreamId(account), amount=amount))

    def transfer(self, source: str, target: str, amount: int) -> int:
        command = Transfer(source=StreamId(source), target=StreamId(target), amount=amount)
        return execute(self.store, command, retry=CONTENTION_RETRY).attempts - 1

    def inspect(self, account: str) -> tuple[int, list[int]]:
        balance = 0
        versions = []
        for rec in self.store.read_stream(StreamId(account)):
            balance += _delta(rec.event)
            versions.append(rec.stream_version)
        return balance, versions

    def seed_stream(self, account: str, events: int) -> None:
        sid = StreamId(account)
        version = 0
        while version < events:
            chunk = min(10_000, events - version)
            self.store.append({sid: version}, [Deposited(sid, 1) for _ in range(chunk)])
            version += chunk

    def rebuild(self, account: str) -> int:
        result = execute(self.store, Deposit(account=StreamId(account), amount=1))
        return result.stream_versions[StreamId(account)] - 1

    def prepare_batch(self, account: str, events: int) -> Callable[[], None]:
        sid = StreamId(account)
        batch = [Deposited(sid, 1) for _ in range(events)]

        def call() -> None:
            self.store.append({sid: 0}, batch)

        return call

    def seed_log(self, events: int, per_stream: int) -> None:
        written = 0
        index = 0
        while written < events:
            sid = StreamId(f"bench-log-{index:05d}")
            chunk = min(per_stream, events - written)
            self.store.append({sid: 0}, [Deposited(sid, 1) for _ in range(chunk)])
            written += chunk
            index += 1

    def read_page(self, after: int, limit: int) -> tuple[int, int]:
        page = self.store.read_all(after=after, limit=limit)
        if not page:
            return after, 0
        return page[-1].position, len(page)

    def close(self) -> None:
        self.store.close()
        if self._close is not None:
            self._close()
