"""The development-mode checks: each mistake warned with its fix, nothing written by the dry
run, silent on a correct command, off by default."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eventcore import (
    Command,
    InMemoryEventStore,
    SerializationError,
    SqliteEventStore,
    StreamId,
    execute,
    require,
    stream,
)
from eventcore import checks as dev_checks
from eventcore.aio import execute_async
from eventcore.checks import (
    ApplyMutatesState,
    CommandCheckWarning,
    IgnoredEventType,
    MutableEvent,
    NondeterministicHandle,
    UnserialisableEvent,
    UnusedStream,
)
from tests.bank import EVENTS, Deposit, MoneyDeposited, Transfer


@dataclass(frozen=True)
class Noted:
    cart: StreamId
    note: str


@dataclass(frozen=True)
class Tagged:
    cart: StreamId
    tags: list[str]


@dataclass(frozen=True)
class Priced:
    cart: StreamId
    cents: int


@dataclass
class Cart:
    notes: list[str] = field(default_factory=list)


class AppendsInPlace(Command[Cart]):
    cart: StreamId = stream()

    def initial_state(self) -> Cart:
        return Cart()

    def apply(self, state: Cart, event: Noted) -> Cart:
        state.notes.append(event.note)
        return state

    def handle(self, state: Cart) -> list[Noted]:
        return [Noted(self.cart, f"note {len(state.notes)}")]


class ReturnsNone(Command[list[str]]):
    cart: StreamId = stream()

    def initial_state(self) -> list[str]:
        return []

    def apply(self, state: list[str], event: Noted) -> list[str]:
        state.append(event.note)  # type: ignore[func-returns-value]
        return None  # type: ignore[return-value]

    def handle(self, state: list[str]) -> list[Noted]:
        return [Noted(self.cart, "again")]


_counter = itertools.count()


class CountsCalls(Command[int]):
    cart: StreamId = stream()

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Noted) -> int:
        return state + 1

    def handle(self, state: int) -> list[Noted]:
        return [Noted(self.cart, f"call {next(_counter)}")]  # not a function of the state


class TagsAList(Command[int]):
    cart: StreamId = stream()

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: object) -> int:
        return state + 1

    def handle(self, state: int) -> list[Tagged]:
        return [Tagged(self.cart, ["a", "b"])]


class PricesWithAString(Command[int]):
    cart: StreamId = stream()

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: object) -> int:
        return state + 1

    def handle(self, state: int) -> list[Priced]:
        return [Priced(self.cart, "12")]  # type: ignore[arg-type]


class DeclaresTooMuch(Command[int]):
    cart: StreamId = stream()
    audit: StreamId = stream()

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Noted) -> int:
        return state + 1

    def handle(self, state: int) -> list[Noted]:
        return [Noted(self.cart, "only the cart")]


class IgnoresNotes(Command[int]):
    cart: StreamId = stream()

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: object) -> int:
        if isinstance(event, MoneyDeposited):
            return state + event.amount
        return state

    def handle(self, state: int) -> list[MoneyDeposited]:
        require(state < 1000, "full")
        return [MoneyDeposited(self.cart, 1)]


def caught(call: Any) -> list[CommandCheckWarning]:
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        call()
    return [w.message for w in found if isinstance(w.message, CommandCheckWarning)]


@pytest.fixture
def store() -> Iterator[InMemoryEventStore]:
    s = InMemoryEventStore()
    s.append({StreamId("cart-1"): 0}, [Noted(StreamId("cart-1"), "first")])
    yield s


def only(found: list[CommandCheckWarning], kind: type) -> CommandCheckWarning:
    (one,) = [w for w in found if isinstance(w, kind)]
    return one


def test_apply_changing_its_state_in_place(store: InMemoryEventStore) -> None:
    found = caught(lambda: execute(store, AppendsInPlace(cart="cart-1"), checks=True))
    warning = only(found, ApplyMutatesState)
    assert warning.command_type == "AppendsInPlace"
    assert "dataclasses.replace" in str(warning)
    assert [type(w) for w in found] == [ApplyMutatesState]


def test_apply_returning_none(store: InMemoryEventStore) -> None:
    found = caught(lambda: execute(store, ReturnsNone(cart="cart-1"), checks=True))
    assert "returned None" in str(only(found, ApplyMutatesState))


def test_handle_deciding_differently_on_equal_states(store: InMemoryEventStore) -> None:
    found = caught(lambda: execute(store, CountsCalls(cart="cart-1"), checks=True))
    assert "command's fields" in str(only(found, NondeterministicHandle))


def test_events_holding_mutable_values(store: InMemoryEventStore) -> None:
    found = caught(lambda: execute(store, TagsAList(cart="cart-1"), checks=True))
    assert "tuples" in str(only(found, MutableEvent))


def test_events_that_do_not_survive_serialisation(store: InMemoryEventStore) -> None:
    report = _drive(dev_checks.inspect_command(PricesWithAString(cart="cart-1")), store)
    assert "Priced" in str(only(report, UnserialisableEvent))
    # the append refuses it (nothing written); the warning came first
    with pytest.raises(SerializationError), pytest.warns(UnserialisableEvent):
        execute(store, PricesWithAString(cart="cart-1"), checks=True)
    assert store.head() == 1


def test_a_declared_stream_never_used(store: InMemoryEventStore) -> None:
    found = caught(
        lambda: execute(store, DeclaresTooMuch(cart="cart-1", audit="audit-1"), checks=True)
    )
    warning = only(found, UnusedStream)
    assert "'audit-1'" in str(warning) and "'cart-1'" not in str(warning)


def test_apply_ignoring_an_event_type_it_receives(store: InMemoryEventStore) -> None:
    store.append({StreamId("cart-1"): 1}, [MoneyDeposited(StreamId("cart-1"), 5)])
    found = caught(lambda: execute(store, IgnoresNotes(cart="cart-1"), checks=True))
    warning = only(found, IgnoredEventType)
    assert "Noted" in str(warning) and "MoneyDeposited" not in str(warning)


def test_a_correct_command_passes_and_the_dry_run_writes_nothing(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "e.db", events=EVENTS) as store:
        execute(store, Deposit(account=StreamId("a"), amount=10))
        head = store.head()
        assert dev_checks.check_command(store, Transfer(source="a", target="b", amount=3)) == []
        assert store.head() == head
        found = caught(
            lambda: execute(store, Transfer(source="a", target="b", amount=3), checks=True)
        )
        assert found == [] and store.head() == head + 2


def test_off_by_default_and_switchable(
    store: InMemoryEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev_checks, "ENABLED", False)
    assert caught(lambda: execute(store, AppendsInPlace(cart="cart-1"))) == []
    dev_checks.enable()
    try:
        assert caught(lambda: execute(store, AppendsInPlace(cart="cart-1")))
        assert caught(lambda: execute(store, AppendsInPlace(cart="cart-1"), checks=False)) == []
    finally:
        dev_checks.enable(False)


def test_execute_async_runs_them_too(store: InMemoryEventStore) -> None:
    found = caught(
        lambda: asyncio.run(execute_async(store, AppendsInPlace(cart="cart-1"), checks=True))
    )
    assert [type(w) for w in found] == [ApplyMutatesState]


def test_the_environment_variable_turns_them_on() -> None:
    program = (
        "import warnings; warnings.simplefilter('error', UserWarning)\n"
        "from eventcore import InMemoryEventStore, execute\n"
        "from tests.observability.test_checks import AppendsInPlace, Noted\n"
        "from eventcore.checks import ApplyMutatesState\n"
        "s = InMemoryEventStore(); s.append({'cart-1': 0}, [Noted('cart-1', 'x')])\n"
        "try:\n    execute(s, AppendsInPlace(cart='cart-1'))\n"
        "except ApplyMutatesState as w:\n    print('warned', w.command_type)\n"
    )
    env = {**os.environ, "EVENTCORE_CHECKS": "1"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "warned AppendsInPlace", done.stderr


def _drive(checker: Any, store: Any) -> list[CommandCheckWarning]:
    to_send = None
    while True:
        try:
            sid = checker.send(to_send)
        except StopIteration as done:
            return list(done.value)
        to_send = list(store.read_stream(sid))


def test_a_broken_call_is_left_to_execute_to_refuse(store: InMemoryEventStore) -> None:
    from eventcore import ConfigurationError

    with pytest.raises(ConfigurationError, match="Command instance"):
        execute(store, "not a command", checks=True)  # type: ignore[arg-type]
    assert store.head() == 1
