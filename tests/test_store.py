"""The argument checks every store shares (eventcore.store), before any database work."""

from __future__ import annotations

import math

import pytest

from eventcore import ConfigurationError, InMemoryEventStore, StreamId, ValidationError
from eventcore.store import (
    MAX_POSITION,
    MAX_WAIT,
    check_after_version,
    check_count,
    check_positive,
    check_read_args,
    check_wait_args,
)
from eventcore.testing.contract import Deposited


@pytest.mark.parametrize("value", [0, 1, MAX_POSITION])
def test_counts_from_zero_to_2_63_minus_1_pass(value: int) -> None:
    assert check_count("after", value) == value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (-1, "got -1"),
        (MAX_POSITION + 1, "got 9223372036854775808"),
        (10**100, "got an int of 101 digits"),
        (True, "got bool True"),
        (1.0, "got float 1.0"),
        ("1", "got str '1'"),
        (None, "got NoneType None"),
    ],
)
def test_counts_outside_64_bits_or_not_ints_are_refused(value: object, shown: str) -> None:
    with pytest.raises(ValidationError, match="limit must be an int from 0 to") as info:
        check_count("limit", value)
    assert shown in str(info.value)


def test_read_and_version_checks_use_the_same_bounds() -> None:
    types = InMemoryEventStore().types
    with pytest.raises(ValidationError, match=r"after must be a position from 0 to .*2\*\*63"):
        check_read_args(types, 2**63, None, None, None)
    with pytest.raises(ValidationError, match="limit must be None or an int from 0 to"):
        check_read_args(types, 0, 2**63, None, None)
    with pytest.raises(ValidationError, match="after_version must be an int from 0 to"):
        check_after_version(2**63)
    assert check_read_args(types, MAX_POSITION, MAX_POSITION, None, None) is None


@pytest.mark.parametrize("timeout", [0, 0.0, 0.5, 3, MAX_WAIT])
def test_finite_timeouts_up_to_a_year_pass(timeout: float) -> None:
    check_wait_args(0, timeout)


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf, -0.1, MAX_WAIT * 2, True])
def test_other_timeouts_are_refused(timeout: float) -> None:
    with pytest.raises(ValidationError, match="timeout must be a finite number of seconds"):
        check_wait_args(0, timeout)


def test_an_expected_version_beyond_64_bits_is_not_a_conflict() -> None:
    """It used to be a VersionConflict on memory and SQLite and a StoreFailure on PostgreSQL."""
    store = InMemoryEventStore()
    a = StreamId("a")
    with pytest.raises(ValidationError, match="expected version for 'a' must be an int from 0"):
        store.append({a: 2**63}, [Deposited(a, 1)])
    assert store.head() == 0


@pytest.mark.parametrize("bad", [0, -1, 2**63, True, 1.5])
def test_a_page_size_is_from_1_to_2_63_minus_1(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="page_size must be a positive int of at most"):
        check_positive("page_size", bad)
    check_positive("page_size", MAX_POSITION)
