"""Commands: stream declarations checked at definition, stream values at construction."""

import dataclasses
import re
from typing import Any

import pytest
from bank import Deposit, InsufficientFunds, MoneyDeposited, Transfer

from eventcore import (
    BusinessRuleViolation,
    Command,
    DefinitionError,
    EventCoreError,
    InMemoryEventStore,
    InvalidStreamId,
    StreamId,
    execute,
    require,
    stream,
)


class Audit(Command[int]):
    """Reads several streams given as a tuple, plus one single stream."""

    ledger: StreamId = stream()
    accounts: tuple[StreamId, ...] = stream()
    note: str = ""

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Any) -> int:
        return state + 1

    def handle(self, state: int) -> list[object]:
        return []


# -- definition time ----------------------------------------------------------------------------


def test_a_command_without_streams_is_refused_when_defined() -> None:
    with pytest.raises(DefinitionError) as info:

        class NoStreams(Command[int]):
            amount: int

    assert str(info.value) == (
        "command NoStreams declares no streams; mark at least one field with stream(), "
        "for example 'account: StreamId = stream()'"
    )
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    ("hint", "shown"),
    [
        (str, "str"),
        (int, "int"),
        (list[StreamId], "list[StreamId]"),
        (tuple[StreamId, StreamId], "tuple[StreamId, StreamId]"),
    ],
)
def test_a_stream_field_of_the_wrong_type_is_refused(hint: object, shown: str) -> None:
    with pytest.raises(DefinitionError) as info:

        class Wrong(Command[int]):
            account: hint = stream()  # type: ignore[valid-type]

    assert str(info.value) == (
        f"Wrong.account is marked stream() but typed {shown}; "
        "stream fields must be StreamId or tuple[StreamId, ...]"
    )


def test_an_unresolvable_string_annotation_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="cannot resolve the annotation 'Nowhere'"):

        class Dangling(Command[int]):
            account: "Nowhere" = stream()  # type: ignore[name-defined]  # noqa: F821


def test_string_annotations_resolve_stream_id() -> None:
    class Stringly(Command[int]):
        account: "StreamId" = stream()

    assert Stringly(account="a").streams() == (StreamId("a"),)


def test_abstract_bases_may_declare_no_streams() -> None:
    class Base(Command[int]):
        __abstract__ = True

        def initial_state(self) -> int:
            return 0

    class Concrete(Base):
        account: StreamId = stream()

    assert Concrete(account="a").initial_state() == 0


def test_commands_are_frozen_keyword_only_dataclasses() -> None:
    cmd = Deposit(account="a", amount=5)
    assert dataclasses.is_dataclass(cmd)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmd.amount = 6  # type: ignore[misc]
    with pytest.raises(TypeError):
        Deposit("a", 5)  # type: ignore[misc]
    assert cmd == Deposit(account=StreamId("a"), amount=5)
    assert hash(cmd) == hash(Deposit(account="a", amount=5))


def test_unimplemented_methods_say_what_to_define() -> None:
    class Bare(Command[int]):
        account: StreamId = stream()

    cmd = Bare(account="a")
    with pytest.raises(NotImplementedError, match="Bare must define initial_state"):
        cmd.initial_state()
    with pytest.raises(
        NotImplementedError, match=re.escape("Bare must define apply(state, event)")
    ):
        cmd.apply(0, None)
    with pytest.raises(NotImplementedError, match=re.escape("Bare must define handle(state)")):
        cmd.handle(0)
    assert list(cmd.discover_streams(0)) == []


# -- construction -------------------------------------------------------------------------------


def test_str_stream_values_become_stream_ids() -> None:
    cmd = Transfer(source=" account-a ", target="account-b", amount=1)
    assert type(cmd.source) is StreamId
    assert cmd.source == "account-a"
    assert cmd.streams() == (StreamId("account-a"), StreamId("account-b"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "", "target": "b"}, "Transfer.source: stream id '' is empty after trimming"),
        ({"source": "a", "target": "b*"}, "Transfer.target: stream id 'b*' contains '*'"),
        ({"source": 42, "target": "b"}, "Transfer.source: stream id must be a str, got int 42"),
        ({"source": None, "target": "b"}, "Transfer.source: stream id must be a str"),
    ],
)
def test_invalid_stream_values_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidStreamId, match=re.escape(message)):
        Transfer(amount=1, **kwargs)


def test_equal_streams_are_declared_once() -> None:
    assert Transfer(source="a", target="a", amount=1).streams() == (StreamId("a"),)
    audit = Audit(ledger="b", accounts=("a", "b", "a", "c"))
    assert audit.streams() == (StreamId("b"), StreamId("a"), StreamId("c"))


def test_tuple_stream_fields_accept_any_iterable_of_ids() -> None:
    audit = Audit(ledger="l", accounts=["x", StreamId("y")])  # type: ignore[arg-type]
    assert audit.accounts == (StreamId("x"), StreamId("y"))
    assert all(type(s) is StreamId for s in audit.accounts)
    assert Audit(ledger="l", accounts=()).streams() == (StreamId("l"),)


@pytest.mark.parametrize(
    ("accounts", "message"),
    [
        ("abc", "Audit.accounts: expected a tuple of stream ids, got str"),
        (5, "Audit.accounts: expected a tuple of stream ids, got int"),
        (("a", "b?"), "Audit.accounts: stream id 'b?' contains '?'"),
    ],
)
def test_tuple_stream_fields_validate_every_id(accounts: object, message: str) -> None:
    with pytest.raises(InvalidStreamId, match=re.escape(message)):
        Audit(ledger="l", accounts=accounts)  # type: ignore[arg-type]


def test_handle_is_pure_and_can_be_called_directly() -> None:
    cmd = Deposit(account="a", amount=5)
    state = cmd.apply(cmd.initial_state(), MoneyDeposited(StreamId("a"), 3))
    assert state == {"a": 3}
    assert cmd.handle(state) == [MoneyDeposited(StreamId("a"), 5)]


# -- require ------------------------------------------------------------------------------------


def test_require_passes_on_truthy_conditions() -> None:
    for condition in (True, 1, "x", [0]):
        require(condition, "never raised")


def test_require_with_a_message_raises_business_rule_violation() -> None:
    with pytest.raises(BusinessRuleViolation) as info:
        require(0, "amount must be positive")
    assert type(info.value) is BusinessRuleViolation
    assert str(info.value) == "amount must be positive"


def test_require_with_a_typed_error_raises_that_error() -> None:
    error = InsufficientFunds(StreamId("a"), 3, 5)
    with pytest.raises(InsufficientFunds) as info:
        require([], error)
    assert info.value is error
    assert str(error) == "a holds 3, cannot withdraw 5"


@pytest.mark.parametrize("error", [ValueError("no"), 42, None])
def test_require_refuses_other_error_types(error: object) -> None:
    with pytest.raises(DefinitionError) as info:
        require(False, error)  # type: ignore[arg-type]
    assert isinstance(info.value, EventCoreError) and isinstance(info.value, TypeError)
    assert str(info.value) == (
        f"require() takes a message or a BusinessRuleViolation, got {type(error).__name__}; "
        "make your domain error a subclass of BusinessRuleViolation"
    )
    require(True, error)  # type: ignore[arg-type]  # the error is only checked on failure


# -- a class body cannot switch the stream checks off -----------------------------------------


class DepositCounted(Command[int]):
    """Has its own ``__post_init__``, which does not call ``super()``."""

    account: StreamId = stream()
    amount: int
    seen: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "seen", type(self.account).__name__)

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Any) -> int:
        return state + event.amount

    def handle(self, state: int) -> list[object]:
        return [MoneyDeposited(self.account, self.amount)]


class DepositCountedTwice(DepositCounted):
    def __post_init__(self) -> None:
        super().__post_init__()  # the check runs again: harmless


def test_an_own_post_init_still_gets_checked_stream_ids() -> None:
    cmd = DepositCounted(account="  account-1 ", amount=5)  # type: ignore[arg-type]
    assert (cmd.account, type(cmd.account), cmd.seen) == ("account-1", StreamId, "StreamId")
    with pytest.raises(InvalidStreamId, match=r"DepositCounted\.account: stream id 'a\*'"):
        DepositCounted(account="a*", amount=5)  # type: ignore[arg-type]
    assert DepositCountedTwice(account=" b ", amount=1).account == "b"  # type: ignore[arg-type]


def test_a_command_with_its_own_post_init_executes() -> None:
    """It used to fail with a misleading UndeclaredStream: the padded id was never trimmed."""
    store = InMemoryEventStore()
    result = execute(store, DepositCounted(account=" account-1", amount=5))  # type: ignore[arg-type]
    assert [e.stream_id for e in result.events] == ["account-1"]


def test_an_own_init_is_followed_by_the_check() -> None:
    class Manual(Command[int]):
        account: StreamId = stream()

        def __init__(self, account: str) -> None:
            object.__setattr__(self, "account", account)

    assert type(Manual(" m ").account) is StreamId
    with pytest.raises(InvalidStreamId, match=r"Manual\.account"):
        Manual("m?")
