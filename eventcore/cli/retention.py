"""``eventcore retention apply|restore`` and ``eventcore streams close|delete``: removing old
events on purpose (archived first), rebuilding a log from an archive, and tombstones.

Policies are options, each ``SELECTOR=VALUE``; a selector with a glob character (``*``,
``?``, ``[``) is a :class:`~eventcore.types.StreamPattern`, any other a
:class:`~eventcore.types.StreamPrefix`:

>>> parse_policy("keep-last", "sensor-=100")
KeepLast(streams=StreamPrefix('sensor-'), count=100)
>>> parse_policy("keep-younger", "audit-*=30d").age
datetime.timedelta(days=30)
>>> parse_duration("1d12h")
datetime.timedelta(days=1, seconds=43200)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

import click

from eventcore.cli.common import handled, target_options
from eventcore.cli.output import emit_json, progress, table, when
from eventcore.cli.target import (
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    open_target,
)
from eventcore.clock import system_clock
from eventcore.errors import EventCoreError
from eventcore.raw import RawEvent
from eventcore.retention import (
    DirectoryArchive,
    KeepLast,
    KeepYounger,
    PurgeDeleted,
    RetentionPolicy,
    TruncateBefore,
    plan_removal,
    restore,
)
from eventcore.tombstones import DELETION, MARKERS
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = [
    "parse_duration",
    "parse_policy",
    "register",
    "retention",
    "retention_runs",
    "tombstones",
]

_GLOB: Final = re.compile(r"[*?\[]")
_DURATION: Final = re.compile(r"(\d+)([wdhms])")
_UNITS: Final = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_PAGE: Final = 5000
ORDER: Final = ("purge-deleted", "truncate-before", "keep-last", "keep-younger")
"""The order the policies are tried in, per stream (the first that matches applies)."""


def register(cli: click.Group) -> None:
    cli.add_command(retention)


def tombstones(store: Any, streams: Any = None) -> dict[str, dict[str, Any]]:
    """The closed and deleted streams (among ``streams``), from their tombstone events
    (``read_retained`` filtered by the two marker types): state, position, time, reason."""
    found: dict[str, dict[str, Any]] = {}
    after = 0
    while True:
        page = store.read_retained(
            after=after, limit=_PAGE, streams=streams, event_types=sorted(MARKERS)
        )
        for record in page:
            found[str(record.stream_id)] = {
                "state": "deleted" if record.event_type == DELETION else "closed",
                "position": record.position,
                "at": when(record.recorded_at),
                "reason": getattr(record.event, "reason", ""),
            }
        if len(page) < _PAGE:
            return found
        after = page[-1].position


def retention_runs(store: Any) -> list[dict[str, Any]]:
    """The store's retention runs (``store.retention_runs()``), oldest first."""
    runs = sorted(store.retention_runs(), key=lambda run: (run[2], run[1]))
    return [{"first_position": a, "last_position": b, "applied_at": when(at)} for a, b, at in runs]


def _selector(text: str) -> StreamPrefix | StreamPattern:
    if not text:
        raise ValueError("the stream selector is empty; give a prefix such as 'order-'")
    return StreamPattern(text) if _GLOB.search(text) else StreamPrefix(text)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``1w2d``, ``90m``, ``45s`` as a :class:`~datetime.timedelta`."""
    if not text or _DURATION.sub("", text) != "":
        raise ValueError(
            f"bad duration {text!r}; use a number and a unit w, d, h, m or s, such as 30d or 1d12h"
        )
    total = timedelta()
    for amount, unit in _DURATION.findall(text):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def parse_policy(kind: str, text: str) -> RetentionPolicy:
    """One policy from its option name (``keep-last``, ...) and ``SELECTOR=VALUE`` (just
    ``SELECTOR`` for ``purge-deleted``); ``ValueError`` or ``ConfigurationError`` if bad."""
    if kind == "purge-deleted":
        return PurgeDeleted(_selector(text))
    selector, sep, value = text.rpartition("=")
    if not sep:
        raise ValueError(f"expected SELECTOR=VALUE, got {text!r}")
    streams = _selector(selector)
    if kind == "keep-younger":
        return KeepYounger(streams, parse_duration(value))
    if not value.isdigit():
        raise ValueError(f"expected a whole number after '=', got {value!r}")
    number = int(value)
    return KeepLast(streams, number) if kind == "keep-last" else TruncateBefore(streams, number)


def policies_of(given: dict[str, Sequence[str]]) -> list[RetentionPolicy]:
    """The policies of the options, in :data:`ORDER`; bad syntax is a usage error (2)."""
    out: list[RetentionPolicy] = []
    for kind in ORDER:
        for text in given.get(kind, ()):
            try:
                out.append(parse_policy(kind, text))
            except (ValueError, EventCoreError) as exc:
                raise click.BadParameter(str(exc), param_hint=f"--{kind}") from None
    if not out:
        raise click.UsageError(
            "no policy: give at least one of --keep-last, --keep-younger, --truncate-before "
            "or --purge-deleted"
        )
    return out


@click.group()
def retention() -> None:
    """Remove old events by policy (archived first), and restore an archive."""


def _describe(policy: RetentionPolicy) -> str:
    what = type(policy).__name__
    streams = policy.streams
    kind = "pattern" if isinstance(streams, StreamPattern) else "prefix"
    value = getattr(policy, "count", getattr(policy, "age", getattr(policy, "version", None)))
    return f"{what}({kind} {str(streams)!r}{'' if value is None else f', {value}'})"


def _all_rows(store: Any) -> list[RawEvent]:
    rows: list[RawEvent] = []
    with progress("reading", store.head()) as advance:
        after = 0
        while True:
            page = store.export_rows(after=after, limit=_PAGE)
            if not page:
                return rows
            rows += page
            after = page[-1].position
            advance(after)


def _by_stream(rows: Sequence[RawEvent]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        item = found.setdefault(
            row.stream_id,
            {
                "stream_id": row.stream_id,
                "removed": 0,
                "first_version": row.stream_version,
                "last_version": row.stream_version,
            },
        )
        item["removed"] += 1
        item["last_version"] = row.stream_version
    return [found[k] for k in sorted(found)]


@retention.command("apply")
@target_options
@click.option(
    "--keep-last",
    multiple=True,
    metavar="SELECTOR=N",
    help="Keep the last N events of each matching stream (repeat).",
)
@click.option(
    "--keep-younger",
    multiple=True,
    metavar="SELECTOR=AGE",
    help="Keep the events younger than AGE (30d, 12h, 1w2d, 90m, 45s).",
)
@click.option(
    "--truncate-before",
    multiple=True,
    metavar="SELECTOR=VERSION",
    help="Remove the events before stream version VERSION.",
)
@click.option(
    "--purge-deleted",
    multiple=True,
    metavar="SELECTOR",
    help="Remove every event of a deleted matching stream but its deletion.",
)
@click.option(
    "--archive",
    "archive_dir",
    default=None,
    metavar="DIR",
    help="Write the removed events to this archive directory first (created if missing).",
)
@click.option("--discard", is_flag=True, help="Remove without an archive (cannot be undone).")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; write nothing.")
@handled
def apply(
    db: str | None,
    schema: str | None,
    as_json: bool,
    keep_last: tuple[str, ...],
    keep_younger: tuple[str, ...],
    truncate_before: tuple[str, ...],
    purge_deleted: tuple[str, ...],
    archive_dir: str | None,
    discard: bool,
    dry_run: bool,
) -> None:
    """Remove the events the policies select, after archiving them (--archive DIR, or
    --discard). A SELECTOR is a stream prefix ('sensor-') or a glob ('audit-*'). For each
    stream the first matching policy applies, tried in the order --purge-deleted,
    --truncate-before, --keep-last, --keep-younger (each in the order given); a stream no
    policy matches is left alone, and every stream keeps its last event."""
    policies = policies_of(
        {
            "keep-last": keep_last,
            "keep-younger": keep_younger,
            "truncate-before": truncate_before,
            "purge-deleted": purge_deleted,
        }
    )
    if archive_dir is not None and discard:
        raise CliError("--archive and --discard exclude each other; choose one", EXIT_USAGE)
    if archive_dir is None and not discard and not dry_run:
        raise CliError(
            "say where the removed events go: --archive DIR (kept, restorable) or --discard "
            "(gone for good); nothing was removed",
            EXIT_USAGE,
        )
    described = [_describe(p) for p in policies]
    with open_target(db, schema) as opened:
        where = opened.where
        if dry_run:
            rows = plan_removal(_all_rows(opened.store), policies, system_clock())
            found: dict[str, Any] = {
                "target": where,
                "dry_run": True,
                "policies": described,
                "removed": len(rows),
                "streams": len({r.stream_id for r in rows}),
                "first_position": rows[0].position if rows else 0,
                "last_position": rows[-1].position if rows else 0,
                "by_stream": _by_stream(rows),
            }
        else:
            archive = None if archive_dir is None else DirectoryArchive(archive_dir)
            report = opened.store.apply_retention(policies, archive=archive)
            found = {
                "target": where,
                "dry_run": False,
                "policies": described,
                "removed": report.removed,
                "streams": report.streams,
                "first_position": report.first_position,
                "last_position": report.last_position,
                "archive": archive_dir,
                "archive_files": list(report.archive_files),
                "applied_at": when(report.applied_at),
            }
    if as_json:
        emit_json(found)
        return
    verb = "would remove" if dry_run else "removed"
    span = (
        f" (positions {found['first_position']}..{found['last_position']})"
        if found["removed"]
        else ""
    )
    click.echo(f"{verb} {found['removed']} events from {found['streams']} streams{span}")
    if dry_run and found["by_stream"]:
        table(
            None,
            ["stream", "events", "first version", "last version"],
            [list(item.values()) for item in found["by_stream"]],
        )
    elif not dry_run and found["removed"]:
        if archive_dir is None:
            click.echo("discarded: no archive was written")
        else:
            click.echo(f"archived to {archive_dir}: {', '.join(found['archive_files'])}")


@retention.command("restore")
@target_options
@click.argument("archive_dir", metavar="ARCHIVE")
@click.option(
    "--live",
    default=None,
    metavar="TARGET",
    help="The store retention ran on: its remaining events are merged in by position.",
)
@click.option("--live-schema", default=None, metavar="NAME", help="PostgreSQL schema of --live.")
@handled
def restore_command(
    db: str | None,
    schema: str | None,
    as_json: bool,
    archive_dir: str,
    live: str | None,
    live_schema: str | None,
) -> None:
    """Rebuild a log from ARCHIVE (and --live) into the empty store --db, with the same ids,
    positions, versions, times and metadata (a new SQLite file or PostgreSQL schema is
    created). A store that is not empty is refused (exit 5)."""
    if not os.path.isfile(os.path.join(archive_dir, "manifest.json")):
        raise CliError(
            f"no archive at {archive_dir!r} (no manifest.json); give the directory "
            "'eventcore retention apply --archive' wrote",
            EXIT_NOT_FOUND,
        )
    archive = DirectoryArchive(archive_dir)
    try:
        with open_target(db, schema, create=True):
            pass
    except CliError:  # a new PostgreSQL schema: create it (as ``eventcore migrate`` does)
        with open_target(db, schema, migrate=True, create=True):
            pass
    with open_target(db, schema) as opened:
        head = opened.store.head()
        if head != 0:
            raise CliError(
                f"{opened.where} is not empty (events up to position {head}); restore into a "
                "new SQLite file or PostgreSQL schema; nothing was written",
                EXIT_REFUSED,
            )
        if live is None:
            imported = restore(archive, into=opened.store)
        else:
            with open_target(live, live_schema) as source:
                imported = restore(archive, into=opened.store, live=source.store)
        found = {"target": opened.where, "archive": archive_dir, "imported": imported}
        found["head"] = opened.store.head()
    if as_json:
        emit_json(found)
    else:
        click.echo(f"restored {imported} events into {found['target']} (head {found['head']})")


def _tombstone(kind: str) -> Any:
    @click.command(kind)
    @target_options
    @click.argument("stream")
    @click.option("--reason", default="", help="Why (kept in the tombstone event).")
    @click.option(
        "--expected-version",
        type=click.IntRange(min=0),
        default=None,
        help="Refuse unless the stream is at this version.",
    )
    @handled
    def command(
        db: str | None,
        schema: str | None,
        as_json: bool,
        stream: str,
        reason: str,
        expected_version: int | None,
    ) -> None:
        try:
            sid = StreamId(stream)
        except ValueError as exc:
            raise CliError(f"bad stream id: {exc}", EXIT_USAGE) from None
        with open_target(db, schema) as opened:
            if opened.store.stream_version(sid) == 0:
                raise CliError(f"no stream {stream!r} in the store", EXIT_NOT_FOUND)
            write = opened.store.close_stream if kind == "close" else opened.store.delete_stream
            record = write(sid, reason=reason, expected_version=expected_version)
        found = {
            "stream_id": stream,
            "state": "closed" if kind == "close" else "deleted",
            "position": record.position,
            "version": record.stream_version,
            "reason": reason,
            "recorded_at": when(record.recorded_at),
        }
        if as_json:
            emit_json(found)
        else:
            click.echo(f"{found['state']} {stream} at position {record.position}")

    command.help = (
        "Close STREAM: append a closure; every later event for it is refused."
        if kind == "close"
        else "Delete STREAM: append a deletion; reads of it then say it was deleted, and "
        "retention --purge-deleted may remove its events."
    )
    return command


close = _tombstone("close")
delete = _tombstone("delete")
