"""``eventcore projections``, ``dead-letters`` and ``snapshots``: the projections'
checkpoints, lag and leaders, their quarantined events, and the command-state snapshots."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from eventcore.cli.common import handled, target_options
from eventcore.cli.output import emit_json, table, when
from eventcore.cli.target import (
    EXIT_NOT_FOUND,
    EXIT_PROBLEMS,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    open_target,
)
from eventcore.errors import EventCoreError
from eventcore.projections import DeadLetter, retry_dead_letters

__all__ = ["load_object", "register"]


def register(cli: click.Group) -> None:
    cli.add_command(projections)
    cli.add_command(dead_letters)
    cli.add_command(snapshots)


@click.command()
@target_options
@handled
def projections(db: str | None, schema: str | None, as_json: bool) -> None:
    """Every projection with a checkpoint or dead letters: position, lag, leader."""
    with open_target(db, schema) as opened:
        head = opened.store.head()
        saved = opened.checkpoints.names()
        letters = opened.dead_letters.names()
        rows = [
            {
                "name": name,
                "checkpoint": saved.get(name),
                "lag": head - saved.get(name, 0),
                "dead_letters": letters.get(name, 0),
                "leader": opened.leadership.holder(name),
            }
            for name in sorted({*saved, *letters})
        ]
    if as_json:
        emit_json({"head": head, "projections": rows})
        return
    table(
        f"{len(rows)} projections (head {head})",
        ["projection", "checkpoint", "lag", "dead letters", "leader"],
        [
            [r["name"], r["checkpoint"], r["lag"], r["dead_letters"], r["leader"] or "-"]
            for r in rows
        ],
    )


def _letter_json(letter: DeadLetter, full: bool) -> dict[str, Any]:
    out = {
        "projection": letter.projection,
        "position": letter.position,
        "event_id": str(letter.event_id),
        "stream_id": letter.stream_id,
        "event_type": letter.event_type,
        "error_type": letter.error_type,
        "message": letter.message,
        "attempts": letter.attempts,
        "recorded_at": when(letter.recorded_at),
    }
    if full:
        out["traceback"] = letter.traceback
    return out


@click.group("dead-letters")
def dead_letters() -> None:
    """The events projections quarantined: list, show, retry, discard."""


@dead_letters.command("list")
@target_options
@click.argument("projection", required=False)
@handled
def list_letters(db: str | None, schema: str | None, as_json: bool, projection: str | None) -> None:
    """The dead letters of PROJECTION (of every projection when left out)."""
    with open_target(db, schema) as opened:
        names = [projection] if projection else list(opened.dead_letters.names())
        letters = [letter for name in names for letter in opened.dead_letters.list(name)]
    if as_json:
        emit_json([_letter_json(letter, False) for letter in letters])
        return
    table(
        f"{len(letters)} dead letters",
        ["projection", "position", "stream", "type", "error", "attempts", "recorded"],
        [
            [
                d.projection,
                d.position,
                d.stream_id,
                d.event_type,
                f"{d.error_type}: {d.message}",
                d.attempts,
                when(d.recorded_at),
            ]
            for d in letters
        ],
    )


def _get(opened: Any, projection: str, position: int) -> DeadLetter:
    letter: DeadLetter | None = opened.dead_letters.get(projection, position)
    if letter is None:
        raise CliError(
            f"projection {projection!r} has no dead letter at position {position}; "
            "see eventcore dead-letters list",
            EXIT_NOT_FOUND,
        )
    return letter


@dead_letters.command("show")
@target_options
@click.argument("projection")
@click.argument("position", type=click.IntRange(min=1))
@handled
def show_letter(
    db: str | None, schema: str | None, as_json: bool, projection: str, position: int
) -> None:
    """One dead letter in full, with its traceback."""
    with open_target(db, schema) as opened:
        letter = _get(opened, projection, position)
    found = _letter_json(letter, True)
    if as_json:
        emit_json(found)
        return
    table(None, ["", ""], [[k, v] for k, v in found.items() if k != "traceback"], header=False)
    click.echo(letter.traceback.rstrip())


def load_object(spec: str, what: str) -> Any:
    """``package.module:attribute`` imported (the current directory is importable)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise CliError(f"{what} must be MODULE:ATTRIBUTE, got {spec!r}", EXIT_USAGE)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise CliError(f"cannot load {what} {spec!r}: {exc}", EXIT_USAGE) from None
    return found


@dead_letters.command("retry")
@target_options
@click.argument("projection")
@click.argument("position", type=click.IntRange(min=1), required=False)
@click.option(
    "--projector",
    required=True,
    metavar="MODULE:ATTR",
    help="The projector (or a function making it) whose events to replay.",
)
@click.option(
    "--events",
    "events_spec",
    metavar="MODULE:ATTR",
    default=None,
    help="The event classes the store needs to decode them (a list).",
)
@handled
def retry(
    db: str | None,
    schema: str | None,
    as_json: bool,
    projection: str,
    position: int | None,
    projector: str,
    events_spec: str | None,
) -> None:
    """Replay PROJECTION's dead letters (or the one at POSITION) into its projector."""
    target = load_object(projector, "--projector")
    if isinstance(target, type) or (not hasattr(target, "apply") and callable(target)):
        target = target()  # a class or a factory
    if getattr(target, "name", None) != projection:
        raise CliError(
            f"the projector's name is {getattr(target, 'name', None)!r}, not {projection!r}",
            EXIT_USAGE,
        )
    classes = tuple(load_object(events_spec, "--events")) if events_spec else ()
    with open_target(db, schema, events=classes) as opened:
        letters = (
            [_get(opened, projection, position)]
            if position is not None
            else opened.dead_letters.list(projection)
        )
        for letter in letters:  # decode first: a missing class must not count as an attempt
            try:
                opened.store.read_all(after=letter.position - 1, limit=1)
            except EventCoreError as exc:
                raise CliError(
                    f"cannot read the event at position {letter.position}: {exc}; pass the "
                    "event classes with --events MODULE:ATTR. Nothing was retried",
                    EXIT_REFUSED,
                ) from None
        outcome = retry_dead_letters(
            target,
            opened.store,
            opened.dead_letters,
            position=position,
            checkpoints=opened.checkpoints,
        )
    found = {
        "applied": list(outcome.applied),
        "failed": [_letter_json(d, False) for d in outcome.failed],
        "held_back": [d.position for d in outcome.held_back],
    }
    if as_json:
        emit_json(found)
    else:
        click.echo(
            f"applied {len(outcome.applied)}, failed again {len(outcome.failed)}, held back "
            f"{len(outcome.held_back)}"
        )
        for letter in outcome.failed:
            click.echo(f"  position {letter.position}: {letter.error_type}: {letter.message}")
    if outcome.failed:
        raise SystemExit(EXIT_PROBLEMS)


@dead_letters.command("discard")
@target_options
@click.argument("projection")
@click.argument("position", type=click.IntRange(min=1), required=False)
@click.option("--yes", is_flag=True, help="Really discard (the events are not replayed).")
@handled
def discard(
    db: str | None,
    schema: str | None,
    as_json: bool,
    projection: str,
    position: int | None,
    yes: bool,
) -> None:
    """Drop PROJECTION's dead letter at POSITION (every one of them when left out)."""
    if not yes:
        which = f"at position {position}" if position else "(all of them)"
        raise CliError(
            f"discarding the dead letters of {projection!r} {which} loses them; add --yes",
            EXIT_REFUSED,
        )
    with open_target(db, schema) as opened:
        if position is not None:
            _get(opened, projection, position)
        count = opened.dead_letters.discard(projection, position)
    if as_json:
        emit_json({"discarded": count})
    else:
        click.echo(f"discarded {count} dead letters of {projection!r}")


@click.group()
def snapshots() -> None:
    """Command-state snapshots: list, delete."""


@snapshots.command("list")
@target_options
@click.option("--prefix", default="", help="Only snapshot ids starting so.")
@handled
def list_snapshots(db: str | None, schema: str | None, as_json: bool, prefix: str) -> None:
    """The snapshots: id, stream versions, when saved, size."""
    with open_target(db, schema) as opened:
        found = opened.snapshots.list(prefix=prefix)
    rows = [
        {
            "snapshot_id": s.snapshot_id,
            "streams": {str(k): v for k, v in s.streams},
            "saved_at": when(s.saved_at),
            "size": s.size,
        }
        for s in found
    ]
    if as_json:
        emit_json(rows)
        return
    table(
        f"{len(rows)} snapshots",
        ["snapshot", "streams", "saved", "bytes"],
        [
            [
                r["snapshot_id"],
                ", ".join(f"{k}@{v}" for k, v in r["streams"].items()),
                r["saved_at"],
                r["size"],
            ]
            for r in rows
        ],
    )


@snapshots.command("delete")
@target_options
@click.argument("snapshot_ids", nargs=-1)
@click.option("--prefix", default=None, help="Delete every snapshot whose id starts so.")
@handled
def delete_snapshots(
    db: str | None,
    schema: str | None,
    as_json: bool,
    snapshot_ids: tuple[str, ...],
    prefix: str | None,
) -> None:
    """Delete snapshots by id, or all under --prefix ('' for all). Commands rebuild them."""
    if not snapshot_ids and prefix is None:
        raise CliError("name snapshot ids to delete, or pass --prefix", EXIT_USAGE)
    with open_target(db, schema) as opened:
        missing = [i for i in snapshot_ids if opened.snapshots.inspect(i) is None]
        if missing:
            raise CliError(f"no snapshot {missing[0]!r}; nothing was deleted", EXIT_NOT_FOUND)
        count = sum(1 for i in snapshot_ids if opened.snapshots.delete(i))
        if prefix is not None:
            count += opened.snapshots.clear(prefix=prefix)
    if as_json:
        emit_json({"deleted": count})
    else:
        click.echo(f"deleted {count} snapshots")
