"""The ``eventcore`` command group and its store commands: info, streams, show, tail,
verify and migrate. Projections, dead letters and snapshots are in
:mod:`eventcore.cli.operations`; export and import in :mod:`eventcore.cli.transfer`."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from eventcore.cli.common import handled, row_json, selection, target_options
from eventcore.cli.output import emit_json, progress, table, when
from eventcore.cli.retention import retention_runs, tombstones
from eventcore.cli.target import (
    EXIT_CODES,
    EXIT_NOT_FOUND,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    CliError,
    open_target,
)
from eventcore.raw import RawEvent
from eventcore.types import StreamId

__all__ = ["cli"]

_EPILOG = "Exit codes:\n\n" + "\n\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventcore", prog_name="eventcore")
def cli() -> None:
    """Inspect, check, move and migrate EventCore stores (an SQLite file or a PostgreSQL
    schema). Every command takes --db TARGET and --json."""


@cli.command()
@target_options
@handled
def info(db: str | None, schema: str | None, as_json: bool) -> None:
    """The store's kind, schema version, head, event and stream counts, closed and deleted
    streams, and the retention runs."""
    with open_target(db, schema) as opened:
        stats = opened.store.stats()
        found = {
            "target": opened.where,
            "kind": stats.kind,
            "schema_version": stats.schema_version,
            "head": stats.head,
            "events": stats.events,
            "streams": stats.streams,
        }
        marked = tombstones(opened.store)
        runs = retention_runs(opened.store)
        found["closed_streams"] = sum(1 for t in marked.values() if t["state"] == "closed")
        found["deleted_streams"] = sum(1 for t in marked.values() if t["state"] == "deleted")
        found["retention_runs"] = len(runs)
        found["last_retention"] = runs[-1] if runs else None
    if as_json:
        emit_json(found)
        return
    last = found.pop("last_retention")
    if last is not None:
        found["last_retention"] = (
            f"{last['applied_at']} (positions {last['first_position']}..{last['last_position']})"
        )
    table(None, ["", ""], [[key, value] for key, value in found.items()], header=False)


@cli.group(invoke_without_command=True)
@target_options
@click.option("--prefix", "prefixes", multiple=True, help="Streams whose id starts so (repeat).")
@click.option(
    "--pattern", "patterns", multiple=True, help="Streams matching a glob such as 'order-*'."
)
@click.option("--after", default="", metavar="ID", help="Streams after this id (paging).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@handled
@click.pass_context
def streams(
    ctx: click.Context,
    db: str | None,
    schema: str | None,
    as_json: bool,
    prefixes: tuple[str, ...],
    patterns: tuple[str, ...],
    after: str,
    limit: int | None,
) -> None:
    """The streams, in id order: version, first and last position and time, and state
    (open, closed or deleted); ``streams
    close|delete STREAM`` writes a tombstone."""
    if ctx.invoked_subcommand is not None:
        if db or schema or as_json or prefixes or patterns or after or limit:
            raise CliError(
                f"put the options after the subcommand: eventcore streams "
                f"{ctx.invoked_subcommand} STREAM --db TARGET ...",
                EXIT_USAGE,
            )
        return
    chosen = selection(prefixes, patterns)
    with open_target(db, schema) as opened:
        found = opened.store.list_streams(streams=chosen, after=after, limit=limit)
        marked = tombstones(opened.store, chosen) if found else {}
    rows = [
        {
            "stream_id": str(s.stream_id),
            "version": s.version,
            "first_position": s.first_position,
            "last_position": s.last_position,
            "first_recorded_at": when(s.first_recorded_at),
            "last_recorded_at": when(s.last_recorded_at),
            "state": marked.get(str(s.stream_id), {}).get("state", "open"),
        }
        for s in found
    ]
    if as_json:
        emit_json(rows)
        return
    table(
        f"{len(rows)} streams",
        ["stream", "version", "first", "last", "first recorded", "last recorded", "state"],
        [list(r.values()) for r in rows],
    )


def stream_rows(store: Any, stream_id: str, first: int, to: int | None) -> list[RawEvent]:
    """The rows of ``stream_id`` with versions ``first..to`` (``store.stream_rows``)."""
    try:
        sid = StreamId(stream_id)
    except ValueError as exc:
        raise CliError(f"bad stream id: {exc}", EXIT_USAGE) from None
    limit = None if to is None else to - first + 1
    rows: list[RawEvent] = store.stream_rows(sid, after_version=first - 1, limit=limit)
    if not rows and store.stream_version(sid) == 0:
        raise CliError(f"no stream {stream_id!r} in the store", EXIT_NOT_FOUND)
    return rows


def print_events(rows: list[RawEvent], as_json: bool, title: str | None) -> None:
    if as_json:
        for row in rows:
            emit_json(row_json(row))
        return
    table(
        title,
        ["position", "stream", "version", "type", "recorded", "data"],
        [
            [
                r.position,
                r.stream_id,
                r.stream_version,
                r.event_type,
                r.recorded_at.isoformat(),
                json.dumps(json.loads(r.data), ensure_ascii=False, sort_keys=True),
            ]
            for r in rows
        ],
    )


@cli.command()
@target_options
@click.argument("stream")
@click.option("--from", "first", type=click.IntRange(min=1), default=1, help="First version.")
@click.option("--to", "to", type=click.IntRange(min=1), default=None, help="Last version.")
@click.option("--metadata", is_flag=True, help="Show each event's metadata too (tables).")
@handled
def show(
    db: str | None,
    schema: str | None,
    as_json: bool,
    stream: str,
    first: int,
    to: int | None,
    metadata: bool,
) -> None:
    """The events of STREAM with their decoded data (versions --from..--to)."""
    if to is not None and to < first:
        raise CliError(f"--to {to} is before --from {first}", EXIT_USAGE)
    with open_target(db, schema) as opened:
        rows = stream_rows(opened.store, stream, first, to)
    print_events(rows, as_json, f"{stream}: {len(rows)} events")
    if metadata and not as_json:
        table(
            "metadata",
            ["position", "metadata"],
            [[r.position, r.metadata] for r in rows],
        )


@cli.command()
@target_options
@click.option("--prefix", "prefixes", multiple=True, help="Only streams starting so (repeat).")
@click.option("--pattern", "patterns", multiple=True, help="Only streams matching this glob.")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeat).")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=None,
    help="Start after this position (default: the head, i.e. only new events).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N events.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds (default: follow until interrupted).",
)
@handled
def tail(
    db: str | None,
    schema: str | None,
    as_json: bool,
    prefixes: tuple[str, ...],
    patterns: tuple[str, ...],
    types: tuple[str, ...],
    after: int | None,
    limit: int | None,
    timeout: float | None,
) -> None:
    """Follow the log live: print each new event as it is written (Ctrl-C stops)."""
    chosen = selection(prefixes, patterns) or []
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = 0
    with open_target(db, schema) as opened:
        store = opened.store
        position = store.head() if after is None else after
        try:
            while limit is None or shown < limit:
                page = store.export_rows(after=position, limit=500)
                picked = [
                    r
                    for r in page
                    if (not chosen or any(s.matches(r.stream_id) for s in chosen))
                    and (not types or r.event_type in types)
                ]
                if limit is not None:
                    picked = picked[: limit - shown]
                for row in picked:
                    print_tail(row, as_json)
                shown += len(picked)
                if page:
                    position = page[-1].position
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                store.wait_for_events(position, 1.0 if remaining is None else min(remaining, 1.0))
        except KeyboardInterrupt:
            pass


def print_tail(row: RawEvent, as_json: bool) -> None:
    if as_json:
        emit_json(row_json(row))
        return
    data = json.dumps(json.loads(row.data), ensure_ascii=False, sort_keys=True)
    click.echo(f"{row.position}  {row.stream_id}@{row.stream_version}  {row.event_type}  {data}")


@cli.command()
@target_options
@handled
def verify(db: str | None, schema: str | None, as_json: bool) -> None:
    """Check the log: positions gapless and increasing, versions contiguous, every row
    decodes, immutability triggers present. Exit 1 naming each problem."""
    with open_target(db, schema) as opened:
        head = opened.store.head()
        with progress("verifying", head) as advance:
            problems = opened.store.verify(progress=advance)
        where = opened.where
    if as_json:
        emit_json(
            {
                "target": where,
                "head": head,
                "ok": not problems,
                "problems": [
                    {"kind": p.kind, "position": p.position, "message": p.message} for p in problems
                ],
            }
        )
    elif problems:
        for problem in problems:
            click.echo(f"problem: {problem}")
        click.echo(f"{len(problems)} problems in {where} (head {head})")
    else:
        click.echo(f"ok: {where} has {head} events; no problems")
    if problems:
        raise SystemExit(EXIT_PROBLEMS)


@cli.command()
@target_options
@handled
def migrate(db: str | None, schema: str | None, as_json: bool) -> None:
    """Apply the schema migrations (for deployments that do not migrate on open); creates
    an SQLite file or a PostgreSQL schema that does not exist yet."""
    try:
        with open_target(db, schema) as opened:
            version, changed, where = opened.store.stats().schema_version, False, opened.where
    except CliError:  # behind, missing or unreachable: migrating tells which, or fixes it
        with open_target(db, schema, migrate=True, create=True) as opened:
            version, changed, where = opened.store.stats().schema_version, True, opened.where
    if as_json:
        emit_json({"target": where, "schema_version": version, "migrated": changed})
    elif changed:
        click.echo(f"migrated {where} to schema version {version}")
    else:
        click.echo(f"{where} is at schema version {version}; nothing to do")
