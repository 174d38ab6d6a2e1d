"""Fixtures for the notebook helpers: the Agg backend and a small, deterministic shop log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from shop_log import Shop, make_shop  # noqa: E402


@pytest.fixture
def shop() -> Shop:
    """The shop log of :func:`shop_log.make_shop`."""
    return make_shop()


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")
