"""The asyncio shell drives the same pipeline as execute(): same results, same retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from eventcore import (
    BusinessRuleViolation,
    Command,
    ConfigurationError,
    Conflict,
    InMemoryEventStore,
    RecordedEvent,
    RetryPolicy,
    StreamId,
    VersionConflict,
    require,
    stream,
)
from eventcore.aio import execute_async


@dataclass(frozen=True)
class Counted:
    counter: StreamId
    by: int


class Count(Command[int]):
    counter: StreamId = stream()
    by: int = 1

    def initial_state(self) -> int:
        return 0

    def apply(self, total: int, event: Counted) -> int:
        return total + event.by

    def handle(self, total: int) -> list[Counted]:
        require(self.by > 0, "by must be positive")
        return [Counted(self.counter, self.by)]


class AsyncStore:
    """An async store (coroutine methods) over the memory store that injects conflicts."""

    def __init__(self, conflicts: int = 0) -> None:
        self.inner = InMemoryEventStore()
        self.types = self.inner.types
        self.conflicts_left = conflicts

    async def read_stream(self, stream_id: StreamId) -> AsyncIterator[RecordedEvent]:
        for event in self.inner.read_stream(stream_id):
            yield event

    async def append(
        self, expected: Mapping[StreamId, int], events: Sequence[object], **kw: Any
    ) -> list[RecordedEvent]:
        if self.conflicts_left:
            self.conflicts_left -= 1
            raise VersionConflict([Conflict(s, v, v + 1) for s, v in expected.items()])
        return self.inner.append(expected, events, **kw)


def test_execute_async_on_a_sync_store_runs_in_a_thread() -> None:
    store = InMemoryEventStore()
    asyncio.run(execute_async(store, Count(counter="c-1")))
    result = asyncio.run(execute_async(store, Count(counter="c-1", by=2)))
    assert result.attempts == 1
    assert [e.stream_version for e in result.events] == [2]
    assert store.head() == 2


def test_execute_async_retries_conflicts_with_async_sleep() -> None:
    store = AsyncStore(conflicts=2)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(base_delay=0.01, jitter=0.0)
    result = asyncio.run(execute_async(store, Count(counter="c-1"), retry=policy, sleep=fake_sleep))
    assert result.attempts == 3
    assert slept == [0.01, 0.02]
    assert store.inner.head() == 1


def test_execute_async_raises_business_errors_without_writing() -> None:
    store = AsyncStore()
    with pytest.raises(BusinessRuleViolation, match="by must be positive"):
        asyncio.run(execute_async(store, Count(counter="c-1", by=0)))
    assert store.inner.head() == 0


class BatchingAsyncStore(AsyncStore):
    """An async store that can also read several streams in one call."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[StreamId, ...]] = []

    async def read_streams(self, stream_ids: Sequence[StreamId]) -> dict[StreamId, Any]:
        self.batches.append(tuple(stream_ids))
        return self.inner.read_streams(stream_ids)


class Move(Command[int]):
    source: StreamId = stream()
    target: StreamId = stream()

    def initial_state(self) -> int:
        return 0

    def apply(self, total: int, event: Counted) -> int:
        return total + event.by

    def handle(self, total: int) -> list[Counted]:
        return [Counted(self.source, 1), Counted(self.target, 1)]


@pytest.mark.parametrize("batching", [True, False])
def test_execute_async_reads_declared_streams_in_one_call_when_it_can(batching: bool) -> None:
    store = BatchingAsyncStore() if batching else AsyncStore()
    asyncio.run(execute_async(store, Move(source="a", target="b")))
    result = asyncio.run(execute_async(store, Move(source="a", target="b")))
    assert result.stream_versions == {StreamId("a"): 2, StreamId("b"): 2}
    if isinstance(store, BatchingAsyncStore):
        assert store.batches == [(StreamId("a"), StreamId("b"))] * 2


def test_execute_async_reads_in_one_call_from_a_sync_store() -> None:
    store = InMemoryEventStore()
    asyncio.run(execute_async(store, Move(source="a", target="b")))
    result = asyncio.run(execute_async(store, Move(source="a", target="b")))
    assert [e.stream_version for e in result.events] == [2, 2]


def test_execute_async_checks_its_arguments_like_execute() -> None:
    store = AsyncStore()
    with pytest.raises(ConfigurationError, match="retry must be a RetryPolicy"):
        asyncio.run(execute_async(store, Count(counter="c-1"), retry=3))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="execute_async\\(\\) takes a Command"):
        asyncio.run(execute_async(store, "not a command"))  # type: ignore[arg-type]
    assert store.inner.head() == 0
