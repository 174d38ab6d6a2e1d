"""Restoring from snapshots, stream by stream: which reads happen, what is saved, and what
happens when something is wrong (a state that no longer decodes, a broken store, a stale or
bogus snapshot)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from trail_commands import EVENTS, Linked, Noted, Observe, ObservePlain, Reads, Trail

from eventcore import (
    BusinessRuleViolation,
    Command,
    ConfigurationError,
    DefinitionError,
    InMemoryEventStore,
    Metadata,
    RetryPolicy,
    SeededIds,
    SqliteEventStore,
    StreamId,
    TickingClock,
    execute,
    require,
    stream,
)
from eventcore.aio import execute_async
from eventcore.pipeline import (
    FULL_REPLAY,
    AppendEvents,
    ExecutionResult,
    ReadStream,
    command_pipeline,
)
from eventcore.snapshots import (
    InMemorySnapshotStore,
    LoadSnapshot,
    ReplayReport,
    SaveSnapshot,
    Snapshot,
    SnapshotPolicy,
    SnapshotReplay,
    SnapshotWarning,
    SqliteSnapshotStore,
    StreamReplay,
    snapshot_id_of,
    snapshot_replay,
    snapshot_store_for,
    state_codec,
)
from eventcore.testing import ConflictInjectingStore, InterleavingStore

S0, S1, S2, S3 = (StreamId(f"s{i}") for i in range(4))
TRAIL = state_codec(Observe)


def observe_id(*streams: StreamId) -> str:
    return snapshot_id_of(Observe(streams_=streams))


def _store() -> InMemoryEventStore:
    return InMemoryEventStore(events=EVENTS, clock=TickingClock(), ids=SeededIds(seed=5))


def _note(store: InMemoryEventStore, sid: StreamId, *values: int) -> None:
    store.append({sid: store.stream_version(sid)}, [Noted(sid, v) for v in values])


class _DryRun(Reads):
    """Reads for real, records reads and the events a command would append, writes nothing."""

    def __init__(self, inner: InMemoryEventStore) -> None:
        super().__init__(inner)
        self.appended: list[Any] = []

    def append(self, expected: Any, events: Any, *, metadata: Metadata | None = None) -> Any:
        self.appended = list(events)
        return []


def _trail(store: InMemoryEventStore, *streams: StreamId) -> tuple[str, ...]:
    """The state a full replay folds (ObservePlain has no snapshot policy)."""
    dry = _DryRun(store)
    execute(dry, ObservePlain(streams_=streams))
    trail: tuple[str, ...] = dry.appended[0].trail
    return trail


def _restore(store: InMemoryEventStore, snaps: InMemorySnapshotStore, *streams: StreamId) -> Any:
    """Run Observe with snapshots as a dry run; check its state against a full replay and
    return the reads (stream, after_version, events) and the replay report."""
    dry = _DryRun(store)
    result = execute(dry, Observe(streams_=streams), snapshots=snaps)
    assert dry.appended[0].trail == _trail(store, *streams)
    return dry.log, result.replay


@pytest.fixture
def store() -> InMemoryEventStore:
    s = _store()
    for sid in (S0, S1, S2):
        _note(s, sid, 1, 2, 3)
    return s


@pytest.fixture
def snapshots(store: InMemoryEventStore) -> InMemorySnapshotStore:
    snaps = InMemorySnapshotStore()
    _restore(store, snaps, S0, S1, S2)  # 9 events >= every=3: saved at 3, 3, 3
    stored = snaps.load(observe_id(S0, S1, S2))
    assert stored is not None and stored.streams == ((S0, 3), (S1, 3), (S2, 3))
    return snaps


# -- which streams are read, and from where ---------------------------------------------------


def test_nothing_advanced_reads_only_the_empty_tails(
    store: InMemoryEventStore, snapshots: InMemorySnapshotStore
) -> None:
    log, replay = _restore(store, snapshots, S0, S1, S2)
    assert log == [("s0", 3, 0), ("s1", 3, 0), ("s2", 3, 0)]
    assert [(r.snapshot_version, r.events_applied, r.version) for r in replay.streams] == [
        (3, 0, 3),
        (3, 0, 3),
        (3, 0, 3),
    ]
    assert replay.loaded and not replay.saved and replay.events_from_snapshot == 9


def test_only_the_first_stream_advanced(
    store: InMemoryEventStore, snapshots: InMemorySnapshotStore
) -> None:
    _note(store, S0, 9)
    log, replay = _restore(store, snapshots, S0, S1, S2)
    assert log == [("s0", 3, 1), ("s1", 0, 3), ("s2", 0, 3)]  # later streams in full
    assert [r.from_snapshot for r in replay.streams] == [True, False, False]
    assert replay.saved  # 7 events folded from the log


def test_only_the_last_stream_advanced(
    store: InMemoryEventStore, snapshots: InMemorySnapshotStore
) -> None:
    _note(store, S2, 9)
    log, replay = _restore(store, snapshots, S0, S1, S2)
    assert log == [("s0", 3, 0), ("s1", 3, 0), ("s2", 3, 1)]
    assert [r.from_snapshot for r in replay.streams] == [True, True, True]
    assert replay.events_applied == 1 and not replay.saved


def test_several_streams_advanced(
    store: InMemoryEventStore, snapshots: InMemorySnapshotStore
) -> None:
    _note(store, S1, 8)
    _note(store, S2, 9)
    log, _ = _restore(store, snapshots, S0, S1, S2)
    assert log == [("s0", 3, 0), ("s1", 3, 1), ("s2", 0, 4)]


def test_first_and_last_advanced(
    store: InMemoryEventStore, snapshots: InMemorySnapshotStore
) -> None:
    _note(store, S0, 7)
    _note(store, S2, 9)
    log, _ = _restore(store, snapshots, S0, S1, S2)
    assert log == [("s0", 3, 1), ("s1", 0, 3), ("s2", 0, 4)]


# -- discovered streams -----------------------------------------------------------------------


def test_discovered_streams_are_restored_and_new_ones_read_in_full() -> None:
    store = _store()
    _note(store, S0, 1, 2)
    store.append({S0: 2}, [Linked(S0, S3)])
    _note(store, S3, 5, 6, 7)
    snaps = InMemorySnapshotStore()
    log, replay = _restore(store, snaps, S1, S0)
    assert [r.stream_id for r in replay.streams] == ["s1", "s0", "s3"]
    assert replay.saved
    _note(store, S3, 8)  # the discovered stream advanced
    log, replay = _restore(store, snaps, S1, S0)
    assert log == [("s1", 0, 0), ("s0", 3, 0), ("s3", 3, 1)]
    store.append({S3: 4}, [Linked(S3, S2)])  # a new link: s2 joins, and is read in full
    _note(store, S2, 1)
    log, replay = _restore(store, snaps, S1, S0)
    assert log == [("s1", 0, 0), ("s0", 3, 0), ("s3", 3, 2), ("s2", 0, 1)]
    assert replay.streams[-1].snapshot_version is None
    store.append({S0: 3}, [Linked(S0, S2)])  # s0 advanced (and links s2 itself)
    log, replay = _restore(store, snaps, S1, S0)
    assert log == [("s1", 0, 0), ("s0", 3, 1), ("s3", 0, 5), ("s2", 0, 1)]


# -- the sans-IO pipeline, by hand ---------------------------------------------------------------


def test_the_pipeline_yields_load_read_after_save_then_append() -> None:
    command = Observe(streams_=(S0,))
    replay = snapshot_replay(command)
    assert isinstance(replay, SnapshotReplay)
    p = command_pipeline(command, RetryPolicy.none(), Metadata(), replay=replay)
    assert next(p) == LoadSnapshot(observe_id(S0))
    stored = Snapshot(observe_id(S0), ((S0, 10),), (TRAIL.encode(Trail(("x",) * 10)),))
    assert p.send(stored) == ReadStream(S0, after_version=10)
    recorded = execute_records(S0, 11, 12, 13)
    save = p.send(recorded)
    assert isinstance(save, SaveSnapshot)
    assert save.snapshot.streams == ((S0, 13),)
    assert TRAIL.decode(save.snapshot.state).seen == ("x",) * 10 + (
        "s0:11",
        "s0:12",
        "s0:13",
    )
    append = p.send(True)
    assert isinstance(append, AppendEvents) and append.expected == {S0: 13}
    with pytest.raises(StopIteration) as stop:
        p.send([])
    result: ExecutionResult = stop.value.value
    assert result.replay == ReplayReport(
        (StreamReplay(S0, 10, 3, 13),), observe_id(S0), loaded=True, saved=True
    )


def test_without_a_snapshot_store_the_pipeline_never_asks_for_one() -> None:
    p = command_pipeline(Observe(streams_=(S0,)), RetryPolicy.none(), Metadata())
    assert next(p) == ReadStream(S0)


def test_a_command_without_a_policy_gets_the_full_replay() -> None:
    assert snapshot_replay(ObservePlain(streams_=(S0,))) is FULL_REPLAY


def execute_records(sid: StreamId, *versions: int) -> list[Any]:
    store = _store()
    _note(store, sid, *range(1, versions[0]))
    _note(store, sid, *versions)
    return list(store.read_stream(sid, after_version=versions[0] - 1))


# -- saving: when, and what if it fails ------------------------------------------------------------


def test_saved_only_after_enough_events_and_before_handle() -> None:
    store = _store()
    snaps = InMemorySnapshotStore()
    _note(store, S0, 1)
    small = execute(store, Withdraw(account=S0, amount=1), snapshots=snaps)
    assert small.replay is not None and not small.replay.saved  # 1 event < every=2
    _note(store, S0, 5)
    with pytest.raises(BusinessRuleViolation):
        execute(store, Withdraw(account=S0, amount=99), snapshots=snaps)
    stored = snaps.load(snapshot_id_of(Withdraw(account=S0, amount=99)))
    assert stored is not None and stored.state == 5  # saved before handle refused


def test_a_failing_snapshot_write_is_logged_and_the_command_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(InMemorySnapshotStore):
        def save(self, snapshot: Snapshot) -> bool:
            raise OSError("disk full")

    store = _store()
    _note(store, S0, 1, 2, 3)
    with caplog.at_level(logging.WARNING, logger="eventcore.snapshots"):
        result = execute(store, Withdraw(account=S0, amount=1), snapshots=Failing())
    assert len(result.events) == 1
    assert f"could not save snapshot {snapshot_id_of(Withdraw(account=S0, amount=1))!r}" in (
        caplog.text
    )
    assert "disk full" in caplog.text


def test_a_stale_save_after_a_conflict_does_not_regress() -> None:
    store = _store()
    snaps = InMemorySnapshotStore()
    _note(store, S0, *range(1, 6))

    def rival(inner: Any, n: int) -> None:
        if n == 1:
            _note(store, S0, *range(10, 20))
            execute(store, Withdraw(account=S0, amount=1), snapshots=snaps)  # saves @15

    racing = InterleavingStore(store, before_append=rival)
    result = execute(racing, Withdraw(account=S0, amount=1), snapshots=snaps)
    assert result.attempts == 2
    stored = snaps.load(snapshot_id_of(Withdraw(account=S0, amount=1)))
    assert stored is not None and stored.versions[S0] >= 15


def test_a_snapshot_claiming_versions_that_do_not_exist_is_distrusted() -> None:
    store = _store()
    _note(store, S0, 1, 2)
    snaps = InMemorySnapshotStore()
    command = Withdraw(account=S0, amount=1)
    snaps.save(Snapshot(snapshot_id_of(command), ((S0, 50),), (1000,)))
    with pytest.warns(SnapshotWarning, match="claims stream versions"):
        result = execute(store, command, snapshots=snaps, sleep=lambda _: None)
    assert result.attempts == 2
    assert result.replay is not None and not result.replay.loaded
    assert [r.stream_version for r in result.events] == [3]


def test_conflicts_still_retry_with_snapshots() -> None:
    store = _store()
    _note(store, S0, 1, 2, 3)
    snaps = InMemorySnapshotStore()
    flaky = ConflictInjectingStore(store, conflicts=2)
    result = execute(flaky, Withdraw(account=S0, amount=1), snapshots=snaps, sleep=lambda _: None)
    assert result.attempts == 3
    assert result.replay is not None and result.replay.loaded


# -- the state codec and the hooks ---------------------------------------------------------------


class Withdraw(Command[int]):
    account: StreamId = stream()
    amount: int
    snapshot = SnapshotPolicy(every=2)

    def initial_state(self) -> int:
        return 0

    def apply(self, balance: int, event: Noted) -> int:
        return balance + event.value

    def handle(self, balance: int) -> list[object]:
        require(balance >= self.amount, "insufficient funds")
        return [Noted(self.account, -self.amount)]


@dataclass(frozen=True)
class Ledger:
    total: Decimal
    entries: tuple[tuple[str, int], ...]
    by_stream: dict[StreamId, int]


class Book(Command[Ledger]):
    account: StreamId = stream()
    snapshot = SnapshotPolicy()

    def initial_state(self) -> Ledger:
        return Ledger(Decimal("0.00"), (), {})

    def apply(self, state: Ledger, event: Any) -> Ledger:
        return state

    def handle(self, state: Ledger) -> list[object]:
        return []


class Pair(Command[tuple[int, str]]):
    account: StreamId = stream()
    snapshot = SnapshotPolicy()

    def apply(self, state: tuple[int, str], event: Any) -> tuple[int, str]:
        return state

    def initial_state(self):  # type: ignore[no-untyped-def]  # the hint comes from Command[...]
        return (0, "")

    def handle(self, state: tuple[int, str]) -> list[object]:
        return []


class Loose(Command[Any]):
    account: StreamId = stream()
    snapshot = SnapshotPolicy(every=1)

    def initial_state(self) -> Any:
        return {"seen": []}

    def apply(self, state: Any, event: Any) -> Any:
        return {"seen": [*state["seen"], (event.value, "v")]}  # a tuple: JSON makes it a list

    def handle(self, state: Any) -> list[object]:
        return []


class Tags(Command[frozenset[int]]):
    account: StreamId = stream()
    snapshot = SnapshotPolicy(every=1, encode=sorted, decode=frozenset)

    def initial_state(self) -> frozenset[int]:
        return frozenset()

    def apply(self, state: frozenset[int], event: Noted) -> frozenset[int]:
        return state | {event.value}

    def handle(self, state: frozenset[int]) -> list[object]:
        return []


class Unsupported(Command[set[int]]):
    account: StreamId = stream()
    snapshot = SnapshotPolicy()

    def initial_state(self) -> set[int]:
        return set()

    def apply(self, state: set[int], event: Any) -> set[int]:
        return state

    def handle(self, state: set[int]) -> list[object]:
        return []


def test_state_codec_from_hints() -> None:
    ledger = Ledger(Decimal("1.50"), (("a", 1),), {S0: 2})
    codec = state_codec(Book)
    assert codec.encode(ledger) == {"total": "1.50", "entries": [["a", 1]], "by_stream": {"s0": 2}}
    assert codec.decode(codec.encode(ledger)) == ledger
    pair = state_codec(Pair)
    assert pair.decode(pair.encode((3, "x"))) == (3, "x")
    assert state_codec(Withdraw).encode(7) == 7


def test_custom_hooks_are_used() -> None:
    store = _store()
    _note(store, S0, 3, 1, 2)
    snaps = InMemorySnapshotStore()
    execute(store, Tags(account=S0), snapshots=snaps)
    stored = snaps.load(snapshot_id_of(Tags(account=S0)))
    assert stored is not None and stored.state == [1, 2, 3]
    assert stored.decode_state(Tags(account=S0)) == frozenset({1, 2, 3})


def test_an_unsupported_state_type_is_a_definition_error() -> None:
    store = _store()
    with pytest.raises(DefinitionError, match="encode= and decode="):
        execute(store, Unsupported(account=S0), snapshots=InMemorySnapshotStore())
    execute(store, Unsupported(account=S0))  # without a snapshot store nothing is checked


def test_a_state_that_does_not_round_trip_is_not_saved(caplog: pytest.LogCaptureFixture) -> None:
    store = _store()
    _note(store, S0, 1)
    snaps = InMemorySnapshotStore()
    with caplog.at_level(logging.WARNING, logger="eventcore.snapshots"):
        result = execute(store, Loose(account=S0), snapshots=snaps)
    assert result.replay is not None and not result.replay.saved
    assert "does not survive" in (result.replay.note or "")
    assert snaps.list() == []


def test_a_bad_policy_or_key_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="every"):
        SnapshotPolicy(every=0)

    class BadKey(Withdraw):
        snapshot = SnapshotPolicy(key=lambda command: "")

    with pytest.raises(DefinitionError, match="key of BadKey must return a non-empty str"):
        execute(_store(), BadKey(account=S0, amount=1), snapshots=InMemorySnapshotStore())

    class NotAPolicy(Withdraw):
        snapshot = 100  # type: ignore[assignment]

    with pytest.raises(DefinitionError, match="must be a SnapshotPolicy"):
        execute(_store(), NotAPolicy(account=S0, amount=1), snapshots=InMemorySnapshotStore())


@pytest.mark.parametrize(
    ("method", "instead"), [("snapshot_id", "key="), ("encode_state", "encode= and decode=")]
)
def test_the_old_hook_methods_are_refused_not_ignored(method: str, instead: str) -> None:
    """A command that still overrides the old hooks would silently share or misread
    snapshots if they were ignored; it is told what to write instead."""
    legacy = type("Legacy", (Withdraw,), {method: lambda self, *args: "x"})
    command = legacy(account=S0, amount=1)
    with pytest.raises(DefinitionError, match=f"defines {method}\\(\\).*{instead}"):
        execute(_store(), command, snapshots=InMemorySnapshotStore())
    _note(store := _store(), S0, 5)
    execute(store, command)  # without a snapshot store the methods are irrelevant


def test_execute_refuses_something_that_is_not_a_snapshot_store() -> None:
    with pytest.raises(ConfigurationError, match="snapshot store"):
        execute(_store(), Withdraw(account=S0, amount=1), snapshots=object())  # type: ignore[arg-type]


def test_snapshot_store_for_picks_the_backend(tmp_path: Any) -> None:
    assert isinstance(snapshot_store_for(_store()), InMemorySnapshotStore)
    with SqliteEventStore(tmp_path / "e.db") as sqlite_store:
        assert isinstance(snapshot_store_for(sqlite_store), SqliteSnapshotStore)
    with pytest.raises(ConfigurationError):
        snapshot_store_for(object())


# -- reports ----------------------------------------------------------------------------------


def test_replay_report_text_and_html(
    store: InMemoryEventStore, snapshots: InMemorySnapshotStore
) -> None:
    _note(store, S0, 9)
    result = execute(store, Observe(streams_=(S0, S1)), snapshots=snapshots)
    assert result.replay is not None
    assert str(result.replay).splitlines()[0] == f"snapshot {observe_id(S0, S1)} (saved)"
    html = result.replay._repr_html_()
    assert observe_id(S0, S1) in html and "<table" in html and " at 0x" not in html
    plain = execute(store, ObservePlain(streams_=(S0,)))
    assert plain.replay is not None and plain.replay.snapshot_id is None
    assert "Full replay" in plain.replay._repr_html_()
    assert plain.replay.events_applied == store.stream_version(S0) - 1
    stored = snapshots.load(observe_id(S0, S1))
    assert stored is not None and observe_id(S0, S1) in stored._repr_html_()


# -- the asyncio shell ----------------------------------------------------------------------------


class _AsyncSnapshots:
    """A snapshot store whose load and save are coroutines."""

    def __init__(self) -> None:
        self.inner = InMemorySnapshotStore()
        self.list, self.inspect = self.inner.list, self.inner.inspect
        self.delete, self.clear, self.close = self.inner.delete, self.inner.clear, self.inner.close

    async def load(self, snapshot_id: str) -> Snapshot | None:
        return self.inner.load(snapshot_id)

    async def save(self, snapshot: Snapshot) -> bool:
        return self.inner.save(snapshot)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_execute_async_uses_snapshots(kind: str) -> None:
    store = _store()
    _note(store, S0, 1, 2, 3)
    snaps: Any = InMemorySnapshotStore() if kind == "sync" else _AsyncSnapshots()

    async def run() -> list[ExecutionResult]:
        return [
            await execute_async(store, Withdraw(account=S0, amount=1), snapshots=snaps)
            for _ in range(2)
        ]

    first, second = asyncio.run(run())
    assert first.replay is not None and first.replay.saved
    assert second.replay is not None and second.replay.loaded
    assert second.replay.streams[0].events_applied == 1
    assert [r.stream_version for r in store.read_stream(S0)] == [1, 2, 3, 4, 5]


def test_execute_async_survives_a_failing_async_snapshot_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(_AsyncSnapshots):
        async def load(self, snapshot_id: str) -> Snapshot | None:
            raise OSError("down")

        async def save(self, snapshot: Snapshot) -> bool:
            raise OSError("down")

    store = _store()
    _note(store, S0, 1, 2, 3)
    with caplog.at_level(logging.WARNING, logger="eventcore.snapshots"):
        result = asyncio.run(
            execute_async(store, Withdraw(account=S0, amount=1), snapshots=Broken())
        )
    assert len(result.events) == 1
    assert "could not load" in caplog.text and "could not save" in caplog.text
