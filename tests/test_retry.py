"""Retry policies: capped exponential backoff with jitter, fixed delays, no retries."""

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventcore import ConfigurationError, RetryPolicy, ValidationError
from eventcore.projections import ErrorPolicy, InMemoryCheckpointStore, ProjectionConfig
from eventcore.retry import capped_backoff


def test_default_policy_allows_four_retries_starting_at_ten_ms() -> None:
    policy = RetryPolicy(jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.01, 0.02, 0.04, 0.08, None]
    assert RetryPolicy() == RetryPolicy(max_retries=4, base_delay=0.01, multiplier=2.0)


def test_delays_grow_exponentially_until_the_cap() -> None:
    policy = RetryPolicy(max_retries=8, base_delay=0.1, multiplier=3, max_delay=1.0, jitter=0.0)
    delays = [policy.delay(n) for n in range(1, 10)]
    assert delays[:-1] == pytest.approx([0.1, 0.3, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert delays[-1] is None


def test_the_cap_holds_for_thousands_of_retries() -> None:
    policy = RetryPolicy(max_retries=5000, base_delay=0.001, max_delay=0.5, jitter=0.5)
    assert policy.delay(5000) is not None
    assert policy.delay(5000) <= 0.5  # type: ignore[operator]
    assert policy.delay(5001) is None


def test_jitter_stays_within_its_bounds_and_under_the_cap() -> None:
    policy = RetryPolicy(
        max_retries=6, base_delay=0.1, max_delay=0.5, jitter=0.2, rng=random.Random(42)
    )
    for _ in range(200):
        for n in range(1, 7):
            raw = min(0.5, 0.1 * 2 ** (n - 1))
            delay = policy.delay(n)
            assert delay is not None
            assert raw * 0.8 <= delay <= min(raw * 1.2, 0.5)


def test_jitter_with_a_seeded_rng_is_reproducible_and_actually_varies() -> None:
    def delays(seed: int) -> list[float | None]:
        policy = RetryPolicy(max_retries=4, jitter=0.2, rng=random.Random(seed))
        return [policy.delay(n) for n in range(1, 5)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)
    assert len(set(delays(7))) == 4


def test_fixed_waits_the_same_delay_every_time() -> None:
    policy = RetryPolicy.fixed(0.05, max_retries=3)
    assert [policy.delay(n) for n in range(1, 5)] == [0.05, 0.05, 0.05, None]
    assert policy.jitter == 0.0
    calls: list[Any] = []
    assert RetryPolicy.fixed(0.1, on_retry=calls.append).on_retry == calls.append


def test_none_never_retries() -> None:
    policy = RetryPolicy.none()
    assert policy.max_retries == 0
    assert policy.delay(1) is None


def test_zero_delays_are_allowed() -> None:
    policy = RetryPolicy(base_delay=0.0, max_delay=0.0)
    assert [policy.delay(n) for n in range(1, 5)] == [0.0] * 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries must be an int >= 0, got -1"),
        ({"max_retries": 2.5}, "max_retries must be an int >= 0, got 2.5"),
        ({"max_retries": True}, "max_retries must be an int >= 0, got True"),
        ({"base_delay": -0.1}, "base_delay must be >= 0 seconds, got -0.1"),
        ({"base_delay": None}, "base_delay must be a finite number, got None"),
        ({"base_delay": float("nan")}, "base_delay must be a finite number, got nan"),
        ({"multiplier": 0.5}, "multiplier must be >= 1, got 0.5"),
        ({"multiplier": "2"}, "multiplier must be a finite number, got '2'"),
        ({"max_delay": 0.001}, "max_delay (0.001) must be >= base_delay (0.01)"),
        ({"max_delay": float("inf")}, "max_delay must be a finite number, got inf"),
        ({"jitter": 1.0}, "jitter must be a fraction in [0, 1), got 1.0"),
        ({"jitter": -0.1}, "jitter must be a fraction in [0, 1), got -0.1"),
        ({"on_retry": "print"}, "on_retry must be callable or None, got 'print'"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(**kwargs)
    assert str(info.value) == f"invalid RetryPolicy: {message}"
    assert isinstance(info.value, ValueError)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(max_retries=-1, multiplier=0, jitter=2)
    assert str(info.value).count(";") == 2


# -- one backoff for execute, the runner's error policy and its store-failure backoff ---------


@settings(derandomize=True, database=None, max_examples=200, deadline=None)
@given(
    st.integers(1, 60),
    st.floats(0, 10),
    st.floats(1, 4),
    st.floats(0, 100),
)
def test_capped_backoff_is_the_capped_exponential(
    attempt: int, base: float, multiplier: float, cap: float
) -> None:
    expected = min(cap, base * multiplier ** (attempt - 1))
    assert capped_backoff(attempt, base, multiplier, cap) == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [1025, 10**6, 10**18, 2**63, 10**100])
def test_every_backoff_holds_its_cap_for_any_attempt_count(attempt: int) -> None:
    """ErrorPolicy.delay and ProjectionConfig.backoff raised OverflowError here."""
    assert capped_backoff(attempt, 0.1, 2.0, 5.0) == 5.0
    assert ErrorPolicy.retry(max_attempts=10**200, max_delay=5.0).delay(attempt) == 5.0
    config = ProjectionConfig(InMemoryCheckpointStore(), read_backoff=(0.1, 7.0))
    assert config.backoff(attempt) == 7.0
    assert RetryPolicy(max_retries=10**200, jitter=0.0).delay(attempt) == 1.0


def test_the_three_policies_share_one_formula() -> None:
    error_policy = ErrorPolicy.retry(max_attempts=20, base_delay=0.2, max_delay=3.0, multiplier=3)
    retry = RetryPolicy(max_retries=20, base_delay=0.2, multiplier=3, max_delay=3.0, jitter=0.0)
    config = ProjectionConfig(InMemoryCheckpointStore(), read_backoff=(0.2, 3.0))
    for n in range(1, 20):
        assert error_policy.delay(n) == retry.delay(n) == capped_backoff(n, 0.2, 3, 3.0)
        assert config.backoff(n) == capped_backoff(n, 0.2, 2, 3.0)


@pytest.mark.parametrize("bad", [math.inf, math.nan, -1.0])
def test_error_policy_and_config_refuse_unsleepable_seconds(bad: float) -> None:
    with pytest.raises(ConfigurationError, match="finite number of seconds"):
        ErrorPolicy.retry(base_delay=0.1, max_delay=bad)
    with pytest.raises(ConfigurationError, match="read_backoff must be"):
        ProjectionConfig(InMemoryCheckpointStore(), read_backoff=(0.1, bad))


def test_a_backoff_attempt_must_be_an_int() -> None:
    with pytest.raises(ValidationError, match="attempt must be an int"):
        capped_backoff(1.5, 0.1, 2.0, 1.0)  # type: ignore[arg-type]
