"""Projection tests: let pytest rewrite the asserts of the shipped projection contract."""

import sys

import pytest

if "eventcore.testing.projection_contract" not in sys.modules:  # --doctest-modules imports it
    pytest.register_assert_rewrite(
        "eventcore.testing.projection_contract", "eventcore.testing.projection_checkpoints"
    )
