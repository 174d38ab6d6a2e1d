"""The store contract's bad-input part: every invalid argument raises a typed error that
names the problem, and nothing is written. Part of
:class:`~eventcore.testing.contract.EventStoreContract`; not collected on its own.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventcore.codec import MAX_JSON_DEPTH
from eventcore.errors import (
    Conflict,
    DeserializationError,
    InvalidStreamId,
    InvalidStreamSelector,
    SerializationError,
    UndeclaredStream,
    ValidationError,
    VersionConflict,
)
from eventcore.events import Metadata, event
from eventcore.store import MAX_POSITION, EventStore, LiveEventStore
from eventcore.testing.contract_base import (
    A,
    B,
    C,
    Deposited,
    NotFrozen,
    RateChanged,
    StoreContractBase,
    StoreFactory,
    _opened,
    _raw,
    _state,
)
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = ["BAD_WAIT_ARGUMENTS", "BadInputContract", "Noted", "NotedV2"]

BAD_WAIT_ARGUMENTS: list[tuple[Any, Any, str]] = [
    (0, math.nan, "timeout must be"),
    (0, math.inf, "timeout must be"),
    (0, -math.inf, "timeout must be"),
    (0, 1e300, "timeout must be"),
    (0, -1, "timeout must be"),
    (0, "1", "timeout must be"),
    (0, True, "timeout must be"),
    (-1, 0, "after must be"),
    (2**63, 0, "after must be"),
    (1.0, 0, "after must be"),
]
"""``(after, timeout, part of the message)`` that ``wait_for_events`` refuses."""


@dataclass(frozen=True)
class Noted:
    """Version 1 of a stored event type whose class later moved to version 2."""

    topic: StreamId
    text: str


@event(name="Noted", version=2)
@dataclass(frozen=True)
class NotedV2:
    topic: StreamId
    text: str
    by: str


def _nested(depth: int) -> Any:
    """``[[...[]...]]``: lists nested ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# Stream ids and patterns over characters that mean something to some store: GLOB, LIKE and
# regular-expression syntax, a backslash, case, accents, a character outside the BMP, space.
_ALPHABET = "abcA-^!\\%_.$(é😀 "
_PATTERN_IDS = sorted(
    {
        text
        for size in (1, 2)
        for text in map("".join, itertools.product(_ALPHABET, repeat=size))
        if text.strip() == text
    }
    | {"abc", "a b", "a-b", "a\\b", "é-😀", "--a", "!-a"}
)
_CLASS_BODY = st.text(alphabet=_ALPHABET + "-[", min_size=1, max_size=4)
_PATTERN_PART = st.one_of(
    st.sampled_from(_ALPHABET),
    st.just("*"),
    st.just("?"),
    st.builds(lambda neg, body: f"[{neg}{body}]", st.sampled_from(["", "!"]), _CLASS_BODY),
)


class BadInputContract(StoreContractBase):
    """Invalid stream ids, selectors, read and append arguments, metadata and events."""

    # -- validation -----------------------------------------------------------------------

    BAD_STREAM_IDS: ClassVar[list[object]] = [
        "",
        "   ",
        "a*b",
        "who?",
        "[x]",
        "x" * 256,
        42,
        "nul\x00inside",
        "\x00",
        "lone-\ud800",
    ]

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
            (Deposited(_raw("bad\x00id"), 5), "NUL"),
            (_opened(A, extra=_nested(MAX_JSON_DEPTH + 1)), "nest deeper than"),
            (_opened(A, extra={"deep": _nested(5000)}), "nest deeper than"),
            (_opened(A, extra=[{"a": _nested(MAX_JSON_DEPTH)}]), "nest deeper than"),
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

    # -- what no store can keep is refused before any store sees it --------------------------

    @pytest.mark.parametrize(
        "make",
        [
            lambda: StreamPrefix("account-\x00"),
            lambda: StreamPrefix("\x00"),
            lambda: StreamPattern("account-\x00*"),
            lambda: StreamPattern("[\x00a]"),
        ],
        ids=["prefix", "only-nul", "pattern", "pattern-class"],
    )
    def test_nul_in_a_selector_is_refused(self, store: EventStore, make: Any) -> None:
        self._streams(store, "account-", "account-1")
        with pytest.raises(InvalidStreamSelector, match="NUL"):
            store.read_all(streams=make())

    def test_deeply_nested_metadata_writes_nothing(self, store: EventStore) -> None:
        before = _state(store, A)
        for custom in ({"deep": _nested(MAX_JSON_DEPTH + 1)}, {"deep": _nested(5000)}):
            with pytest.raises(SerializationError, match="nest deeper than"):
                store.append({A: 0}, [Deposited(A, 1)], metadata=Metadata(custom=custom))
        self.assert_unchanged(store, before)

    def test_nesting_up_to_the_limit_round_trips(self, store: EventStore) -> None:
        deepest = _nested(MAX_JSON_DEPTH)
        meta = Metadata(custom={"deep": _nested(MAX_JSON_DEPTH - 1)})
        store.append({A: 0}, [_opened(A, extra=deepest)], metadata=meta)
        (rec,) = store.read_all()
        assert rec.event.extra == deepest
        assert rec.metadata.custom == meta.custom

    # -- integer arguments: 0 .. 2**63 - 1 on every store -----------------------------------

    @pytest.mark.parametrize("bad", [MAX_POSITION + 1, 2**64, 10**40, -(2**63)])
    def test_integers_beyond_64_bits_are_refused(self, store: EventStore, bad: int) -> None:
        store.append({A: 0}, [Deposited(A, 1)])
        before = _state(store, A)
        with pytest.raises(ValidationError, match="after must be a position from 0 to"):
            store.read_all(after=bad)
        with pytest.raises(ValidationError, match="limit must be None or an int from 0 to"):
            store.read_all(limit=bad)
        with pytest.raises(ValidationError, match="after_version must be an int from 0 to"):
            list(store.read_stream(A, after_version=bad))
        with pytest.raises(ValidationError, match="expected version for 'account-a' must be"):
            store.append({A: bad}, [Deposited(A, 2)])
        with pytest.raises(ValidationError, match="expected version for 'account-b' must be"):
            store.append({A: 1, B: bad}, [Deposited(A, 2)])
        self.assert_unchanged(store, before)

    def test_the_largest_integers_are_accepted(self, store: EventStore) -> None:
        written = store.append({A: 0}, [Deposited(A, 1)])
        assert store.read_all(after=MAX_POSITION) == []
        assert store.read_all(limit=MAX_POSITION) == written
        assert list(store.read_stream(A, after_version=MAX_POSITION)) == []
        with pytest.raises(VersionConflict) as info:
            store.append({A: MAX_POSITION}, [Deposited(A, 2)])
        assert info.value.conflicts == (Conflict(A, MAX_POSITION, 1),)
        assert store.head() == 1

    @pytest.mark.parametrize(("after", "timeout", "message"), BAD_WAIT_ARGUMENTS)
    def test_wait_for_events_refuses_bad_arguments(
        self, store: EventStore, after: Any, timeout: Any, message: str
    ) -> None:
        """Every store gives the same ValidationError, at once (a store that waited on NaN
        or infinity would never return: the call runs in a thread, with a deadline)."""
        if not isinstance(store, LiveEventStore):
            pytest.skip(f"{type(store).__name__} has no wait_for_events")
        outcome: list[BaseException | bool] = []

        def call() -> None:
            try:
                outcome.append(store.wait_for_events(after, timeout))
            except BaseException as exc:  # reported below, in the test's thread
                outcome.append(exc)

        waiter = threading.Thread(target=call, daemon=True)
        waiter.start()
        waiter.join(3.0)
        assert outcome, f"wait_for_events({after!r}, {timeout!r}) did not return within 3 s"
        assert isinstance(outcome[0], ValidationError), outcome[0]
        assert message in str(outcome[0])

    # -- one pattern grammar, one matcher, every store --------------------------------------

    def test_patterns_select_what_stream_pattern_matches(self, store: EventStore) -> None:
        """Generated patterns (some malformed) over ids full of characters that mean
        something to GLOB, LIKE or regular expressions: each store selects exactly the
        streams ``StreamPattern.matches`` accepts, and a malformed pattern is refused with
        ``InvalidStreamSelector`` before any store sees it."""
        self._streams(store, *_PATTERN_IDS)

        @settings(
            max_examples=150,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.lists(_PATTERN_PART, min_size=1, max_size=5).map("".join))
        def check(text: str) -> None:
            try:
                pattern = StreamPattern(text)
            except InvalidStreamSelector:
                return
            expected = {sid for sid in _PATTERN_IDS if pattern.matches(sid)}
            assert self._selected(store, pattern) == expected, text

        check()

    @pytest.mark.parametrize(
        ("pattern", "selected"),
        [
            ("[-a]", {"-", "a"}),
            ("[a-]", {"-", "a"}),
            ("[!-a]", {"b", "c", "^", "\\", "!", "A", "é"}),
            ("[a-c-]", {"a", "b", "c", "-"}),
            ("[\\^]", {"\\", "^"}),
            ("[!^-a]", {"b", "c", "-", "\\", "!", "A", "é"}),
            ("[[a]", {"a"}),
            ("[!!]?", {"b-", "^a"}),
            ("[A-a]", {"A", "^", "\\", "a"}),
        ],
    )
    def test_class_edges_select_the_same_streams(
        self, store: EventStore, pattern: str, selected: set[str]
    ) -> None:
        ids = ["a", "b", "c", "-", "^", "\\", "!", "A", "é", "b-", "!a", "^a"]
        self._streams(store, *ids)
        assert {i for i in ids if StreamPattern(pattern).matches(i)} == selected
        assert self._selected(store, StreamPattern(pattern)) == selected

    @pytest.mark.parametrize("bad", ["[a-c-e]*", "[--a]", "[a--]", "[--]", "[z-a]", "[!]"])
    def test_ambiguous_classes_are_refused_for_every_store(
        self, store: EventStore, bad: str
    ) -> None:
        with pytest.raises(InvalidStreamSelector, match="character class"):
            store.read_all(streams=StreamPattern(bad))

    # -- reading what an upcaster cannot read ------------------------------------------------

    def test_an_upcaster_that_raises_names_the_event(self, make_store: StoreFactory) -> None:
        writer = make_store()
        writer.append({A: 0}, [Noted(A, "hello")])
        reader = self.reopen(make_store, events=[NotedV2])

        def broken(data: dict[str, Any]) -> dict[str, Any]:
            return {**data, "by": data["author"]}  # KeyError: there is no author

        reader.types.register_upcaster("Noted", 1, broken)
        with pytest.raises(DeserializationError) as info:
            reader.read_all()
        text = str(info.value)
        assert "upcaster of Noted from schema version 1 to 2 failed at position 1" in text
        assert "KeyError" in text
        assert isinstance(info.value.__cause__, KeyError)
        with pytest.raises(DeserializationError, match="upcaster of Noted"):
            list(reader.read_stream(A))
        reader.types.register_upcaster("Noted", 1, lambda data: {**data, "by": "?"})
        assert [r.event for r in reader.read_all()] == [NotedV2(A, "hello", "?")]
