"""A minimal bank shared by the tests: accounts are streams, money moves between them.

Simpler than :mod:`eventcore.examples.bank` on purpose (no account opening), so that models
in property tests stay small: a balance is the deposits minus the withdrawals of a stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eventcore import BusinessRuleViolation, Command, EventStore, StreamId, require, stream


@dataclass(frozen=True)
class MoneyDeposited:
    account: StreamId
    amount: int


@dataclass(frozen=True)
class MoneyWithdrawn:
    account: StreamId
    amount: int


EVENTS = (MoneyDeposited, MoneyWithdrawn)


class InsufficientFunds(BusinessRuleViolation):
    """A withdrawal or transfer asked for more than the account holds."""

    def __init__(self, account: StreamId, balance: int, amount: int) -> None:
        self.account = account
        self.balance = balance
        self.amount = amount
        super().__init__(f"{account} holds {balance}, cannot withdraw {amount}")


Balances = Mapping[StreamId, int]


def fold(balances: Balances, event: object) -> Balances:
    """Apply one bank event to an immutable mapping of balances."""
    match event:
        case MoneyDeposited(account=account, amount=amount):
            return {**balances, account: balances.get(account, 0) + amount}
        case MoneyWithdrawn(account=account, amount=amount):
            return {**balances, account: balances.get(account, 0) - amount}
    return balances


class BankCommand(Command[Balances]):
    """Commands over balances: state starts empty and folds every bank event."""

    __abstract__ = True

    def initial_state(self) -> Balances:
        return {}

    def apply(self, state: Balances, event: object) -> Balances:
        return fold(state, event)


class Deposit(BankCommand):
    account: StreamId = stream()
    amount: int

    def handle(self, state: Balances) -> list[object]:
        require(self.amount > 0, "amount must be positive")
        return [MoneyDeposited(self.account, self.amount)]


class Withdraw(BankCommand):
    account: StreamId = stream()
    amount: int

    def handle(self, state: Balances) -> list[object]:
        require(self.amount > 0, "amount must be positive")
        balance = state.get(self.account, 0)
        require(balance >= self.amount, InsufficientFunds(self.account, balance, self.amount))
        return [MoneyWithdrawn(self.account, self.amount)]


class Transfer(BankCommand):
    source: StreamId = stream()
    target: StreamId = stream()
    amount: int

    def handle(self, state: Balances) -> list[object]:
        require(self.amount > 0, "amount must be positive")
        balance = state.get(self.source, 0)
        require(balance >= self.amount, InsufficientFunds(self.source, balance, self.amount))
        return [MoneyWithdrawn(self.source, self.amount), MoneyDeposited(self.target, self.amount)]


def balances_in(store: EventStore, *accounts: StreamId) -> dict[StreamId, int]:
    """Fold the stored events of ``accounts`` (read through the store protocol)."""
    out: dict[StreamId, int] = {}
    for account in accounts:
        state: Balances = {}
        for rec in store.read_stream(account):
            state = fold(state, rec.event)
        out[account] = state.get(account, 0)
    return out
