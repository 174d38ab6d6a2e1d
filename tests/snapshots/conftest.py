"""Snapshot tests: let pytest rewrite the asserts of the shipped snapshot contract suite."""

import sys

import pytest

if "eventcore.testing.snapshot_contract" not in sys.modules:  # imported early by doctests
    pytest.register_assert_rewrite("eventcore.testing.snapshot_contract")
