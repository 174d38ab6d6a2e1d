"""Stream ids, prefixes and patterns: validated once, at the boundary."""

import fnmatch
import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore import (
    InvalidStreamId,
    InvalidStreamSelector,
    StreamId,
    StreamPattern,
    StreamPrefix,
    ValidationError,
)
from eventcore.testing.strategies import stream_ids, stream_patterns, stream_prefixes

quick = settings(derandomize=True, database=None, max_examples=200, deadline=None)

# -- StreamId ---------------------------------------------------------------------------------


def test_stream_id_is_a_trimmed_str() -> None:
    sid = StreamId("  account-1\t")
    assert sid == "account-1"
    assert isinstance(sid, str)
    assert repr(sid) == "StreamId('account-1')"
    assert {sid: 1}["account-1"] == 1


def test_stream_id_of_a_stream_id_is_the_same_object() -> None:
    sid = StreamId("a")
    assert StreamId(sid) is sid


@pytest.mark.parametrize("value", ["a", "x" * 255, "order/42:line 3", "счёт-№1", "a%b_c\\d", "!"])
def test_stream_id_accepts_anything_but_pattern_characters(value: str) -> None:
    assert StreamId(value) == value


def test_stream_id_survives_pickle() -> None:
    sid = StreamId("account-1")
    copy = pickle.loads(pickle.dumps(sid))
    assert type(copy) is StreamId
    assert copy == sid


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty after trimming"),
        ("   ", "is empty after trimming"),
        ("x" * 256, "is 256 characters long; the limit is 255"),
        ("order-*", "contains '\\*', which is reserved for patterns"),
        ("order-?", "contains '\\?'"),
        ("order[1]", "contains '\\['"),
        ("order]", "contains '\\]'"),
        ("lone-\ud800", "contains the lone surrogate '\\\\ud800', which is not valid Unicode"),
    ],
)
def test_stream_id_rejects_bad_values(value: str, message: str) -> None:
    with pytest.raises(InvalidStreamId, match=message) as info:
        StreamId(value)
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["a"]])
def test_stream_id_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidStreamId, match="stream id must be a str, got"):
        StreamId(value)  # type: ignore[arg-type]


def test_stream_id_trims_before_measuring() -> None:
    assert len(StreamId(" " + "x" * 255 + " ")) == 255


@quick
@given(stream_ids())
def test_generated_stream_ids_are_fixed_points(sid: StreamId) -> None:
    assert StreamId(str(sid)) == sid
    assert 1 <= len(sid) <= 255


# -- StreamPrefix -----------------------------------------------------------------------------


def test_prefix_means_starts_with() -> None:
    prefix = StreamPrefix("account-")
    assert prefix.matches("account-1")
    assert prefix.matches("account-")
    assert not prefix.matches("my-account-1")
    assert not prefix.matches("account")
    assert repr(prefix) == "StreamPrefix('account-')"


def test_prefix_wildcard_characters_of_sql_are_literal() -> None:
    prefix = StreamPrefix("a_%")
    assert prefix.matches("a_%1")
    assert not prefix.matches("ab%1")
    assert not prefix.matches("a_x1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must be a non-empty str"),
        (None, "must be a non-empty str"),
        ("account-*", "contains '\\*', which no stream id can contain; use StreamPattern"),
        ("x" * 256, "can match no stream id"),
    ],
)
def test_prefix_rejects_bad_values(value: object, message: str) -> None:
    with pytest.raises(InvalidStreamSelector, match=message):
        StreamPrefix(value)  # type: ignore[arg-type]


@quick
@given(stream_prefixes(), stream_ids())
def test_prefix_matches_exactly_str_startswith(prefix: StreamPrefix, sid: StreamId) -> None:
    assert prefix.matches(sid) == sid.startswith(prefix)
    assert prefix.matches(prefix + sid)


# -- StreamPattern ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("account-*", ["account-", "account-1", "account-a/b/c"], ["my-account-1", "account"]),
        ("a?c", ["abc", "a/c"], ["ac", "abbc"]),
        ("order-[0-9]*", ["order-1", "order-42x"], ["order-x", "order-"]),
        ("x[!a]", ["xb", "x1"], ["xa", "x", "xbb"]),
        ("x[^a]", ["x^", "xa"], ["xb"]),
        ("*", ["a", "anything at all"], []),
        ("a**b", ["ab", "a-b"], ["a-c"]),
        ("exact", ["exact"], ["exact1", "inexact"]),
        ("a.b", ["a.b"], ["axb"]),
        ("a\nb*", ["a\nb", "a\nbc"], ["ab"]),
    ],
)
def test_pattern_matches_the_whole_id(
    pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    p = StreamPattern(pattern)
    for sid in matching:
        assert p.matches(sid), sid
    for sid in not_matching:
        assert not p.matches(sid), sid


def test_pattern_parts_and_regex() -> None:
    p = StreamPattern("order-[0-9]?*")
    assert p.parts() == [("literal", "order-"), ("class", "0-9"), ("one", "?"), ("star", "*")]
    assert p.to_regex() == "^order\\-[0-9]..*$"
    assert StreamPattern("a**b").parts() == [("literal", "a"), ("star", "*"), ("literal", "b")]
    assert StreamPattern("[!x]").parts() == [("class", "!x")]
    assert repr(p) == "StreamPattern('order-[0-9]?*')"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must be a non-empty str"),
        (7, "must be a non-empty str"),
        ("order-[0-9", "opens a character class at position 6 that is never closed"),
        ("order-[]", "has an empty character class at position 6"),
        ("order-[!]", "has an empty character class"),
        ("order]", "has ']' at position 5 without a matching '\\['"),
    ],
)
def test_pattern_rejects_malformed_globs(value: object, message: str) -> None:
    with pytest.raises(InvalidStreamSelector, match=message) as info:
        StreamPattern(value)  # type: ignore[arg-type]
    assert isinstance(info.value, ValidationError)


@quick
@given(stream_patterns(), stream_ids(ascii_only=True))
def test_pattern_agrees_with_fnmatch_and_its_regex(pattern: StreamPattern, sid: StreamId) -> None:
    expected = fnmatch.fnmatchcase(sid, pattern)
    assert pattern.matches(sid) == expected
    assert (re.fullmatch(pattern.to_regex(), sid, re.DOTALL) is not None) == expected


@quick
@given(st.data())
def test_a_pattern_built_from_an_id_matches_it(data: st.DataObject) -> None:
    sid = data.draw(stream_ids(ascii_only=True))
    cut = data.draw(st.integers(0, len(sid)))
    assert StreamPattern(sid[:cut] + "*").matches(sid)
    assert StreamPattern("?" * len(sid)).matches(sid)
    assert not StreamPattern("?" * (len(sid) + 1)).matches(sid)
