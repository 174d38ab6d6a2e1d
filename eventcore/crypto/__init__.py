"""Encryption at rest and crypto-shredding (``pip install eventcore[crypto]``).

Personal fields of events are encrypted with AES-GCM under a key of their **data subject**
(the person the event is about): the field marked with ``@event(subject=...)``, or the
stream. Forgetting a subject destroys its keys; its events then read back as
:class:`Forgotten` placeholders, everyone else's stay readable, and the log itself is never
rewritten.

>>> from dataclasses import dataclass
>>> from eventcore import EventTypes, InMemoryEventStore, StreamId, event
>>> @event(subject="customer", personal=("email",))
... @dataclass(frozen=True)
... class EmailChanged:
...     account: StreamId
...     customer: str
...     email: str
>>> keys = InMemoryKeyStore()
>>> store = InMemoryEventStore(events=EventTypes([EmailChanged], encryption=Encryption(keys)))
>>> account = StreamId("account-1")
>>> _ = store.append({account: 0}, [EmailChanged(account, "c-1", "ada@example.org")])
>>> [r.event.email for r in store.read_all()]
['ada@example.org']
>>> keys.forget("c-1")
1
>>> [(r.event_type, r.event.subject, r.event.forgotten) for r in store.read_all()]
[('EmailChanged', 'c-1', ('email',))]

Without an encryption, a store refuses classes that declare personal data
(:class:`~eventcore.errors.ConfigurationError`): EventCore never stores them in plaintext.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventcore.crypto.keys import (
    DataKey,
    InMemoryKeyStore,
    KeyStore,
    MissingKey,
    SubjectForgotten,
)
from eventcore.crypto.sealing import Encryption, Forgotten

if TYPE_CHECKING:
    from eventcore.crypto.postgres import PostgresKeyStore
    from eventcore.crypto.sqlite import SqliteKeyStore

__all__ = [
    "DataKey",
    "Encryption",
    "Forgotten",
    "InMemoryKeyStore",
    "KeyStore",
    "MissingKey",
    "PostgresKeyStore",
    "SqliteKeyStore",
    "SubjectForgotten",
]


def __getattr__(name: str) -> Any:
    """The database-backed key stores, imported on first use (PostgreSQL needs psycopg)."""
    if name == "SqliteKeyStore":
        from eventcore.crypto.sqlite import SqliteKeyStore

        return SqliteKeyStore
    if name == "PostgresKeyStore":
        from eventcore.crypto.postgres import PostgresKeyStore

        return PostgresKeyStore
    raise AttributeError(f"module 'eventcore.crypto' has no attribute {name!r}")
