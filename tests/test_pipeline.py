"""The sans-IO command pipeline, driven by hand: which effects, in which order, with what."""

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from bank import Deposit, InsufficientFunds, MoneyDeposited, MoneyWithdrawn, Transfer, Withdraw

from eventcore import (
    BusinessRuleViolation,
    Command,
    ConcurrencyError,
    Conflict,
    DefinitionError,
    Metadata,
    RecordedEvent,
    RetryAttempt,
    RetryPolicy,
    StreamId,
    UndeclaredStream,
    VersionConflict,
    stream,
)
from eventcore.pipeline import (
    FULL_REPLAY,
    AppendEvents,
    Effect,
    ExecutionResult,
    ReadStream,
    ReadStreams,
    Replayed,
    ReplayReport,
    Sleep,
    StreamReplay,
    command_pipeline,
    replay_streams,
)

A, B, C, D = (StreamId(s) for s in "ABCD")
NO_JITTER = RetryPolicy(max_retries=2, base_delay=0.01, jitter=0.0)
META = Metadata(custom={"who": "test"})

Pipeline = Generator[Any, Any, ExecutionResult]


def recorded(*events: object, start: int = 1, position: int = 100) -> list[RecordedEvent]:
    """Fake store output: events of one stream with versions start, start+1, ..."""
    out = []
    for i, evt in enumerate(events):
        out.append(
            RecordedEvent(
                position=position + i,
                stream_id=getattr(evt, "account", A),
                stream_version=start + i,
                event_type=type(evt).__name__,
                event=evt,
                event_id=UUID(int=position + i),
                recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
                metadata=META,
            )
        )
    return out


def written(effect: AppendEvents, first_position: int = 1) -> list[RecordedEvent]:
    """What a store would answer to an append: versions after the expected ones."""
    versions = dict(effect.expected)
    out = []
    for i, evt in enumerate(effect.events):
        sid = evt.account  # type: ignore[attr-defined]
        versions[sid] += 1
        out.extend(recorded(evt, start=versions[sid], position=first_position + i))
    return out


def finish(pipeline: Pipeline, value: Any) -> ExecutionResult:
    with pytest.raises(StopIteration) as stop:
        pipeline.send(value)
    result: ExecutionResult = stop.value.value
    return result


# -- the happy path -----------------------------------------------------------------------------


def test_reads_every_declared_stream_then_appends_with_every_expected_version() -> None:
    p = command_pipeline(Transfer(source=A, target=B, amount=30), NO_JITTER, META)
    assert next(p) == ReadStream(A)
    assert p.send(recorded(MoneyDeposited(A, 50), MoneyDeposited(A, 10))) == ReadStream(B)
    append = p.send(recorded(MoneyDeposited(B, 5)))
    assert append == AppendEvents(
        {A: 2, B: 1}, (MoneyWithdrawn(A, 30), MoneyDeposited(B, 30)), META
    )
    assert append.metadata is META
    result = finish(p, written(append, first_position=4))
    assert result.attempts == 1
    assert result.positions == (4, 5)
    assert result.last_position == 5
    assert result.stream_versions == {A: 3, B: 2}


def test_batch_reads_ask_for_the_declared_streams_at_once() -> None:
    p = command_pipeline(Transfer(source=A, target=B, amount=30), NO_JITTER, META, batch_reads=True)
    assert next(p) == ReadStreams((A, B))
    append = p.send({B: recorded(MoneyDeposited(B, 5)), A: recorded(MoneyDeposited(A, 50))})
    assert append == AppendEvents(
        {A: 1, B: 1}, (MoneyWithdrawn(A, 30), MoneyDeposited(B, 30)), META
    )
    result = finish(p, written(append, first_position=3))
    assert result.stream_versions == {A: 2, B: 2}
    assert result.replay is not None
    assert [(r.stream_id, r.events_applied) for r in result.replay.streams] == [(A, 1), (B, 1)]


def test_batch_reads_treat_a_missing_entry_as_an_empty_stream() -> None:
    p = command_pipeline(Transfer(source=A, target=B, amount=5), NO_JITTER, META, batch_reads=True)
    assert next(p) == ReadStreams((A, B))
    append = p.send({A: recorded(MoneyDeposited(A, 10))})
    assert append.expected == {A: 1, B: 0}


def test_batch_reads_read_one_declared_stream_alone_and_again_on_retry() -> None:
    p = command_pipeline(Deposit(account=A, amount=1), NO_JITTER, META, batch_reads=True)
    assert next(p) == ReadStream(A)
    p.send([])
    p = command_pipeline(Transfer(source=A, target=B, amount=5), NO_JITTER, META, batch_reads=True)
    next(p)
    p.send({A: recorded(MoneyDeposited(A, 10)), B: []})
    assert p.throw(VersionConflict([Conflict(B, 0, 1)])).seconds == 0.01
    assert p.send(None) == ReadStreams((A, B))  # a fresh read of every declared stream


def test_batch_reads_read_discovered_streams_one_by_one_after_the_declared_ones() -> None:
    class Pair(Crawl):
        other: StreamId = stream()

    p = command_pipeline(Pair(start=A, other=B), NO_JITTER, META, batch_reads=True)
    assert next(p) == ReadStreams((A, B))
    effect = p.send({A: recorded(Linked(A, (C, B))), B: recorded(Linked(B, (D,)))})
    assert effect == ReadStream(C)  # A's discoveries first, B (declared) not read again
    assert p.send([]) == ReadStream(D)
    append = p.send([])
    assert append.expected == {A: 1, B: 1, C: 0, D: 0}


def test_missing_streams_read_as_version_zero() -> None:
    p = command_pipeline(Deposit(account=A, amount=1), NO_JITTER, META)
    assert next(p) == ReadStream(A)
    append = p.send([])
    assert append.expected == {A: 0}


def test_an_empty_decision_appends_nothing_and_reports_read_versions() -> None:
    class Noop(Command[int]):
        first: StreamId = stream()
        second: StreamId = stream()

        def initial_state(self) -> int:
            return 0

        def apply(self, state: int, event: object) -> int:
            return state + 1

        def handle(self, state: int) -> list[object]:
            return []

    p = command_pipeline(Noop(first=A, second=B), NO_JITTER, META)
    next(p)
    p.send(recorded(MoneyDeposited(A, 1)))
    result = finish(p, [])
    assert result == ExecutionResult((), 1, {A: 1, B: 0})
    assert result.last_position is None


def test_read_only_streams_are_version_checked_too() -> None:
    """A transfer-like command that only reads B still sends B's version."""

    class Guarded(Command[dict[str, int]]):
        account: StreamId = stream()
        limits: StreamId = stream()

        def initial_state(self) -> dict[str, int]:
            return {}

        def apply(self, state: dict[str, int], event: Any) -> dict[str, int]:
            return {**state, event.account: state.get(event.account, 0) + event.amount}

        def handle(self, state: dict[str, int]) -> list[object]:
            return [MoneyDeposited(self.account, state.get(self.limits, 0))]

    p = command_pipeline(Guarded(account=A, limits=B), NO_JITTER, META)
    next(p)
    p.send([])
    append = p.send(recorded(MoneyDeposited(B, 7), MoneyDeposited(B, 1)))
    assert append.expected == {A: 0, B: 2}
    assert append.events == (MoneyDeposited(A, 8),)


# -- discovery ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Linked:
    account: StreamId
    to: tuple[StreamId, ...]


class Crawl(Command[tuple[StreamId, ...]]):
    """Follows links breadth-first; writes one event to every stream it found."""

    start: StreamId = stream()

    def initial_state(self) -> tuple[StreamId, ...]:
        return ()

    def apply(self, seen: tuple[StreamId, ...], event: Any) -> tuple[StreamId, ...]:
        return (*seen, *event.to)

    def discover_streams(self, seen: tuple[StreamId, ...]) -> Iterable[StreamId]:
        return seen

    def handle(self, seen: tuple[StreamId, ...]) -> list[object]:
        return [MoneyDeposited(sid, 1) for sid in dict.fromkeys(seen)]


GRAPH = {A: (B, C), B: (D, C, A), C: (D,), D: ()}


def test_discovery_is_breadth_first_and_reads_each_stream_once() -> None:
    p = command_pipeline(Crawl(start=A), NO_JITTER, META)
    reads = [next(p)]
    effect: Any = reads[0]
    while isinstance(effect, ReadStream):
        sid = effect.stream_id
        effect = p.send(recorded(Linked(sid, GRAPH[sid])) if GRAPH[sid] else [])
        reads.append(effect)
    assert reads[:-1] == [ReadStream(A), ReadStream(B), ReadStream(C), ReadStream(D)]
    append = reads[-1]
    assert isinstance(append, AppendEvents)
    assert append.expected == {A: 1, B: 1, C: 1, D: 0}  # discovered streams are checked too
    assert [e.account for e in append.events] == [B, C, D, A]


def test_discovered_values_are_validated_as_stream_ids() -> None:
    class BadCrawl(Crawl):
        def discover_streams(self, seen: tuple[StreamId, ...]) -> Iterable[StreamId]:
            return ["bad*"]  # type: ignore[list-item]

    p = command_pipeline(BadCrawl(start=A), NO_JITTER, META)
    next(p)
    with pytest.raises(ValueError, match="stream id 'bad\\*' contains"):
        p.send([])


# -- retries ------------------------------------------------------------------------------------


def test_a_conflict_sleeps_then_reads_everything_again() -> None:
    p = command_pipeline(Transfer(source=A, target=B, amount=5), NO_JITTER, META)
    next(p)
    p.send(recorded(MoneyDeposited(A, 10)))
    first = p.send([])
    conflict = VersionConflict([Conflict(B, 0, 1)])
    sleep = p.throw(conflict)
    assert sleep == Sleep(0.01, RetryAttempt(1, 0.01, (A, B), (Conflict(B, 0, 1),)))
    assert p.send(None) == ReadStream(A)  # fresh state: every stream is read again
    p.send(recorded(MoneyDeposited(A, 10)))
    second = p.send(recorded(MoneyDeposited(B, 3)))
    assert second.expected == {A: 1, B: 1}
    assert second.events == first.events
    assert second.metadata is first.metadata is META  # the same metadata on every attempt
    result = finish(p, written(second))
    assert result.attempts == 2


def test_the_state_is_rebuilt_from_scratch_on_retry() -> None:
    p = command_pipeline(Withdraw(account=A, amount=8), NO_JITTER, META)
    next(p)
    append = p.send(recorded(MoneyDeposited(A, 10)))
    assert append.expected == {A: 1}
    p.throw(VersionConflict([Conflict(A, 1, 2)]))
    p.send(None)
    with pytest.raises(InsufficientFunds, match="A holds 2, cannot withdraw 8"):
        p.send(recorded(MoneyDeposited(A, 10), MoneyWithdrawn(A, 8)))


def test_exhausted_retries_raise_concurrency_error_with_the_attempts() -> None:
    p = command_pipeline(Deposit(account=A, amount=1), NO_JITTER, META)
    delays = []
    effect = next(p)
    for attempt in range(1, 3):
        assert effect == ReadStream(A)
        assert isinstance(p.send([]), AppendEvents)
        sleep = p.throw(VersionConflict([Conflict(A, 0, attempt)]))
        assert sleep.retry.attempt == attempt
        delays.append(sleep.seconds)
        effect = p.send(None)
    p.send([])
    last = VersionConflict([Conflict(A, 0, 3)])
    with pytest.raises(ConcurrencyError) as info:
        p.throw(last)
    assert delays == [0.01, 0.02]
    assert info.value.attempts == 3
    assert info.value.conflicts == (Conflict(A, 0, 3),)
    assert info.value.__cause__ is last
    assert str(info.value).startswith("gave up after 3 attempts: 'A': expected version 0, found 3")


def test_no_retry_policy_gives_up_at_the_first_conflict() -> None:
    p = command_pipeline(Deposit(account=A, amount=1), RetryPolicy.none(), META)
    next(p)
    p.send([])
    with pytest.raises(ConcurrencyError, match="gave up after 1 attempt: "):
        p.throw(VersionConflict([Conflict(A, 0, 1)]))


def test_other_store_errors_are_not_caught() -> None:
    from eventcore import StoreFailure

    p = command_pipeline(Deposit(account=A, amount=1), NO_JITTER, META)
    next(p)
    p.send([])
    failure = StoreFailure("append", "disk full")
    with pytest.raises(StoreFailure) as info:
        p.throw(failure)
    assert info.value is failure


# -- decisions that fail ------------------------------------------------------------------------


def test_business_errors_are_raised_at_once_and_never_retried() -> None:
    p = command_pipeline(Transfer(source=A, target=B, amount=50), NO_JITTER, META)
    next(p)
    p.send(recorded(MoneyDeposited(A, 10)))
    with pytest.raises(InsufficientFunds) as info:
        p.send([])
    assert isinstance(info.value, BusinessRuleViolation)
    with pytest.raises(StopIteration):  # the pipeline is finished: no Sleep, no retry
        next(p)


def test_an_event_for_an_unread_stream_fails_before_any_append() -> None:
    class Stray(Command[int]):
        account: StreamId = stream()

        def initial_state(self) -> int:
            return 0

        def handle(self, state: int) -> Sequence[object]:
            return [MoneyDeposited(self.account, 1), MoneyDeposited(C, 1)]

    p = command_pipeline(Stray(account=A), NO_JITTER, META)
    next(p)
    with pytest.raises(UndeclaredStream) as info:
        p.send([])
    assert info.value.stream_id == C
    assert info.value.event_type == "MoneyDeposited"
    assert str(info.value) == (
        "event MoneyDeposited targets stream 'C', which this write did not read (streams "
        "read: 'A'); nothing was written. Declare the stream on the command with stream() "
        "or return it from discover_streams()."
    )


@pytest.mark.parametrize("returned", [None, "event", b"x", 42])
def test_handle_must_return_a_list(returned: object) -> None:
    class Sloppy(Command[int]):
        account: StreamId = stream()

        def initial_state(self) -> int:
            return 0

        def handle(self, state: int) -> Sequence[object]:
            return returned  # type: ignore[return-value]

    p = command_pipeline(Sloppy(account=A), NO_JITTER, META)
    next(p)
    with pytest.raises(DefinitionError) as info:
        p.send([])
    assert str(info.value) == (
        f"Sloppy.handle() returned {returned!r}; return a list of events "
        "(an empty list when nothing happens)"
    )


def test_handle_may_return_any_iterable() -> None:
    class Lazy(Command[int]):
        account: StreamId = stream()

        def initial_state(self) -> int:
            return 0

        def handle(self, state: int) -> Sequence[object]:
            return (e for e in [MoneyDeposited(self.account, 1)])  # type: ignore[return-value]

    p = command_pipeline(Lazy(account=A), NO_JITTER, META)
    next(p)
    assert p.send([]).events == (MoneyDeposited(A, 1),)


# -- the replay strategy the pipeline is given ----------------------------------------------------


@dataclass(frozen=True)
class AskCache:
    """An effect of the strategy below, not of the pipeline: the shell that chose it answers."""

    stream_id: StreamId


class CachedBalance:
    """A strategy of its own: resumes stream A from a cached state, records conflicts."""

    def __init__(self) -> None:
        self.conflicts: list[VersionConflict] = []

    def replay(
        self, command: Command[Any], *, batch_reads: bool
    ) -> Generator[Effect | AskCache, Any, Replayed]:
        cached = yield AskCache(A)

        def resume(k: int, sid: StreamId, done: Sequence[StreamReplay]) -> tuple[int, Any] | None:
            return cached if cached is not None and sid == A else None

        fold = yield from replay_streams(command, batch_reads=batch_reads, resume=resume)
        return Replayed(fold.state, fold.versions, ReplayReport(fold.streams, "cache"))

    def conflicted(self, replayed: Replayed, conflict: VersionConflict) -> None:
        self.conflicts.append(conflict)


def test_the_pipeline_runs_the_strategy_it_is_given_and_passes_its_effects_through() -> None:
    strategy = CachedBalance()
    p = command_pipeline(Withdraw(account=A, amount=8), NO_JITTER, META, replay=strategy)
    assert next(p) == AskCache(A)
    assert p.send((40, {A: 10})) == ReadStream(A, after_version=40)  # resumed: the tail
    append = p.send(recorded(MoneyDeposited(A, 5), start=41))
    assert isinstance(append, AppendEvents) and append.expected == {A: 41}
    conflict = VersionConflict([Conflict(A, 41, 42)])
    assert isinstance(p.throw(conflict), Sleep)
    assert strategy.conflicts == [conflict]
    assert p.send(None) == AskCache(A)  # every attempt replays through the strategy
    assert p.send(None) == ReadStream(A)  # nothing cached: from the first event
    append = p.send(recorded(MoneyDeposited(A, 9)))
    result = finish(p, written(append))
    assert result.replay == ReplayReport((StreamReplay(A, None, 1, 1),), "cache")


def test_the_default_strategy_is_the_full_replay() -> None:
    p = command_pipeline(Deposit(account=A, amount=1), NO_JITTER, META)
    assert next(p) == ReadStream(A)
    explicit = command_pipeline(Deposit(account=A, amount=1), NO_JITTER, META, replay=FULL_REPLAY)
    assert next(explicit) == ReadStream(A)
    append = p.send(recorded(MoneyDeposited(A, 3)))
    result = finish(p, written(append))
    assert result.replay == ReplayReport((StreamReplay(A, None, 1, 1),))
    assert repr(FULL_REPLAY) == "FULL_REPLAY"
