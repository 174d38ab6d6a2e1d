"""The store contract's bad-input part: every invalid argument raises a typed error that
names the problem, and nothing is written. Part of
:class:`~eventcore.testing.contract.EventStoreContract`; not collected on its own.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from eventcore.errors import (
    Conflict,
    InvalidStreamId,
    InvalidStreamSelector,
    SerializationError,
    UndeclaredStream,
    ValidationError,
    VersionConflict,
)
from eventcore.store import EventStore
from eventcore.testing.contract_base import (
    A,
    B,
    C,
    Deposited,
    NotFrozen,
    RateChanged,
    StoreContractBase,
    _opened,
    _raw,
    _state,
)
from eventcore.types import StreamPattern, StreamPrefix

__all__ = ["BadInputContract"]


class BadInputContract(StoreContractBase):
    """Invalid stream ids, selectors, read and append arguments, metadata and events."""

    # -- validation -----------------------------------------------------------------------

    BAD_STREAM_IDS: ClassVar[list[object]] = ["", "   ", "a*b", "who?", "[x]", "x" * 256, 42]

    @pytest.mark.parametrize("bad", BAD_STREAM_IDS)
    def test_bad_stream_ids_are_rejected(self, store: EventStore, bad: object) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A)
        with pytest.raises(InvalidStreamId, match="stream id"):
            store.append({A: 1, _raw(bad): 0}, [Deposited(A, 2)])
        with pytest.raises(InvalidStreamId, match="stream id"):
            list(store.read_stream(_raw(bad)))
        with pytest.raises(InvalidStreamId, match="stream id"):
            store.stream_version(_raw(bad))
        self.assert_unchanged(store, before)

    @pytest.mark.parametrize("bad", ["account-", "account-*", 42])
    def test_bad_selectors_are_rejected(self, store: EventStore, bad: object) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A)
        with pytest.raises(InvalidStreamSelector, match="StreamPrefix or StreamPattern"):
            store.read_all(streams=_raw(bad))
        self.assert_unchanged(store, before)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"after": -1}, "after must be"),
            ({"after": "3"}, "after must be"),
            ({"after": True}, "after must be"),
            ({"limit": -1}, "limit must be"),
            ({"limit": 2.5}, "limit must be"),
        ],
    )
    def test_bad_read_all_arguments(
        self, store: EventStore, kwargs: dict[str, Any], message: str
    ) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A)
        with pytest.raises(ValidationError, match=message):
            store.read_all(**kwargs)
        self.assert_unchanged(store, before)

    @pytest.mark.parametrize("bad", [-1, "1", 1.0])
    def test_bad_after_version_is_rejected(self, store: EventStore, bad: object) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A)
        with pytest.raises(ValidationError, match="after_version"):
            list(store.read_stream(A, after_version=_raw(bad)))
        self.assert_unchanged(store, before)

    @pytest.mark.parametrize(
        ("expected", "events", "message"),
        [
            ({A: -1}, [], "expected version"),
            ({A: _raw("0")}, [], "expected version"),
            ({A: _raw(True)}, [], "expected version"),
            ({A: 0, _raw(" account-a "): 1}, [], "appears twice"),
            (_raw([(A, 0)]), [], "mapping"),
            ({A: 0}, _raw(Deposited(A, 1)), "events must be a list"),
            ({A: 0}, _raw("Deposited"), "events must be a list"),
        ],
    )
    def test_bad_append_arguments_write_nothing(
        self, store: EventStore, expected: Any, events: Any, message: str
    ) -> None:
        before = _state(store, A)
        with pytest.raises(ValidationError, match=message):
            store.append(expected, events)
        self.assert_unchanged(store, before)

    def test_metadata_must_be_metadata(self, store: EventStore) -> None:
        with pytest.raises(ValidationError, match="metadata must be a Metadata"):
            store.append({A: 0}, [Deposited(A, 1)], metadata=_raw({"user": "x"}))
        assert store.head() == 0
        assert store.stream_version(A) == 0

    @pytest.mark.parametrize(
        ("prefix", "selected"),
        [
            ("acc_", {"acc_1"}),
            ("50%", {"50%", "50%-off"}),
            ("a\\", {"a\\b"}),
            ("%", set()),
            ("_", set()),
            ("a", {"acc_1", "accX1", "a\\b", "ab"}),
        ],
    )
    def test_prefix_special_characters_match_literally(
        self, store: EventStore, prefix: str, selected: set[str]
    ) -> None:
        ids = ["acc_1", "accX1", "50%", "50%-off", "50-x", "5000", "a\\b", "ab"]
        self._streams(store, *ids)
        assert self._selected(store, StreamPrefix(prefix)) == selected
        assert selected == {i for i in ids if StreamPrefix(prefix).matches(i)}
        assert self._selected(store, StreamPattern(prefix + "*")) == selected

    # -- write errors: nothing is written -------------------------------------------------

    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            (_opened(A, opened_at=datetime(2026, 1, 1)), "naive"),
            (RateChanged(A, math.nan), "not a finite number"),
            (RateChanged(A, math.inf), "not a finite number"),
            (_opened(A, extra=object()), "not JSON data"),
            (_opened(A, extra={"when": Decimal("1")}), "not JSON data"),
            (Deposited(A, _raw("5")), "expected int"),
            (Deposited(_raw("bad*id"), 5), "reserved"),
            (NotFrozen(A, 5), "not frozen"),
        ],
    )
    def test_unserializable_events_write_nothing(
        self, store: EventStore, bad: object, message: str
    ) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A)
        with pytest.raises(SerializationError, match=message):
            store.append({A: 1}, [Deposited(A, 2), bad])
        self.assert_unchanged(store, before)

    def test_event_for_an_undeclared_stream_writes_nothing(self, store: EventStore) -> None:
        before = _state(store, A, B)
        with pytest.raises(UndeclaredStream, match="targets stream 'account-b'") as info:
            store.append({A: 0}, [Deposited(A, 1), Deposited(B, 2)])
        assert (info.value.stream_id, info.value.event_type) == (B, "Deposited")
        self.assert_unchanged(store, before)

    def test_conflict_lists_every_stale_stream(self, store: EventStore) -> None:
        store.append({A: 0, B: 0}, [Deposited(A, 1), Deposited(B, 1), Deposited(B, 2)])
        before = _state(store, A, B, C)
        with pytest.raises(VersionConflict) as info:
            store.append({A: 0, B: 1, C: 0}, [Deposited(C, 1)])
        assert set(info.value.conflicts) == {Conflict(A, 0, 1), Conflict(B, 1, 2)}
        text = str(info.value)
        assert "'account-a': expected version 0, found 1" in text
        assert "'account-b': expected version 1, found 2" in text
        assert "account-c" not in text
        self.assert_unchanged(store, before)
