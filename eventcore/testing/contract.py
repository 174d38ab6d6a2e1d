"""The event store contract: one pytest suite that every store must pass.

Subclass :class:`EventStoreContract` in your own tests and give it a ``make_store`` fixture
returning a factory ``make_store(**kwargs) -> EventStore``. The keyword arguments
(``events``, ``clock``, ``ids``) go to the store's constructor. For a persistent store every
call opens a *new handle on the same database*, so tests can read with a second handle
that has its own event registry; close the handles when the fixture ends::

    import pytest
    from eventcore.testing.contract import EventStoreContract, StoreFactory

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            handles = []

            def factory(**kwargs):
                handles.append(MyStore(tmp_path / "events.db", **kwargs))
                return handles[-1]

            yield factory
            for handle in handles:
                handle.close()

A store that keeps nothing outside the handle (such as the in-memory store) sets
``supports_reopen = False`` and may return the same store from every call; the tests that
need a second handle are then skipped. A store whose positions may have gaps sets
``gapless_positions = False``.

Test names carry the behaviour numbers of the EventCore store contract (``b01`` … ``b19``).
The bad-input tests live in :mod:`eventcore.testing.contract_inputs`, the shared event
classes and fixtures in :mod:`eventcore.testing.contract_base`. A store that reads rows from a
database also runs :class:`~eventcore.testing.contract_rows.CorruptRowContract` (corrupt
rows written with raw SQL). For readable assertion failures call
``pytest.register_assert_rewrite("eventcore.testing.contract",
"eventcore.testing.contract_base", "eventcore.testing.contract_inputs",
"eventcore.testing.contract_rows")`` in your ``conftest.py`` before importing them.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from eventcore.clock import SeededIds, TickingClock
from eventcore.errors import (
    Conflict,
    DeserializationError,
    InvalidStreamId,
    ValidationError,
    VersionConflict,
)
from eventcore.events import Metadata, RecordedEvent
from eventcore.store import EventLookups, EventStore
from eventcore.testing.contract_base import (
    A,
    Address,
    B,
    C,
    Currency,
    Deposited,
    DepositedInCents,
    NotFrozen,
    Opened,
    RateChanged,
    StoreFactory,
    Withdrawn,
    _ids,
    _opened,
    _raw,
    _state,
)
from eventcore.testing.contract_fold import FoldReadContract
from eventcore.testing.contract_inputs import BadInputContract
from eventcore.testing.contract_operations import OperationsContract
from eventcore.testing.contract_writes import (
    ExactRoundTripContract,
    IdempotencyContract,
    SessionContract,
    WriteBoundaryContract,
)
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = [
    "Address",
    "Currency",
    "Deposited",
    "DepositedInCents",
    "EventStoreContract",
    "NotFrozen",
    "Opened",
    "RateChanged",
    "StoreFactory",
    "Withdrawn",
]


class EventStoreContract(
    BadInputContract,
    WriteBoundaryContract,
    IdempotencyContract,
    ExactRoundTripContract,
    SessionContract,
    OperationsContract,
    FoldReadContract,
):
    """Behaviour every :class:`~eventcore.store.EventStore` must show. Subclass it; provide
    a ``make_store`` fixture (see the module docstring)."""

    # -- writing and reading (behaviours 1-8) ---------------------------------------------

    def test_b01_append_one_event_and_read_it_back(self, store: EventStore) -> None:
        written = store.append({A: 0}, [Deposited(A, 10)])
        read = list(store.read_stream(A))
        assert len(read) == 1
        assert read == written
        rec = read[0]
        assert (rec.stream_id, rec.stream_version, rec.event_type) == (A, 1, "Deposited")
        assert isinstance(rec.stream_id, StreamId)
        assert rec.event == Deposited(A, 10)
        assert store.stream_version(A) == 1
        assert store.head() == rec.position

    def test_b02_second_append_expecting_zero_conflicts(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 10)])
        before = _state(store, A)
        with pytest.raises(VersionConflict, match="expected version 0, found 1") as info:
            store.append({A: 0}, [Deposited(A, 20)])
        assert info.value.conflicts == (Conflict(A, 0, 1),)
        self.assert_unchanged(store, before)

    def test_b03_stale_read_only_participant_fails_the_whole_write(self, store: EventStore) -> None:
        store.append({B: 0}, [Deposited(B, 1)])
        before = _state(store, A, B)
        with pytest.raises(VersionConflict, match="account-b") as info:
            store.append({A: 0, B: 0}, [Deposited(A, 10)])
        assert info.value.conflicts == (Conflict(B, 0, 1),)
        assert list(store.read_stream(A)) == []
        self.assert_unchanged(store, before)

    def test_b04_current_read_only_participant_lets_the_write_through(
        self, store: EventStore
    ) -> None:
        store.append({B: 0}, [Deposited(B, 1)])
        written = store.append({A: 0, B: 1}, [Deposited(A, 10)])
        assert _ids(written) == [(A, 1)]
        assert store.stream_version(B) == 1

    def test_b05_one_write_to_two_streams(self, store: EventStore) -> None:
        written = store.append({A: 0, B: 0}, [Withdrawn(A, 5), Deposited(B, 5)])
        assert [r.event for r in store.read_stream(A)] == [Withdrawn(A, 5)]
        assert [r.event for r in store.read_stream(B)] == [Deposited(B, 5)]
        assert _ids(written) == [(A, 1), (B, 1)]
        assert written[1].position == written[0].position + 1

    def test_b06_missing_stream_reads_empty(self, store: EventStore) -> None:
        assert list(store.read_stream(StreamId("never-written"))) == []
        assert store.stream_version(StreamId("never-written")) == 0
        assert store.head() == 0
        assert store.read_all() == []

    def test_b07_one_stale_one_current_neither_changes(self, store: EventStore) -> None:
        store.append({A: 0, B: 0}, [Deposited(A, 1), Deposited(B, 1), Deposited(B, 2)])
        before = _state(store, A, B)
        with pytest.raises(VersionConflict, match="account-b") as info:
            store.append({A: 1, B: 1}, [Deposited(A, 3), Deposited(B, 3)])
        assert info.value.conflicts == (Conflict(B, 1, 2),)
        self.assert_unchanged(store, before)

    def test_b08_unknown_stored_type_fails_to_deserialize(self, make_store: StoreFactory) -> None:
        writer = make_store()
        writer.append({A: 0}, [Deposited(A, 10)])
        reader = self.reopen(make_store, events=[])
        with pytest.raises(DeserializationError, match="unknown event type 'Deposited'"):
            list(reader.read_stream(A))
        with pytest.raises(DeserializationError, match="unknown event type 'Deposited'"):
            reader.read_all(event_types=["Deposited"])
        knowing = self.reopen(make_store, events=[Deposited])
        assert [r.event for r in knowing.read_stream(A)] == [Deposited(A, 10)]

    def test_b08_data_that_no_longer_fits_the_class_fails(self, make_store: StoreFactory) -> None:
        writer = make_store()
        writer.append({A: 0}, [Deposited(A, 10)])
        reader = self.reopen(make_store, events=[DepositedInCents])
        with pytest.raises(DeserializationError, match="DepositedInCents"):
            list(reader.read_stream(A))
        with pytest.raises(DeserializationError, match="DepositedInCents"):
            reader.read_all()

    def test_second_handle_sees_the_same_events(self, make_store: StoreFactory) -> None:
        writer = make_store()
        written = writer.append({A: 0}, [_opened(A), Deposited(A, 1)])
        reader = self.reopen(make_store, events=[Opened, Deposited])
        assert list(reader.read_stream(A)) == written
        assert reader.head() == writer.head()

    # -- global reads (behaviours 9-16) ---------------------------------------------------

    def test_b09_read_all_in_append_order(self, store: EventStore) -> None:
        for sid in (A, B, C):
            store.append({sid: 0}, [Deposited(sid, 1)])
        read = store.read_all()
        assert [r.stream_id for r in read] == [A, B, C]
        assert [r.position for r in read] == sorted({r.position for r in read})

    def test_b10_resume_after_a_position(self, store: EventStore) -> None:
        for i in range(5):
            store.append({A: i}, [Deposited(A, i)])
        every = store.read_all()
        rest = store.read_all(after=every[2].position)
        assert [r.event.amount for r in rest] == [3, 4]
        assert rest[0].position < rest[1].position
        assert store.read_all(after=store.head()) == []

    def test_b11_prefix_selects_only_matching_streams(self, store: EventStore) -> None:
        self._streams(store, "account-1", "order-1", "account-2", "accounting")
        assert self._selected(store, StreamPrefix("account-")) == {"account-1", "account-2"}

    def test_b12_prefix_means_starts_with(self, store: EventStore) -> None:
        self._streams(store, "account-1", "my-account-1", "x/account-2")
        assert self._selected(store, StreamPrefix("account-")) == {"account-1"}

    def test_b13_pattern_filter_applies_before_limit(self, store: EventStore) -> None:
        noise = [StreamId(f"other-{i}") for i in range(50)]
        store.append(dict.fromkeys(noise, 0), [Deposited(s, 1) for s in noise])
        self._streams(store, "account-1", "account-2")
        found = store.read_all(streams=StreamPattern("account-*"), limit=10)
        assert [r.stream_id for r in found] == ["account-1", "account-2"]

    def test_b14_question_mark_matches_exactly_one_character(self, store: EventStore) -> None:
        self._streams(store, "account-1", "account-x", "account-12", "account-")
        assert self._selected(store, StreamPattern("account-?")) == {"account-1", "account-x"}

    def test_b15_character_classes(self, store: EventStore) -> None:
        self._streams(store, "order-1", "order-42x", "order-x1", "order-", "order-7/a")
        assert self._selected(store, StreamPattern("order-[0-9]*")) == {
            "order-1",
            "order-42x",
            "order-7/a",
        }
        assert self._selected(store, StreamPattern("order-[!0-9]*")) == {"order-x1"}

    def test_b16_limit_returns_exactly_that_many(self, store: EventStore) -> None:
        for i in range(20):  # one write each: a page may end after any of them
            store.append({A: i}, [Deposited(A, i)])
        first = store.read_all(limit=10)
        assert [r.event.amount for r in first] == list(range(10))
        assert store.read_all(limit=0) == []
        assert len(store.read_all(after=first[-1].position, limit=100)) == 10

    def test_b19_read_stream_after_version(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 1), Deposited(A, 2), Deposited(A, 3)])
        after = list(store.read_stream(A, after_version=2))
        assert [(r.stream_version, r.event.amount) for r in after] == [(3, 3)]
        assert list(store.read_stream(A, after_version=3)) == []
        assert list(store.read_stream(A, after_version=9)) == []

    # -- beyond the original 27 -------------------------------------------------------------

    def test_several_events_to_one_stream_in_one_write(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 1), Deposited(A, 2)])
        written = store.append({A: 2}, [Deposited(A, 3), Withdrawn(A, 4), Deposited(A, 5)])
        assert [r.stream_version for r in written] == [3, 4, 5]
        positions = [r.position for r in written]
        assert positions == list(range(positions[0], positions[0] + 3))
        assert [r.stream_version for r in store.read_stream(A)] == [1, 2, 3, 4, 5]

    def test_parallel_appends_from_8_threads(self, store: EventStore) -> None:
        threads, rounds = 8, 15
        shared = StreamId("shared")
        barrier = threading.Barrier(threads)
        returned: list[RecordedEvent] = []
        failures: list[BaseException] = []
        lock = threading.Lock()

        def work(n: int) -> None:
            own = StreamId(f"own-{n}")
            try:
                barrier.wait()
                for i in range(rounds):
                    mine = store.append({own: 2 * i}, [Deposited(own, i)])
                    for _ in range(10_000):
                        version = store.stream_version(shared)
                        try:
                            both = store.append(
                                {own: 2 * i + 1, shared: version},
                                [Deposited(own, i), Withdrawn(shared, n * 1000 + i)],
                            )
                            break
                        except VersionConflict:
                            continue
                    else:
                        raise AssertionError("no progress on the shared stream")
                    with lock:
                        returned.extend(mine + both)
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        assert not failures, failures
        everything = store.read_all()
        total = threads * rounds * 3
        assert len(everything) == total
        positions = [r.position for r in everything]
        assert positions == sorted(set(positions)), "positions must be unique and increasing"
        assert store.head() == positions[-1]
        if self.gapless_positions:
            assert positions == list(range(1, total + 1))
        shared_events = list(store.read_stream(shared))
        assert [r.stream_version for r in shared_events] == list(range(1, threads * rounds + 1))
        assert sorted(r.event.amount for r in shared_events) == sorted(
            n * 1000 + i for n in range(threads) for i in range(rounds)
        )
        for n in range(threads):
            own = list(store.read_stream(StreamId(f"own-{n}")))
            assert [r.stream_version for r in own] == list(range(1, 2 * rounds + 1))
        assert sorted((r.position, r.event_id) for r in returned) == [
            (r.position, r.event_id) for r in everything
        ]

    def test_event_type_filter_applies_before_limit(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, i) for i in range(30)])
        store.append({B: 0}, [Withdrawn(B, 1)])
        store.append({A: 30}, [Deposited(A, 99)])
        store.append({C: 0}, [Withdrawn(C, 2)])
        assert [r.stream_id for r in store.read_all(event_types=["Withdrawn"], limit=1)] == [B]
        assert [r.stream_id for r in store.read_all(event_types=[Withdrawn], limit=5)] == [B, C]
        assert len(store.read_all(event_types=[Withdrawn, "Deposited"])) == 33
        assert store.read_all(event_types=[]) == []
        assert store.read_all(event_types=["NoSuchType"]) == []

    def test_prefix_and_type_filters_combined(self, store: EventStore) -> None:
        for sid in (StreamId("account-1"), StreamId("other-1"), StreamId("account-2")):
            store.append({sid: 0}, [Deposited(sid, 1), Withdrawn(sid, 1)])
        both = store.read_all(streams=StreamPrefix("account-"), event_types=[Withdrawn])
        assert [(r.stream_id, r.event_type) for r in both] == [
            ("account-1", "Withdrawn"),
            ("account-2", "Withdrawn"),
        ]
        one = store.read_all(streams=StreamPattern("*-2"), event_types=["Deposited"], limit=1)
        assert [(r.stream_id, r.event_type) for r in one] == [("account-2", "Deposited")]

    def test_events_read_back_are_frozen(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        rec = next(store.read_stream(A))
        with pytest.raises(dataclasses.FrozenInstanceError):
            rec.event.amount = 2
        with pytest.raises(dataclasses.FrozenInstanceError):
            rec.position = 99  # type: ignore[misc]
        assert next(store.read_stream(A)).event == Deposited(A, 1)

    def test_records_and_metadata_read_back_are_hashable(self, store: EventStore) -> None:
        meta = Metadata(UUID(int=1), None, {"who": {"roles": ["clerk"]}, "n": 1})
        written = store.append({A: 0}, [_opened(A), Deposited(A, 2)], metadata=meta)
        first, again = store.read_all(), store.read_all()
        assert first == again == written
        assert {*first, *again, *written} == set(written)  # an Opened holds lists: still hashes
        assert {r.metadata for r in first} == {meta}
        assert hash(first[0].metadata.custom) == hash(meta.custom)
        with pytest.raises(TypeError, match="read-only"):
            first[0].metadata.custom["n"] = 2  # type: ignore[index]

    def test_mutating_the_appended_object_does_not_change_the_stored_event(
        self, store: EventStore
    ) -> None:
        tags, limits = ["gold"], {"daily": Decimal("250.00")}
        store.append({A: 0}, [_opened(A, tags=tags, limits=limits)])
        tags.append("hacked")
        limits["daily"] = Decimal("1000000")
        read = next(store.read_stream(A)).event
        assert read.tags == ["gold"]
        assert read.limits == {"daily": Decimal("250.00")}

    def test_changing_what_was_read_does_not_change_the_next_read(self, store: EventStore) -> None:
        """Events are frozen only at the top: lists and dicts inside them are each reader's
        own, as a fresh decode from the database gives them. Metadata is frozen all the way
        down, and the dict given to append is copied."""
        custom = {"who": {"roles": ["clerk"]}}
        written = store.append({A: 0}, [_opened(A)], metadata=Metadata(custom=custom))[0]
        written.event.tags.append("from the writer")
        custom["who"]["roles"].append("from the writer")  # the dict given to append
        reads = [
            next(store.read_stream(A)),
            store.read_all()[0],
            store.read_streams([A])[A][0] if hasattr(store, "read_streams") else None,
        ]
        for rec in filter(None, reads):
            rec.event.tags.append("from a reader")
            rec.event.limits["daily"] = Decimal("0")
            rec.event.extra["nested"].append("from a reader")
            with pytest.raises(TypeError, match="read-only"):  # metadata: frozen all the way
                rec.metadata.custom["who"]["roles"].append("from a reader")
        again = next(store.read_stream(A))
        assert again.event == _opened(A)
        assert again.metadata.custom == {"who": {"roles": ["clerk"]}}

    def test_every_field_type_round_trips(self, store: EventStore) -> None:
        original = _opened(A)
        store.append({A: 0}, [original, _opened(A, reference=None, extra=None, tags=[])])
        read = [r.event for r in store.read_stream(A)]
        assert read[0] == original
        assert read[0].opened_at.utcoffset() == timedelta(hours=2)
        assert isinstance(read[0].currency, Currency)
        assert isinstance(read[0].pair, tuple)
        assert read[1].reference is None

    def test_empty_write_with_current_versions_writes_nothing(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A, B)
        assert store.append({A: 1, B: 0}, []) == []
        self.assert_unchanged(store, before)

    def test_empty_write_with_a_stale_version_conflicts(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A)
        with pytest.raises(VersionConflict, match="expected version 0, found 1"):
            store.append({A: 0}, [])
        self.assert_unchanged(store, before)

    def test_stream_field_given_as_plain_str(self, store: EventStore) -> None:
        written = store.append({A: 0}, [Deposited(_raw("account-a"), 1)])
        assert isinstance(written[0].stream_id, StreamId)
        assert next(store.read_stream(A)).event == Deposited(A, 1)

    # -- metadata, clock and ids ----------------------------------------------------------

    def test_metadata_round_trips(self, store: EventStore) -> None:
        meta = Metadata(
            correlation_id=UUID("0190c2a4-0000-7000-8000-000000000001"),
            causation_id=UUID("0190c2a4-0000-7000-8000-000000000002"),
            custom={"user": "alice", "attempt": 2, "ratio": 0.5, "tags": ["a"], "x": None},
        )
        written = store.append({A: 0, B: 0}, [Deposited(A, 1), Deposited(B, 1)], metadata=meta)
        assert all(r.metadata == meta for r in written)
        assert all(r.metadata == meta for r in store.read_all())

    def test_default_correlation_id_is_the_first_event_id(self, store: EventStore) -> None:
        written = store.append({A: 0, B: 0}, [Deposited(A, 1), Deposited(B, 1)])
        for rec in store.read_all():
            assert rec.metadata == Metadata(written[0].event_id, None, {})
        cause = UUID("0190c2a4-0000-7000-8000-000000000009")
        again = store.append({A: 1}, [Deposited(A, 2)], metadata=Metadata(causation_id=cause))
        read = next(store.read_stream(A, after_version=1))
        assert read.metadata == Metadata(again[0].event_id, cause, {})

    def test_recorded_at_and_event_id_come_from_the_injected_clock_and_ids(
        self, make_store: StoreFactory
    ) -> None:
        start, step = datetime(2030, 1, 1, tzinfo=UTC), timedelta(seconds=5)
        store = make_store(clock=TickingClock(start, step), ids=SeededIds(seed=11))
        first = store.append({A: 0, B: 0}, [Deposited(A, 1), Deposited(B, 1), Deposited(A, 2)])
        second = store.append({A: 2}, [Deposited(A, 3)])
        written = first + second
        expected_ids = SeededIds(seed=11)
        assert [r.event_id for r in written] == [expected_ids() for _ in written]
        times = [r.recorded_at for r in written]
        assert all(t >= start and (t - start) % step == timedelta(0) for t in times)
        assert [b - a for a, b in itertools.pairwise(times)] == [step] * 3
        read = store.read_all()
        assert [(r.event_id, r.recorded_at) for r in read] == [
            (r.event_id, r.recorded_at) for r in written
        ]
        assert all(r.recorded_at.utcoffset() == timedelta(0) for r in read)

    # -- correlation and event lookups (read_correlation, read_event) ----------------------

    # -- several streams in one read (optional: execute falls back to read_stream) ---------

    def batch_reader(self, store: EventStore) -> Callable[..., dict[StreamId, Any]]:
        """The store's ``read_streams``, or skip the test for a store without one."""
        method = getattr(store, "read_streams", None)
        if method is None:
            pytest.skip(f"{type(store).__name__} has no read_streams")
        return method  # type: ignore[no-any-return]

    def test_read_streams_reads_each_stream_as_read_stream_does(self, store: EventStore) -> None:
        read_streams = self.batch_reader(store)
        store.append({A: 0, B: 0}, [Deposited(A, 1), Deposited(B, 2), Withdrawn(A, 3)])
        store.append({C: 0}, [Deposited(C, 4)])
        store.append({A: 2}, [Deposited(A, 5)])
        found = read_streams([B, A, StreamId("nobody")])
        assert list(found) == [B, A, StreamId("nobody")]
        for sid in (A, B):
            assert found[sid] == list(store.read_stream(sid))
        assert [r.stream_version for r in found[A]] == [1, 2, 3]
        assert found[StreamId("nobody")] == []

    def test_read_streams_takes_duplicates_once_and_validates_ids(self, store: EventStore) -> None:
        read_streams = self.batch_reader(store)
        store.append({A: 0}, [Deposited(A, 1)])
        found = read_streams([A, "account-a", B])
        assert list(found) == [A, B]
        assert [r.event for r in found[A]] == [Deposited(A, 1)]
        assert read_streams([]) == {}
        with pytest.raises(InvalidStreamId):
            read_streams([A, "bad*id"])
        with pytest.raises(ValidationError, match="list of stream ids"):
            read_streams("account-a")

    def lookups(self, store: EventStore) -> EventLookups:
        """The store as :class:`~eventcore.store.EventLookups`, or fail with what is missing."""
        assert isinstance(store, EventLookups), (
            f"{type(store).__name__} lacks read_correlation/read_event"
        )
        return store

    def test_read_correlation_returns_one_flow_in_position_order(self, store: EventStore) -> None:
        flow, other = UUID(int=1), UUID(int=2)
        first = store.append({A: 0}, [Deposited(A, 1)], metadata=Metadata(flow))
        store.append({C: 0}, [Deposited(C, 9)], metadata=Metadata(other))
        second = store.append(
            {A: 1, B: 0}, [Withdrawn(A, 1), Deposited(B, 1)], metadata=Metadata(flow, UUID(int=7))
        )
        store.append({C: 1}, [Deposited(C, 10)])
        found = self.lookups(store).read_correlation(flow)
        assert found == first + second
        assert [r.position for r in found] == sorted(r.position for r in found)
        assert [r.event for r in self.lookups(store).read_correlation(other)] == [Deposited(C, 9)]
        assert self.lookups(store).read_correlation(UUID(int=3)) == []

    def test_read_correlation_finds_the_default_correlation_id(self, store: EventStore) -> None:
        written = store.append({A: 0, B: 0}, [Deposited(A, 1), Deposited(B, 1)])
        assert self.lookups(store).read_correlation(written[0].event_id) == written
        assert self.lookups(store).read_correlation(written[1].event_id) == []

    def test_read_event_by_id(self, store: EventStore) -> None:
        written = store.append({A: 0, B: 0}, [Deposited(A, 1), Withdrawn(B, 2)])
        for rec in written:
            assert self.lookups(store).read_event(rec.event_id) == rec
        assert self.lookups(store).read_event(UUID(int=5)) is None

    def test_lookups_decode_with_the_readers_registry(self, make_store: StoreFactory) -> None:
        writer = make_store()
        written = writer.append({A: 0}, [Deposited(A, 1)], metadata=Metadata(UUID(int=1)))
        reader = self.lookups(self.reopen(make_store, events=[Deposited]))
        assert reader.read_correlation(UUID(int=1)) == written
        assert reader.read_event(written[0].event_id) == written[0]
        stranger = self.lookups(self.reopen(make_store, events=[]))
        with pytest.raises(DeserializationError, match="unknown event type"):
            stranger.read_event(written[0].event_id)

    @pytest.mark.parametrize("bad", [str(UUID(int=1)), 1, None])
    def test_lookups_reject_ids_that_are_not_uuids(self, store: EventStore, bad: object) -> None:
        with pytest.raises(ValidationError, match="correlation_id must be a UUID"):
            self.lookups(store).read_correlation(_raw(bad))
        with pytest.raises(ValidationError, match="event_id must be a UUID"):
            self.lookups(store).read_event(_raw(bad))
