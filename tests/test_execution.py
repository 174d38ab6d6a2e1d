"""execute() end to end, on the in-memory and the SQLite store."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from bank import (
    EVENTS,
    Deposit,
    InsufficientFunds,
    MoneyDeposited,
    MoneyWithdrawn,
    Transfer,
    balances_in,
)

from eventcore import (
    BusinessRuleViolation,
    Command,
    ConcurrencyError,
    ConfigurationError,
    Conflict,
    EventStore,
    InMemoryEventStore,
    Metadata,
    RecordedEvent,
    RetryAttempt,
    RetryPolicy,
    SeededIds,
    SerializationError,
    SqliteEventStore,
    StoreFailure,
    StreamId,
    TickingClock,
    event,
    execute,
    require,
    stream,
)
from eventcore.testing import (
    ChaosStore,
    ConflictInjectingStore,
    InjectedFault,
    InterleavingStore,
    StoreWrapper,
    scenario,
)

ALICE, BOB, LIMITS = StreamId("account-alice"), StreamId("account-bob"), StreamId("limits")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    s: EventStore
    if request.param == "memory":
        s = InMemoryEventStore(clock=TickingClock(), ids=SeededIds())
    else:
        s = SqliteEventStore(tmp_path / "events.db", clock=TickingClock(), ids=SeededIds())
    yield s
    s.close()


class Recorder:
    """Stands in for time.sleep and RetryPolicy.on_retry."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.retries: list[RetryAttempt] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def on_retry(self, attempt: RetryAttempt) -> None:
        self.retries.append(attempt)


def nothing_new(store: EventStore, head: int) -> bool:
    return store.head() == head and store.read_all(after=head) == []


# -- a two-stream transfer ----------------------------------------------------------------------


def test_a_transfer_writes_both_streams_in_one_atomic_append(store: EventStore) -> None:
    result = (
        scenario(store)
        .given(MoneyDeposited(ALICE, 100), MoneyDeposited(BOB, 5))
        .when(Transfer(source=ALICE, target=BOB, amount=30))
        .then(MoneyWithdrawn(ALICE, 30), MoneyDeposited(BOB, 30))
    )
    assert result.attempts == 1
    assert result.positions == (3, 4)
    assert result.last_position == 4
    assert [(e.stream_id, e.stream_version) for e in result.events] == [(ALICE, 2), (BOB, 2)]
    assert result.stream_versions == {ALICE: 2, BOB: 2}
    assert result.events[0].metadata == result.events[1].metadata
    assert result.events[0].metadata.correlation_id == result.events[0].event_id
    assert store.read_all(after=2) == list(result.events)


def test_a_refused_transfer_writes_nothing(store: EventStore) -> None:
    error = (
        scenario(store)
        .given(MoneyDeposited(ALICE, 10))
        .when(Transfer(source=ALICE, target=BOB, amount=30))
        .then_raises(InsufficientFunds, match="account-alice holds 10, cannot withdraw 30")
    )
    assert (error.account, error.balance, error.amount) == (ALICE, 10, 30)
    assert store.stream_version(BOB) == 0


def test_a_conflict_on_the_target_leaves_the_source_untouched(store: EventStore) -> None:
    def bob_deposits(inner: EventStore, n: int) -> None:
        if n == 1:
            inner.append({BOB: 0}, [MoneyDeposited(BOB, 1)])

    scenario(store).given(MoneyDeposited(ALICE, 50))
    racy = InterleavingStore(store, before_append=bob_deposits)
    recorder = Recorder()
    result = execute(racy, Transfer(source=ALICE, target=BOB, amount=20), sleep=recorder.sleep)
    assert result.attempts == 2
    assert [e.event for e in store.read_stream(ALICE)] == [
        MoneyDeposited(ALICE, 50),
        MoneyWithdrawn(ALICE, 20),
    ]
    assert [e.event for e in store.read_stream(BOB)] == [
        MoneyDeposited(BOB, 1),
        MoneyDeposited(BOB, 20),
    ]
    assert [(e.position, e.stream_version) for e in result.events] == [(3, 2), (4, 2)]
    assert len(recorder.sleeps) == 1


class ReadSpy(StoreWrapper):
    """Counts reads; offers read_streams only when ``batch`` is set."""

    def __init__(self, inner: EventStore, batch: bool) -> None:
        super().__init__(inner)
        self.calls: list[str] = []
        if batch:
            self.read_streams = self._read_streams

    def read_stream(self, stream_id: StreamId, *, after_version: int = 0) -> Any:
        self.calls.append(f"read_stream {stream_id}")
        return super().read_stream(stream_id, after_version=after_version)

    def _read_streams(self, stream_ids: Iterable[StreamId]) -> Any:
        self.calls.append(f"read_streams {' '.join(stream_ids)}")
        return self.inner.read_streams(stream_ids)  # type: ignore[attr-defined]


@pytest.mark.parametrize("batch", [True, False])
def test_declared_streams_are_read_in_one_call_when_the_store_can(
    store: EventStore, batch: bool
) -> None:
    execute(store, Deposit(account=ALICE, amount=100))
    spy = ReadSpy(store, batch)
    result = execute(spy, Transfer(source=ALICE, target=BOB, amount=30))
    assert result.stream_versions == {ALICE: 2, BOB: 1}
    expected = (
        [f"read_streams {ALICE} {BOB}"] if batch else [f"read_stream {ALICE}", f"read_stream {BOB}"]
    )
    assert spy.calls == expected
    assert balances_in(store, ALICE, BOB) == {ALICE: 70, BOB: 30}


def test_the_default_ids_of_one_write_are_time_ordered(tmp_path: Path) -> None:
    for s in (InMemoryEventStore(), SqliteEventStore(tmp_path / "clock.db")):
        written = s.append({ALICE: 0, BOB: 0}, [MoneyDeposited(ALICE, 1), MoneyDeposited(BOB, 1)])
        later = s.append({ALICE: 1}, [MoneyDeposited(ALICE, 1)])
        assert written[0].recorded_at <= written[1].recorded_at <= later[0].recorded_at
        assert written[0].event_id < written[1].event_id < later[0].event_id
        assert [r.recorded_at for r in s.read_all()] == [r.recorded_at for r in written + later]
        s.close()


def test_injected_clocks_and_ids_are_still_called_once_per_event(store: EventStore) -> None:
    written = store.append({ALICE: 0, BOB: 0}, [MoneyDeposited(ALICE, 1), MoneyDeposited(BOB, 1)])
    ids = SeededIds()
    assert [r.event_id for r in written] == [ids(), ids()]
    assert written[1].recorded_at - written[0].recorded_at == timedelta(seconds=1)


# -- read-only participants ---------------------------------------------------------------------


@dataclass(frozen=True)
class LimitSet:
    limits: StreamId
    amount: int


class WithdrawWithinLimit(Command[dict[str, int]]):
    """Writes only to the account but reads a shared limit stream too."""

    account: StreamId = stream()
    limits: StreamId = stream()
    amount: int

    def initial_state(self) -> dict[str, int]:
        return {"balance": 0, "limit": 0}

    def apply(self, state: dict[str, int], event: Any) -> dict[str, int]:
        if isinstance(event, LimitSet):
            return {**state, "limit": event.amount}
        if isinstance(event, MoneyDeposited):
            return {**state, "balance": state["balance"] + event.amount}
        if isinstance(event, MoneyWithdrawn):
            return {**state, "balance": state["balance"] - event.amount}
        return state

    def handle(self, state: dict[str, int]) -> list[object]:
        require(self.amount <= state["limit"], f"over the limit of {state['limit']}")
        require(self.amount <= state["balance"], InsufficientFunds(self.account, 0, self.amount))
        return [MoneyWithdrawn(self.account, self.amount)]


def test_a_stale_read_only_stream_causes_a_retry_with_fresh_state(store: EventStore) -> None:
    def lower_the_limit(inner: EventStore, n: int) -> None:
        if n == 1:
            inner.append({LIMITS: 1}, [LimitSet(LIMITS, 10)])

    scenario(store).given(MoneyDeposited(ALICE, 100), LimitSet(LIMITS, 50))
    racy = InterleavingStore(store, before_append=lower_the_limit)
    recorder = Recorder()
    with pytest.raises(BusinessRuleViolation, match="over the limit of 10"):
        execute(
            racy,
            WithdrawWithinLimit(account=ALICE, limits=LIMITS, amount=40),
            sleep=recorder.sleep,
        )
    assert racy.appends == 1  # the first append conflicted on LIMITS; the retry refused
    assert len(recorder.sleeps) == 1
    assert store.stream_version(ALICE) == 1
    assert store.stream_version(LIMITS) == 2


def test_read_only_streams_are_reported_with_their_versions(store: EventStore) -> None:
    result = (
        scenario(store)
        .given(MoneyDeposited(ALICE, 100), LimitSet(LIMITS, 50), LimitSet(LIMITS, 60))
        .when(WithdrawWithinLimit(account=ALICE, limits=LIMITS, amount=60))
        .then(MoneyWithdrawn(ALICE, 60))
    )
    assert result.stream_versions == {ALICE: 2, LIMITS: 2}


# -- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("conflicts", [0, 1, 3])
def test_injected_conflicts_are_retried_with_capped_delays(
    store: EventStore, conflicts: int
) -> None:
    recorder = Recorder()
    policy = RetryPolicy(
        max_retries=5, base_delay=0.1, max_delay=0.25, jitter=0.0, on_retry=recorder.on_retry
    )
    flaky = ConflictInjectingStore(store, conflicts=conflicts)
    result = execute(flaky, Deposit(account=ALICE, amount=5), retry=policy, sleep=recorder.sleep)
    assert result.attempts == conflicts + 1
    assert flaky.injected == conflicts
    assert [r.attempt for r in recorder.retries] == list(range(1, conflicts + 1))
    assert recorder.sleeps == [0.1, 0.2, 0.25][:conflicts]
    assert [r.delay for r in recorder.retries] == recorder.sleeps
    for retry in recorder.retries:
        assert retry.streams == (ALICE,)
        assert retry.conflicts == (Conflict(ALICE, 0, 1),)
    assert [e.event for e in store.read_all()] == [MoneyDeposited(ALICE, 5)]


def test_exhausted_retries_raise_concurrency_error_and_write_nothing(store: EventStore) -> None:
    recorder = Recorder()
    flaky = ConflictInjectingStore(store, conflicts=10)
    with pytest.raises(ConcurrencyError) as info:
        execute(
            flaky,
            Deposit(account=BOB, amount=1),
            retry=RetryPolicy(max_retries=2, jitter=0.0, on_retry=recorder.on_retry),
            sleep=recorder.sleep,
        )
    assert info.value.attempts == 3
    assert info.value.conflicts == (Conflict(BOB, 0, 1),)
    assert flaky.injected == 3
    assert flaky.remaining == 7
    assert len(recorder.sleeps) == 2
    assert store.head() == 0


def test_business_errors_are_not_retried(store: EventStore) -> None:
    recorder = Recorder()
    flaky = ConflictInjectingStore(store, conflicts=1)
    with pytest.raises(InsufficientFunds):
        execute(flaky, Transfer(source=ALICE, target=BOB, amount=1), sleep=recorder.sleep)
    assert recorder.sleeps == []
    assert flaky.injected == 0  # refused before any append
    assert store.head() == 0


def test_store_failures_are_not_retried(store: EventStore) -> None:
    chaos = ChaosStore(store, failure_rate=1.0)
    recorder = Recorder()
    with pytest.raises(StoreFailure) as info:
        execute(chaos, Deposit(account=ALICE, amount=1), sleep=recorder.sleep)
    assert info.value.operation == "read_stream"
    assert isinstance(info.value.__cause__, InjectedFault)
    assert recorder.sleeps == []
    assert store.head() == 0


def test_random_conflicts_are_absorbed_by_retries(store: EventStore) -> None:
    chaos = ChaosStore(store, conflict_rate=0.5, seed=3)
    recorder = Recorder()
    policy = RetryPolicy(max_retries=20, jitter=0.0)
    for amount in range(1, 11):
        execute(chaos, Deposit(account=ALICE, amount=amount), retry=policy, sleep=recorder.sleep)
    assert chaos.conflicts_injected == len(recorder.sleeps) > 0
    assert [e.event.amount for e in store.read_stream(ALICE)] == list(range(1, 11))


# -- metadata -----------------------------------------------------------------------------------


class MetadataSpy(ConflictInjectingStore):
    """Remembers the metadata of every append it sees, injected conflicts included."""

    def __init__(self, inner: EventStore, conflicts: int) -> None:
        super().__init__(inner, conflicts)
        self.seen: list[Metadata | None] = []

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
    ) -> list[RecordedEvent]:
        self.seen.append(metadata)
        return super().append(expected, events, metadata=metadata)


def test_metadata_is_stamped_on_every_event_and_stable_across_retries(store: EventStore) -> None:
    spy = MetadataSpy(store, conflicts=2)
    meta = Metadata(UUID(int=1), UUID(int=2), {"user": "ann"})
    scenario(store).given(MoneyDeposited(ALICE, 100))
    result = execute(
        spy,
        Transfer(source=ALICE, target=BOB, amount=10),
        metadata=meta,
        sleep=Recorder().sleep,
    )
    assert result.attempts == 3
    assert spy.seen == [meta, meta, meta]
    assert [e.metadata for e in result.events] == [meta, meta]
    assert [e.metadata for e in store.read_all(after=1)] == [meta, meta]


def test_a_dict_becomes_custom_metadata_with_a_correlation_id(store: EventStore) -> None:
    result = execute(store, Deposit(account=ALICE, amount=1), metadata={"source": "web"})
    (rec,) = result.events
    assert rec.metadata == Metadata(rec.event_id, None, {"source": "web"})
    assert store.read_all() == [rec]


def test_unstorable_metadata_is_refused_before_anything_is_written(store: EventStore) -> None:
    with pytest.raises(SerializationError, match=r"Metadata.custom.when: type"):
        execute(store, Deposit(account=ALICE, amount=1), metadata={"when": object})
    assert store.head() == 0


# -- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("deposit",), {}, "execute() takes a Command instance, got str"),
        ((Deposit,), {}, "execute() takes a Command instance, got type"),
        (
            (Deposit(account=ALICE, amount=1),),
            {"retry": 3},
            "retry must be a RetryPolicy, got int",
        ),
        (
            (Deposit(account=ALICE, amount=1),),
            {"metadata": ["user", "ann"]},
            "metadata must be a Metadata or a dict, got list",
        ),
    ],
)
def test_bad_arguments_are_configuration_errors(
    store: EventStore, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        execute(store, *args, **kwargs)
    assert str(info.value) == message
    assert store.head() == 0


# -- dynamic discovery --------------------------------------------------------------------------


@event(stream="order")
@dataclass(frozen=True)
class ItemAdded:
    order: StreamId
    product: StreamId
    quantity: int


@dataclass(frozen=True)
class StockAdded:
    product: StreamId
    quantity: int


@dataclass(frozen=True)
class StockReserved:
    product: StreamId
    order: str
    quantity: int


@dataclass(frozen=True)
class OrderPlaced:
    order: StreamId
    __event_stream__ = "order"


@dataclass(frozen=True)
class Stock:
    items: tuple[tuple[StreamId, int], ...] = ()
    on_hand: tuple[tuple[StreamId, int], ...] = ()

    def available(self, product: StreamId) -> int:
        return sum(q for p, q in self.on_hand if p == product)


class PlaceOrder(Command[Stock]):
    """Reads the order, discovers its products from the items, reserves stock in each."""

    order: StreamId = stream()

    def initial_state(self) -> Stock:
        return Stock()

    def apply(self, state: Stock, event: Any) -> Stock:
        match event:
            case ItemAdded(product=product, quantity=quantity):
                return Stock((*state.items, (product, quantity)), state.on_hand)
            case StockAdded(product=product, quantity=quantity):
                return Stock(state.items, (*state.on_hand, (product, quantity)))
            case StockReserved(product=product, quantity=quantity):
                return Stock(state.items, (*state.on_hand, (product, -quantity)))
        return state

    def discover_streams(self, state: Stock) -> Iterable[StreamId]:
        return [product for product, _ in state.items]

    def handle(self, state: Stock) -> list[object]:
        require(state.items, "the order is empty")
        for product, quantity in state.items:
            require(state.available(product) >= quantity, f"{product} is out of stock")
        return [
            *(StockReserved(p, self.order, q) for p, q in state.items),
            OrderPlaced(self.order),
        ]


ORDER, TEA, CUP = StreamId("order-1"), StreamId("product-tea"), StreamId("product-cup")


def test_discovered_streams_are_read_checked_and_written(store: EventStore) -> None:
    result = (
        scenario(store)
        .given(StockAdded(TEA, 5), StockAdded(CUP, 1), StockAdded(TEA, 1))
        .given(ItemAdded(ORDER, TEA, 4), ItemAdded(ORDER, CUP, 1))
        .when(PlaceOrder(order=ORDER))
        .then(
            StockReserved(TEA, "order-1", 4), StockReserved(CUP, "order-1", 1), OrderPlaced(ORDER)
        )
    )
    assert result.stream_versions == {ORDER: 3, TEA: 3, CUP: 2}
    assert result.positions == (6, 7, 8)
    scenario(store).when(PlaceOrder(order=ORDER)).then_raises(
        BusinessRuleViolation, match="product-tea is out of stock"
    )


def test_a_concurrent_change_to_a_discovered_stream_is_retried(store: EventStore) -> None:
    def sell_the_last_cup(inner: EventStore, n: int) -> None:
        if n == 1:
            inner.append({CUP: 1}, [StockReserved(CUP, "order-2", 1)])

    scenario(store).given(StockAdded(CUP, 1), ItemAdded(ORDER, CUP, 1))
    racy = InterleavingStore(store, before_append=sell_the_last_cup)
    recorder = Recorder()
    with pytest.raises(BusinessRuleViolation, match="product-cup is out of stock"):
        execute(racy, PlaceOrder(order=ORDER), sleep=recorder.sleep)
    assert len(recorder.sleeps) == 1
    assert store.stream_version(ORDER) == 1
    assert store.stream_version(CUP) == 2


def test_the_bank_events_can_be_registered_up_front(tmp_path: Path) -> None:
    path = tmp_path / "bank.db"
    with SqliteEventStore(path) as first:
        execute(first, Deposit(account=ALICE, amount=7))
    with SqliteEventStore(path, events=EVENTS) as second:
        result = execute(second, Transfer(source=ALICE, target=BOB, amount=7))
    assert result.stream_versions == {ALICE: 2, BOB: 1}


class CountingReads(StoreWrapper):
    """Counts the events its read_stream has handed out so far."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner)
        self.pulled = 0

    def read_stream(
        self, stream_id: StreamId, *, after_version: int = 0
    ) -> Iterator[RecordedEvent]:
        for rec in self.inner.read_stream(stream_id, after_version=after_version):
            self.pulled += 1
            yield rec


def test_the_fold_consumes_a_long_stream_as_it_is_read(tmp_path: Path) -> None:
    """execute hands the store's lazy pages to the fold: a stream is never held whole (so
    a command on a 100,000-event stream grows memory by a page, not by the stream)."""
    inner = SqliteEventStore(tmp_path / "long.db", events=EVENTS, page_size=50)
    inner.append({ALICE: 0}, [MoneyDeposited(ALICE, 1) for _ in range(500)])
    spy = CountingReads(inner)
    pulled_when_applied: list[int] = []

    class Watched(Deposit):
        def apply(self, state: Any, event: object) -> Any:
            pulled_when_applied.append(spy.pulled)
            return super().apply(state, event)

    result = execute(spy, Watched(account=ALICE, amount=1))
    assert result.stream_versions[ALICE] == 501
    assert pulled_when_applied == list(range(1, 501)), "the stream was read ahead of the fold"
    inner.close()
