"""The ``eventcore`` command: inspect, check, move and migrate EventCore stores.

Needs the ``cli`` extra (click and rich): ``pip install 'eventcore[cli]'``. Without it the
command prints that in one line and exits with status 3. The commands use the stores'
public operations only (``stats``, ``list_streams``, ``export_rows``/``import_rows``,
``verify``, the checkpoint, dead-letter and snapshot stores), so they work the same on an
SQLite file and a PostgreSQL schema. See ``eventcore --help`` and the book's operations
pages.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["MISSING_EXTRA", "main"]

MISSING_EXTRA = (
    "eventcore: the command needs the cli extra (click and rich): pip install 'eventcore[cli]'"
)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``) and exit with its code."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError:
        print(MISSING_EXTRA, file=sys.stderr)
        sys.exit(3)
    from eventcore.cli.app import cli  # the eventcore logger's NullHandler keeps stderr to our line

    cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="eventcore")
