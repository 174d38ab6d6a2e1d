"""Development-mode checks: catch the common mistakes in a command, and warn with the fix.

Opt in per call (``execute(store, command, checks=True)``), for the whole process with the
environment variable ``EVENTCORE_CHECKS=1`` (read at import), or with :func:`enable`. Off by
default, and then ``execute`` only tests one module-level name.

With checks on, ``execute`` first runs the command *dry*: it reads the command's streams,
folds them watching ``apply``, calls ``handle`` twice on copies of the state and inspects
the events it returns — without writing anything — then executes as usual. Each finding is
a warning whose class names the mistake (all are :class:`CommandCheckWarning`):

- :class:`ApplyMutatesState`: ``apply`` changed the state it was given (or returned None),
  which corrupts snapshots and retries;
- :class:`NondeterministicHandle`: ``handle`` decided differently on equal states;
- :class:`MutableEvent`: an event holds a list, dict or other mutable value;
- :class:`UnserialisableEvent`: an event does not survive encoding and decoding;
- :class:`UnusedStream`: a declared stream contributed nothing and was not written;
- :class:`IgnoredEventType`: ``apply`` received events of a type and never changed the
  state for them.

>>> import warnings
>>> from dataclasses import dataclass
>>> from eventcore import Command, InMemoryEventStore, StreamId, execute, stream
>>> @dataclass(frozen=True)
... class Added:
...     cart: StreamId
...     items: list[str]
>>> class Add(Command[list[str]]):
...     cart: StreamId = stream()
...     def initial_state(self) -> list[str]:
...         return []
...     def apply(self, items: list[str], event: Added) -> list[str]:
...         items.extend(event.items)  # in place: the mistake
...         return items
...     def handle(self, items: list[str]) -> list[Added]:
...         return [Added(self.cart, ["apple"])]
>>> store = InMemoryEventStore()
>>> _ = execute(store, Add(cart="cart-1"))
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     _ = execute(store, Add(cart="cart-1"), checks=True)
>>> sorted(type(w.message).__name__ for w in caught)
['ApplyMutatesState', 'MutableEvent']
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import deque
from collections.abc import Generator, Sequence
from typing import Any, Final

from eventcore.commands import Command
from eventcore.errors import EventCoreError
from eventcore.events import RecordedEvent, event_info, stream_of
from eventcore.types import StreamId

__all__ = [
    "ENABLED",
    "ApplyMutatesState",
    "CommandCheckWarning",
    "IgnoredEventType",
    "MutableEvent",
    "NondeterministicHandle",
    "UnserialisableEvent",
    "UnusedStream",
    "check_command",
    "check_command_async",
    "enable",
    "inspect_command",
]

ENABLED: bool = os.environ.get("EVENTCORE_CHECKS", "").strip().lower() not in (
    "",
    "0",
    "false",
    "no",
    "off",
)
"""Whether ``execute`` checks every command (``EVENTCORE_CHECKS=1``, or :func:`enable`)."""


class CommandCheckWarning(UserWarning):
    """A development-mode check found a likely mistake in a command (see
    :mod:`eventcore.checks`). ``command_type`` names the command class."""

    def __init__(self, command_type: str, message: str) -> None:
        super().__init__(f"{command_type}: {message}")
        self.command_type = command_type


class ApplyMutatesState(CommandCheckWarning):
    """``apply`` changed the state object it was given instead of returning a new one."""


class NondeterministicHandle(CommandCheckWarning):
    """``handle`` returned different events for equal states."""


class MutableEvent(CommandCheckWarning):
    """An event class holds mutable values (list, dict, set, a non-frozen dataclass)."""


class UnserialisableEvent(CommandCheckWarning):
    """An event cannot be encoded, or does not decode back to an equal event."""


class UnusedStream(CommandCheckWarning):
    """A declared stream neither changed the state nor received an event."""


class IgnoredEventType(CommandCheckWarning):
    """``apply`` received events of a type and never changed the state for any of them."""


_UNKNOWN: Final = object()
"""A state that cannot be copied or compared: the checks that need a copy are skipped."""


def enable(on: bool = True) -> None:
    """Check every ``execute`` in this process (``False``: only those given
    ``checks=True``)."""
    global ENABLED
    ENABLED = bool(on)


def check_command(store: Any, command: Any) -> list[CommandCheckWarning]:
    """Run the checks on ``command`` against ``store`` (reads only), warn each finding,
    and return them. Called by ``execute(..., checks=True)``."""
    checker = inspect_command(command)
    to_send: Sequence[RecordedEvent] | None = None
    while True:
        try:
            stream_id = checker.send(to_send)  # type: ignore[arg-type]
        except StopIteration as done:
            found: list[CommandCheckWarning] = done.value
            break
        to_send = list(store.read_stream(stream_id))
    for finding in found:
        warnings.warn(finding, stacklevel=3)
    return found


async def check_command_async(store: Any, command: Any) -> list[CommandCheckWarning]:
    """:func:`check_command` for ``execute_async`` (an asyncio or a blocking store)."""
    import asyncio
    import inspect

    checker = inspect_command(command)
    to_send: Sequence[RecordedEvent] | None = None
    while True:
        try:
            stream_id = checker.send(to_send)  # type: ignore[arg-type]
        except StopIteration as done:
            found: list[CommandCheckWarning] = done.value
            break
        method = store.read_stream
        if inspect.isasyncgenfunction(method):
            to_send = [e async for e in method(stream_id)]
        elif inspect.iscoroutinefunction(method):
            to_send = list(await method(stream_id))
        else:
            to_send = await asyncio.to_thread(_read_all, method, stream_id)
    for finding in found:
        warnings.warn(finding, stacklevel=3)
    return found


def _read_all(read_stream: Any, stream_id: StreamId) -> list[RecordedEvent]:
    return list(read_stream(stream_id))


def inspect_command(command: Any) -> Generator[StreamId, Sequence[RecordedEvent], list[Any]]:
    """The checks, sans-IO: yields each stream id to read, is sent its events, and returns
    the findings (:class:`CommandCheckWarning` instances, not yet warned). A command whose
    ``apply`` raises, or whose ``handle`` raises on both calls, is left to ``execute``."""
    name = type(command).__name__
    found: list[CommandCheckWarning] = []
    if not isinstance(command, Command):
        return found  # execute() refuses it with its ConfigurationError
    try:
        state = command.initial_state()
        declared = tuple(command.streams())
    except Exception:  # a broken command: execute() raises the same error
        return found
    queue: deque[StreamId] = deque(declared)
    scheduled = set(declared)
    contributed: set[StreamId] = set()
    changed_by: dict[str, bool] = {}
    mutated = False
    while queue:
        stream_id = queue.popleft()
        events = yield stream_id
        for rec in events:
            before = _copy(state)
            try:
                after = command.apply(state, rec.event)
            except Exception:
                return found
            if after is None and state is not None and not mutated:
                mutated = True
                found.append(
                    ApplyMutatesState(
                        name,
                        f"apply() returned None for {rec.event_type} (it changed the state in "
                        "place, or forgot to return it); return a new state, e.g. "
                        "dataclasses.replace(state, ...) or {**state, key: value}",
                    )
                )
            elif before is not _UNKNOWN and not _same(before, state) and not mutated:
                mutated = True
                found.append(
                    ApplyMutatesState(
                        name,
                        f"apply() changed the state it was given while folding "
                        f"{rec.event_type}; snapshots and retries then see a corrupted "
                        "state. Return a new state instead (dataclasses.replace, a new "
                        "dict or tuple) and keep the state immutable",
                    )
                )
            changed = after is not state if before is _UNKNOWN else not _same(before, after)
            changed_by[rec.event_type] = changed_by.get(rec.event_type, False) or changed
            if changed:
                contributed.add(stream_id)
            state = after
        try:
            discovered = tuple(command.discover_streams(state))
        except Exception:
            return found
        for other in discovered:
            sid = StreamId(other)
            if sid not in scheduled:
                scheduled.add(sid)
                queue.append(sid)

    for type_name, changed in sorted(changed_by.items()):
        if not changed:
            found.append(
                IgnoredEventType(
                    name,
                    f"apply() received {type_name} events and never changed the state for "
                    f"them; handle {type_name} in apply(), or, if the command needs none of "
                    "it, read streams that do not carry it",
                )
            )

    decided = _decide_twice(command, state)
    if decided is None:
        return found
    first, second = decided
    if first != second:
        found.append(
            NondeterministicHandle(
                name,
                "handle() returned different events for equal states "
                f"({_types(first)} then {_types(second)}); retries and idempotent replays "
                "then disagree. Take ids, times and random choices from the command's fields "
                "(or the metadata), not from inside handle()",
            )
        )
    written = {_stream(e) for e in first if _stream(e) is not None}
    for sid in declared:
        if sid not in contributed and sid not in written:
            found.append(
                UnusedStream(
                    name,
                    f"declared stream {str(sid)!r} changed nothing in the state and received "
                    "no event; every declared stream is read and version-checked, so an "
                    "unused one only adds conflicts. Remove it from the command's streams, "
                    "or use what it holds",
                )
            )
    found.extend(_check_events(name, first))
    return found


def _decide_twice(command: Any, state: Any) -> tuple[list[Any], list[Any]] | None:
    """``handle`` on two copies of ``state``; None when it raised (twice alike) or the
    state cannot be copied."""
    one, two = _copy(state), _copy(state)
    if one is _UNKNOWN:
        return None
    outcomes: list[list[Any] | str] = []
    for copied in (one, two):
        try:
            outcomes.append(list(command.handle(copied) or ()))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    first, second = outcomes
    if isinstance(first, str) or isinstance(second, str):
        if first == second:
            return None
        return ([first], [second])
    return first, second


def _check_events(name: str, events: Sequence[Any]) -> list[CommandCheckWarning]:
    found: list[CommandCheckWarning] = []
    seen: set[type] = set()
    for evt in events:
        cls = type(evt)
        try:
            info = event_info(cls)
        except EventCoreError:  # not a frozen dataclass: execute raises with the fix
            continue
        if cls not in seen and not info.codec.shareable:
            seen.add(cls)
            found.append(
                MutableEvent(
                    name,
                    f"{cls.__name__} is frozen but holds mutable values (a list, dict, set, "
                    "Any or a non-frozen dataclass); a reader could change what another "
                    "sees. Use tuples, frozenset or frozen dataclasses for its fields",
                )
            )
        try:
            back = info.codec.decode(info.codec.encode(evt))
        except EventCoreError as exc:
            found.append(UnserialisableEvent(name, f"{cls.__name__}: {exc}"))
            continue
        if back != evt:
            found.append(
                UnserialisableEvent(
                    name,
                    f"{cls.__name__} does not decode back to an equal event (a field holds "
                    "a value of another type than its annotation); make the values match "
                    "the annotations",
                )
            )
    return found


def _copy(state: Any) -> Any:
    """A deep copy of ``state`` that compares equal to it, or :data:`_UNKNOWN`."""
    try:
        copied = copy.deepcopy(state)
    except Exception:
        return _UNKNOWN
    return copied if _same(copied, state) else _UNKNOWN


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return True  # not comparable: nothing to report


def _stream(evt: Any) -> StreamId | None:
    try:
        return stream_of(evt)
    except EventCoreError:
        return None


def _types(events: Sequence[Any]) -> str:
    return "[" + ", ".join(type(e).__name__ if not isinstance(e, str) else e for e in events) + "]"
