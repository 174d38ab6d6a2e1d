"""The snapshot contract: one pytest suite that every snapshot store must pass.

Subclass :class:`SnapshotStoreContract` and give it a ``make_stores`` fixture returning a
factory ``make_stores(**kwargs) -> (EventStore, SnapshotStore)``; ``kwargs`` go to the event
store's constructor. For persistent backends every call opens *new handles on the same
database*; close them when the fixture ends::

    class TestMySnapshots(SnapshotStoreContract):
        @pytest.fixture
        def make_stores(self, tmp_path):
            handles = []

            def factory(**kwargs):
                events = MyEventStore(tmp_path / "db", **kwargs)
                handles.append(events)
                return events, MySnapshotStore(events)

            yield factory
            for handle in handles:
                handle.close()

A backend whose factory cannot reach the same data twice sets ``supports_reopen = False``.
Test names carry the behaviour numbers of the EventCore contract (``b17`` … ``b19``).
Snapshot ids come from :func:`~eventcore.snapshots.snapshot_id_of`; the suite checks that no
other command (one of the same name in another module) and no version of the command whose
state type changed shape ever loads a snapshot.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from eventcore.commands import Command, require, stream
from eventcore.errors import StoreFailure
from eventcore.execution import execute
from eventcore.snapshots.ids import snapshot_id_of
from eventcore.snapshots.model import Snapshot, SnapshotPolicy, SnapshotWarning
from eventcore.snapshots.store import SnapshotStore
from eventcore.store import EventStore
from eventcore.testing.contract import Deposited, Withdrawn
from eventcore.testing.faults import StoreWrapper
from eventcore.types import StreamId

__all__ = [
    "Balances",
    "SnapDeposit",
    "SnapDepositV2",
    "SnapTransfer",
    "SnapshotStoreContract",
    "StoresFactory",
]

StoresFactory = Callable[..., tuple[EventStore, SnapshotStore]]
"""``make_stores(**kwargs) -> (event store, snapshot store)``."""

A = StreamId("account-a")
B = StreamId("account-b")
EVENTS = (Deposited, Withdrawn)


def _delta(event: object) -> int:
    if isinstance(event, Deposited):
        return event.amount
    if isinstance(event, Withdrawn):
        return -event.amount
    return 0


class SnapDeposit(Command[int]):
    """One stream; the state is the balance."""

    account: StreamId = stream()
    amount: int
    snapshot = SnapshotPolicy(every=5)

    def initial_state(self) -> int:
        return 0

    def apply(self, balance: int, event: object) -> int:
        return balance + _delta(event)

    def handle(self, balance: int) -> list[object]:
        return [Deposited(self.account, self.amount)]


class SnapDepositV2(SnapDeposit):
    """The same command after a change of state meaning: the policy version is bumped (and
    the name kept, as if ``SnapDeposit`` itself had been edited)."""

    snapshot = SnapshotPolicy(every=5, version=2, name=f"{__name__}.SnapDeposit")


@dataclass(frozen=True)
class Balances:
    """A dataclass state: balances and the order the events were folded in."""

    balances: dict[StreamId, int]
    trail: tuple[int, ...] = ()


class SnapTransfer(Command[Balances]):
    """Two streams; the state remembers the order, so replays must keep it."""

    source: StreamId = stream()
    target: StreamId = stream()
    amount: int
    snapshot = SnapshotPolicy(every=5)

    def initial_state(self) -> Balances:
        return Balances({self.source: 0, self.target: 0})

    def apply(self, state: Balances, event: object) -> Balances:
        account = getattr(event, "account", None)
        if account is None:
            return state
        balances = {**state.balances, account: state.balances.get(account, 0) + _delta(event)}
        return Balances(balances, (*state.trail, _delta(event)))

    def handle(self, state: Balances) -> list[object]:
        require(state.balances[self.source] >= self.amount, "insufficient funds")
        return [Withdrawn(self.source, self.amount), Deposited(self.target, self.amount)]


class _CountingTally(Command[int]):
    """``Tally`` of one module: counts the events of its stream, and writes the count."""

    account: StreamId = stream()
    snapshot = SnapshotPolicy(every=2)

    def initial_state(self) -> int:
        return 0

    def apply(self, count: int, event: object) -> int:
        return count + 1

    def handle(self, count: int) -> list[object]:
        return [Deposited(self.account, count)]


class _SummingTally(_CountingTally):
    """``Tally`` of another module, same state type: sums the amounts, and writes the sum."""

    def apply(self, total: int, event: object) -> int:
        return total + _delta(event)


class _FloatTally(Command[float]):
    """The first module's ``Tally`` after an edit: its state became a float sum."""

    account: StreamId = stream()
    snapshot = SnapshotPolicy(every=2)

    def initial_state(self) -> float:
        return 0.0

    def apply(self, total: float, event: object) -> float:
        return total + _delta(event)

    def handle(self, total: float) -> list[object]:
        return [Deposited(self.account, round(total))]


# One qualified name, as if each class were defined as ``Tally`` in these modules:
for _tally, _module in (
    (_CountingTally, "bank.ledger"),
    (_SummingTally, "bank.audit"),
    (_FloatTally, "bank.ledger"),
):
    _tally.__module__, _tally.__qualname__, _tally.__name__ = _module, "Tally", "Tally"


class _CountingStore(StoreWrapper):
    """Counts the events ``execute`` reads, per stream."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner)
        self.read: dict[StreamId, int] = {}

    def read_stream(self, stream_id: StreamId, *, after_version: int = 0) -> Iterator[Any]:
        events = list(self.inner.read_stream(stream_id, after_version=after_version))
        self.read[stream_id] = self.read.get(stream_id, 0) + len(events)
        return iter(events)


class _BrokenSnapshots:
    """A snapshot store whose every call fails."""

    def _fail(self, *args: object, **kwargs: object) -> Any:
        raise StoreFailure("snapshot", "the snapshot database is down")

    load = save = list = inspect = delete = clear = _fail

    def close(self) -> None:
        pass


def _snap(sid: str, *streams: tuple[StreamId, int], state: object = None) -> Snapshot:
    checkpoints = tuple(state if state is not None else v for _, v in streams)
    return Snapshot(sid, tuple(streams), checkpoints)


def _fill(store: EventStore, stream_id: StreamId, count: int, start: int = 0) -> None:
    version = store.stream_version(stream_id)
    for first in range(0, count, 500):
        batch = [Deposited(stream_id, start + i + 1) for i in range(first, min(count, first + 500))]
        store.append({stream_id: version}, batch)
        version += len(batch)


class SnapshotStoreContract:
    """Behaviour every :class:`~eventcore.snapshots.SnapshotStore` must show, with
    ``execute`` on top. Subclass it; provide ``make_stores`` (see the module docstring)."""

    supports_reopen: ClassVar[bool] = True

    @pytest.fixture
    def make_stores(self) -> StoresFactory:
        raise NotImplementedError(
            f"{type(self).__name__} must define a make_stores fixture returning a factory "
            "make_stores(**kwargs) -> (EventStore, SnapshotStore)"
        )

    @pytest.fixture
    def stores(self, make_stores: StoresFactory) -> tuple[EventStore, SnapshotStore]:
        return make_stores(events=EVENTS)

    @pytest.fixture
    def snapshots(self, stores: tuple[EventStore, SnapshotStore]) -> SnapshotStore:
        return stores[1]

    # -- behaviours 17-19 -------------------------------------------------------------------

    def test_b17_loading_an_unknown_snapshot_gives_none(self, snapshots: SnapshotStore) -> None:
        assert snapshots.load("never/v1/saved") is None
        assert snapshots.inspect("never/v1/saved") is None

    def test_b18_a_save_covering_older_versions_never_overwrites_a_newer_one(
        self, snapshots: SnapshotStore
    ) -> None:
        assert snapshots.save(_snap("s", (A, 5), state=50)) is True
        assert snapshots.save(_snap("s", (A, 3), state=30)) is False
        loaded = snapshots.load("s")
        assert loaded is not None and (loaded.streams, loaded.state) == (((A, 5),), 50)
        assert snapshots.save(_snap("s", (A, 5), state=55)) is True  # equal: rebuilt in place
        assert snapshots.save(_snap("s", (A, 6), state=60)) is True
        loaded = snapshots.load("s")
        assert loaded is not None and loaded.state == 60

    def test_b18_every_shared_stream_must_be_at_least_as_new(
        self, snapshots: SnapshotStore
    ) -> None:
        assert snapshots.save(_snap("t", (A, 5), (B, 5), state=1))
        assert not snapshots.save(_snap("t", (A, 6), (B, 4), state=2))
        assert not snapshots.save(_snap("t", (A, 4), (B, 6), state=3))
        assert not snapshots.save(_snap("t", (A, 5), state=4))  # drops B, nothing advanced
        assert snapshots.save(_snap("t", (A, 6), state=5))  # drops B, A advanced
        assert snapshots.save(_snap("t", (A, 6), (B, 1), state=6))  # B joins again
        loaded = snapshots.load("t")
        assert loaded is not None and loaded.state == 6

    def test_b19_read_stream_after_version(self, stores: tuple[EventStore, SnapshotStore]) -> None:
        events, _ = stores
        events.append({A: 0}, [Deposited(A, 1), Deposited(A, 2), Deposited(A, 3)])
        after = list(events.read_stream(A, after_version=2))
        assert [(r.stream_version, r.event.amount) for r in after] == [(3, 3)]

    def test_b19_a_restored_command_reads_only_the_newer_events(
        self, stores: tuple[EventStore, SnapshotStore]
    ) -> None:
        events, snapshots = stores
        _fill(events, A, 12)
        first = execute(events, SnapDeposit(account=A, amount=100), snapshots=snapshots)
        assert first.replay is not None and first.replay.saved and not first.replay.loaded
        events.append({A: 13}, [Deposited(A, 7)])
        spy = _CountingStore(events)
        result = execute(spy, SnapDeposit(account=A, amount=1), snapshots=snapshots)
        assert spy.read == {A: 2}  # versions 13 and 14, after the snapshot's 12
        assert result.replay is not None and result.replay.loaded
        assert result.replay.streams[0].snapshot_version == 12
        assert sum(e.event.amount for e in events.read_stream(A)) == 78 + 100 + 7 + 1

    # -- beyond the original behaviours ----------------------------------------------------

    def test_saves_never_regress_under_concurrency(self, snapshots: SnapshotStore) -> None:
        threads, per_thread = 8, 12
        versions = list(range(1, threads * per_thread + 1))
        random.Random(7).shuffle(versions)
        barrier = threading.Barrier(threads)
        failures: list[BaseException] = []

        def work(n: int) -> None:
            try:
                barrier.wait()
                for v in versions[n::threads]:
                    snapshots.save(_snap("race", (A, v), (B, v), state={"v": v}))
            except BaseException as exc:  # pragma: no cover - the failure we look for
                failures.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        assert not failures, failures
        loaded = snapshots.load("race")
        top = max(versions)
        assert loaded is not None
        assert loaded.streams == ((A, top), (B, top))
        assert loaded.checkpoints == ({"v": top}, {"v": top})

    def test_a_snapshot_that_no_longer_decodes_is_ignored_and_rebuilt(
        self, stores: tuple[EventStore, SnapshotStore]
    ) -> None:
        events, snapshots = stores
        _fill(events, A, 3)
        command = SnapDeposit(account=A, amount=10)
        snapshots.save(_snap(snapshot_id_of(command), (A, 3), state={"old": "shape"}))
        with pytest.warns(SnapshotWarning, match="ignored and rebuilt"):
            result = execute(events, command, snapshots=snapshots)
        assert result.replay is not None and result.replay.saved and not result.replay.loaded
        rebuilt = snapshots.load(snapshot_id_of(command))
        assert rebuilt is not None and (rebuilt.streams, rebuilt.state) == (((A, 3),), 6)
        again = execute(events, command, snapshots=snapshots)
        assert again.replay is not None and again.replay.loaded

    def test_a_failing_snapshot_store_never_fails_the_command(
        self, stores: tuple[EventStore, SnapshotStore], caplog: pytest.LogCaptureFixture
    ) -> None:
        events, _ = stores
        _fill(events, A, 6)
        broken: Any = _BrokenSnapshots()
        with caplog.at_level(logging.WARNING, logger="eventcore.snapshots"):
            result = execute(events, SnapDeposit(account=A, amount=1), snapshots=broken)
        assert [r.stream_version for r in result.events] == [7]
        assert result.replay is not None and not result.replay.saved
        assert "could not load snapshot" in caplog.text
        assert "could not save snapshot" in caplog.text

    def test_multi_stream_restore_keeps_the_fold_order(
        self, stores: tuple[EventStore, SnapshotStore]
    ) -> None:
        events, snapshots = stores
        _fill(events, A, 4)
        _fill(events, B, 4, start=10)
        command = SnapTransfer(source=A, target=B, amount=1)
        execute(events, command, snapshots=snapshots)  # saved before handle: A@4, B@4
        stored = snapshots.load(snapshot_id_of(command))
        assert stored is not None and stored.streams == ((A, 4), (B, 4))
        events.append({A: 5}, [Deposited(A, 99)])  # the first stream advanced
        spy = _CountingStore(events)
        result = execute(spy, command, snapshots=snapshots)
        assert spy.read == {A: 2, B: 5}  # A's tail, then B in full on top of the new state
        assert result.replay is not None and result.replay.loaded and result.replay.saved
        state = command.initial_state()
        for rec in [*events.read_stream(A, after_version=0), *events.read_stream(B)]:
            if rec.position < result.events[0].position:
                state = command.apply(state, rec.event)
        saved = snapshots.load(snapshot_id_of(command))
        assert saved is not None and saved.streams == ((A, 6), (B, 5))
        assert saved.decode_state(command) == state

    def test_list_inspect_delete_and_clear(self, snapshots: SnapshotStore) -> None:
        for sid in ("Deposit/v1/a", "Deposit/v1/b", "Deposit/v2/a", "Transfer/v1/a,b"):
            assert snapshots.save(_snap(sid, (A, 1)))
        assert [i.snapshot_id for i in snapshots.list()] == [
            "Deposit/v1/a",
            "Deposit/v1/b",
            "Deposit/v2/a",
            "Transfer/v1/a,b",
        ]
        listed = snapshots.list(prefix="Deposit/v1/")
        assert [(i.snapshot_id, i.versions, i.size > 0) for i in listed] == [
            ("Deposit/v1/a", {A: 1}, True),
            ("Deposit/v1/b", {A: 1}, True),
        ]
        inspected = snapshots.inspect("Transfer/v1/a,b")
        assert inspected is not None and inspected.streams == ((A, 1),)
        assert inspected.saved_at is not None
        assert snapshots.delete("Deposit/v2/a") is True
        assert snapshots.delete("Deposit/v2/a") is False
        assert snapshots.clear(prefix="Deposit/") == 2
        assert [i.snapshot_id for i in snapshots.list()] == ["Transfer/v1/a,b"]
        assert snapshots.clear() == 1
        assert snapshots.list() == []

    def test_json_state_round_trips_exactly(self, snapshots: SnapshotStore) -> None:
        odd = StreamId("konto-ü/1 ,%")
        state = {
            "text": 'naïve \u2603 "quoted" \\ \n \u0000',
            "big": 2**70,
            "float": 0.1,
            "neg": -3.5e-12,
            "nested": [[1, None, True], {"z": 1, "a": 2}],
        }
        assert snapshots.save(Snapshot("json", ((odd, 2), (A, 0)), ({"x": 1}, state)))
        loaded = snapshots.load("json")
        assert loaded is not None
        assert loaded.streams == ((odd, 2), (A, 0))
        assert loaded.checkpoints == ({"x": 1}, state)
        assert list(loaded.state["nested"][1]) == ["z", "a"]

    def test_a_second_handle_sees_the_same_snapshots(self, make_stores: StoresFactory) -> None:
        if not self.supports_reopen:
            pytest.skip(f"{type(self).__name__}: no second handle on the same data")
        _, first = make_stores(events=EVENTS)
        assert first.save(_snap("shared", (A, 9), state=90))
        _, second = make_stores(events=EVENTS)
        loaded = second.load("shared")
        assert loaded is not None and loaded.state == 90
        assert not second.save(_snap("shared", (A, 8), state=80))

    def test_bumping_the_policy_version_leaves_old_snapshots_unused(
        self, stores: tuple[EventStore, SnapshotStore]
    ) -> None:
        events, snapshots = stores
        _fill(events, A, 6)
        execute(events, SnapDeposit(account=A, amount=1), snapshots=snapshots)
        old_id = snapshot_id_of(SnapDeposit(account=A, amount=1))
        command = SnapDepositV2(account=A, amount=1)
        assert snapshot_id_of(command) == old_id.replace("/v1/", "/v2/")
        result = execute(events, command, snapshots=snapshots)
        assert result.replay is not None and not result.replay.loaded
        assert result.replay.streams[0].events_applied == 7
        assert [i.snapshot_id for i in snapshots.list()] == [old_id, snapshot_id_of(command)]

    # -- issue 11: a snapshot is never loaded by another command ----------------------------

    def test_commands_of_one_name_in_two_modules_never_share_a_snapshot(
        self, stores: tuple[EventStore, SnapshotStore]
    ) -> None:
        events, snapshots = stores
        _fill(events, A, 20)  # deposits of 1..20: 20 events, 210 in all
        counted = execute(events, _CountingTally(account=A), snapshots=snapshots)
        assert counted.replay is not None and counted.replay.saved
        assert counted.events[0].event.amount == 20  # and a deposit of 20 joins the stream
        summed = execute(events, _SummingTally(account=A), snapshots=snapshots)
        assert summed.replay is not None and not summed.replay.loaded
        assert summed.events[0].event.amount == 210 + 20  # its own sum, not the count's 20 + 20
        again = execute(events, _CountingTally(account=A), snapshots=snapshots)
        assert again.replay is not None and again.replay.loaded
        assert again.events[0].event.amount == 22
        ids = sorted(i.snapshot_id for i in snapshots.list())
        assert [i.split("/")[0] for i in ids] == ["bank.audit.Tally", "bank.ledger.Tally"]

    def test_a_state_type_of_another_shape_never_loads_the_old_snapshot(
        self, stores: tuple[EventStore, SnapshotStore]
    ) -> None:
        events, snapshots = stores
        _fill(events, A, 20)
        old = execute(events, _CountingTally(account=A), snapshots=snapshots)
        assert old.replay is not None and old.replay.saved  # the count, 20 at version 20
        old_id, new_id = (snapshot_id_of(t(account=A)) for t in (_CountingTally, _FloatTally))
        assert old_id.split("/")[:2] == new_id.split("/")[:2]  # same class and version
        assert old_id != new_id  # the int decodes as a float, but the shape differs
        new = execute(events, _FloatTally(account=A), snapshots=snapshots)
        assert new.replay is not None and not new.replay.loaded
        assert new.events[0].event.amount == 210 + 20  # not the count: 20.0 + 20
