"""A small bank: each account is a stream, and a transfer changes two streams atomically.

The events are plain frozen dataclasses whose ``account: StreamId`` field names their stream.
Every command shares one immutable state, :class:`Balances`, folded from the events of the
streams it declares. ``Transfer`` declares two streams, so ``execute`` reads both, checks
both versions at append and writes its two events together or not at all.

>>> from eventcore import InMemoryEventStore, execute
>>> store = InMemoryEventStore()
>>> _ = execute(store, OpenAccount(account="account-alice", owner="Alice", initial_deposit=100))
>>> _ = execute(store, OpenAccount(account="account-bob", owner="Bob"))
>>> result = execute(store, Transfer(source="account-alice", target="account-bob", amount=30))
>>> for e in result.events:
...     print(e.position, e.stream_id, e.stream_version, e.event_type)
4 account-alice 3 MoneyWithdrawn
5 account-bob 2 MoneyDeposited
>>> balance(store, "account-alice"), balance(store, "account-bob")
(70, 30)
>>> execute(store, Withdraw(account="account-bob", amount=50))
Traceback (most recent call last):
...
eventcore.examples.bank.InsufficientFunds: account-bob holds 30, cannot withdraw 50
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eventcore.commands import Command, require, stream
from eventcore.errors import BusinessRuleViolation
from eventcore.store import EventStore
from eventcore.types import StreamId

__all__ = [
    "EVENTS",
    "AccountOpened",
    "Balances",
    "BankCommand",
    "Deposit",
    "InsufficientFunds",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "OpenAccount",
    "Transfer",
    "UnknownAccount",
    "Withdraw",
    "balance",
    "fold",
]


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountOpened:
    """An account was opened for ``owner``. The first event of every account stream."""

    account: StreamId
    owner: str


@dataclass(frozen=True)
class MoneyDeposited:
    """``amount`` was credited to ``account``."""

    account: StreamId
    amount: int


@dataclass(frozen=True)
class MoneyWithdrawn:
    """``amount`` was debited from ``account``."""

    account: StreamId
    amount: int


EVENTS: tuple[type, ...] = (AccountOpened, MoneyDeposited, MoneyWithdrawn)
"""The bank's event classes: pass them to a store (``events=EVENTS``) that reads old files."""


# -- errors -------------------------------------------------------------------------------


class InsufficientFunds(BusinessRuleViolation):
    """A withdrawal or transfer asked for more than the account holds."""

    def __init__(self, account: StreamId, balance: int, amount: int) -> None:
        self.account = account
        self.balance = balance
        self.amount = amount
        super().__init__(f"{account} holds {balance}, cannot withdraw {amount}")


class UnknownAccount(BusinessRuleViolation):
    """A command named an account that was never opened."""

    def __init__(self, account: StreamId) -> None:
        self.account = account
        super().__init__(f"{account} is not an open account; open it with OpenAccount first")


# -- state --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Balances:
    """What a bank command knows about the accounts it read: which are open, what they hold.

    An immutable value: ``opened``, ``credit`` and ``debit`` return a new ``Balances``.

    >>> b = Balances().opened(StreamId("a")).credit(StreamId("a"), 10)
    >>> b[StreamId("a")], b.is_open(StreamId("a")), b[StreamId("z")]
    (10, True, 0)
    """

    accounts: frozenset[StreamId] = frozenset()
    amounts: Mapping[StreamId, int] = field(default_factory=dict, hash=False)

    def __getitem__(self, account: StreamId) -> int:
        """The balance of ``account`` (0 for an account not seen)."""
        return self.amounts.get(account, 0)

    def is_open(self, account: StreamId) -> bool:
        """Whether ``account`` has been opened."""
        return account in self.accounts

    def opened(self, account: StreamId) -> Balances:
        """These balances with ``account`` open."""
        return Balances(self.accounts | {account}, self.amounts)

    def credit(self, account: StreamId, amount: int) -> Balances:
        """These balances with ``amount`` added to ``account``."""
        return Balances(self.accounts, {**self.amounts, account: self[account] + amount})

    def debit(self, account: StreamId, amount: int) -> Balances:
        """These balances with ``amount`` taken from ``account``."""
        return Balances(self.accounts, {**self.amounts, account: self[account] - amount})


def fold(balances: Balances, event: object) -> Balances:
    """Apply one bank event to ``balances`` (other events leave them unchanged)."""
    match event:
        case AccountOpened(account=account):
            return balances.opened(account)
        case MoneyDeposited(account=account, amount=amount):
            return balances.credit(account, amount)
        case MoneyWithdrawn(account=account, amount=amount):
            return balances.debit(account, amount)
    return balances


# -- commands -----------------------------------------------------------------------------


class BankCommand(Command[Balances]):
    """The base of the bank's commands: they all fold account events into :class:`Balances`."""

    __abstract__ = True

    def initial_state(self) -> Balances:
        return Balances()

    def apply(self, balances: Balances, event: object) -> Balances:
        return fold(balances, event)


class OpenAccount(BankCommand):
    """Open ``account`` for ``owner``, optionally with a first deposit."""

    account: StreamId = stream()
    owner: str
    initial_deposit: int = 0

    def handle(self, balances: Balances) -> list[object]:
        require(not balances.is_open(self.account), f"{self.account} is already open")
        require(self.initial_deposit >= 0, "the initial deposit cannot be negative")
        events: list[object] = [AccountOpened(self.account, self.owner)]
        if self.initial_deposit:
            events.append(MoneyDeposited(self.account, self.initial_deposit))
        return events


class Deposit(BankCommand):
    """Credit ``amount`` to an open account."""

    account: StreamId = stream()
    amount: int

    def handle(self, balances: Balances) -> list[object]:
        require(balances.is_open(self.account), UnknownAccount(self.account))
        require(self.amount > 0, "amount must be positive")
        return [MoneyDeposited(self.account, self.amount)]


class Withdraw(BankCommand):
    """Debit ``amount`` from an open account that holds at least that much."""

    account: StreamId = stream()
    amount: int

    def handle(self, balances: Balances) -> list[object]:
        require(balances.is_open(self.account), UnknownAccount(self.account))
        require(self.amount > 0, "amount must be positive")
        funds = balances[self.account]
        require(funds >= self.amount, InsufficientFunds(self.account, funds, self.amount))
        return [MoneyWithdrawn(self.account, self.amount)]


class Transfer(BankCommand):
    """Move ``amount`` from ``source`` to ``target``: two streams, one atomic append."""

    source: StreamId = stream()
    target: StreamId = stream()
    amount: int

    def handle(self, balances: Balances) -> list[object]:
        require(self.source != self.target, "source and target must be different accounts")
        require(balances.is_open(self.source), UnknownAccount(self.source))
        require(balances.is_open(self.target), UnknownAccount(self.target))
        require(self.amount > 0, "amount must be positive")
        funds = balances[self.source]
        require(funds >= self.amount, InsufficientFunds(self.source, funds, self.amount))
        return [MoneyWithdrawn(self.source, self.amount), MoneyDeposited(self.target, self.amount)]


# -- queries ------------------------------------------------------------------------------


def balance(store: EventStore, account: str) -> int:
    """The current balance of ``account``, folded from its stream (0 if it does not exist)."""
    sid = StreamId(account)
    state = Balances()
    for recorded in store.read_stream(sid):
        state = fold(state, recorded.event)
    return state[sid]
