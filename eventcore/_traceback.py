"""How an EventCore error reads in IPython and Jupyter: one line, then the user's own frames.

IPython shows an exception that has a ``_render_traceback_()`` method with the lines it
returns. :class:`~eventcore.errors.EventCoreError` returns :func:`render_traceback`'s: the
error as ``Type: message``, the driver error behind it when there is one, and where in the
caller's code it came from — frames inside EventCore, the standard library and installed
packages are left out. Outside IPython nothing changes: Python prints its full traceback.
``EVENTCORE_FULL_TRACEBACK=1`` brings the full traceback back in a notebook too.
"""

from __future__ import annotations

import linecache
import os
import sysconfig
import traceback
from collections.abc import Callable
from functools import cache
from pathlib import Path

__all__ = ["render_traceback", "user_frames"]

_PACKAGE = Path(__file__).resolve().parent
_MAX_FRAMES = 4
_ERROR = "\x1b[1;31m{}\x1b[0m: {}"
_WHERE = "  \x1b[32m{}\x1b[0m: {}"


@cache
def _installed_roots() -> tuple[Path, ...]:
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple({Path(sysconfig.get_path(n)).resolve() for n in names})


def _is_user_file(filename: str) -> bool:
    """True for code the user wrote: not EventCore's, not Python's, not an installed package."""
    if filename.startswith("<frozen"):
        return False
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return True
    roots = (_PACKAGE, *_installed_roots())
    return not any(path.is_relative_to(root) for root in roots)


def _cell_name(filename: str) -> str | None:
    """``Cell In[7]`` when IPython compiled this file from a cell, else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    name: Callable[[str], tuple[str, str] | None] | None = getattr(
        getattr(shell, "compile", None), "format_code_name", None
    )
    found = name(filename) if name is not None else None
    return " ".join(found) if found else None


def user_frames(error: BaseException) -> list[tuple[str, int, str]]:
    """``(where, line number, source line)`` of each frame of the user's own code in the
    error's traceback, outermost first (at most the innermost four)."""
    frames = []
    for summary in traceback.extract_tb(error.__traceback__):
        if not _is_user_file(summary.filename):
            continue
        where = _cell_name(summary.filename) or summary.filename
        line = (summary.line or linecache.getline(summary.filename, summary.lineno or 0)).strip()
        frames.append((where, summary.lineno or 0, line))
    return frames[-_MAX_FRAMES:]


def render_traceback(error: BaseException) -> list[str]:
    """The lines IPython shows for ``error``: ``Type: message``, the cause (``raise ... from``)
    if any, then one line per frame of the user's code (``Cell In[7], line 2: execute(...)``).
    """
    if os.environ.get("EVENTCORE_FULL_TRACEBACK"):
        return "".join(traceback.format_exception(error)).rstrip("\n").splitlines()
    lines = [_ERROR.format(type(error).__name__, error)]
    cause = error.__cause__
    if cause is not None:
        lines.append(f"  caused by {type(cause).__module__}.{type(cause).__qualname__}: {cause}")
    for where, number, source in user_frames(error):
        lines.append(_WHERE.format(f"{where}, line {number}", source))
    return lines
