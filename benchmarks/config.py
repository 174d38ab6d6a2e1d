"""Workload names, sizes and where the PostgreSQL server is."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Final

# The side-by-side table (EventCore, eventsourcing, raw driver). Command workloads run on
# fresh storage every round; the others share data seeded once per implementation and store
# (SEEDED says which data set), so rounds re-read the same data.
WORKLOADS: Final = (
    "deposits",
    "transfers",
    "batch_append",
    "rebuild",
    "rebuild_cmd",
    "read_all",
    "read_all_cmd",
    "catch_up",
    "catch_up_cmd",
)
SEEDED: Final = {
    "rebuild": "batch",
    "read_all": "batch",
    "catch_up": "batch",
    "rebuild_cmd": "commands",
    "read_all_cmd": "commands",
    "catch_up_cmd": "commands",
}
# Sections of ``run`` besides the table (``--only`` selects any of them).
SECTIONS: Final = ("contention", "instructions", "memory", "projections")
STORES: Final = ("memory", "sqlite", "postgres")
IMPLS: Final = ("eventcore", "eventsourcing", "raw")

DATA_LABELS: Final = {"batch": "batch-written", "commands": "command-written"}

DESCRIPTIONS: Final = {
    "deposits": "single-stream deposits on {accounts} accounts (read and fold the account, "
    "decide, append one event)",
    "transfers": "two-stream transfers among {accounts} accounts (read and fold both "
    "histories, decide, append two events atomically)",
    "batch_append": "one append of {batch_events:,} events",
    "rebuild": "one command on a stream of {rebuild_events:,} events written in batches",
    "rebuild_cmd": "one command on a stream of {cmd_stream_events:,} events written one "
    "command per append (interleaved with {cmd_other_streams} other streams)",
    "read_all": "global read of {read_events:,} batch-written events in pages of {read_page:,}",
    "read_all_cmd": "global read of {cmd_events:,} command-written events (each append its "
    "own metadata) in pages of {read_page:,}",
    "catch_up": "projection catch-up (counting projector, in-memory checkpoint) over the "
    "batch-written log, pages of {read_page:,}",
    "catch_up_cmd": "projection catch-up over the command-written log, pages of {read_page:,}",
}

UNITS: Final = {
    "deposits": "commands",
    "transfers": "commands",
    "batch_append": "events",
    "rebuild": "events folded",
    "rebuild_cmd": "events folded",
    "read_all": "events",
    "read_all_cmd": "events",
    "catch_up": "events",
    "catch_up_cmd": "events",
}

LATENCY_LABELS: Final = {
    "deposits": "command",
    "transfers": "command",
    "batch_append": "append call",
    "rebuild": "rebuild",
    "rebuild_cmd": "rebuild",
    "read_all": "page",
    "read_all_cmd": "page",
    "catch_up": "catch-up",
    "catch_up_cmd": "catch-up",
}

DEFAULT_POSTGRES_URL: Final = "postgresql://root@127.0.0.1:5432/test"
POSTGRES_SCHEMA: Final = "eventcore_bench"


def postgres_url() -> str:
    """The server the PostgreSQL workloads use (``EVENTCORE_POSTGRES_URL`` or the default)."""
    return os.environ.get("EVENTCORE_POSTGRES_URL") or DEFAULT_POSTGRES_URL


@dataclass
class Sizes:
    """How much work each workload does. ``quick()`` is the small variant."""

    accounts: int = 100
    deposits: int = 2_000
    transfers: int = 2_000
    rebuild_events: int = 10_000
    rebuild_repeats: int = 5
    batch_events: int = 10_000
    batch_repeats: int = 3
    read_events: int = 100_000  # the batch-written log (the rebuild stream included)
    read_page: int = 1_000
    read_stream_events: int = 1_000  # events per stream (and per append) of that log
    cmd_events: int = 20_000  # the command-written log: one append per event
    cmd_streams: int = 4  # ... round-robin over this many streams
    # The contention table: threads x accounts x execution modes, transfers.
    contention_commands: int = 240  # per cell, split across the threads
    contention_seconds: int = 10  # per cell at most (commands not started are not counted)
    # Memory: peak RSS growth measured in a fresh interpreter.
    mem_log_events: int = 1_000_000  # catch-up over a log of this many events
    mem_stream_events: int = 100_000  # one command on a stream of this many events
    warmup: int = 20
    rounds: int = 3  # each cell runs this often, implementations interleaved
    seed: int = 20260101

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            deposits=200,
            transfers=200,
            rebuild_events=2_000,
            rebuild_repeats=2,
            batch_events=2_000,
            batch_repeats=2,
            read_events=20_000,
            cmd_events=2_000,
            contention_commands=40,
            contention_seconds=3,
            mem_log_events=100_000,
            mem_stream_events=20_000,
            warmup=5,
            rounds=1,
        )

    @property
    def cmd_stream_events(self) -> int:
        return max(1, self.cmd_events // self.cmd_streams)

    @property
    def cmd_other_streams(self) -> int:
        return self.cmd_streams - 1

    def override(self, assignments: list[str]) -> Sizes:
        """Apply ``name=value`` overrides (integers), e.g. ``deposits=50``."""
        known = {f.name for f in dataclasses.fields(self)}
        changes: dict[str, int] = {}
        for item in assignments:
            name, sep, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in known:
                raise ValueError(
                    f"unknown size {item!r}; use name=value with name one of {sorted(known)}"
                )
            number = int(value)
            if number < 0 or (number == 0 and name not in ("warmup",)):
                raise ValueError(f"size {name} must be positive, got {number}")
            changes[name] = number
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def describe(self) -> dict[str, int]:
        """The sizes and the derived figures the descriptions name."""
        return {
            **self.as_dict(),
            "cmd_stream_events": self.cmd_stream_events,
            "cmd_other_streams": self.cmd_other_streams,
        }
