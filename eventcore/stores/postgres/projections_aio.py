"""Checkpoints and dead letters on PostgreSQL for asyncio projections (psycopg's
``AsyncConnection``).

The statements are those of the blocking stores (:class:`CheckpointSQL`,
:class:`DeadLetterSQL` in :mod:`eventcore.stores.postgres.projections`): one SQL definition,
two drivers. Both layers sit on an
:class:`~eventcore.stores.postgres.AsyncPostgresDatabase` — the async event store's (shared)
or one of their own. The checkpoint store is transactional: ``transaction()`` yields the
``AsyncConnection`` in which a transactional projector writes its read model (``async def
apply(event, tx)``: ``await tx.execute(...)``), and the runner saves the checkpoint in the
same transaction. Leadership has no async form: pass a blocking
:class:`~eventcore.stores.postgres.PostgresLeadership` (the async runner calls it on a
thread of its own).
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from psycopg import sql

from eventcore.errors import ConfigurationError
from eventcore.projections.dead_letters import DeadLetter
from eventcore.stores._plan import Query
from eventcore.stores.postgres.aio import (
    AsyncConnection,
    AsyncPostgresDatabase,
    AsyncPostgresEventStore,
)
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.projections import (
    RELEASE_SAVEPOINT,
    ROLLBACK_TO_SAVEPOINT,
    SAVEPOINT,
    CheckpointSQL,
    DeadLetterSQL,
)

__all__ = ["AsyncPostgresCheckpointStore", "AsyncPostgresDeadLetterStore"]

Source = AsyncPostgresEventStore | AsyncPostgresDatabase | PostgresConfig | str


def _database(store: object, who: str) -> tuple[AsyncPostgresDatabase, bool]:
    if isinstance(store, AsyncPostgresEventStore):
        return store.database, False
    if isinstance(store, AsyncPostgresDatabase):
        return store, False
    if isinstance(store, (PostgresConfig, str)):
        return AsyncPostgresDatabase(store), True
    raise ConfigurationError(
        f"{who} takes an AsyncPostgresEventStore, an AsyncPostgresDatabase, a PostgresConfig "
        f"or a DSN, got {type(store).__name__}"
    )


def _statement(text: str) -> Any:
    result = yield Query(text, (), "none")
    return result


class _Layer:
    def __init__(self, store: Source, who: str) -> None:
        self.database, self._owns = _database(store, who)
        self.database_key: tuple[str, ...] = self.database.key
        self._schema = sql.Identifier(self.database.config.schema)

    async def _ready(self) -> AsyncPostgresDatabase:
        return await self.database.open()

    async def close(self) -> None:
        """Close the database if this store opened it."""
        if self._owns:
            await self.database.close()

    async def __aenter__(self) -> Any:
        await self._ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncPostgresCheckpointStore(_Layer):
    """Checkpoints in ``<schema>.checkpoints``, awaited; transactional. A lower ``save``
    is ignored."""

    def __init__(self, store: Source) -> None:
        super().__init__(store, "AsyncPostgresCheckpointStore")
        self.sql = CheckpointSQL(self._schema)

    def __repr__(self) -> str:
        return f"AsyncPostgresCheckpointStore(schema={self.database.config.schema!r})"

    async def load(self, name: str) -> int | None:
        plan = self.sql.load(name)
        return await (await self._ready()).read("load checkpoint", plan)

    async def save(self, name: str, position: int) -> None:
        plan = self.sql.save(name, position)
        await (await self._ready()).write("save checkpoint", plan)

    async def names(self) -> dict[str, int]:
        """Every saved checkpoint, name to position, in name order (for ``eventcore``)."""
        return await (await self._ready()).read("list checkpoints", self.sql.names())

    async def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name`` (the next run starts from the beginning)."""
        plan = self.sql.reset(name)
        await (await self._ready()).write("reset checkpoint", plan)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A READ COMMITTED transaction on a pooled connection; commits when the block ends,
        rolls back if it raises. Do not commit inside it."""
        database = await self._ready()
        async with database.transaction("projection transaction") as tx:
            yield tx

    @contextlib.asynccontextmanager
    async def savepoint(self, tx: AsyncConnection) -> AsyncIterator[None]:
        """A savepoint in ``tx``, rolled back alone if the block raises."""
        await self.database.run_in(tx, "savepoint", _statement(SAVEPOINT))
        try:
            yield
        except BaseException:
            await self.database.run_in(tx, "savepoint", _statement(ROLLBACK_TO_SAVEPOINT))
            await self.database.run_in(tx, "savepoint", _statement(RELEASE_SAVEPOINT))
            raise
        await self.database.run_in(tx, "savepoint", _statement(RELEASE_SAVEPOINT))

    async def save_in(
        self, tx: AsyncConnection, name: str, position: int, *, expected: int | None
    ) -> None:
        """Save inside ``tx`` if the checkpoint is still ``expected`` (locking its row),
        else raise :class:`~eventcore.errors.LeadershipUnavailable` (the caller rolls back)."""
        plan = self.sql.save_in(name, position, expected)
        await self.database.run_in(tx, "save checkpoint", plan)


class AsyncPostgresDeadLetterStore(_Layer):
    """Dead letters in ``<schema>.dead_letters``, awaited."""

    def __init__(self, store: Source) -> None:
        super().__init__(store, "AsyncPostgresDeadLetterStore")
        self.sql = DeadLetterSQL(self._schema)

    def __repr__(self) -> str:
        return f"AsyncPostgresDeadLetterStore(schema={self.database.config.schema!r})"

    async def record(self, letter: DeadLetter) -> None:
        plan = self.sql.record(letter)
        await (await self._ready()).write("record dead letter", plan)

    async def record_in(self, tx: AsyncConnection, letter: DeadLetter) -> None:
        """Record ``letter`` inside an open transaction on the same database."""
        await self.database.run_in(tx, "record dead letter", self.sql.record(letter))

    async def list(self, name: str) -> builtins.list[DeadLetter]:
        plan = self.sql.list(name)
        return await (await self._ready()).read("list dead letters", plan)

    async def names(self) -> dict[str, int]:
        """The projections that have dead letters, name to how many, in name order."""
        return await (await self._ready()).read("list dead letters", self.sql.names())

    async def get(self, name: str, position: int) -> DeadLetter | None:
        plan = self.sql.get(name, position)
        return await (await self._ready()).read("get dead letter", plan)

    async def discard(self, name: str, position: int | None = None) -> int:
        plan = self.sql.discard(name, position)
        return int(await (await self._ready()).write("discard dead letters", plan))

    async def discard_in(self, tx: AsyncConnection, name: str, position: int | None = None) -> int:
        """Discard inside an open transaction on the same database."""
        plan = self.sql.discard(name, position)
        return int(await self.database.run_in(tx, "discard dead letters", plan))
