"""What every implementation offers the workloads (:class:`Bank`) and what a run records."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Skip(Exception):
    """Raised by a factory when an implementation cannot run here (with the reason)."""


class Bank(Protocol):
    """One implementation on one store, fresh for one workload.

    ``deposit`` and ``transfer`` are whole commands: read and fold the streams the decision
    needs, decide, append with a version check, one transaction. ``transfer`` returns how
    many retries it needed; it must be safe to call from several threads at once.
    """

    def open_accounts(self, accounts: Sequence[str], opening: int) -> None: ...

    def deposit(self, account: str, amount: int) -> None: ...

    def transfer(self, source: str, target: str, amount: int) -> int: ...

    def inspect(self, account: str) -> tuple[int, list[int]]:
        """The account's balance and its stream versions in order (for the checks)."""
        ...

    def positions(self) -> list[int]:
        """Every global position in order (the gapless check of the contention table)."""
        ...

    def seed_stream(self, account: str, events: int) -> None:
        """``events`` deposits on one stream, written in one batch."""
        ...

    def seed_commands(self, streams: Sequence[str], per_stream: int) -> None:
        """``per_stream`` deposits on each stream, round-robin, one append (one command's
        write, with its own metadata) per event."""
        ...

    def rebuild(self, account: str) -> int:
        """Run one deposit on a long stream; return how many events were folded."""
        ...

    def prepare_batch(self, account: str, events: int) -> Callable[[], None]:
        """Build ``events`` new events for a fresh stream; the callable appends them in one
        call (only the callable is timed)."""
        ...

    def seed_log(self, events: int, per_stream: int) -> None: ...

    def read_page(self, after: int, limit: int) -> tuple[int, int]:
        """Read and decode up to ``limit`` events after global position ``after``; return
        (the last position read, how many events)."""
        ...

    def catch_up(self, page: int) -> int:
        """Project the whole log from position 0 with a counting projector, in pages of
        ``page``; return how many events were applied."""
        ...

    def settings(self) -> dict[str, str]:
        """SQLite: the pragmas read back from the connections used (empty elsewhere)."""
        ...

    def close(self) -> None: ...


BankFactory = Callable[[], Bank]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass
class Measurement:
    """One cell of the table: a workload, on a store, by one implementation."""

    workload: str
    store: str
    impl: str
    status: str = "ok"  # ok | skipped | error | n/a
    note: str = ""
    unit: str = "commands"
    ops: int = 0
    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list, repr=False)
    latency_label: str = "command"
    retries: int | None = None
    failures: int | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    round_rates: list[float] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def ops_per_s(self) -> float | None:
        if self.status != "ok" or self.seconds <= 0:
            return None
        return self.ops / self.seconds

    @staticmethod
    def median_of(rounds: list[Measurement]) -> Measurement:
        """The round with the median rate, carrying every round's rate (in round order, for
        per-round ratios); the checks must hold in every round; retries and failures are
        summed."""
        ok = [m for m in rounds if m.status == "ok"]
        if len(ok) < len(rounds) or not ok:
            bad = next(m for m in rounds if m.status != "ok")
            return bad
        ordered = sorted(ok, key=lambda m: m.ops_per_s or 0.0)
        chosen = ordered[(len(ordered) - 1) // 2]
        chosen.round_rates = [m.ops_per_s or 0.0 for m in rounds]
        names = {name for m in rounds for name in m.checks}
        chosen.checks = {n: all(m.checks.get(n, False) for m in rounds) for n in sorted(names)}
        seen: dict[str, set[str]] = {}
        for m in rounds:
            for key, value in m.settings.items():
                seen.setdefault(key, set()).update(value.split(","))
        chosen.settings = {key: ",".join(sorted(values)) for key, values in sorted(seen.items())}
        if chosen.retries is not None:
            chosen.retries = sum(m.retries or 0 for m in rounds)
            chosen.failures = sum(m.failures or 0 for m in rounds)
        return chosen

    def latency_ms(self) -> dict[str, float] | None:
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        return {
            name: round(percentile(ordered, q) / 1e6, 4)
            for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
        }

    def to_json(self) -> dict[str, Any]:
        rate = self.ops_per_s
        return {
            "workload": self.workload,
            "store": self.store,
            "impl": self.impl,
            "status": self.status,
            "note": self.note,
            "unit": self.unit,
            "ops": self.ops,
            "seconds": round(self.seconds, 6),
            "ops_per_s": None if rate is None else round(rate, 1),
            "latency_ms": self.latency_ms(),
            "latency_per": self.latency_label,
            "samples": len(self.latencies_ns),
            "retries": self.retries,
            "failures": self.failures,
            "checks": dict(self.checks),
            "round_rates": [round(r, 1) for r in self.round_rates],
            "settings": dict(self.settings),
        }
