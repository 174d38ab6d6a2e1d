"""``eventcore export`` and ``import``: a log as JSON Lines, streamed, resumable.

Each line is one :class:`~eventcore.raw.RawEvent` (``RawEvent.to_json_line``): ids,
positions, versions, times, metadata and write boundaries kept, so a log moved from SQLite
to PostgreSQL and back reads the same events. Both commands resume: ``export --resume``
appends after the last complete line of the file; ``import`` into a store that already
holds the file's first events checks that they are the same ones and goes on after them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any
from uuid import UUID

import click

from eventcore.cli.common import handled, target_options
from eventcore.cli.output import emit_json, progress
from eventcore.cli.target import EXIT_REFUSED, EXIT_USAGE, CliError, open_target
from eventcore.errors import DeserializationError, EventCoreError
from eventcore.raw import RawEvent

__all__ = ["register"]

_PAGE = 1000


def register(cli: click.Group) -> None:
    cli.add_command(export)
    cli.add_command(import_)


def _last_line(path: str) -> tuple[RawEvent | None, int]:
    """The last complete line of ``path`` parsed, and the file's length up to it."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if end == 0:
        return None, 0
    start = data.rfind(b"\n", 0, end - 1) + 1
    try:
        return RawEvent.from_json_line(data[start:end]), end
    except DeserializationError as exc:
        raise CliError(
            f"cannot resume: the last line of {path!r} is not an event ({exc})", EXIT_REFUSED
        ) from None


@click.command()
@target_options
@click.option("-o", "--output", default="-", metavar="FILE", help="Where to write ('-': stdout).")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Start after this position.")
@click.option("--resume", is_flag=True, help="Append to FILE after its last complete line.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@handled
def export(
    db: str | None,
    schema: str | None,
    as_json: bool,
    output: str,
    after: int,
    resume: bool,
    force: bool,
) -> None:
    """Write the log (after --after) as JSON Lines, one event a line, in position order."""
    if output == "-" and (resume or force):
        raise CliError("--resume and --force need -o FILE", EXIT_USAGE)
    mode, last = "w", None
    if output != "-" and os.path.exists(output):
        if resume:
            last, length = _last_line(output)
            if last is not None:
                after = last.position
            with open(output, "rb+") as f:
                f.truncate(length)  # a line cut by an interrupted export
            mode = "a"
        elif not force:
            raise CliError(
                f"{output!r} exists; pass --resume to continue it or --force to overwrite it",
                EXIT_REFUSED,
            )
    with open_target(db, schema) as opened:
        store = opened.store
        head = store.head()
        if resume and after:
            found = store.export_rows(after=after - 1, limit=1)
            if not found or found[0].position != after or (last and found[0] != last):
                raise CliError(
                    f"cannot resume: the event at position {after} in {output!r} is not the "
                    "one in the store; export to a new file",
                    EXIT_REFUSED,
                )
        count = 0
        sink: IO[str] = sys.stdout if output == "-" else open(output, mode, encoding="utf-8")  # noqa: SIM115
        try:
            with progress("exporting", head) as advance:
                while True:
                    rows = store.export_rows(after=after, limit=_PAGE)
                    if not rows:
                        break
                    sink.write("".join(r.to_json_line() + "\n" for r in rows))
                    count += len(rows)
                    after = rows[-1].position
                    advance(after)
        finally:
            if sink is not sys.stdout:
                sink.close()
            else:
                sink.flush()
    if output != "-":
        summary = {"exported": count, "last_position": after, "file": output}
        if as_json:
            emit_json(summary)
        else:
            click.echo(f"exported {count} events (to position {after}) to {output}", err=True)


def _lines(path: str) -> Iterator[tuple[int, bytes, int]]:
    """``(line number, line, bytes read so far)`` of ``path`` ('-': stdin)."""
    stream: Any = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        done = 0
        for number, line in enumerate(stream, 1):
            done += len(line)
            if line.strip():
                yield number, line, done
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _parse(number: int, line: bytes, path: str) -> RawEvent:
    try:
        return RawEvent.from_json_line(line)
    except DeserializationError as exc:
        raise CliError(f"{path} line {number}: {exc}; nothing was imported", EXIT_REFUSED) from None


def _trusted(line: bytes) -> RawEvent:
    """A line :func:`_check_file` has checked already, parsed without checking it again."""
    item = json.loads(line)
    return RawEvent(
        item["position"],
        item["stream_id"],
        item["stream_version"],
        item["event_type"],
        item["schema_version"],
        item["data"],
        UUID(item["event_id"]),
        datetime.fromisoformat(item["recorded_at"]),
        item["metadata"],
        item["write_end"],
    )


def _check_file(path: str) -> int:
    """Every line parses and positions follow each other; the number of events."""
    expected = None
    count = 0
    for number, line, _ in _lines(path):
        row = _parse(number, line, path)
        if expected is not None and row.position != expected:
            raise CliError(
                f"{path} line {number}: position {row.position} after {expected - 1}; the file "
                "is not one contiguous export. Nothing was imported",
                EXIT_REFUSED,
            )
        expected = row.position + 1
        count += 1
    return count


@click.command("import")
@target_options
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=5000,
    help="Events per transaction (whole writes are kept together).",
)
@handled
def import_(db: str | None, schema: str | None, as_json: bool, file: str, batch: int) -> None:
    """Add the events of a JSON Lines FILE (from export) to the store, after its head.

    A new SQLite file is created. Into a store that already holds the file's first events
    (an import that stopped), the import checks they are the same and goes on after them.
    """
    if file != "-" and not os.path.exists(file):
        raise CliError(f"no file {file!r}", EXIT_USAGE)
    total = _check_file(file) if file != "-" else None
    with open_target(db, schema, create=True) as opened:
        store = opened.store
        head = store.head()
        at_head = store.export_rows(after=head - 1, limit=1)[:1] if head else []
        size = None if file == "-" else os.path.getsize(file)
        imported, skipped, pending, confirmed = 0, 0, [], False
        with progress("importing", size) as advance:
            for number, line, done in _lines(file):
                row = _parse(number, line, file) if total is None else _trusted(line)
                if row.position <= head:
                    if row.position == head:
                        if not at_head or _identity(row) != _identity(at_head[0]):
                            raise CliError(
                                f"the store already holds a different event at position {head} "
                                f"({file} line {number}); import into an empty store",
                                EXIT_REFUSED,
                            )
                        confirmed = True
                    skipped += 1
                    continue
                pending.append(row)
                if len(pending) >= batch and row.write_end == row.position:
                    imported += _flush(store, pending, imported)
                    pending = []
                    advance(done)
            if pending:
                imported += _flush(store, pending, imported)
        if skipped and not confirmed:
            raise CliError(
                f"the store's head is {head} but {file} ends at an earlier position; it is "
                "not the log this store continues. Nothing was imported",
                EXIT_REFUSED,
            )
    summary = {"imported": imported, "skipped": skipped, "events_in_file": total}
    if as_json:
        emit_json(summary)
    else:
        again = f" ({skipped} already there)" if skipped else ""
        click.echo(f"imported {imported} events{again}")


def _identity(row: RawEvent) -> tuple[Any, ...]:
    """What must match for an event already in the store (data text may be reformatted: a
    PostgreSQL store keeps JSON as jsonb)."""
    return (row.position, row.event_id, row.stream_id, row.stream_version, row.event_type)


def _flush(store: Any, rows: list[RawEvent], before: int) -> int:
    try:
        count: int = store.import_rows(rows)
    except EventCoreError as exc:
        raise CliError(
            f"{exc}; {before} events were imported before this batch and nothing of it. Fix "
            "the input and run the import again: it resumes after the store's head",
            EXIT_REFUSED,
        ) from None
    return count
