"""The PostgreSQL event store (needs the ``postgres`` extra: ``pip install eventcore[postgres]``).

>>> from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
>>> config = PostgresConfig.from_env({"EVENTCORE_POSTGRES_URL": "postgresql://app@db/shop"})
>>> config.address
'db:5432'

``store = PostgresEventStore(config)`` then works like every other store; see
``book/postgresql.md`` for configuration, the ordering guarantee and the tuning knobs.
"""

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the PostgreSQL store needs psycopg 3 and psycopg-pool; install them with "
        "pip install 'eventcore[postgres]'"
    ) from exc

from eventcore.stores.postgres.aio import (
    AsyncPostgresDatabase,
    AsyncPostgresEventStore,
    AsyncPostgresTransaction,
)
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.database import PostgresDatabase
from eventcore.stores.postgres.store import PostgresEventStore, PostgresTransaction

__all__ = [
    "AsyncPostgresDatabase",
    "AsyncPostgresEventStore",
    "AsyncPostgresTransaction",
    "PostgresConfig",
    "PostgresDatabase",
    "PostgresEventStore",
    "PostgresTransaction",
]
