"""The tombstone and retention contracts: what every store promises about closing and
deleting streams, and about removing events on purpose (``apply_retention``).

Subclass with the same ``make_store`` (and ``make_empty_store``) fixtures as
:class:`~eventcore.testing.contract.EventStoreContract`; the store must offer
``close_stream``, ``delete_stream``, ``apply_retention``, ``read_retained`` and
``retention_runs`` (every bundled store does, blocking and asyncio through the bridge).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eventcore.clock import SeededIds, TickingClock
from eventcore.errors import (
    ConfigurationError,
    DeserializationError,
    EventsRemoved,
    StreamClosed,
    StreamDeleted,
    ValidationError,
    VersionConflict,
)
from eventcore.retention import (
    DirectoryArchive,
    KeepLast,
    KeepYounger,
    PurgeDeleted,
    TruncateBefore,
    restore,
    skipping_removed,
)
from eventcore.store import read_versioned, read_versioned_streams
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
from eventcore.tombstones import CLOSURE, DELETION, StreamClosure, StreamDeletion
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = ["RetentionContract", "TombstoneContract"]


def _fill(store: Any, stream: StreamId, count: int) -> None:
    version = store.stream_version(stream)
    for n in range(count):
        store.append({stream: version + n}, [Deposited(stream, n + 1)])


class TombstoneContract(StoreContractBase):
    """Closing and deleting streams."""

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Any:
        return make_store(events=[Deposited, Withdrawn], clock=TickingClock(), ids=SeededIds(3))

    def test_a_closed_stream_refuses_appends_and_nothing_is_written(self, store: Any) -> None:
        _fill(store, A, 2)
        closed = store.close_stream(A, reason="account closed")
        assert (closed.position, closed.stream_version) == (3, 3)
        assert closed.event == StreamClosure(A, "account closed")
        before = _state(store, A, B)
        with pytest.raises(StreamClosed) as info:
            store.append({A: 3, B: 0}, [Deposited(B, 1), Deposited(A, 5)])
        assert not isinstance(info.value, StreamDeleted)
        assert (info.value.stream_id, info.value.position) == ("account-a", 3)
        assert info.value.closed_at == closed.recorded_at
        assert info.value.reason == "account closed"
        self.assert_unchanged(store, before)

    def test_a_closed_stream_still_reads_and_a_read_only_participant_is_fine(
        self, store: Any
    ) -> None:
        _fill(store, A, 1)
        store.close_stream(A)
        assert [r.event_type for r in store.read_stream(A)] == ["Deposited", CLOSURE]
        written = store.append({A: 2, B: 0}, [Deposited(B, 7)])
        assert [r.stream_id for r in written] == [B]

    def test_closing_twice_or_after_a_deletion_is_refused(self, store: Any) -> None:
        store.close_stream(A)
        with pytest.raises(StreamClosed):
            store.close_stream(A)
        store.delete_stream(B)
        with pytest.raises(StreamDeleted):
            store.close_stream(B)
        with pytest.raises(StreamDeleted):
            store.delete_stream(B)

    def test_a_closed_stream_can_be_deleted(self, store: Any) -> None:
        _fill(store, A, 1)
        store.close_stream(A)
        deleted = store.delete_stream(A, reason="erasure request")
        assert deleted.event == StreamDeletion(A, "erasure request")
        assert deleted.stream_version == 3

    def test_a_deleted_stream_says_so_and_when_on_every_read(self, store: Any) -> None:
        _fill(store, A, 2)
        deleted = store.delete_stream(A)
        for read in (
            lambda: list(store.read_stream(A)),
            lambda: list(store.read_stream(A, after_version=1)),
            lambda: store.read_streams([B, A]),
            lambda: list(read_versioned(store, A)),  # what execute folds
            lambda: list(read_versioned(store, A, 1)),
            lambda: read_versioned_streams(store, [B, A]),
        ):
            with pytest.raises(StreamDeleted) as info:
                read()
            assert info.value.position == deleted.position
            assert info.value.closed_at == deleted.recorded_at
            assert "was deleted at position 3" in str(info.value)
        with pytest.raises(StreamDeleted):
            store.append({A: 3}, [Deposited(A, 1)])
        assert store.stream_version(A) == 3
        assert list(store.read_stream(A, after_version=3)) == []  # read past the deletion

    def test_global_positions_are_never_reused_and_readers_see_the_deletion(
        self, store: Any
    ) -> None:
        _fill(store, A, 2)
        store.delete_stream(A)
        written = store.append({B: 0}, [Deposited(B, 1)])
        assert written[0].position == 4
        log = store.read_all()
        assert [(r.position, r.event_type) for r in log] == [
            (1, "Deposited"),
            (2, "Deposited"),
            (3, DELETION),
            (4, "Deposited"),
        ]
        assert [r.stream_id for r in store.read_all(event_types=[StreamDeletion])] == [A]

    def test_the_expected_version_is_checked(self, store: Any) -> None:
        _fill(store, A, 2)
        with pytest.raises(VersionConflict):
            store.close_stream(A, expected_version=1)
        assert store.close_stream(A, expected_version=2).stream_version == 3
        with pytest.raises(ValidationError):
            store.close_stream(B, expected_version=-1)

    def test_one_write_cannot_close_a_stream_and_go_on(self, store: Any) -> None:
        before = _state(store, A)
        with pytest.raises(StreamClosed, match="by this write"):
            store.append({A: 0}, [StreamClosure(A), Deposited(A, 1)])
        self.assert_unchanged(store, before)

    def test_another_handle_refuses_too_and_decodes_tombstones_unregistered(
        self, make_store: StoreFactory, store: Any
    ) -> None:
        _fill(store, A, 1)
        store.close_stream(A)
        other = self.reopen(make_store, events=[Deposited])
        with pytest.raises(StreamClosed):
            other.append({A: 2}, [Deposited(A, 1)])
        assert [r.event for r in other.read_stream(A)][-1] == StreamClosure(A)

    def test_tombstones_travel_with_an_export(
        self, store: Any, make_empty_store: StoreFactory
    ) -> None:
        _fill(store, A, 1)
        store.close_stream(A)
        store.delete_stream(B)
        other: Any = make_empty_store(events=[Deposited])
        assert other.import_rows(store.export_rows()) == 3
        with pytest.raises(StreamClosed):
            other.append({A: 2}, [Deposited(A, 1)])
        with pytest.raises(StreamDeleted):
            list(other.read_stream(B))

    def test_an_import_cannot_write_past_a_tombstone(
        self, store: Any, make_empty_store: StoreFactory
    ) -> None:
        source: Any = make_empty_store(events=[Deposited])
        source.append({A: 0}, [Deposited(A, 1)])
        store.close_stream(A)  # the target's own tombstone of A, at position 1
        rows = source.export_rows()
        shifted = [
            type(r)(**{**_fields(r), "position": 2, "stream_version": 2, "write_end": 2})
            for r in rows
        ]
        with pytest.raises(StreamClosed):
            store.import_rows(shifted)
        assert store.head() == 1

    def test_bad_reasons_are_refused(self, store: Any) -> None:
        with pytest.raises(ValidationError):
            store.close_stream(A, reason="x" * 1001)
        assert store.head() == 0


def _fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}


class RetentionContract(StoreContractBase):
    """Removing events on purpose, archiving and restoring them."""

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Any:
        return make_store(events=[Deposited, Withdrawn], clock=TickingClock(), ids=SeededIds(5))

    @pytest.fixture
    def archive(self, tmp_path: Path) -> DirectoryArchive:
        return DirectoryArchive(tmp_path / "archive")

    def test_keep_last_archives_then_removes_and_versions_go_on(
        self, store: Any, archive: DirectoryArchive
    ) -> None:
        _fill(store, A, 5)
        _fill(store, B, 2)
        before = store.export_rows()
        report = store.apply_retention([KeepLast(StreamPrefix("account-a"), 2)], archive=archive)
        assert (report.removed, report.streams) == (3, 1)
        assert (report.first_position, report.last_position) == (1, 3)
        assert [r.stream_version for r in store.read_stream(A)] == [4, 5]
        assert store.stream_version(A) == 5
        assert len(list(store.read_stream(B))) == 2
        assert [r.position for r in archive.rows()] == [1, 2, 3]
        assert list(archive.rows()) == before[:3]
        assert store.append({A: 5}, [Deposited(A, 9)])[0].position == 8
        assert [(run[0], run[1]) for run in store.retention_runs()] == [(1, 3)]

    def test_keep_younger_uses_the_store_clock(self, make_store: StoreFactory) -> None:
        clock = TickingClock(step=timedelta(hours=1))
        store: Any = make_store(events=[Deposited], clock=clock, ids=SeededIds(6))
        _fill(store, A, 4)  # recorded at +0h .. +3h; the run reads the clock at +4h
        report = store.apply_retention(
            [KeepYounger(StreamPattern("account-*"), timedelta(hours=2, minutes=30))],
            archive=None,
        )
        assert report.removed == 2
        assert [r.stream_version for r in store.read_stream(A)] == [3, 4]

    def test_truncate_before_and_first_matching_policy(self, store: Any) -> None:
        _fill(store, A, 4)
        _fill(store, B, 4)
        _fill(store, C, 4)
        policies = [
            TruncateBefore(StreamPrefix("account-a"), 3),
            KeepLast(StreamPrefix("account-"), 3),
        ]
        assert store.apply_retention(policies, archive=None).removed == 4
        assert [r.stream_version for r in store.read_stream(A)] == [3, 4]
        assert [r.stream_version for r in store.read_stream(B)] == [2, 3, 4]
        assert [r.stream_version for r in store.read_stream(C)] == [2, 3, 4]

    def test_every_stream_keeps_its_last_event(self, store: Any) -> None:
        _fill(store, A, 3)
        store.apply_retention([TruncateBefore(StreamPrefix("account-"), 100)], archive=None)
        assert [r.stream_version for r in store.read_stream(A)] == [3]
        assert store.stream_version(A) == 3

    def test_purge_deleted_keeps_the_deletion(self, store: Any) -> None:
        _fill(store, A, 3)
        _fill(store, B, 2)
        store.delete_stream(A)
        report = store.apply_retention([PurgeDeleted(StreamPrefix("account-"))], archive=None)
        assert report.removed == 3
        with pytest.raises(StreamDeleted):
            list(store.read_stream(A))
        assert len(list(store.read_stream(B))) == 2

    def test_a_read_from_before_removed_events_is_refused_not_gapped(self, store: Any) -> None:
        _fill(store, A, 4)
        _fill(store, B, 1)
        store.apply_retention([KeepLast(StreamPrefix("account-a"), 1)], archive=None)
        for after in (0, 2):
            with pytest.raises(EventsRemoved) as info:
                store.read_all(after=after)
            assert (info.value.after, info.value.horizon) == (after, 3)
        with pytest.raises(EventsRemoved):
            list(store.iter_all(page_size=1))
        assert [r.position for r in store.read_all(after=3)] == [4, 5]
        reader = skipping_removed(store)
        assert [r.position for r in reader.read_all()] == [4, 5]
        assert [r.position for r in reader.iter_all(page_size=1)] == [4, 5]
        assert reader.head() == 5

    def test_removed_events_are_gone_from_every_lookup(self, store: Any) -> None:
        _fill(store, A, 3)
        first = next(iter(store.read_stream(A)))
        store.apply_retention([KeepLast(StreamPrefix("account-a"), 1)], archive=None)
        assert store.read_event(first.event_id) is None
        assert first.metadata.correlation_id is not None
        assert store.read_correlation(first.metadata.correlation_id) == []
        assert [r.position for r in store.export_rows()] == [3]
        info = store.list_streams()
        assert [(s.stream_id, s.version, s.first_position) for s in info] == [(A, 3, 3)]
        assert store.stats().events == 1

    def test_restore_rebuilds_the_whole_log_with_ids_positions_and_metadata(
        self, store: Any, archive: DirectoryArchive, make_empty_store: StoreFactory
    ) -> None:
        _fill(store, A, 4)
        store.append({B: 0, C: 0}, [Deposited(B, 1), Deposited(C, 1)])
        store.delete_stream(C)
        before = store.export_rows()
        policies = [KeepLast(StreamPrefix("account-a"), 1), PurgeDeleted(StreamPrefix("account-"))]
        assert store.apply_retention(policies, archive=archive).removed == 4
        target: Any = make_empty_store(events=[Deposited])
        assert restore(archive, into=target, live=store) == len(before)
        assert target.export_rows() == before
        with pytest.raises(StreamDeleted):
            list(target.read_stream(C))
        with pytest.raises(ValidationError, match="empty store"):
            restore(archive, into=target, live=store)

    def test_a_changed_archive_file_is_refused(
        self, store: Any, archive: DirectoryArchive, make_empty_store: StoreFactory
    ) -> None:
        _fill(store, A, 3)
        store.apply_retention([KeepLast(StreamPrefix("account-a"), 1)], archive=archive)
        (name,) = [f.name for f in archive.files()]
        path = archive.path / name
        path.write_bytes(path.read_bytes()[:-4])
        target: Any = make_empty_store(events=[Deposited])
        with pytest.raises(DeserializationError, match="checksum"):
            restore(archive, into=target, live=store)
        assert target.head() == 0

    def test_bad_policies_and_archives_remove_nothing(self, store: Any) -> None:
        _fill(store, A, 3)
        with pytest.raises(ConfigurationError):
            store.apply_retention([], archive=None)
        with pytest.raises(ConfigurationError):
            store.apply_retention(["keep"], archive=None)
        with pytest.raises(ConfigurationError):
            store.apply_retention([KeepLast(StreamPrefix("a"), 1)], archive="dir")
        with pytest.raises(ConfigurationError):
            KeepLast(StreamPrefix("a"), 0)
        with pytest.raises(ConfigurationError):
            KeepYounger(StreamPrefix("a"), timedelta(0))
        assert len(store.export_rows()) == 3
        assert store.retention_runs() == []

    def test_nothing_to_remove_records_no_run(self, store: Any) -> None:
        _fill(store, A, 2)
        report = store.apply_retention([KeepLast(StreamPrefix("account-"), 5)], archive=None)
        assert report.removed == 0
        assert store.read_all()[0].position == 1
        assert store.retention_runs() == []
