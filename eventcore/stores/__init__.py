"""Event store implementations: in memory, SQLite (the embedded default) and, with the
``postgres`` extra, PostgreSQL."""

from eventcore.stores.memory import InMemoryEventStore
from eventcore.stores.sqlite import SqliteEventStore

__all__ = ["InMemoryEventStore", "SqliteEventStore"]
