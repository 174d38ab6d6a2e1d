"""What every ``eventcore`` command shares: the target options and the error handling."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from eventcore.cli.target import EXIT_USAGE, CliError, store_error
from eventcore.errors import EventCoreError
from eventcore.raw import RawEvent
from eventcore.types import StreamPattern, StreamPrefix

__all__ = ["handled", "row_json", "selection", "target_options"]

F = TypeVar("F", bound=Callable[..., Any])


def target_options(f: F) -> F:
    """``--db``, ``--schema`` and ``--json`` on a command."""
    f = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (JSON Lines for events) for scripts."
    )(f)
    f = click.option(
        "--schema",
        default=None,
        metavar="NAME",
        help="PostgreSQL schema (default: EVENTCORE_POSTGRES_SCHEMA, else 'eventcore').",
    )(f)
    f = click.option(
        "--db",
        "-d",
        "db",
        default=None,
        metavar="TARGET",
        help="An SQLite file path or a postgresql:// URL (default: EVENTCORE_POSTGRES_URL).",
    )(f)
    return f


def handled(f: F) -> F:
    """Report :class:`CliError` and store errors in one line on stderr and exit with their
    code; never a traceback for an expected failure."""

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except CliError as exc:
            fail(str(exc), exc.code)
        except EventCoreError as exc:
            error = store_error(exc)
            fail(str(error), error.code)
        return None

    return run  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    click.echo(f"eventcore: error: {message}", err=True)
    sys.exit(code)


def selection(prefixes: tuple[str, ...], patterns: tuple[str, ...]) -> list[Any] | None:
    """The stream selectors of ``--prefix`` and ``--pattern`` (None: every stream)."""
    try:
        chosen: list[Any] = [StreamPrefix(p) for p in prefixes]
        chosen += [StreamPattern(p) for p in patterns]
    except ValueError as exc:
        raise CliError(f"bad stream selector: {exc}", EXIT_USAGE) from None
    return chosen or None


def row_json(row: RawEvent) -> dict[str, Any]:
    """An event row for people and scripts: data and metadata decoded from their JSON."""
    return {
        "position": row.position,
        "stream_id": row.stream_id,
        "version": row.stream_version,
        "type": row.event_type,
        "schema_version": row.schema_version,
        "event_id": str(row.event_id),
        "recorded_at": row.recorded_at.isoformat(),
        "data": json.loads(row.data),
        "metadata": json.loads(row.metadata),
    }
