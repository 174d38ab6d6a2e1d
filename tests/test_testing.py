"""The testing kit itself: scenarios fail readably, fault stores fault as promised."""

import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from bank import Deposit, InsufficientFunds, MoneyDeposited, MoneyWithdrawn, Transfer, Withdraw
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore import (
    BusinessRuleViolation,
    ConcurrencyError,
    ConfigurationError,
    Conflict,
    EventStore,
    InMemoryEventStore,
    Metadata,
    StoreFailure,
    StreamId,
    StreamPattern,
    UndeclaredStream,
    VersionConflict,
    event_info,
)
from eventcore.testing import (
    ChaosStore,
    ConflictInjectingStore,
    InjectedFault,
    InterleavingStore,
    Scenario,
    scenario,
)
from eventcore.testing.strategies import event_histories, events, stream_ids

A, B = StreamId("account-a"), StreamId("account-b")

# -- scenario: passing ------------------------------------------------------------------------


def test_given_writes_history_in_order_with_per_stream_versions() -> None:
    s = scenario().given(MoneyDeposited(A, 1), MoneyDeposited(B, 2), MoneyDeposited(A, 3))
    s.given(MoneyWithdrawn(A, 1))
    assert [(r.position, r.stream_id, r.stream_version) for r in s.history] == [
        (1, A, 1),
        (2, B, 1),
        (3, A, 2),
        (4, A, 3),
    ]
    assert s.given() is s


def test_the_default_store_is_deterministic() -> None:
    def run() -> tuple[object, ...]:
        result = scenario().when(Deposit(account=A, amount=1)).then(MoneyDeposited(A, 1))
        (rec,) = result.events
        return rec.event_id, rec.recorded_at

    assert run() == run()


def test_then_returns_the_result_and_then_nothing_accepts_an_empty_decision() -> None:
    result = scenario().when(Deposit(account=A, amount=3)).then(MoneyDeposited(A, 3))
    assert result.positions == (1,)

    class Nothing(Deposit):
        def handle(self, state: object) -> list[object]:
            return []

    assert scenario().when(Nothing(account=A, amount=1)).then_nothing().attempts == 1


def test_then_raises_returns_the_error() -> None:
    error = (
        scenario()
        .given(MoneyDeposited(A, 2))
        .when(Withdraw(account=A, amount=5))
        .then_raises(InsufficientFunds, match=r"holds 2, cannot withdraw 5")
    )
    assert error.balance == 2


def test_when_passes_execute_options_and_retries_without_sleeping() -> None:
    store = ConflictInjectingStore(InMemoryEventStore(), conflicts=2)
    result = (
        scenario(store)
        .when(Deposit(account=A, amount=1), metadata={"k": "v"})
        .then(MoneyDeposited(A, 1))
    )
    assert result.attempts == 3
    assert result.events[0].metadata.custom == {"k": "v"}


# -- scenario: failing readably -----------------------------------------------------------------


def failure(check: object) -> str:
    assert callable(check)
    with pytest.raises(AssertionError) as info:
        check()
    return str(info.value)


def test_a_wrong_event_shows_both_lists_a_diff_and_the_differing_field() -> None:
    s = scenario().given(MoneyDeposited(A, 50)).when(Transfer(source=A, target=B, amount=30))
    message = failure(lambda: s.then(MoneyWithdrawn(A, 30), MoneyDeposited(B, 20)))
    assert message == (
        "when(Transfer(source=StreamId('account-a'), target=StreamId('account-b'), amount=30)) "
        "recorded other events than expected.\n"
        "expected 2 events:\n"
        "  1. MoneyWithdrawn(account=StreamId('account-a'), amount=30)\n"
        "  2. MoneyDeposited(account=StreamId('account-b'), amount=20)\n"
        "actual 2 events:\n"
        "  1. MoneyWithdrawn(account=StreamId('account-a'), amount=30)\n"
        "  2. MoneyDeposited(account=StreamId('account-b'), amount=30)\n"
        "diff (- expected, + actual):\n"
        "    MoneyWithdrawn(account=StreamId('account-a'), amount=30)\n"
        "  - MoneyDeposited(account=StreamId('account-b'), amount=20)\n"
        "  + MoneyDeposited(account=StreamId('account-b'), amount=30)\n"
        "first difference at event 2: MoneyDeposited amount: expected 20, got 30"
    )


def test_missing_and_extra_events_are_named() -> None:
    s = scenario().given(MoneyDeposited(A, 50)).when(Transfer(source=A, target=B, amount=30))
    message = failure(lambda: s.then(MoneyWithdrawn(A, 30)))
    assert "expected 1 event:" in message
    assert "actual 2 events:" in message
    assert "  + MoneyDeposited(account=StreamId('account-b'), amount=30)" in message
    assert message.endswith("agree on their first 1 events; the actual list has more")
    message = failure(lambda: s.then(MoneyDeposited(A, 30), MoneyDeposited(B, 30)))
    assert message.endswith(
        "first difference at event 1: expected a MoneyDeposited, got a MoneyWithdrawn"
    )


def test_an_unexpected_error_is_shown_and_chained() -> None:
    s = scenario().when(Withdraw(account=A, amount=5))
    with pytest.raises(AssertionError) as info:
        s.then(MoneyWithdrawn(A, 5))
    assert str(info.value) == (
        "when(Withdraw(account=StreamId('account-a'), amount=5)): expected 1 event, but it "
        "raised InsufficientFunds: account-a holds 0, cannot withdraw 5"
    )
    assert isinstance(info.value.__cause__, InsufficientFunds)
    assert "expected no events, but it raised InsufficientFunds" in failure(s.then_nothing)


def test_then_nothing_lists_what_was_recorded() -> None:
    s = scenario().when(Deposit(account=A, amount=5))
    assert failure(s.then_nothing) == (
        "when(Deposit(account=StreamId('account-a'), amount=5)) was expected to record "
        "nothing, but recorded 1 event:\n"
        "  1. MoneyDeposited(account=StreamId('account-a'), amount=5)"
    )


def test_then_raises_failures() -> None:
    ok = scenario().when(Deposit(account=A, amount=5))
    assert failure(lambda: ok.then_raises(InsufficientFunds)) == (
        "when(Deposit(account=StreamId('account-a'), amount=5)) was expected to raise "
        "InsufficientFunds, but it succeeded and recorded 1 event:\n"
        "  1. MoneyDeposited(account=StreamId('account-a'), amount=5)"
    )
    refused = scenario().when(Deposit(account=A, amount=0))
    assert failure(lambda: refused.then_raises(InsufficientFunds)).endswith(
        "was expected to raise InsufficientFunds, but raised BusinessRuleViolation: "
        "amount must be positive"
    )
    assert failure(lambda: refused.then_raises(BusinessRuleViolation, match="negative")).endswith(
        "raised BusinessRuleViolation as expected, but its message 'amount must be positive' "
        "does not match 'negative'"
    )


def test_then_raises_fails_when_something_was_written_anyway() -> None:
    def sneak(inner: EventStore, n: int) -> None:
        inner.append({B: inner.stream_version(B)}, [MoneyDeposited(B, 1)])

    store = InterleavingStore(InMemoryEventStore(), sneak)
    s = scenario(store).given(MoneyDeposited(A, 10)).when(Transfer(source=A, target=B, amount=1))
    message = failure(lambda: s.then_raises(ConcurrencyError))
    assert "raised ConcurrencyError as expected, but 5 events were written anyway:\n" in message


def test_scenario_steps_must_come_in_order() -> None:
    s = scenario()
    with pytest.raises(ConfigurationError, match=re.escape("call when(command) before then")):
        s.then()
    s.when(Deposit(account=A, amount=1))
    with pytest.raises(ConfigurationError, match=re.escape("given() must come before when()")):
        s.given(MoneyDeposited(A, 1))
    with pytest.raises(ConfigurationError, match="runs one command per scenario"):
        s.when(Deposit(account=A, amount=1))
    assert repr(s) == (
        "<Scenario given 0 events, when Deposit(account=StreamId('account-a'), amount=1): "
        "succeeded>"
    )
    assert isinstance(s, Scenario)


# -- ConflictInjectingStore ---------------------------------------------------------------------


def test_conflicts_are_injected_then_writes_go_through() -> None:
    inner = InMemoryEventStore()
    store = ConflictInjectingStore(inner, conflicts=2)
    for _ in range(2):
        with pytest.raises(VersionConflict) as info:
            store.append({A: 0, B: 0}, [MoneyDeposited(A, 1)])
        assert info.value.conflicts == (Conflict(A, 0, 1), Conflict(B, 0, 1))
        assert inner.head() == 0
    assert [r.position for r in store.append({A: 0}, [MoneyDeposited(A, 1)])] == [1]
    assert (store.injected, store.remaining) == (2, 0)
    assert store.types is inner.types
    assert [r.event for r in store.read_stream(A)] == [MoneyDeposited(A, 1)]
    assert store.stream_version(A) == 1 and store.head() == 1
    assert store.read_all(streams=StreamPattern("account-?")) == inner.read_all()
    assert "injected=2, remaining=0" in repr(store)


def test_bad_writes_raise_their_own_error_and_use_up_no_conflict() -> None:
    store = ConflictInjectingStore(InMemoryEventStore(), conflicts=1)
    with pytest.raises(UndeclaredStream):
        store.append({A: 0}, [MoneyDeposited(B, 1)])
    assert store.remaining == 1
    assert store.append({}, []) == []  # a write without streams cannot conflict
    assert store.remaining == 1


@pytest.mark.parametrize("conflicts", [-1, 1.5, True, "2"])
def test_conflict_count_is_validated(conflicts: object) -> None:
    with pytest.raises(ConfigurationError, match="conflicts must be an int >= 0"):
        ConflictInjectingStore(InMemoryEventStore(), conflicts=conflicts)  # type: ignore[arg-type]


def test_wrappers_need_a_store() -> None:
    with pytest.raises(ConfigurationError, match="ConflictInjectingStore wraps an event store"):
        ConflictInjectingStore(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="before_append must be callable"):
        InterleavingStore(InMemoryEventStore(), before_append=5)  # type: ignore[arg-type]


def test_wrappers_close_the_inner_store() -> None:
    closed = []

    class Closing(InMemoryEventStore):
        def close(self) -> None:
            closed.append(True)

    with ConflictInjectingStore(Closing()) as store:
        assert isinstance(store, EventStore)
    assert closed == [True]


# -- ChaosStore ---------------------------------------------------------------------------------


def test_chaos_is_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[str]:
        store = ChaosStore(InMemoryEventStore(), conflict_rate=0.3, failure_rate=0.2, seed=seed)
        outcomes = []
        for i in range(40):
            try:
                store.append({A: store.inner.stream_version(A)}, [MoneyDeposited(A, i)])
                outcomes.append("ok")
            except VersionConflict:
                outcomes.append("conflict")
            except StoreFailure:
                outcomes.append("failure")
        assert store.calls == 40
        assert outcomes.count("conflict") == store.conflicts_injected
        assert outcomes.count("failure") == store.failures_injected
        assert store.inner.head() == outcomes.count("ok")
        return outcomes

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert {"ok", "conflict", "failure"} == set(run(1))


def test_injected_failures_look_like_driver_failures() -> None:
    store = ChaosStore(InMemoryEventStore(), failure_rate=1.0)
    for call, operation in [
        (lambda: store.read_stream(A), "read_stream"),
        (lambda: store.stream_version(A), "stream_version"),
        (lambda: store.read_all(), "read_all"),
        (lambda: store.head(), "head"),
        (lambda: store.append({A: 0}, [MoneyDeposited(A, 1)]), "append"),
    ]:
        with pytest.raises(StoreFailure) as info:
            call()
        assert info.value.operation == operation
        assert str(info.value).startswith(f"{operation} failed: injected by ChaosStore (chaos:")
        assert isinstance(info.value.__cause__, InjectedFault)
    assert store.failures_injected == 5
    assert store.inner.head() == 0


def test_chaos_conflicts_name_every_stream_of_the_write() -> None:
    store = ChaosStore(InMemoryEventStore(), conflict_rate=1.0)
    with pytest.raises(VersionConflict) as info:
        store.append({A: 0, B: 0}, [MoneyDeposited(A, 1)], metadata=Metadata())
    assert info.value.conflicts == (Conflict(A, 0, 1), Conflict(B, 0, 1))
    assert store.read_all() == []  # reads never conflict


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conflict_rate": 1.5}, "conflict_rate must be a probability in [0, 1], got 1.5"),
        ({"failure_rate": -0.1}, "failure_rate must be a probability in [0, 1], got -0.1"),
        ({"failure_rate": float("nan")}, "failure_rate must be a probability"),
        ({"conflict_rate": "0.5"}, "conflict_rate must be a probability"),
        (
            {"conflict_rate": 0.6, "failure_rate": 0.6},
            "conflict_rate + failure_rate must be at most 1, got 0.6 + 0.6",
        ),
    ],
)
def test_chaos_rates_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        ChaosStore(InMemoryEventStore(), **kwargs)  # type: ignore[arg-type]


# -- strategies ---------------------------------------------------------------------------------

examples = settings(derandomize=True, database=None, max_examples=50, deadline=None)


@dataclass(frozen=True)
class Priced:
    item: StreamId
    price: Decimal
    tags: tuple[str, ...]


@examples
@given(events(Priced, price=st.decimals(0, 100, places=2)))
def test_events_strategy_builds_valid_instances_with_overrides(evt: Priced) -> None:
    assert isinstance(evt.item, StreamId)
    assert Decimal(0) <= evt.price <= Decimal(100)
    assert isinstance(evt.tags, tuple)


@examples
@given(event_histories(MoneyDeposited, MoneyWithdrawn, max_streams=2))
def test_histories_share_a_few_streams_and_can_be_stored(history: list[object]) -> None:
    assert len({getattr(e, event_info(type(e)).stream_field) for e in history}) <= 2
    s = scenario().given(*history)
    assert [r.event for r in s.store.read_all()] == history


@examples
@given(stream_ids(prefix="order-", ascii_only=True))
def test_stream_ids_with_a_prefix(sid: StreamId) -> None:
    assert sid.startswith("order-") and len(sid) > len("order-")
    assert re.fullmatch(r"[a-z0-9\-_:/.@]+", sid)


def test_strategy_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="cannot start a stream id"):
        stream_ids(prefix=" x")
    with pytest.raises(ConfigurationError, match="leaves no room"):
        stream_ids(prefix="x" * 255)
    with pytest.raises(ConfigurationError, match=re.escape("Priced has no fields ['nope']")):
        events(Priced, nope=st.none())
    with pytest.raises(ConfigurationError, match="at least one event class"):
        event_histories()


def test_the_contract_suites_are_importable_from_the_testing_kit() -> None:
    import eventcore.testing as kit
    from eventcore.testing.contract_rows import CorruptRowContract
    from eventcore.testing.snapshot_contract import SnapshotStoreContract

    assert kit.CorruptRowContract is CorruptRowContract
    assert kit.SnapshotStoreContract is SnapshotStoreContract
    assert set(kit.__all__) >= {"EventStoreContract", "ProjectionContract"}
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kit.Nope  # noqa: B018
