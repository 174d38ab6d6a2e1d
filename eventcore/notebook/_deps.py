"""Import the optional notebook libraries on first use, with a hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

_HINT = (
    "{name} is needed for eventcore.notebook but is not installed; install the course extra: "
    "pip install 'eventcore[course]'"
)


def require(module: str) -> ModuleType:
    """Import ``module`` (``pandas``, ``matplotlib.pyplot``, ``ipywidgets``...) or raise
    :class:`ModuleNotFoundError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name != top:
            raise
        raise ModuleNotFoundError(_HINT.format(name=top), name=top) from None
