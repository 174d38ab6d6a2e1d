"""Workload names, sizes and where the PostgreSQL server is."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Final

WORKLOADS: Final = ("deposits", "transfers", "contention", "rebuild", "batch_append", "read_all")
STORES: Final = ("memory", "sqlite", "postgres")
IMPLS: Final = ("eventcore", "eventsourcing", "raw")

DESCRIPTIONS: Final = {
    "deposits": "single-stream deposits on {accounts} accounts",
    "transfers": "two-stream transfers among {accounts} accounts",
    "contention": "{contention_threads} threads of transfers among {contention_accounts} accounts",
    "rebuild": "one command on a stream of {rebuild_events:,} events",
    "batch_append": "one append of {batch_events:,} events",
    "read_all": "global log read of {read_events:,} events in pages of {read_page:,}",
}

UNITS: Final = {
    "deposits": "commands",
    "transfers": "commands",
    "contention": "commands",
    "rebuild": "events folded",
    "batch_append": "events",
    "read_all": "events",
}

LATENCY_LABELS: Final = {
    "deposits": "command",
    "transfers": "command",
    "contention": "command",
    "rebuild": "rebuild",
    "batch_append": "append call",
    "read_all": "page",
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
    contention_accounts: int = 10
    contention_threads: int = 4
    contention_transfers: int = 400  # in total, split across the threads
    rebuild_events: int = 10_000
    rebuild_repeats: int = 5
    batch_events: int = 10_000
    batch_repeats: int = 3
    read_events: int = 100_000
    read_page: int = 1_000
    read_stream_events: int = 1_000  # events per stream when seeding the global log
    warmup: int = 20
    rounds: int = 3  # each cell runs this often, implementations interleaved; median reported
    seed: int = 20260101

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            deposits=200,
            transfers=200,
            contention_transfers=200,
            rebuild_events=2_000,
            rebuild_repeats=2,
            batch_events=2_000,
            batch_repeats=2,
            read_events=20_000,
            warmup=5,
            rounds=1,
        )

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
