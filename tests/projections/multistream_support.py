"""Shared by the multi-stream projection tests: a store on each backend, deterministic."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eventcore import InMemoryEventStore, SeededIds, SqliteEventStore, TickingClock
from eventcore.store import EventStore

StoreMaker = Callable[..., EventStore]

BACKENDS = ["memory", "sqlite", "postgres"]


def open_stores(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> Iterator[StoreMaker]:
    """A factory of handles on one fresh database of ``backend``: the first call creates it,
    later calls open new handles on the same data (memory: ``reopen``)."""
    opened: list[Any] = []

    def make(**kwargs: Any) -> EventStore:
        kwargs.setdefault("clock", TickingClock(step=timedelta(hours=3)))
        kwargs.setdefault("ids", SeededIds(seed=len(opened) + 1))
        if backend == "memory":
            handle = opened[0].reopen(**kwargs) if opened else InMemoryEventStore(**kwargs)
        elif backend == "sqlite":
            if not opened:  # migrate first, so the schema setup takes no tick of the clock
                SqliteEventStore(tmp_path / "events.db").close()
            handle = SqliteEventStore(tmp_path / "events.db", **kwargs)
        else:
            from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

            dsn = request.getfixturevalue("postgres_dsn")
            schema = request.getfixturevalue("postgres_schema")
            handle = PostgresEventStore(PostgresConfig(dsn, schema=schema, pool_max=4), **kwargs)
        opened.append(handle)
        return handle

    yield make
    for handle in opened:
        handle.close()


class BareStore:
    """Only the EventStore protocol (no read_correlation / read_event): the fallback path."""

    def __init__(self, inner: EventStore) -> None:
        self._inner = inner
        self.types = inner.types

    def read_stream(self, stream_id: Any, *, after_version: int = 0) -> Any:
        return self._inner.read_stream(stream_id, after_version=after_version)

    def stream_version(self, stream_id: Any) -> int:
        return self._inner.stream_version(stream_id)

    def append(self, expected: Any, events: Any, *, metadata: Any = None) -> Any:
        return self._inner.append(expected, events, metadata=metadata)

    def read_all(self, **kwargs: Any) -> Any:
        return self._inner.read_all(**kwargs)

    def head(self) -> int:
        return self._inner.head()

    def close(self) -> None:
        self._inner.close()
