"""What personal-data features cost: transfers and a rebuild with and without encryption,
and decoding and rebuilding with each serializer, on memory, SQLite and PostgreSQL.

``python -m benchmarks privacy [--quick] [--stores memory,sqlite,postgres] [--out DIR]``
writes ``privacy.json`` and ``privacy.md``.

- **Encryption**: the bank's ``Transfer`` (read two accounts, fold, append two events
  atomically) and a rebuild (one ``Deposit`` that reads and folds a stream of
  ``rebuild_events`` events), plaintext, then every event sealed per account
  (``Encryption(keys, all_events=True)``: the subject is the stream, every other field is
  encrypted) with in-memory keys and, on the SQL stores, with the database key store
  (wrapped keys, unwrapped once and cached).
- **Serializers**: the same event as a dataclass (JSON codec), a Pydantic v2 model and a
  msgspec Struct: ``read_all`` of ``decode_events`` events through a fresh handle (every
  event decoded), and a rebuild fold of a ``rebuild_events`` stream.

Every cell runs ``rounds`` times; in round *r* the variants run in an order rotated by *r*
(a slow minute of the shared machine falls on all of them). Reported: the median of the
rounds and, against plaintext (or the JSON codec), the median of the per-round ratios.
Timings are never asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from pydantic import BaseModel, ConfigDict

from benchmarks.config import postgres_url
from benchmarks.impl_eventcore import EVENTS, Deposit, Deposited, Transfer
from eventcore import Command, EventTypes, StreamId, execute, stream
from eventcore.crypto import Encryption, InMemoryKeyStore
from eventcore.serializers import JsonSerializer
from eventcore.serializers.msgspec_structs import MsgspecSerializer
from eventcore.serializers.pydantic_models import PydanticSerializer

STORES: Final = ("memory", "sqlite", "postgres")
SCHEMA: Final = "eventcore_bench_privacy"
MASTER: Final = bytes(range(32))  # a benchmark's master key: fixed, never printed

Log = Callable[[str], None]


@dataclass(frozen=True)
class PrivacySizes:
    transfers: int = 400
    accounts: int = 20
    rebuild_events: int = 5_000
    decode_events: int = 10_000
    rounds: int = 3

    @classmethod
    def quick(cls) -> PrivacySizes:
        return cls(transfers=40, accounts=10, rebuild_events=500, decode_events=1_000, rounds=1)


# -- the same event, three ways -------------------------------------------------------------


@dataclass(frozen=True)
class DcNoted:
    account: StreamId
    amount: int
    note: str
    tags: tuple[str, ...]


class PdNoted(BaseModel):
    model_config = ConfigDict(frozen=True)
    account: StreamId
    amount: int
    note: str
    tags: tuple[str, ...]


class MsNoted(msgspec.Struct, frozen=True):
    account: StreamId
    amount: int
    note: str
    tags: tuple[str, ...]


SERIALIZERS: Final[dict[str, tuple[Any, type]]] = {
    "json": (JsonSerializer(), DcNoted),
    "pydantic": (PydanticSerializer(), PdNoted),
    "msgspec": (MsgspecSerializer(), MsNoted),
}


class SumNotes(Command[int]):
    """A rebuild: read and fold the whole stream (appends nothing)."""

    account: StreamId = stream()

    def initial_state(self) -> int:
        return 0

    def apply(self, total: int, event: Any) -> int:
        return total + event.amount

    def handle(self, total: int) -> list[object]:
        return []


# -- stores ---------------------------------------------------------------------------------


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _drop_schema() -> None:
    import psycopg

    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


@contextmanager
def _storage(kind: str, folder: str, label: str) -> Iterator[Callable[[Any, str], Any]]:
    """Fresh storage; yields ``open(types, keys)`` where ``keys`` is "none", "memory" or
    "database" (the encryption of the handle)."""
    handles: list[Any] = []
    memory: list[Any] = []
    path = os.path.join(folder, f"{label}.db")
    if kind == "postgres":
        _drop_schema()

    def keys_for(mode: str) -> Any:
        if mode == "memory":
            return InMemoryKeyStore()
        if kind == "sqlite":
            from eventcore.crypto import SqliteKeyStore

            made: Any = SqliteKeyStore(path, master_key=MASTER)
        else:
            from eventcore.crypto import PostgresKeyStore
            from eventcore.stores.postgres import PostgresConfig

            made = PostgresKeyStore(
                PostgresConfig(postgres_url(), schema=SCHEMA), master_key=MASTER
            )
        handles.append(made)
        return made

    def open_store(types: Any, keys: Any = None) -> Any:
        if keys is not None:
            types = EventTypes(types, encryption=Encryption(keys, all_events=True))
        elif not isinstance(types, EventTypes):
            types = EventTypes(types)
        if kind == "memory":
            store: Any = memory[0].reopen(events=types) if memory else None
            if store is None:
                from eventcore import InMemoryEventStore

                store = InMemoryEventStore(events=types)
                memory.append(store)
        elif kind == "sqlite":
            from eventcore import SqliteEventStore

            store = SqliteEventStore(path, events=types)
        else:
            from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

            store = PostgresEventStore(PostgresConfig(postgres_url(), schema=SCHEMA), events=types)
        handles.append(store)
        return store

    open_store.keys_for = keys_for  # type: ignore[attr-defined]
    try:
        yield open_store
    finally:
        for handle in reversed(handles):
            handle.close()
        if kind == "postgres":
            _drop_schema()


# -- workloads ------------------------------------------------------------------------------


def _encryption_variants(kind: str) -> list[str]:
    return ["plaintext", "encrypted (memory keys)"] + (
        ["encrypted (database keys)"] if kind != "memory" else []
    )


def _keys_mode(variant: str) -> str | None:
    return None if variant == "plaintext" else variant.split("(")[1].split()[0]


def _transfers(kind: str, variant: str, sizes: PrivacySizes, folder: str, label: str) -> float:
    with _storage(kind, folder, label) as open_store:
        mode = _keys_mode(variant)
        keys = open_store.keys_for(mode) if mode else None  # type: ignore[attr-defined]
        store = open_store(EVENTS, keys)
        accounts = [StreamId(f"account-{i}") for i in range(sizes.accounts)]
        for account in accounts:
            store.append({account: 0}, [Deposited(account, 1_000_000)])
        n = sizes.accounts
        t0 = time.perf_counter()
        for i in range(sizes.transfers):
            source, target = accounts[i % n], accounts[(i * 7 + 1 + i // n) % n]
            if source == target:
                target = accounts[(i + 1) % n]
            execute(store, Transfer(source=source, target=target, amount=1))
        return sizes.transfers / (time.perf_counter() - t0)


def _fill(store: Any, account: StreamId, count: int, make: Callable[[int], Any]) -> None:
    version = 0
    for start in range(0, count, 1_000):
        batch = [make(start + i) for i in range(min(1_000, count - start))]
        store.append({account: version}, batch)
        version += len(batch)


def _rebuild(kind: str, variant: str, sizes: PrivacySizes, folder: str, label: str) -> float:
    with _storage(kind, folder, label) as open_store:
        mode = _keys_mode(variant)
        keys = open_store.keys_for(mode) if mode else None  # type: ignore[attr-defined]
        account = StreamId("account-long")
        _fill(
            open_store(EVENTS, keys), account, sizes.rebuild_events, lambda i: Deposited(account, 1)
        )
        reader = open_store(EVENTS, keys)  # a fresh handle: every event decoded
        t0 = time.perf_counter()
        execute(reader, Deposit(account=account, amount=1))
        return (time.perf_counter() - t0) * 1000


def _serializer_cell(
    kind: str, name: str, sizes: PrivacySizes, folder: str, label: str
) -> tuple[float, float]:
    """``(events decoded per second by read_all, rebuild ms)``."""
    serializer, cls = SERIALIZERS[name]

    def types() -> EventTypes:
        return EventTypes([cls], serializer=serializer)

    with _storage(kind, folder, label) as open_store:
        writer = open_store(types())
        per_stream = max(1, sizes.decode_events // 4)
        for s in range(4):
            account = StreamId(f"account-{s}")
            _fill(
                writer,
                account,
                per_stream,
                lambda i, a=account: cls(account=a, amount=i, note="a note", tags=("x", "y")),
            )
        reader = open_store(types())
        t0 = time.perf_counter()
        count = len(reader.read_all())
        rate = count / (time.perf_counter() - t0)
        rebuild_reader = open_store(types())
        t0 = time.perf_counter()
        execute(rebuild_reader, SumNotes(account=StreamId("account-0")))
        return rate, (time.perf_counter() - t0) * 1000


def _ratio(rounds_a: Sequence[float], rounds_b: Sequence[float]) -> dict[str, float]:
    ratios = [a / b for a, b in zip(rounds_a, rounds_b, strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def run_privacy(
    *,
    stores: Sequence[str] = STORES,
    sizes: PrivacySizes | None = None,
    out_dir: str | None = None,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Run every cell; write ``privacy.json`` and ``privacy.md`` to ``out_dir``."""
    sizes = sizes or PrivacySizes()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eventcore-privacybench-") as folder:
        for kind in stores:
            if kind == "postgres" and not _postgres_reachable(notes):
                continue
            variants = _encryption_variants(kind)
            cells: dict[tuple[str, str], list[float]] = {}
            fresh = 0  # every cell on new storage
            for r in range(sizes.rounds):
                order = variants[r % len(variants) :] + variants[: r % len(variants)]
                for variant in order:
                    fresh += 1
                    label = f"{kind}-{fresh}"
                    cells.setdefault(("transfers", variant), []).append(
                        _transfers(kind, variant, sizes, folder, label + "t")
                    )
                    cells.setdefault(("rebuild", variant), []).append(
                        _rebuild(kind, variant, sizes, folder, label + "r")
                    )
                names = list(SERIALIZERS)
                for name in names[r % 3 :] + names[: r % 3]:
                    rate, ms = _serializer_cell(kind, name, sizes, folder, f"{kind}-{r}-{name}")
                    cells.setdefault(("decode", name), []).append(rate)
                    cells.setdefault(("serializer rebuild", name), []).append(ms)
            for (workload, variant), values in cells.items():
                base_name = "plaintext" if workload in ("transfers", "rebuild") else "json"
                base = cells[(workload, base_name)]
                slower = workload in ("rebuild", "serializer rebuild")  # ms: higher is slower
                row = {
                    "store": kind,
                    "workload": workload,
                    "variant": variant,
                    "unit": "ms" if slower else "per s",
                    "median": statistics.median(values),
                    "rounds": values,
                    "cost_vs_base": _ratio(values, base) if slower else _ratio(base, values),
                }
                rows.append(row)
                log(
                    f"privacy {kind:>8} {workload:>18} {variant:<26} "
                    f"{row['median']:>10.1f} {row['unit']:<5} "
                    f"cost x{row['cost_vs_base']['median']:.2f}"
                )
    document = {
        "suite": "eventcore-privacy",
        "format": 1,
        "sizes": sizes.__dict__,
        "results": rows,
        "notes": notes,
    }
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "privacy.json"), "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2)
        with open(os.path.join(out_dir, "privacy.md"), "w", encoding="utf-8") as fh:
            fh.write(markdown(document))
        log(f"wrote {os.path.join(out_dir, 'privacy.md')}")
    return document


_TITLES: Final = {
    "transfers": "transfers per second",
    "rebuild": "rebuild: one deposit folding the stream (ms)",
    "decode": "read_all: events decoded per second",
    "serializer rebuild": "rebuild: folding the stream (ms)",
}


def markdown(document: dict[str, Any]) -> str:
    """One table per workload: the median, and the cost against plaintext / the JSON codec
    (the median of the per-round ratios, with their range)."""
    rows = document["results"]
    sizes = document["sizes"]
    lines = [
        f"{sizes['transfers']} transfers over {sizes['accounts']} accounts; rebuild of "
        f"{sizes['rebuild_events']:,} events; read_all of {sizes['decode_events']:,} events; "
        f"{sizes['rounds']} rounds.",
        "",
    ]
    for workload, title in _TITLES.items():
        chosen = [r for r in rows if r["workload"] == workload]
        if not chosen:
            continue
        lines += [f"**{title}**", "", "| store | variant | median | cost (range) |"]
        lines.append("|---|---|---:|---:|")
        for r in chosen:
            c = r["cost_vs_base"]
            lines.append(
                f"| {r['store']} | {r['variant']} | {r['median']:,.1f} | "
                f"{c['median']:.2f}x ({c['min']:.2f}-{c['max']:.2f}) |"
            )
        lines.append("")
    lines.extend(f"- note: {n}" for n in document["notes"])
    return "\n".join(lines) + "\n"


def _postgres_reachable(notes: list[str]) -> bool:
    try:
        import psycopg

        with psycopg.connect(postgres_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:
        notes.append(f"PostgreSQL skipped: {type(exc).__name__}: {str(exc).strip()[:200]}")
        return False
