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
from eventcore.types import stored_stream_id

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
        ("acct\x00", "contains the NUL character '\\\\x00' at position 4, which no store can"),
        ("\x00", "contains the NUL character"),
        ("a\x00b", "contains the NUL character"),
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


# -- what no store can keep -------------------------------------------------------------------


@pytest.mark.parametrize("kind", [StreamPrefix, StreamPattern])
@pytest.mark.parametrize("value", ["acct\x00", "\x00", "a\x00b", "x\ud800"])
def test_selectors_refuse_what_no_store_can_keep(kind: type, value: str) -> None:
    """SQLite's GLOB stops at a NUL, so StreamPrefix("acct\\x00") would select "acct"."""
    with pytest.raises(InvalidStreamSelector, match=r"NUL|lone surrogate") as info:
        kind(value)
    assert "remove it" in str(info.value)
    for pattern in ("a\x00*", "[\x00]", "[a-\x00]"):
        with pytest.raises(InvalidStreamSelector, match="NUL"):
            StreamPattern(pattern)


@quick
@given(st.text(max_size=260) | st.text(alphabet=" \t\n\x00a*\u00a0\u2003\x1c", max_size=6))
def test_stored_stream_id_accepts_exactly_what_stream_id_keeps_unchanged(text: str) -> None:
    try:
        expected: StreamId | None = StreamId(text)
    except InvalidStreamId:
        expected = None
    if expected is not None and expected != text:
        expected = None  # trimmed: not what a store wrote
    found = stored_stream_id(text)
    assert found == expected
    assert found is None or type(found) is StreamId


@pytest.mark.parametrize("value", [None, 7, b"a", ["a"]])
def test_stored_stream_id_refuses_what_is_not_text(value: object) -> None:
    assert stored_stream_id(value) is None


# -- the pattern grammar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "spans"),
    [
        ("[-]", ["-"]),
        ("[-a]", ["-", "a"]),
        ("[a-]", ["a", "-"]),
        ("[!-a]", ["-", "a"]),
        ("[a-c-]", ["a-c", "-"]),
        ("[-a-c]", ["-", "a-c"]),
        ("[a-a]", ["a-a"]),
        ("[^-a]", ["^-a"]),
        ("[\\-a]", ["\\-a"]),
        ("[!!]", ["!"]),
        ("[[a]", ["[", "a"]),
    ],
)
def test_class_grammar_accepts(pattern: str, spans: list[str]) -> None:
    p = StreamPattern(pattern)
    (kind, body), *_ = p.parts()
    assert kind == "class"
    chars = [chr(c) for c in range(0x2000)]
    members = {
        ch
        for span in spans
        for ch in chars
        if (span[0] <= ch <= span[-1] if len(span) == 3 else ch == span)
    }
    negated = body.startswith("!")
    assert {ch for ch in chars if p.matches(ch)} == (set(chars) - members if negated else members)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[a-c-e]*", "ambiguous '-' in the character class at position 0"),
        ("x[--a]", "ambiguous '-' in the character class at position 1"),
        ("[--]", "ambiguous '-'"),
        ("[!--]", "ambiguous '-'"),
        ("[a--]", "range ending in '-'"),
        ("[+--]", "range ending in '-'"),
        ("[z-a]", "invalid character class at position 0: the range z-a is reversed"),
        ("[!]", "empty character class"),
    ],
)
def test_class_grammar_refuses_ambiguous_bodies(pattern: str, message: str) -> None:
    with pytest.raises(InvalidStreamSelector, match=re.escape(message)):
        StreamPattern(pattern)


@quick
@given(st.text(alphabet="ab-^!\\[]*?", min_size=1, max_size=8))
def test_every_accepted_pattern_compiles_to_a_regex_without_warnings(text: str) -> None:
    """``to_regex`` escapes every class member, so Python reads exactly the grammar's set
    (no FutureWarning about ``--`` or nested sets)."""
    try:
        pattern = StreamPattern(text)
    except InvalidStreamSelector:
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        re.compile(pattern.to_regex())
