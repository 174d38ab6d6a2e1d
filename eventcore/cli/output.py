"""Output of ``eventcore``: rich tables for people, JSON for scripts, progress on stderr.

Tables go to standard output, 120 columns wide when it is not a terminal (so pipes, tests
and notebooks see the same lines); progress bars go to standard error and only when it is a
terminal, so ``--json`` output and captured output never hold one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

__all__ = ["console", "emit_json", "progress", "table", "when"]


def console() -> Console:
    """A console on the current standard output (read at call time: tests swap it)."""
    out = sys.stdout
    tty = out.isatty()
    return Console(
        file=out,
        width=None if tty else 120,
        color_system="auto" if tty else None,
        force_jupyter=False,
        highlight=False,
        soft_wrap=False,
        emoji=False,
    )


def emit_json(value: Any) -> None:
    """One JSON document (or one line of JSON Lines) on standard output."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    header: bool = True,
) -> None:
    """A table of ``rows`` under ``columns`` (numbers right-aligned)."""
    grid = Table(
        title=title, title_justify="left", show_edge=False, pad_edge=False, show_header=header
    )
    for index, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[index], int) for r in rows)
        grid.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    console().print(grid)


def when(at: datetime | None) -> str | None:
    """A time as ISO 8601 text (UTC as stored)."""
    return None if at is None else at.isoformat()


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Any]:
    """A progress bar on standard error while the block runs; yields ``advance(to)`` that
    sets how far it got. Nothing is drawn when standard error is not a terminal."""
    err = Console(file=sys.stderr)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(to: int) -> None:
            bar.update(task, completed=to)

        yield advance
