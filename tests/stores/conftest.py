"""Store tests: let pytest rewrite the asserts of the shipped contract suite."""

import sys

import pytest

if "eventcore.testing.contract" not in sys.modules:  # imported early by --doctest-modules
    pytest.register_assert_rewrite(
        "eventcore.testing.contract",
        "eventcore.testing.contract_base",
        "eventcore.testing.contract_inputs",
        "eventcore.testing.contract_rows",
    )
