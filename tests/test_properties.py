"""Property tests: random bank programs agree with a model, alone and from four threads.

Each program is a list of deposits, withdrawals and transfers among a few accounts. Run one
after another, every outcome and every balance must match a dictionary model exactly, even
when a chaos store injects conflicts. Run from four threads at once, the interleaving is
unknown, but money is conserved and no balance ever goes negative. Either way the log is
well formed: versions 1..n per stream, positions 1..head without gaps, and every recorded
event reads back equal.
"""

import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from bank import (
    EVENTS,
    BankCommand,
    Deposit,
    InsufficientFunds,
    MoneyDeposited,
    MoneyWithdrawn,
    Transfer,
    Withdraw,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventcore import (
    BusinessRuleViolation,
    EventStore,
    ExecutionResult,
    InMemoryEventStore,
    Metadata,
    RecordedEvent,
    RetryPolicy,
    SqliteEventStore,
    StreamId,
    execute,
)
from eventcore.testing import ChaosStore, StoreWrapper

ACCOUNTS = tuple(StreamId(f"account-{i}") for i in range(3))
STORES = ["memory", "sqlite"]

accounts = st.sampled_from(ACCOUNTS)
amounts = st.integers(0, 60)
commands = st.one_of(
    st.builds(Deposit, account=accounts, amount=st.integers(0, 120)),
    st.builds(Withdraw, account=accounts, amount=amounts),
    st.builds(Transfer, source=accounts, target=accounts, amount=amounts),
)
programs = st.lists(commands, max_size=25)

property_settings = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def no_sleep(seconds: float) -> None:
    pass


@contextmanager
def open_stores(kind: str, count: int = 1, dsn: str = "") -> Iterator[list[EventStore]]:
    """``count`` handles on one fresh store: the same object in memory, separate connections
    to one file for SQLite and separate pools on one fresh schema for PostgreSQL (so threads
    really compete for the database)."""
    if kind == "memory":
        shared = InMemoryEventStore(events=EVENTS)
        yield [shared] * count
        return
    if kind == "postgres":
        with postgres_stores(dsn, count) as stores:
            yield stores
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.db"
        stores: list[EventStore] = [
            SqliteEventStore(path, events=EVENTS, synchronous="NORMAL") for _ in range(count)
        ]
        try:
            yield stores
        finally:
            for s in stores:
                s.close()


@contextmanager
def postgres_stores(dsn: str, count: int) -> Iterator[list[EventStore]]:
    import psycopg

    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

    schema = f"ec_prop_{uuid.uuid4().hex[:12]}"
    config = PostgresConfig(dsn, schema=schema, pool_min=1, pool_max=2)
    stores: list[EventStore] = []
    try:
        stores.extend(PostgresEventStore(config, events=EVENTS) for _ in range(count))
        yield stores
    finally:
        for s in stores:
            s.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def fast_thread_switching() -> Iterator[None]:
    """Switch threads every few microseconds instead of every 5 ms, so that commands
    interleave between their reads and their appends far more often."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class AppendSpy(StoreWrapper):
    """Records every successful append: the versions expected and the events written."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner)
        self.appends: list[tuple[dict[StreamId, int], list[RecordedEvent]]] = []
        self._lock = threading.Lock()

    def append(
        self,
        expected: Mapping[StreamId, int],
        events: Sequence[object],
        *,
        metadata: Metadata | None = None,
    ) -> list[RecordedEvent]:
        written = super().append(expected, events, metadata=metadata)
        with self._lock:
            self.appends.append((dict(expected), written))
        return written


def check_no_lost_update(spy: AppendSpy) -> None:
    """A successful append wrote each stream right after the version it expected: nobody
    else wrote in between, so the decision was made on the current state."""
    for expected, written in spy.appends:
        versions = dict(expected)
        for rec in written:
            versions[rec.stream_id] += 1
            assert rec.stream_version == versions[rec.stream_id], (
                f"lost update: the write expected {expected} but recorded {rec}"
            )


# -- the model ----------------------------------------------------------------------------------


def decide(balances: dict[StreamId, int], cmd: BankCommand) -> list[object] | type[Exception]:
    """What the command should do given the model's balances: events, or an error type."""
    assert isinstance(cmd, (Deposit, Withdraw, Transfer))
    if cmd.amount <= 0:
        return BusinessRuleViolation
    if isinstance(cmd, Deposit):
        return [MoneyDeposited(cmd.account, cmd.amount)]
    source = cmd.account if isinstance(cmd, Withdraw) else cmd.source
    if balances[source] < cmd.amount:
        return InsufficientFunds
    if isinstance(cmd, Withdraw):
        return [MoneyWithdrawn(source, cmd.amount)]
    return [MoneyWithdrawn(source, cmd.amount), MoneyDeposited(cmd.target, cmd.amount)]


def apply(balances: dict[StreamId, int], events: list[object]) -> None:
    for evt in events:
        sign = 1 if isinstance(evt, MoneyDeposited) else -1
        balances[evt.account] += sign * evt.amount  # type: ignore[attr-defined]


# -- log invariants -----------------------------------------------------------------------------


def check_log(store: EventStore, recorded: list[RecordedEvent]) -> list[RecordedEvent]:
    """The log is gapless and consistent; every event a command recorded reads back equal."""
    log = store.read_all()
    assert [e.position for e in log] == list(range(1, store.head() + 1))
    per_stream: dict[StreamId, list[RecordedEvent]] = {}
    for rec in log:
        per_stream.setdefault(rec.stream_id, []).append(rec)
    for sid, in_log in per_stream.items():
        read = list(store.read_stream(sid))
        assert read == in_log
        assert [e.stream_version for e in read] == list(range(1, len(read) + 1))
        assert store.stream_version(sid) == len(read)
    by_position = {e.position: e for e in log}
    assert len(recorded) == len(log)
    for rec in recorded:
        assert by_position[rec.position] == rec
    return log


def balances_from(log: list[RecordedEvent]) -> dict[StreamId, int]:
    """Fold the log per account, checking that no balance ever dips below zero."""
    balances = dict.fromkeys(ACCOUNTS, 0)
    for rec in log:
        apply(balances, [rec.event])
        assert balances[rec.stream_id] >= 0, f"negative balance after position {rec.position}"
    return balances


# -- one after another --------------------------------------------------------------------------


sequential_programs = given(
    program=programs, conflict_rate=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 99)
)


@pytest.mark.parametrize("kind", STORES)
@settings(property_settings, max_examples=100)
@sequential_programs
def test_sequential_programs_agree_with_the_model(
    kind: str, program: list[BankCommand], conflict_rate: float, seed: int
) -> None:
    check_sequential_program(kind, program, conflict_rate, seed)


@settings(property_settings, max_examples=15)
@sequential_programs
def test_sequential_programs_agree_with_the_model_on_postgres(
    postgres_dsn: str, program: list[BankCommand], conflict_rate: float, seed: int
) -> None:
    check_sequential_program("postgres", program, conflict_rate, seed, postgres_dsn)


def check_sequential_program(
    kind: str, program: list[BankCommand], conflict_rate: float, seed: int, dsn: str = ""
) -> None:
    model = dict.fromkeys(ACCOUNTS, 0)
    recorded: list[RecordedEvent] = []
    retries = 0
    retry = RetryPolicy(max_retries=60, base_delay=0.0, max_delay=0.0)
    with open_stores(kind, dsn=dsn) as (inner,):
        store = ChaosStore(inner, conflict_rate=conflict_rate, seed=seed)
        for cmd in program:
            expected = decide(model, cmd)
            try:
                result = execute(store, cmd, retry=retry, sleep=no_sleep)
            except BusinessRuleViolation as error:
                assert type(error) is expected, f"{cmd} raised {error!r}, expected {expected}"
                continue
            assert isinstance(expected, list), f"{cmd} succeeded, expected {expected.__name__}"
            assert [e.event for e in result.events] == expected
            apply(model, expected)
            recorded.extend(result.events)
            retries += result.attempts - 1
            head = recorded[-1].position
            assert result.positions == tuple(range(head - len(expected) + 1, head + 1))
        assert retries == store.conflicts_injected  # each injected conflict cost one retry
        log = check_log(inner, recorded)
        assert balances_from(log) == model


# -- four threads at once -----------------------------------------------------------------------

THREADS = 4

# Two accounts and small amounts: threads fight over the same streams and balances hover
# near what withdrawals ask for, so a lost update would show (see check_no_lost_update).
hot = st.sampled_from(ACCOUNTS[:2])
small = st.integers(0, 30)
contended = st.one_of(
    st.builds(Deposit, account=hot, amount=small),
    st.builds(Withdraw, account=hot, amount=small),
    st.builds(Transfer, source=hot, target=hot, amount=small),
)

Outcome = tuple[BankCommand, ExecutionResult | BusinessRuleViolation]


concurrent_programs = given(
    per_thread=st.lists(
        st.lists(contended, min_size=3, max_size=8), min_size=THREADS, max_size=THREADS
    )
)


@pytest.mark.parametrize("kind", STORES)
@settings(property_settings, max_examples=30)
@concurrent_programs
def test_concurrent_programs_conserve_money(kind: str, per_thread: list[list[BankCommand]]) -> None:
    check_concurrent_programs(kind, per_thread)


@settings(property_settings, max_examples=6)
@concurrent_programs
def test_concurrent_programs_conserve_money_on_postgres(
    postgres_dsn: str, per_thread: list[list[BankCommand]]
) -> None:
    check_concurrent_programs("postgres", per_thread, postgres_dsn)


def check_concurrent_programs(
    kind: str, per_thread: list[list[BankCommand]], dsn: str = ""
) -> None:
    retry = RetryPolicy(max_retries=200, base_delay=0.0001, max_delay=0.002, jitter=0.5)
    outcomes: list[list[Outcome]] = [[] for _ in range(THREADS)]
    unexpected: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run(i: int, store: AppendSpy) -> None:
        try:
            start.wait()
            for cmd in per_thread[i]:
                try:
                    outcomes[i].append((cmd, execute(store, cmd, retry=retry)))
                except BusinessRuleViolation as error:
                    outcomes[i].append((cmd, error))
        except BaseException as error:  # reported below
            unexpected.append(error)

    with open_stores(kind, THREADS, dsn) as stores, fast_thread_switching():
        spies = [AppendSpy(s) for s in stores]
        threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(spies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert unexpected == []
        done = [outcome for outcomes_of_thread in outcomes for outcome in outcomes_of_thread]
        recorded = [e for _, r in done if isinstance(r, ExecutionResult) for e in r.events]
        log = check_log(stores[0], recorded)
        for spy in spies:
            check_no_lost_update(spy)

    deposited = withdrawn = 0
    for cmd, outcome in done:
        if isinstance(outcome, BusinessRuleViolation):
            expected_error = BusinessRuleViolation if cmd.amount <= 0 else InsufficientFunds
            assert type(outcome) is expected_error, f"{cmd} raised {outcome!r}"
            continue
        # A success did what the command says, whatever the balances were at the time.
        assert [e.event for e in outcome.events] == decide(dict.fromkeys(ACCOUNTS, 10**9), cmd)
        if isinstance(cmd, Deposit):
            deposited += cmd.amount
        elif isinstance(cmd, Withdraw):
            withdrawn += cmd.amount
    balances = balances_from(log)  # also checks that no balance ever went negative
    assert sum(balances.values()) == deposited - withdrawn
