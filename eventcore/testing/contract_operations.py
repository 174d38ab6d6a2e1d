"""The store contract, part three: what operators and tools need (``iter_all``,
``list_streams``, ``stats``, raw export and import).

Mixed into :class:`~eventcore.testing.contract.EventStoreContract`.
"""

from __future__ import annotations

import dataclasses

import pytest

from eventcore.errors import ValidationError
from eventcore.events import Metadata
from eventcore.raw import RawEvent
from eventcore.store import EventStore
from eventcore.testing.contract_base import (
    A,
    B,
    C,
    Deposited,
    StoreContractBase,
    StoreFactory,
    Withdrawn,
    _state,
)
from eventcore.types import StreamId, StreamPrefix

__all__ = ["OperationsContract"]


def _log(store: EventStore) -> None:
    store.append({A: 0}, [Deposited(A, 1)])
    store.append({A: 1, B: 0}, [Withdrawn(A, 1), Deposited(B, 1)])  # one write
    store.append({C: 0}, [Deposited(C, 2)], metadata=Metadata(custom={"by": "ops"}))
    store.append({B: 1}, [Deposited(B, 3)])


class OperationsContract(StoreContractBase):
    def test_iter_all_reads_the_whole_log_lazily(self, store: EventStore) -> None:
        _log(store)
        events = store.iter_all(page_size=1)  # type: ignore[attr-defined]
        assert [e.position for e in events] == [1, 2, 3, 4, 5]
        only_b = store.iter_all(streams=StreamPrefix("account-b"), after=1)  # type: ignore[attr-defined]
        assert [e.position for e in only_b] == [3, 5]
        with pytest.raises(ValidationError, match="page_size"):
            list(store.iter_all(page_size=0))  # type: ignore[attr-defined]

    def test_list_streams_in_id_order_with_versions_and_times(self, store: EventStore) -> None:
        _log(store)
        found = store.list_streams()  # type: ignore[attr-defined]
        assert [(s.stream_id, s.version, s.first_position, s.last_position) for s in found] == [
            (A, 2, 1, 2),
            (B, 2, 3, 5),
            (C, 1, 4, 4),
        ]
        records = {e.position: e for e in store.read_all()}
        assert found[1].first_recorded_at == records[3].recorded_at
        assert found[1].last_recorded_at == records[5].recorded_at
        later = store.list_streams(after=A, limit=1)  # type: ignore[attr-defined]
        assert [s.stream_id for s in later] == [B]
        selected = store.list_streams(streams=[StreamPrefix("account-c")])  # type: ignore[attr-defined]
        assert [s.stream_id for s in selected] == [C]
        assert store.list_streams(streams=StreamPrefix("nobody")) == []  # type: ignore[attr-defined]

    def test_stats_count_events_and_streams(self, store: EventStore) -> None:
        _log(store)
        stats = store.stats()  # type: ignore[attr-defined]
        assert (stats.head, stats.events, stats.streams) == (5, 5, 3)
        assert stats.kind in ("memory", "sqlite", "postgres")

    def test_stream_rows_are_one_streams_raw_rows_in_version_order(self, store: EventStore) -> None:
        _log(store)
        everything = {r.position: r for r in store.export_rows()}  # type: ignore[attr-defined]
        rows = store.stream_rows(B)  # type: ignore[attr-defined]
        assert rows == [everything[3], everything[5]]
        assert store.stream_rows(B, after_version=1) == [everything[5]]  # type: ignore[attr-defined]
        assert store.stream_rows(A, limit=1) == [everything[1]]  # type: ignore[attr-defined]
        assert store.stream_rows(StreamId("nobody")) == []  # type: ignore[attr-defined]
        with pytest.raises(ValidationError):
            store.stream_rows(A, after_version=-1)  # type: ignore[attr-defined]

    def test_verify_finds_nothing_wrong_with_a_sound_log(self, store: EventStore) -> None:
        assert store.verify() == []  # type: ignore[attr-defined]
        _log(store)
        seen: list[int] = []
        assert store.verify(page_size=2, progress=seen.append) == []  # type: ignore[attr-defined]
        assert seen[-1] == 5 and seen == sorted(seen)
        with pytest.raises(ValueError, match="page_size"):
            store.verify(page_size=0)  # type: ignore[attr-defined]

    def test_export_then_import_gives_the_same_events(
        self, make_store: StoreFactory, make_empty_store: StoreFactory
    ) -> None:
        source = make_store(events=[Deposited, Withdrawn])
        _log(source)
        rows = source.export_rows()  # type: ignore[attr-defined]
        assert [r.position for r in rows] == [1, 2, 3, 4, 5]
        assert [r.write_end for r in rows] == [1, 3, 3, 4, 5]
        assert all(RawEvent.from_json_line(r.to_json_line()) == r for r in rows)
        assert [r.position for r in source.export_rows(after=1, limit=1)] == [2, 3]  # type: ignore[attr-defined]
        target = make_empty_store(events=[Deposited, Withdrawn])
        assert target.import_rows(rows) == 5  # type: ignore[attr-defined]
        assert target.read_all() == source.read_all()
        assert [r.position for r in target.read_all(limit=2)] == [1, 2, 3]  # writes kept
        assert target.export_rows() == rows  # type: ignore[attr-defined]
        written = target.append({A: 2}, [Deposited(A, 9)])
        assert [e.position for e in written] == [6]

    def test_an_import_that_does_not_continue_the_log_writes_nothing(
        self, make_store: StoreFactory, make_empty_store: StoreFactory
    ) -> None:
        source = make_store(events=[Deposited, Withdrawn])
        _log(source)
        rows = source.export_rows()  # type: ignore[attr-defined]
        target = make_empty_store(events=[Deposited, Withdrawn])
        target.append({StreamId("other"): 0}, [Deposited(StreamId("other"), 1)])
        before = _state(target, A)
        with pytest.raises(ValidationError, match="next position is 2"):
            target.import_rows(rows)  # type: ignore[attr-defined]
        self.assert_unchanged(target, before)
        empty = make_empty_store(events=[Deposited, Withdrawn])
        with pytest.raises(ValidationError, match="whole writes"):
            empty.import_rows(rows[:2])  # type: ignore[attr-defined]
        with pytest.raises(ValidationError, match="next version is 1"):
            empty.import_rows([dataclasses.replace(rows[0], stream_version=2)])  # type: ignore[attr-defined]
        assert empty.head() == 0
