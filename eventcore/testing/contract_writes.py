"""The store contract, part two: atomic writes as readers see them, and idempotency keys.

Mixed into :class:`~eventcore.testing.contract.EventStoreContract`; see that module for how
to run the contract against a store.
"""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from typing import Any

import pytest

from eventcore.errors import (
    IdempotencyConflict,
    InvalidStreamId,
    StoreFailure,
    ValidationError,
    VersionConflict,
)
from eventcore.events import Metadata, RecordedEvent
from eventcore.idempotency import IdempotencyKey
from eventcore.store import EventStore
from eventcore.testing.contract_base import (
    A,
    B,
    C,
    Deposited,
    Opened,
    RateChanged,
    StoreContractBase,
    StoreFactory,
    Withdrawn,
    _opened,
    _raw,
    _state,
)
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = [
    "ExactRoundTripContract",
    "IdempotencyContract",
    "SessionContract",
    "WriteBoundaryContract",
]

D = StreamId("account-d")

WRITE_ENDS = {1, 2, 3, 7, 8, 9}
"""The last position of every write made by :meth:`WriteBoundaryContract.log`."""


def _positions(records: list[RecordedEvent]) -> list[int]:
    return [r.position for r in records]


class WriteBoundaryContract(StoreContractBase):
    """``read_all`` never returns part of an atomic write."""

    def log(self, store: EventStore) -> None:
        """Positions 1, 2, 3: one write each; 4-7: one write to A, B, C and D; 8, 9: one each."""
        store.append({A: 0}, [Deposited(A, 1)])
        store.append({B: 0}, [Deposited(B, 2)])
        store.append({C: 0}, [Deposited(C, 3)])
        store.append(
            {A: 1, B: 1, C: 1, D: 0},
            [Withdrawn(A, 4), Deposited(B, 5), Deposited(C, 6), Deposited(D, 7)],
        )
        store.append({A: 2}, [Deposited(A, 8)])
        store.append({B: 2}, [Deposited(B, 9)])

    def test_a_page_never_ends_inside_a_write(self, store: EventStore) -> None:
        self.log(store)
        assert _positions(store.read_all(limit=3)) == [1, 2, 3]
        assert _positions(store.read_all(limit=4)) == [1, 2, 3, 4, 5, 6, 7]
        assert _positions(store.read_all(limit=6)) == [1, 2, 3, 4, 5, 6, 7]
        assert _positions(store.read_all(limit=8)) == [1, 2, 3, 4, 5, 6, 7, 8]
        assert _positions(store.read_all(after=3, limit=1)) == [4, 5, 6, 7]
        assert _positions(store.read_all(after=5, limit=1)) == [6, 7]  # started inside it
        assert _positions(store.read_all(after=7, limit=1)) == [8]

    @pytest.mark.parametrize("limit", [1, 2, 3, 4, 5])
    def test_paging_visits_every_event_once_and_stops_on_write_ends(
        self, store: EventStore, limit: int
    ) -> None:
        self.log(store)
        seen: list[int] = []
        after = 0
        for _ in range(20):  # bounded: the log has 9 events
            page = store.read_all(after=after, limit=limit)
            if not page:
                break
            assert page[-1].position in WRITE_ENDS, f"page ends inside a write: {page}"
            assert len(page) >= limit or page[-1].position == store.head()
            seen += _positions(page)
            after = page[-1].position
        assert seen == list(range(1, 10))

    def test_the_rest_of_a_write_is_filtered_like_the_page(self, store: EventStore) -> None:
        self.log(store)
        a_and_c = StreamPattern("account-[ac]")
        assert _positions(store.read_all(limit=3, streams=a_and_c)) == [1, 3, 4, 6]
        assert _positions(store.read_all(limit=1, streams=a_and_c, after=3)) == [4, 6]
        deposits = store.read_all(limit=3, event_types=["Deposited"])
        assert _positions(deposits) == [1, 2, 3]
        assert _positions(store.read_all(after=3, limit=1, event_types=["Deposited"])) == [5, 6, 7]

    def test_several_selectors_in_one_read(self, store: EventStore) -> None:
        self.log(store)
        streams: list[StreamPrefix | StreamPattern] = [
            StreamPrefix("account-a"),
            StreamPattern("*-d"),
        ]
        assert _positions(store.read_all(streams=streams)) == [1, 4, 7, 8]
        assert _positions(store.read_all(streams=streams, limit=1)) == [1]
        assert _positions(store.read_all(streams=streams, limit=2)) == [1, 4, 7]
        duplicated = [StreamPrefix("account-a"), StreamPrefix("account-a")]
        assert _positions(store.read_all(streams=duplicated)) == [1, 4, 8]


class IdempotencyContract(StoreContractBase):
    """A write repeated with the same idempotency key is recorded once."""

    def test_a_repeated_key_writes_nothing_and_returns_the_original(
        self, store: EventStore
    ) -> None:
        first = store.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1")
        before = _state(store, A)
        again = store.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1")
        assert again == first
        self.assert_unchanged(store, before)

    def test_the_key_is_checked_before_the_versions(self, store: EventStore) -> None:
        """A retry after a lost acknowledgement sees its own write as a version change."""
        first = store.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1")
        store.append({A: 1}, [Deposited(A, 1)])
        before = _state(store, A)
        assert store.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1") == first
        self.assert_unchanged(store, before)
        with pytest.raises(VersionConflict):  # without the key it is an ordinary stale write
            store.append({A: 0}, [Deposited(A, 5)])

    def test_the_same_key_for_another_request_is_refused(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1")
        before = _state(store, A, B)
        with pytest.raises(IdempotencyConflict, match="deposit-1") as info:
            store.append({A: 1}, [Deposited(A, 6)], idempotency_key="deposit-1")
        assert info.value.key == "deposit-1"
        with pytest.raises(IdempotencyConflict):
            store.append({B: 0}, [Deposited(B, 5)], idempotency_key="deposit-1")
        self.assert_unchanged(store, before)

    def test_an_explicit_fingerprint_decides_what_is_the_same_request(
        self, store: EventStore
    ) -> None:
        first = store.append(
            {A: 0}, [Deposited(A, 5)], idempotency_key=IdempotencyKey("k", "command-v1")
        )
        again = store.append(
            {A: 1}, [Deposited(A, 9)], idempotency_key=IdempotencyKey("k", "command-v1")
        )
        assert again == first and store.head() == 1
        with pytest.raises(IdempotencyConflict):
            store.append({A: 1}, [Deposited(A, 5)], idempotency_key=IdempotencyKey("k", "v2"))

    def test_keys_are_independent_and_readable(self, store: EventStore) -> None:
        one = store.append({A: 0}, [Deposited(A, 1), Deposited(A, 2)], idempotency_key="one")
        two = store.append({A: 2, B: 0}, [Deposited(B, 3)], idempotency_key="two")
        found = store.read_idempotent_write("one")
        assert found is not None
        assert found.key == "one" and found.fingerprint.startswith("sha256:")
        assert list(found.events) == one
        assert found.recorded_at == one[0].recorded_at
        found_two = store.read_idempotent_write("two")
        assert found_two is not None and list(found_two.events) == two
        assert store.read_idempotent_write("three") is None

    def test_a_second_handle_knows_the_key(self, make_store: StoreFactory) -> None:
        store = make_store(events=[Deposited])
        first = store.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1")
        other = self.reopen(make_store, events=[Deposited])
        assert other.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1") == first
        assert other.head() == 1

    @pytest.mark.parametrize("bad", ["", "   ", "x" * 256, "a\x00b", 42, b"key"])
    def test_bad_keys_are_refused_before_writing(self, store: EventStore, bad: Any) -> None:
        before = _state(store, A)
        with pytest.raises(ValidationError, match="idempotency"):
            store.append({A: 0}, [Deposited(A, 5)], idempotency_key=_raw(bad))
        self.assert_unchanged(store, before)

    def test_an_empty_write_records_no_key(self, store: EventStore) -> None:
        assert store.append({A: 0}, [], idempotency_key="nothing") == []
        assert store.read_idempotent_write("nothing") is None

    def test_eight_threads_with_one_key_write_once(self, store: EventStore) -> None:
        results: list[list[RecordedEvent]] = []
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def work() -> None:
            try:
                start.wait(10)
                results.append(store.append({A: 0}, [Deposited(A, 5)], idempotency_key="deposit-1"))
            except BaseException as exc:  # collected and reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert store.head() == 1 and store.stream_version(A) == 1
        assert len(results) == 8 and all(r == results[0] for r in results)


class ExactRoundTripContract(StoreContractBase):
    """What is read back is what was written, bit for bit, on every store (PostgreSQL's
    ``jsonb`` used to turn ``-0.0`` into ``0.0`` and ``1e16`` into an int, and re-sort keys)."""

    def test_numbers_keys_and_text_come_back_exactly(self, make_store: StoreFactory) -> None:
        store = make_store(events=[Opened, RateChanged])
        extra = {"zebra": 1e16, "apple": -0.0, "mango": [1e16, -0.0, 2.5e-300], "nul": "a\x00b"}
        opened = _opened(A, extra=extra, limits={"z": Decimal("1E+16"), "a": Decimal("-0.0")})
        meta = Metadata(custom={"big": 1e16, "negative_zero": -0.0, "text": "x\x00y"})
        store.append({A: 0}, [opened, RateChanged(A, -0.0)], metadata=meta)
        reader = (
            self.reopen(make_store, events=[Opened, RateChanged]) if self.supports_reopen else store
        )
        for source in (store, reader):
            back = [r for r in source.read_stream(A)]
            event = back[0].event
            assert event == opened
            assert list(event.extra) == ["zebra", "apple", "mango", "nul"]  # insertion order
            assert type(event.extra["zebra"]) is float and event.extra["zebra"] == 1e16
            assert math.copysign(1.0, event.extra["apple"]) == -1.0
            assert math.copysign(1.0, event.extra["mango"][1]) == -1.0
            assert list(event.limits) == ["z", "a"]
            assert str(event.limits["a"]) == "-0.0"
            assert math.copysign(1.0, back[1].event.rate) == -1.0
            custom = back[0].metadata.custom
            assert type(custom["big"]) is float and custom["big"] == 1e16
            assert math.copysign(1.0, custom["negative_zero"]) == -1.0
            assert custom["text"] == "x\x00y"


class SessionContract(StoreContractBase):
    """``store.session(lock=...)``: read, decide and append with no writer in between."""

    def test_a_session_reads_appends_and_commits_at_the_end(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        with store.session(lock=[A, B]) as session:  # type: ignore[attr-defined]
            assert session.stream_version(A) == 1
            assert [r.event for r in session.read_stream(A)] == [Deposited(A, 1)]
            found = session.read_streams([A, B])
            assert [len(found[A]), len(found[B])] == [1, 0]
            written = session.append({A: 1, B: 0}, [Deposited(A, 2), Deposited(B, 3)])
            assert [(r.stream_id, r.stream_version) for r in written] == [(A, 2), (B, 1)]
        assert [r.position for r in store.read_all()] == [1, 2, 3]
        assert list(store.read_stream(B)) == [written[1]]

    def test_a_session_that_raises_writes_nothing(self, store: EventStore) -> None:
        before = _state(store, A)
        with (
            pytest.raises(RuntimeError, match="changed my mind"),
            store.session(lock=[A]) as session,  # type: ignore[attr-defined]
        ):
            session.append({A: 0}, [Deposited(A, 1)])
            raise RuntimeError("changed my mind")
        self.assert_unchanged(store, before)
        store.append({A: 0}, [Deposited(A, 1)])  # and the store is usable afterwards

    def test_a_session_appends_once_and_checks_versions(self, store: EventStore) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        with (
            store.session(lock=[A]) as session,  # type: ignore[attr-defined]
            pytest.raises(VersionConflict),
        ):
            session.append({A: 0}, [Deposited(A, 2)])  # stale, as any append; leaving is fine
        with store.session(lock=[A]) as session:  # type: ignore[attr-defined]
            session.append({A: 1}, [Deposited(A, 2)])
            with pytest.raises(StoreFailure, match="already appended"):
                session.append({A: 2}, [Deposited(A, 3)])
        assert store.stream_version(A) == 2

    def test_another_writer_waits_for_the_session(self, store: EventStore) -> None:
        outcome: list[BaseException | list[RecordedEvent]] = []

        def other_writer() -> None:
            try:
                outcome.append(store.append({A: 0}, [Deposited(A, 9)]))
            except BaseException as exc:  # reported below
                outcome.append(exc)

        with store.session(lock=[A]) as session:  # type: ignore[attr-defined]
            version = session.stream_version(A)
            writer = threading.Thread(target=other_writer)
            writer.start()
            writer.join(0.3)
            assert writer.is_alive() and not outcome, "a writer got past the session's lock"
            session.append({A: version}, [Deposited(A, 1)])
        writer.join(30)
        assert len(outcome) == 1 and isinstance(outcome[0], VersionConflict)
        assert [r.event.amount for r in store.read_stream(A)] == [1]

    def test_bad_streams_to_lock_are_refused(self, store: EventStore) -> None:
        with pytest.raises(InvalidStreamId), store.session(lock=["bad*id"]):  # type: ignore[attr-defined]
            pass
