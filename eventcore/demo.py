"""A short banking scenario against an SQLite file: ``python -m eventcore.demo [PATH]``.

It opens two accounts, makes an atomic two-account transfer, has a transfer refused for
insufficient funds, lets another clerk write between a command's read and its append (a
version conflict that ``execute`` retries), and prints the event log read back from the file
with a fresh store handle. The clock and the event ids are deterministic
(:class:`~eventcore.TickingClock`, :class:`~eventcore.SeededIds`), so the output is the same
on every run. Without ``PATH`` the file lives in a temporary folder that is removed at exit.

The bank itself is :mod:`eventcore.examples.bank`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from eventcore.clock import SeededIds, TickingClock
from eventcore.errors import BusinessRuleViolation, EventCoreError
from eventcore.events import Metadata, RecordedEvent, event_info
from eventcore.examples import bank
from eventcore.execution import execute
from eventcore.pipeline import ExecutionResult
from eventcore.retry import RetryAttempt, RetryPolicy
from eventcore.store import EventStore
from eventcore.stores.sqlite import SqliteEventStore
from eventcore.testing.faults import InterleavingStore
from eventcore.types import StreamId

__all__ = ["main", "render_table"]

USAGE = "usage: python -m eventcore.demo [PATH]   (PATH: a new SQLite file to keep)"

ALICE = StreamId("account-alice")
BOB = StreamId("account-bob")
COLUMNS = ("position", "stream", "version", "type", "data", "correlation")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the demo; return the process exit code. ``argv`` defaults to ``sys.argv[1:]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    stdout = sys.stdout if out is None else out
    if args and args[0] in ("-h", "--help"):
        print(USAGE, file=stdout)
        return 0
    if len(args) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if args:
            return _run(Path(args[0]), stdout, kept=True)
        with tempfile.TemporaryDirectory(prefix="eventcore-demo-") as tmp:
            return _run(Path(tmp) / "bank.db", stdout, kept=False)
    except EventCoreError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(path: Path, out: TextIO, *, kept: bool) -> int:
    def say(text: str = "") -> None:
        print(text, file=out)

    # One clock and one id factory for every handle: ids stay unique, output stays stable.
    clock, ids = TickingClock(), SeededIds(seed=2026)
    with SqliteEventStore(path, events=bank.EVENTS, clock=clock, ids=ids) as store:
        if store.head():
            print(
                f"error: {path} already holds {store.head()} events; "
                "the demo needs a new file (delete it or pass another path)",
                file=sys.stderr,
            )
            return 2
        say("EventCore demo: a small bank in one SQLite file")
        say(f"database: {path}" if kept else "database: bank.db in a temporary folder")
        say()

        say("1. Open two accounts")
        for account, owner, amount in ((ALICE, "Alice", 100), (BOB, "Bob", 50)):
            opened = execute(
                store, bank.OpenAccount(account=account, owner=owner, initial_deposit=amount)
            )
            say(f"   {owner} opens {account} with {amount}: {_written(opened)}")
        say()

        say("2. Transfer 30 from alice to bob: two streams, one atomic append")
        moved = execute(store, bank.Transfer(source=ALICE, target=BOB, amount=30))
        say(f"   ok: {_written(moved)}")
        say()

        say("3. Transfer 500 from bob to alice")
        try:
            execute(store, bank.Transfer(source=BOB, target=ALICE, amount=500))
        except BusinessRuleViolation as exc:
            say(f"   refused: {type(exc).__name__}: {exc}")
        say(f"   nothing was written: the log still ends at position {store.head()}")
        say()

        say("4. Transfer 20 from alice to bob while another clerk deposits 5 into alice")
        with SqliteEventStore(path, events=bank.EVENTS, clock=clock, ids=ids) as clerk:

            def other_clerk(_store: EventStore, append_number: int) -> None:
                # Just before our first append, a second handle on the same file writes, as
                # another process would: a real, repeatable race.
                if append_number == 1:
                    done = execute(clerk, bank.Deposit(account=ALICE, amount=5))
                    say(f"   the other clerk's deposit lands first: {_written(done)}")

            def report(attempt: RetryAttempt) -> None:
                conflicts = "; ".join(str(c) for c in attempt.conflicts)
                say(f"   attempt {attempt.attempt}: version conflict on {conflicts}")
                say("   execute reads both streams again and decides again")

            busy = InterleavingStore(store, before_append=other_clerk)
            raced = execute(
                busy,
                bank.Transfer(source=ALICE, target=BOB, amount=20),
                retry=RetryPolicy(on_retry=report),
            )
        say(f"   ok after {raced.attempts} attempts: {_written(raced)}")
        say()

        balances = ", ".join(f"{a} {bank.balance(store, a)}" for a in (ALICE, BOB))
        say(f"5. Balances: {balances}")
        say()

    # A fresh handle, as another process would open the file: it needs the event classes.
    with SqliteEventStore(path, events=bank.EVENTS, clock=clock, ids=ids) as reader:
        log = reader.read_all()
    say(f"The event log, read back from the file ({len(log)} events):")
    say()
    for line in render_table(log):
        say(line)
    say()
    say("Events written by one command share a correlation id (shown by its last 12 digits).")
    return 0


def _written(result: ExecutionResult) -> str:
    """Where a command's events went: each stream's new versions, then the positions."""
    versions: dict[str, list[int]] = {}
    for e in result.events:
        versions.setdefault(e.stream_id, []).append(e.stream_version)
    streams = ", ".join(
        f"{sid} v{vs[0]}" + (f"-v{vs[-1]}" if len(vs) > 1 else "") for sid, vs in versions.items()
    )
    first, last = result.positions[0], result.positions[-1]
    return f"{streams} at " + (
        f"position {first}" if first == last else f"positions {first}-{last}"
    )


def _data(event: object) -> str:
    """The event's fields other than its stream, as ``name=value``."""
    info = event_info(type(event))
    fields = getattr(event, "__dataclass_fields__", {})
    return ", ".join(
        f"{name}={getattr(event, name)!r}" for name in fields if name != info.stream_field
    )


def render_table(events: Iterable[RecordedEvent]) -> list[str]:
    """The events as an aligned plain-text table, one line per event after a header.

    >>> render_table([])
    ['position  stream  version  type  data  correlation']
    """
    rows = [COLUMNS] + [
        (
            str(e.position),
            e.stream_id,
            str(e.stream_version),
            e.event_type,
            _data(e.event),
            _short(e.metadata),
        )
        for e in events
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    right = {0, 2}  # numbers are right-aligned
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _short(metadata: Metadata) -> str:
    cid = metadata.correlation_id
    return "-" if cid is None else "..." + cid.hex[-12:]


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
