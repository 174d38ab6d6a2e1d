"""The SQLite engine: :class:`SqliteDatabase` owns the file, :class:`SqliteEventStore` (and the
checkpoint, dead-letter and snapshot stores) are thin layers over it.

>>> from eventcore.stores.sqlite import SqliteDatabase, SqliteEventStore
>>> with SqliteDatabase(":memory:") as db:
...     SqliteEventStore(db).head()
0
"""

from eventcore.stores.sqlite.aio import AsyncSqliteEventStore
from eventcore.stores.sqlite.database import SCHEMA_VERSION, SqliteDatabase, Synchronous
from eventcore.stores.sqlite.plans import COLUMNS
from eventcore.stores.sqlite.store import SqliteEventStore

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "AsyncSqliteEventStore",
    "SqliteDatabase",
    "SqliteEventStore",
    "Synchronous",
]
