"""EventCore doing the work: commands through ``execute``, batches through ``append``, the
global log through ``read_all``, catch-up through ``run_projection``.

``mode`` selects the execution mode of ``execute`` (:mod:`benchmarks.capabilities` says
which modes this build offers and how they are passed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.capabilities import execute_options
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

    def __init__(
        self,
        store: EventStore,
        close: Callable[[], None] | None = None,
        *,
        mode: str = "optimistic",
        retry: RetryPolicy = CONTENTION_RETRY,
    ) -> None:
        self.store = store
        self._close = close
        self.mode = mode
        self._retry = retry
        self._options = execute_options(mode)

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None:
        ids = [StreamId(a) for a in accounts]
        self.store.append({sid: 0 for sid in ids}, [Deposited(sid, opening) for sid in ids])

    def deposit(self, account: str, amount: int) -> None:
        execute(self.store, Deposit(account=StreamId(account), amount=amount), **self._options)

    def transfer(self, source: str, target: str, amount: int) -> int:
        command = Transfer(source=StreamId(source), target=StreamId(target), amount=amount)
        return execute(self.store, command, retry=self._retry, **self._options).attempts - 1

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

    def seed_commands(self, streams: Sequence[str], per_stream: int) -> None:
        """One append per event, round-robin over ``streams``, each with the metadata
        ``execute`` stamps (its own correlation id): the log as commands write it."""
        ids = [StreamId(s) for s in streams]
        versions = dict.fromkeys(ids, 0)
        append = self.store.append
        for _ in range(per_stream):
            for sid in ids:
                append({sid: versions[sid]}, [Deposited(sid, 1)])
                versions[sid] += 1

    def rebuild(self, account: str) -> int:
        command = Deposit(account=StreamId(account), amount=1)
        result = execute(self.store, command, **self._options)
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

    def catch_up(self, page: int) -> int:
        from benchmarks.projections import CountingProjector
        from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, run_projection

        projector = CountingProjector("bench-catch-up")
        config = ProjectionConfig(InMemoryCheckpointStore(), page_size=page)
        report = run_projection(projector, self.store, config)
        if not projector.in_order or report.applied != projector.count:
            raise AssertionError(f"catch-up out of order or miscounted: {report}")
        return projector.count

    def positions(self) -> list[int]:
        out: list[int] = []
        after = 0
        while True:
            page = self.store.read_all(after=after, limit=1_000)
            if not page:
                return out
            out += [rec.position for rec in page]
            after = page[-1].position

    def settings(self) -> dict[str, str]:
        """SQLite: journal_mode and synchronous read back from the store's connection."""
        database = getattr(self.store, "database", None)
        if not callable(getattr(database, "pragmas", None)):
            return {}
        return dict(database.pragmas())

    def close(self) -> None:
        self.store.close()
        if self._close is not None:
            self._close()
