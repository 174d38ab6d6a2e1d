"""The store contract (eventcore.testing.contract) run on every bundled store, and the
corrupt-row contract (eventcore.testing.contract_rows) on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventcore.store import EventStore
from eventcore.stores.memory import InMemoryEventStore
from eventcore.stores.sqlite import SqliteEventStore
from eventcore.testing.contract import EventStoreContract, StoreFactory
from eventcore.testing.contract_rows import CorruptRowContract, RawRowWriter


class TestInMemoryContract(EventStoreContract):
    """Later handles are ``reopen()``-ed: the same events, their own event-type registry."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        stores: list[InMemoryEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            stores.append(stores[0].reopen(**kwargs) if stores else InMemoryEventStore(**kwargs))
            return stores[-1]

        return factory

    @pytest.fixture
    def make_empty_store(self) -> StoreFactory:
        return lambda **kwargs: InMemoryEventStore(**kwargs)


class TestSqliteFileContract(EventStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[StoreFactory]:
        handles: list[SqliteEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            handles.append(SqliteEventStore(tmp_path / "events.db", **kwargs))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()

    @pytest.fixture
    def make_empty_store(self, tmp_path: Path) -> Iterator[StoreFactory]:
        handles: list[SqliteEventStore] = []

        def factory(**kwargs: Any) -> EventStore:
            handles.append(SqliteEventStore(tmp_path / f"other-{len(handles)}.db", **kwargs))
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()


class TestSqliteMemoryContract(EventStoreContract):
    """``:memory:`` through one shared connection, so a second handle sees the same data."""

    @pytest.fixture
    def make_store(self) -> Iterator[StoreFactory]:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)

        def factory(**kwargs: Any) -> EventStore:
            return SqliteEventStore(conn, **kwargs)

        yield factory
        conn.close()

    @pytest.fixture
    def make_empty_store(self) -> Iterator[StoreFactory]:
        conns: list[sqlite3.Connection] = []

        def factory(**kwargs: Any) -> EventStore:
            conns.append(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
            return SqliteEventStore(conns[-1], **kwargs)

        yield factory
        for conn in conns:
            conn.close()


class TestSqliteCorruptRows(CorruptRowContract):
    """Rows written with ``sqlite3`` into a table whose NOT NULL and CHECK constraints were
    lifted (the documented ``writable_schema`` way to drop constraints); SQLite's dynamic
    typing lets every case be stored."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        with SqliteEventStore(tmp_path / "events.db") as store:
            yield store

    @pytest.fixture
    def write_raw_row(self, tmp_path: Path, store: EventStore) -> RawRowWriter:
        def write(row: dict[str, Any]) -> None:
            conn = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
            try:
                _lift_constraints(conn, "eventcore_events")
                values = [
                    str(v)
                    if isinstance(v, UUID)
                    else v.isoformat()
                    if isinstance(v, datetime)
                    else v
                    for v in row.values()
                ]
                conn.execute(
                    f"INSERT INTO eventcore_events ({', '.join(row)}) "
                    f"VALUES ({', '.join('?' * len(row))})",
                    values,
                )
            finally:
                conn.close()

        return write


def _lift_constraints(conn: sqlite3.Connection, table: str) -> None:
    """Drop the NOT NULL and CHECK constraints of ``table`` by rewriting its definition
    (https://sqlite.org/lang_altertable.html#otheralter, the simpler procedure)."""
    (definition,) = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    lifted = definition.replace("NOT NULL", "").replace("CHECK (stream_version > 0)", "")
    if lifted == definition:
        return
    conn.execute("BEGIN")
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ?", (lifted, table)
    )
    conn.execute(f"PRAGMA schema_version = {version + 1}")
    conn.execute("PRAGMA writable_schema = OFF")
    conn.execute("COMMIT")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
