"""The corrupt-row contract: a store that reads rows from a database refuses every row it
cannot trust with a :class:`~eventcore.errors.DeserializationError` naming the position and
the column, and still reads the good rows around it.

Subclass :class:`CorruptRowContract` for a store backed by a database you can write to
directly, and give it two fixtures: ``store`` (an empty store) and ``write_raw_row``, a
function ``write_raw_row(row)`` that inserts one event row **bypassing the store** (raw SQL),
where ``row`` maps the logical columns ``position``, ``stream_id``, ``stream_version``,
``event_type``, ``schema_version``, ``data`` (JSON text), ``event_id`` (a ``UUID`` or text),
``recorded_at`` (an aware ``datetime`` or text) and ``metadata`` (JSON text) to values;
``None`` is SQL NULL. The fixture may lift the table's NOT NULL constraints first; it must
raise (any exception) when a column's type cannot hold the value, as PostgreSQL's typed
columns do. List the cases your database's columns refuse in ``unstorable``: for those the
test checks that the write is refused and nothing is read.

    class TestMyStoreRows(CorruptRowContract):
        unstorable = frozenset({"data-not-json", "event_id-not-a-uuid"})

        @pytest.fixture
        def store(self, tmp_path): ...

        @pytest.fixture
        def write_raw_row(self, tmp_path): ...
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

import pytest

from eventcore.errors import DeserializationError
from eventcore.events import Metadata
from eventcore.store import EventLookups, EventStore, read_versioned, read_versioned_streams
from eventcore.testing.contract_base import A, Deposited

__all__ = ["CORRUPT_CASES", "ENVELOPE_COLUMNS", "CorruptRowContract", "RawRowWriter"]

RawRowWriter = Callable[[dict[str, Any]], None]
"""``write_raw_row(row)``: insert one event row with these column values, bypassing the store."""

ENVELOPE_COLUMNS = frozenset({"event_id", "recorded_at", "metadata"})
"""The columns a command's fold does not read (``read_stream_events``)."""

_CORRELATION = UUID("0190c2a4-0000-7000-8000-00000000c0de")
_DEEP = "[" * 5000 + "]" * 5000

CORRUPT_CASES: dict[str, tuple[str, Any]] = {
    # NULL in every column but the position (a primary key)
    "stream_id-null": ("stream_id", None),
    "stream_version-null": ("stream_version", None),
    "event_type-null": ("event_type", None),
    "schema_version-null": ("schema_version", None),
    "data-null": ("data", None),
    "event_id-null": ("event_id", None),
    "recorded_at-null": ("recorded_at", None),
    "metadata-null": ("metadata", None),
    # values of the right type with content no store writes
    "stream_id-reserved": ("stream_id", "account-*"),
    "stream_id-untrimmed": ("stream_id", " account-a"),
    "stream_version-zero": ("stream_version", 0),
    "schema_version-zero": ("schema_version", 0),
    "data-not-json": ("data", '{"account": "account-a", "amount": '),
    "data-too-deep": ("data", '{"account": "account-a", "amount": ' + _DEEP + "}"),
    "event_id-not-a-uuid": ("event_id", "not-a-uuid"),
    "recorded_at-not-a-time": ("recorded_at", "not-a-time"),
    "metadata-not-json": ("metadata", "{bad"),
    "metadata-not-an-object": ("metadata", "[1, 2]"),
    "metadata-bad-correlation": ("metadata", '{"correlation_id": "nope", "custom": {}}'),
    "metadata-custom-not-an-object": ("metadata", '{"correlation_id": null, "custom": 5}'),
    "metadata-too-deep": ("metadata", '{"correlation_id": null, "custom": {"a": ' + _DEEP + "}}"),
    # values of the wrong type (only a database with dynamic typing can hold them)
    "stream_version-text": ("stream_version", "two"),
    "schema_version-text": ("schema_version", "one"),
    "stream_id-blob": ("stream_id", b"account-a"),
    "data-blob": ("data", b'{"account": "account-a", "amount": 5}'),
    "metadata-number": ("metadata", 7),
}
"""Case id to ``(column, stored value)``: each makes one otherwise good row corrupt."""


def good_row(position: int) -> dict[str, Any]:
    """An event row any store reads as ``Deposited(A, 5)`` at ``position``, version 2."""
    return {
        "position": position,
        "stream_id": str(A),
        "stream_version": 2,
        "event_type": "Deposited",
        "schema_version": 1,
        "data": '{"account": "account-a", "amount": 5}',
        "event_id": UUID(int=0xC0DE + position),
        "recorded_at": datetime(2026, 1, 1, tzinfo=UTC),
        "metadata": Metadata(_CORRELATION).to_json(),
    }


class CorruptRowContract:
    """Every corrupt row is refused on every read, naming the position and the column."""

    unstorable: ClassVar[frozenset[str]] = frozenset()
    """Ids of :data:`CORRUPT_CASES` whose value the database's columns refuse."""

    @pytest.fixture
    def store(self) -> EventStore:
        raise NotImplementedError(f"{type(self).__name__} must define a store fixture")

    @pytest.fixture
    def write_raw_row(self) -> RawRowWriter:
        raise NotImplementedError(f"{type(self).__name__} must define a write_raw_row fixture")

    def test_a_good_raw_row_reads_back(
        self, store: EventStore, write_raw_row: RawRowWriter
    ) -> None:
        """The fixture writes rows the store reads: the cases below test the store."""
        store.append({A: 0}, [Deposited(A, 1)])
        write_raw_row(good_row(2))
        records = list(store.read_stream(A))
        assert [(r.position, r.stream_version, r.event) for r in records] == [
            (1, 1, Deposited(A, 1)),
            (2, 2, Deposited(A, 5)),
        ]
        assert records[1].event_id == UUID(int=0xC0DE + 2)
        assert records[1].recorded_at == datetime(2026, 1, 1, tzinfo=UTC)
        assert records[1].metadata == Metadata(_CORRELATION)

    @pytest.mark.parametrize("case", sorted(CORRUPT_CASES))
    def test_a_corrupt_row_names_its_position_and_column(
        self, store: EventStore, write_raw_row: RawRowWriter, case: str
    ) -> None:
        column, value = CORRUPT_CASES[case]
        store.append({A: 0}, [Deposited(A, 1)])
        row = {**good_row(2), column: value}
        if case in self.unstorable:
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                write_raw_row(row)
            assert [r.position for r in store.read_all()] == [1]
            return
        write_raw_row(row)
        reads: list[Callable[[], object]] = [store.read_all]
        if column not in ("stream_id", "stream_version"):  # else the stream reads skip it
            reads += [lambda: list(store.read_stream(A))]
            streams = getattr(store, "read_streams", None)
            if streams is not None:
                reads.append(lambda: streams([A]))
            if column not in ENVELOPE_COLUMNS:  # what execute folds: the event and version
                reads += [
                    lambda: list(read_versioned(store, A)),
                    lambda: read_versioned_streams(store, [A]),
                ]
        if isinstance(store, EventLookups):
            lookups = store
            if column != "event_id":
                reads.append(lambda: lookups.read_event(UUID(int=0xC0DE + 2)))
            if column != "metadata":
                reads.append(lambda: lookups.read_correlation(_CORRELATION))
        for read in reads:
            with pytest.raises(DeserializationError) as info:
                read()
            text = str(info.value)
            assert "at position 2" in text, text
            assert f"column {column}" in text, text
        assert [r.event for r in store.read_all(limit=1)] == [Deposited(A, 1)]
        if column in ENVELOPE_COLUMNS and hasattr(store, "read_stream_events"):
            # A fold reads neither the id, the time nor the metadata of an event: a command
            # is not stopped by them (``verify`` and every other read report the row).
            folded = [(v.stream_version, v.event) for v in read_versioned(store, A)]
            assert folded == [(1, Deposited(A, 1)), (2, Deposited(A, 5))]

    @pytest.mark.parametrize("case", sorted(CORRUPT_CASES))
    def test_verify_reports_a_corrupt_row(
        self, store: EventStore, write_raw_row: RawRowWriter, case: str
    ) -> None:
        if case in self.unstorable:
            return  # the database refuses the row: nothing to find (tested above)
        column, value = CORRUPT_CASES[case]
        store.append({A: 0}, [Deposited(A, 1)])
        write_raw_row({**good_row(2), column: value})
        problems = store.verify()  # type: ignore[attr-defined]
        found = [p for p in problems if p.kind == "corrupt"]
        assert [p.position for p in found] == [2], problems
        assert f"column {column}" in found[0].message, found[0].message

    def test_verify_reports_gaps_and_versions(
        self, store: EventStore, write_raw_row: RawRowWriter
    ) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        write_raw_row({**good_row(4), "stream_version": 3})
        problems = [str(p) for p in store.verify()]  # type: ignore[attr-defined]
        assert problems == [
            "position 4: gap: positions 2 to 3 are missing",
            "position 4: version: stream 'account-a' goes from version 1 to 3",
        ]
