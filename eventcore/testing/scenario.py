"""Given / when / then: test a command in three lines, in pytest or in a notebook.

>>> from dataclasses import dataclass
>>> from eventcore import BusinessRuleViolation, Command, StreamId, require, stream
>>> @dataclass(frozen=True)
... class Deposited:
...     account: StreamId
...     amount: int
>>> class Deposit(Command[int]):
...     account: StreamId = stream()
...     amount: int
...     def initial_state(self) -> int:
...         return 0
...     def apply(self, balance: int, event: Deposited) -> int:
...         return balance + event.amount
...     def handle(self, balance: int) -> list[Deposited]:
...         require(self.amount > 0, "amount must be positive")
...         return [Deposited(self.account, self.amount)]
>>> alice = StreamId("account-alice")
>>> result = (
...     scenario()
...     .given(Deposited(alice, 10))
...     .when(Deposit(account=alice, amount=5))
...     .then(Deposited(alice, 5))
... )
>>> result.positions
(2,)
>>> scenario().when(Deposit(account=alice, amount=0)).then_raises(
...     BusinessRuleViolation, match="positive")
BusinessRuleViolation('amount must be positive')

Failed expectations raise ``AssertionError`` with the expected and actual events side by
side, so the helper needs no test framework.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from eventcore.clock import SeededIds, TickingClock
from eventcore.commands import Command
from eventcore.errors import ConfigurationError
from eventcore.events import RecordedEvent, stream_of
from eventcore.execution import execute
from eventcore.pipeline import ExecutionResult
from eventcore.store import EventStore
from eventcore.stores.memory import InMemoryEventStore
from eventcore.types import StreamId

__all__ = ["Scenario", "scenario"]

E = TypeVar("E", bound=BaseException)


def _no_sleep(seconds: float) -> None:
    """Retries in a scenario do not wait: the store is local and time is not under test."""


def scenario(store: EventStore | None = None) -> Scenario:
    """Start a given/when/then scenario on ``store``.

    Without a store, a fresh :class:`~eventcore.InMemoryEventStore` with a deterministic
    clock and id factory is used, so recorded events are the same on every run.
    """
    return Scenario(store)


class Scenario:
    """A given/when/then test of one command. Build it with :func:`scenario`.

    ``given(*events)`` writes history, ``when(command)`` executes the command once (with
    retries that do not sleep unless you pass ``sleep=``), and one ``then...`` call checks the
    outcome. After ``when``, ``result`` holds the :class:`~eventcore.ExecutionResult` or
    ``error`` the exception the command raised.
    """

    def __init__(self, store: EventStore | None = None) -> None:
        self.store: EventStore = (
            store
            if store is not None
            else InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=0))
        )
        self.history: list[RecordedEvent] = []
        self.command: Command[Any] | None = None
        self.result: ExecutionResult | None = None
        self.error: Exception | None = None
        self._head_before = 0

    def __repr__(self) -> str:
        outcome = (
            "not run"
            if self.command is None
            else (f"raised {type(self.error).__name__}" if self.error is not None else "succeeded")
        )
        return f"<Scenario given {len(self.history)} events, when {self.command!r}: {outcome}>"

    def given(self, *events: object) -> Scenario:
        """Append ``events`` as history, in the order given, in one atomic write.

        Each event goes to its own stream at that stream's current version; call ``given``
        several times to build history in steps.
        """
        if self.command is not None:
            raise ConfigurationError("given() must come before when(); history is set up first")
        if not events:
            return self
        expected: dict[StreamId, int] = {}
        for evt in events:
            sid = stream_of(evt)
            if sid not in expected:
                expected[sid] = self.store.stream_version(sid)
        self.history.extend(self.store.append(expected, list(events)))
        return self

    def when(self, command: Command[Any], **execute_kwargs: Any) -> Scenario:
        """Execute ``command`` once, keeping its result or the exception it raised.

        ``execute_kwargs`` go to :func:`~eventcore.execute` (``retry``, ``metadata``,
        ``sleep``); retries do not sleep unless ``sleep`` is given.
        """
        if self.command is not None:
            raise ConfigurationError(
                "when() runs one command per scenario; start another with scenario()"
            )
        self.command = command
        execute_kwargs.setdefault("sleep", _no_sleep)
        self._head_before = self.store.head()
        try:
            self.result = execute(self.store, command, **execute_kwargs)
        except Exception as exc:  # kept for then_raises(); then() and then_nothing() report it
            self.error = exc
        return self

    def then(self, *expected: object) -> ExecutionResult:
        """Assert that the command succeeded and recorded exactly ``expected``, in order.

        Returns the :class:`~eventcore.ExecutionResult` for further checks.
        """
        result = self._succeeded(f"expected {_count(len(expected))}")
        actual = [rec.event for rec in result.events]
        if actual != list(expected):
            raise AssertionError(
                f"{self._what()} recorded other events than expected.\n"
                + _diff(list(expected), actual)
            )
        return result

    def then_nothing(self) -> ExecutionResult:
        """Assert that the command succeeded and recorded no event."""
        result = self._succeeded("expected no events")
        if result.events:
            raise AssertionError(
                f"{self._what()} was expected to record nothing, but recorded "
                f"{_count(len(result.events))}:\n" + _listing([r.event for r in result.events])
            )
        return result

    def then_raises(self, error_type: type[E], match: str | None = None) -> E:
        """Assert that the command raised ``error_type`` (its message matching the regular
        expression ``match``, searched) and that nothing new was written. Returns the error.
        """
        self._require_when()
        error = self.error
        if error is None:
            events = [] if self.result is None else [r.event for r in self.result.events]
            raise AssertionError(
                f"{self._what()} was expected to raise {error_type.__name__}, but it succeeded "
                f"and recorded {_count(len(events))}" + (":\n" + _listing(events) if events else "")
            )
        if not isinstance(error, error_type):
            raise AssertionError(
                f"{self._what()} was expected to raise {error_type.__name__}, but raised "
                f"{type(error).__name__}: {error}"
            ) from error
        if match is not None and re.search(match, str(error)) is None:
            raise AssertionError(
                f"{self._what()} raised {type(error).__name__} as expected, but its message "
                f"{str(error)!r} does not match {match!r}"
            ) from error
        written = self.store.read_all(after=self._head_before)
        if written:
            raise AssertionError(
                f"{self._what()} raised {type(error).__name__} as expected, but "
                f"{_count(len(written))} were written anyway:\n"
                + _listing([r.event for r in written])
            )
        return error

    # -- helpers -------------------------------------------------------------------------

    def _require_when(self) -> None:
        if self.command is None:
            raise ConfigurationError("call when(command) before then...()")

    def _what(self) -> str:
        return f"when({self.command!r})"

    def _succeeded(self, expectation: str) -> ExecutionResult:
        self._require_when()
        if self.error is not None:
            raise AssertionError(
                f"{self._what()}: {expectation}, but it raised {type(self.error).__name__}: "
                f"{self.error}"
            ) from self.error
        assert self.result is not None
        return self.result


def _count(n: int) -> str:
    return f"{n} event{'s' if n != 1 else ''}"


def _listing(events: Sequence[object]) -> str:
    return "\n".join(f"  {i}. {evt!r}" for i, evt in enumerate(events, 1)) or "  (none)"


def _diff(expected: list[object], actual: list[object]) -> str:
    """Expected and actual listings, a line diff of their reprs and the first difference."""
    parts = [
        f"expected {_count(len(expected))}:",
        _listing(expected),
        f"actual {_count(len(actual))}:",
        _listing(actual),
    ]
    left = [repr(e) for e in expected]
    right = [repr(a) for a in actual]
    if left != right:
        lines = [line for line in difflib.ndiff(left, right) if not line.startswith("?")]
        parts += ["diff (- expected, + actual):", *(f"  {line}" for line in lines)]
    for i, (exp, act) in enumerate(zip(expected, actual, strict=False), 1):
        if exp != act:
            parts.append(f"first difference at event {i}: {_explain(exp, act)}")
            break
    else:
        if len(expected) != len(actual):
            longer = "expected" if len(expected) > len(actual) else "actual"
            parts.append(
                f"the lists agree on their first {min(len(expected), len(actual))} events; "
                f"the {longer} list has more"
            )
    return "\n".join(parts)


def _explain(expected: object, actual: object) -> str:
    if type(expected) is not type(actual):
        return (
            f"expected a {_qualname(expected)}, got a {_qualname(actual)}"
            if type(expected).__name__ == type(actual).__name__
            else f"expected a {type(expected).__name__}, got a {type(actual).__name__}"
        )
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        fields = [
            f"{f.name}: expected {getattr(expected, f.name)!r}, got {getattr(actual, f.name)!r}"
            for f in dataclasses.fields(expected)
            if getattr(expected, f.name) != getattr(actual, f.name)
        ]
        if fields:
            return f"{type(expected).__name__} " + "; ".join(fields)
    return f"expected {expected!r}, got {actual!r}"


def _qualname(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
