"""Checkpoints, dead letters and leadership for projections on PostgreSQL.

:class:`PostgresCheckpointStore` and :class:`PostgresDeadLetterStore` keep their rows in
the store's schema (tables ``checkpoints`` and ``dead_letters``, created by migration 3);
like :class:`PostgresLeadership` they are thin layers over the event store's
:class:`~eventcore.stores.postgres.PostgresDatabase` (its pool and error translation), or
over a database of their own when given a configuration. The checkpoint store is transactional:
``transaction()`` yields the psycopg connection in which a
:class:`~eventcore.projections.TransactionalProjector` writes its read model (any table of
the same database), and the runner saves the checkpoint in the same transaction.

:class:`PostgresLeadership` takes a session advisory lock per projection on a dedicated
connection (with TCP keepalives); the server releases it when the connection closes or
dies, so a crashed holder hands over within the keepalive window.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator
from datetime import UTC
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from eventcore.errors import ConfigurationError, LeadershipUnavailable
from eventcore.projections.checkpoints import check_name, check_position
from eventcore.projections.dead_letters import DeadLetter
from eventcore.stores._plan import Fetch, Plan, Query
from eventcore.stores.postgres.config import PostgresConfig
from eventcore.stores.postgres.database import PostgresDatabase
from eventcore.stores.postgres.store import PostgresEventStore, open_database

__all__ = [
    "CheckpointSQL",
    "DeadLetterSQL",
    "PostgresCheckpointStore",
    "PostgresDeadLetterStore",
    "PostgresLeadership",
]

Connection = psycopg.Connection[TupleRow]


def _database(store: object, who: str) -> tuple[PostgresDatabase, bool]:
    if isinstance(store, PostgresEventStore):
        return store.database, False
    if isinstance(store, (PostgresDatabase, PostgresConfig, str)):
        return open_database(store, who)
    raise ConfigurationError(
        f"{who} takes a PostgresEventStore, a PostgresDatabase, a PostgresConfig or a DSN, got "
        f"{type(store).__name__}"
    )


def _one(query: sql.Composable | str, params: tuple[Any, ...], fetch: Fetch) -> Plan[Any]:
    result = yield Query(query, params, fetch)
    return result


class _Tables:
    """A store's database, whether it closes it, and its statements."""

    def __init__(self, store: object, who: str) -> None:
        self.db, self.owns = _database(store, who)
        self.schema = sql.Identifier(self.db.config.schema)
        self.database_key: tuple[str, ...] = self.db.key

    def q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=self.schema)

    def fetch(self, operation: str, query: sql.Composed, params: tuple[Any, ...] = ()) -> list[Any]:
        rows: list[Any] = self.db.read(operation, _one(query, params, "all"))
        return rows

    def execute(self, operation: str, query: sql.Composed, params: tuple[Any, ...]) -> int:
        count: int = self.db.write(operation, _one(query, params, "count"))
        return count

    def run_in(
        self,
        tx: Connection,
        operation: str,
        query: sql.Composable | str,
        params: tuple[Any, ...],
        fetch: Fetch,
    ) -> Any:
        return self.db.run_in(tx, operation, _one(query, params, fetch))

    def close(self) -> None:
        if self.owns:
            self.db.close()


class CheckpointSQL:
    """The checkpoint statements of one schema, as plans: the one SQL definition that the
    blocking store (:class:`PostgresCheckpointStore`) and the asyncio one
    (:class:`~eventcore.stores.postgres.projections_aio.AsyncPostgresCheckpointStore`) run."""

    def __init__(self, schema: sql.Identifier) -> None:
        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(schema=schema)

        self._load = q("SELECT position FROM {schema}.checkpoints WHERE name = %s")
        self._save = q(
            "INSERT INTO {schema}.checkpoints AS c (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now() "
            "WHERE c.position < EXCLUDED.position"
        )
        self._reset = q("DELETE FROM {schema}.checkpoints WHERE name = %s")
        self._names = q('SELECT name, position FROM {schema}.checkpoints ORDER BY name COLLATE "C"')
        self._lock_row = q("SELECT position FROM {schema}.checkpoints WHERE name = %s FOR UPDATE")
        self._save_expected = q(
            "INSERT INTO {schema}.checkpoints AS c (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now() "
            "WHERE c.position IS NOT DISTINCT FROM %s RETURNING position"
        )

    def load(self, name: str) -> Plan[int | None]:
        return _position(_one(self._load, (check_name(name),), "one"))

    def save(self, name: str, position: int) -> Plan[None]:
        return _one(self._save, (check_name(name), check_position(position)), "count")

    def reset(self, name: str) -> Plan[None]:
        return _one(self._reset, (check_name(name),), "count")

    def names(self) -> Plan[dict[str, int]]:
        """Every saved checkpoint, name to position, in name order."""
        return _names(_one(self._names, (), "all"))

    def save_in(self, name: str, position: int, expected: int | None) -> Plan[None]:
        """Inside a transaction: save if the checkpoint is still ``expected``, else raise
        :class:`~eventcore.errors.LeadershipUnavailable`."""
        return self._save_in(check_name(name), check_position(position), expected)

    def _save_in(self, name: str, position: int, expected: int | None) -> Plan[None]:
        row = yield Query(self._lock_row, (name,), "one")
        current = None if row is None else int(row[0])
        if current == expected:
            saved = yield Query(self._save_expected, (name, position, expected), "one")
            if saved is not None:
                return
            row = yield Query(self._load, (name,), "one")
            current = None if row is None else int(row[0])
        raise LeadershipUnavailable(
            name,
            f"its checkpoint moved from {expected} to {current} while this instance was "
            "applying events (did it lose its leadership?); this instance's transaction was "
            "rolled back, so nothing was applied twice",
        )


def _names(plan: Plan[Any]) -> Plan[dict[str, int]]:
    rows = yield from plan
    return {str(r[0]): int(r[1]) for r in rows}


def _position(plan: Plan[Any]) -> Plan[int | None]:
    row = yield from plan
    return None if row is None else int(row[0])


class PostgresCheckpointStore:
    """Checkpoints in ``<schema>.checkpoints``; transactional (see the module docstring).

    A lower ``save`` is ignored.
    """

    def __init__(self, store: PostgresEventStore | PostgresDatabase | PostgresConfig | str) -> None:
        self._t = _Tables(store, "PostgresCheckpointStore")
        self.database = self._t.db
        self.database_key = self._t.database_key
        self.sql = CheckpointSQL(self._t.schema)

    def __repr__(self) -> str:
        return f"PostgresCheckpointStore(schema={self.database.config.schema!r})"

    def load(self, name: str) -> int | None:
        return self.database.read("load checkpoint", self.sql.load(name))

    def save(self, name: str, position: int) -> None:
        self.database.write("save checkpoint", self.sql.save(name, position))

    def names(self) -> dict[str, int]:
        """Every saved checkpoint, name to position, in name order (for ``eventcore``)."""
        return self.database.read("list checkpoints", self.sql.names())

    def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name`` (the next run starts from the beginning)."""
        self.database.write("reset checkpoint", self.sql.reset(name))

    def transaction(self) -> contextlib.AbstractContextManager[Connection]:
        """A READ COMMITTED transaction on a pooled connection; commits when the block ends,
        rolls back if it raises. Do not commit inside it."""
        return self.database.transaction("projection transaction")

    @contextlib.contextmanager
    def savepoint(self, tx: Connection) -> Iterator[None]:
        """A savepoint in ``tx``, rolled back alone if the block raises."""
        self.database.run_in(tx, "savepoint", _one(SAVEPOINT, (), "none"))
        try:
            yield
        except BaseException:
            self.database.run_in(tx, "savepoint", _one(ROLLBACK_TO_SAVEPOINT, (), "none"))
            self.database.run_in(tx, "savepoint", _one(RELEASE_SAVEPOINT, (), "none"))
            raise
        self.database.run_in(tx, "savepoint", _one(RELEASE_SAVEPOINT, (), "none"))

    def save_in(self, tx: Connection, name: str, position: int, *, expected: int | None) -> None:
        """Save inside ``tx`` if the checkpoint is still ``expected`` (locking its row),
        else raise :class:`~eventcore.errors.LeadershipUnavailable` (the caller rolls back)."""
        self.database.run_in(tx, "save checkpoint", self.sql.save_in(name, position, expected))

    def close(self) -> None:
        """Close the database if this store opened it."""
        self._t.close()


SAVEPOINT: Final = "SAVEPOINT eventcore_event"
ROLLBACK_TO_SAVEPOINT: Final = "ROLLBACK TO SAVEPOINT eventcore_event"
RELEASE_SAVEPOINT: Final = "RELEASE SAVEPOINT eventcore_event"

_LETTER_COLUMNS: Final = (
    "projection, position, event_id, stream_id, event_type, error_type, message, traceback, "
    "attempts, recorded_at"
)


class DeadLetterSQL:
    """The dead-letter statements of one schema, as plans (shared by the blocking and the
    asyncio dead-letter stores)."""

    def __init__(self, schema: sql.Identifier) -> None:
        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(schema=schema)

        self._insert = q(
            "INSERT INTO {schema}.dead_letters (" + _LETTER_COLUMNS + ") "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (projection, position) DO UPDATE SET event_id = EXCLUDED.event_id, "
            "stream_id = EXCLUDED.stream_id, event_type = EXCLUDED.event_type, "
            "error_type = EXCLUDED.error_type, message = EXCLUDED.message, "
            "traceback = EXCLUDED.traceback, attempts = EXCLUDED.attempts, "
            "recorded_at = EXCLUDED.recorded_at"
        )
        select = "SELECT " + _LETTER_COLUMNS + " FROM {schema}.dead_letters "
        self._list = q(select + "WHERE projection = %s ORDER BY position")
        self._get = q(select + "WHERE projection = %s AND position = %s")
        self._discard_all = q("DELETE FROM {schema}.dead_letters WHERE projection = %s")
        self._names = q(
            "SELECT projection, count(*) FROM {schema}.dead_letters GROUP BY projection "
            'ORDER BY projection COLLATE "C"'
        )
        self._discard_one = q(
            "DELETE FROM {schema}.dead_letters WHERE projection = %s AND position = %s"
        )

    def record(self, letter: DeadLetter) -> Plan[None]:
        return _one(self._insert, _row(letter), "none")

    def list(self, name: str) -> Plan[builtins.list[DeadLetter]]:
        return _letters(_one(self._list, (check_name(name),), "all"))

    def names(self) -> Plan[dict[str, int]]:
        """The projections that have dead letters, name to how many, in name order."""
        return _names(_one(self._names, (), "all"))

    def get(self, name: str, position: int) -> Plan[DeadLetter | None]:
        params = (check_name(name), check_position(position))
        return _first(_letters(_one(self._get, params, "all")))

    def discard(self, name: str, position: int | None = None) -> Plan[int]:
        if position is None:
            return _one(self._discard_all, (check_name(name),), "count")
        return _one(self._discard_one, (check_name(name), check_position(position)), "count")


def _letters(plan: Plan[Any]) -> Plan[builtins.list[DeadLetter]]:
    rows = yield from plan
    return [_letter(r) for r in rows]


def _first(plan: Plan[builtins.list[DeadLetter]]) -> Plan[DeadLetter | None]:
    letters = yield from plan
    return letters[0] if letters else None


class PostgresDeadLetterStore:
    """Dead letters in ``<schema>.dead_letters``."""

    def __init__(self, store: PostgresEventStore | PostgresDatabase | PostgresConfig | str) -> None:
        self._t = _Tables(store, "PostgresDeadLetterStore")
        self.database = self._t.db
        self.database_key = self._t.database_key
        self.sql = DeadLetterSQL(self._t.schema)

    def __repr__(self) -> str:
        return f"PostgresDeadLetterStore(schema={self.database.config.schema!r})"

    def record(self, letter: DeadLetter) -> None:
        self.database.write("record dead letter", self.sql.record(letter))

    def record_in(self, tx: Connection, letter: DeadLetter) -> None:
        """Record ``letter`` inside an open transaction on the same database."""
        self.database.run_in(tx, "record dead letter", self.sql.record(letter))

    def list(self, name: str) -> builtins.list[DeadLetter]:
        return self.database.read("list dead letters", self.sql.list(name))

    def names(self) -> dict[str, int]:
        """The projections that have dead letters, name to how many, in name order."""
        return self.database.read("list dead letters", self.sql.names())

    def get(self, name: str, position: int) -> DeadLetter | None:
        return self.database.read("get dead letter", self.sql.get(name, position))

    def discard(self, name: str, position: int | None = None) -> int:
        return int(self.database.write("discard dead letters", self.sql.discard(name, position)))

    def discard_in(self, tx: Connection, name: str, position: int | None = None) -> int:
        """Discard inside an open transaction on the same database."""
        plan = self.sql.discard(name, position)
        return int(self.database.run_in(tx, "discard dead letters", plan))

    def close(self) -> None:
        """Close the database if this store opened it."""
        self._t.close()


def _row(letter: DeadLetter) -> tuple[Any, ...]:
    if not isinstance(letter, DeadLetter):
        raise ConfigurationError(f"record() takes a DeadLetter, got {letter!r}")
    return (
        letter.projection,
        letter.position,
        letter.event_id,
        letter.stream_id,
        letter.event_type,
        letter.error_type,
        letter.message.replace("\x00", "\\x00"),
        letter.traceback.replace("\x00", "\\x00"),
        letter.attempts,
        letter.recorded_at,
    )


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(
        projection=row[0],
        position=int(row[1]),
        event_id=row[2],
        stream_id=row[3],
        event_type=row[4],
        error_type=row[5],
        message=row[6],
        traceback=row[7],
        attempts=int(row[8]),
        recorded_at=row[9].astimezone(UTC),
    )


class PostgresLeadership:
    """Leadership across processes and machines: a session advisory lock per projection,
    each on its own connection (so ``pool_max`` is not affected). Not re-entrant.

    TCP keepalives are set on both ends of that connection (first probe after
    ``keepalive_idle`` seconds, then every 5 s, 3 probes), so when the holder's machine
    vanishes the server drops the session, and the lock, within about
    ``keepalive_idle + 15`` seconds; a holder process that dies hands over at once.
    """

    def __init__(
        self,
        store: PostgresEventStore | PostgresDatabase | PostgresConfig | str,
        *,
        keepalive_idle: int = 10,
    ) -> None:
        self._t = _Tables(store, "PostgresLeadership")
        self.database = self._t.db
        self._keepalive_idle = keepalive_idle
        self._held: dict[str, Connection] = {}

    def __repr__(self) -> str:
        schema = self.database.config.schema
        return f"PostgresLeadership(schema={schema!r}, held={sorted(self._held)})"

    def lock_text(self, name: str) -> str:
        """The text hashed (``hashtextextended``) into the advisory-lock key of ``name``."""
        return f"eventcore/{self.database.config.schema}/projection/{check_name(name)}"

    def acquire(self, name: str) -> bool:
        if name in self._held:
            return False
        config = self.database.config
        conn = self.database.open_connection(
            "acquire leadership",
            application_name=f"{config.application_name}:lead:{name}"[:63],
            keepalives=1,
            keepalives_idle=self._keepalive_idle,
            keepalives_interval=5,
            keepalives_count=3,
        )
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.lock_text(name),)
            ).fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise self.database.translate("acquire leadership", exc) from exc
        if not row or not row[0]:
            conn.close()
            return False
        with contextlib.suppress(psycopg.Error):  # the server notices a vanished holder too
            conn.execute(
                "SELECT set_config('tcp_keepalives_idle', %s, false), "
                "set_config('tcp_keepalives_interval', '5', false), "
                "set_config('tcp_keepalives_count', '3', false)",
                (str(self._keepalive_idle),),
            )
        self._held[name] = conn
        return True

    def release(self, name: str) -> None:
        conn = self._held.pop(name, None)
        if conn is None:
            return
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self.lock_text(name),)
            )
        conn.close()

    def holds(self, name: str) -> bool:
        """Whether this object still holds ``name``: its connection is alive (a session
        lock lasts as long as the session). A dead connection is dropped."""
        conn = self._held.get(name)
        if conn is None:
            return False
        try:
            conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self._held.pop(name, None)
            conn.close()
            return False

    def holder(self, name: str) -> str | None:
        """The server process holding ``name`` (pid, application, client), or None."""
        query = sql.SQL(
            "WITH k AS (SELECT hashtextextended(%s, 0) AS key) "
            "SELECT a.pid, a.application_name, coalesce(a.client_addr::text, 'local') "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, k "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::text::bigint = ((k.key >> 32) & 4294967295) "
            "AND l.objid::text::bigint = (k.key & 4294967295)"
        ).format()
        rows = self._t.fetch("leadership holder", query, (self.lock_text(name),))
        if not rows:
            return None
        pid, app, client = rows[0]
        return f"server pid {pid}, application {app!r}, client {client}"

    def close(self) -> None:
        """Release every projection held by this object (and close the database if this
        object opened it)."""
        for name in list(self._held):
            self.release(name)
        self._t.close()

    def __enter__(self) -> PostgresLeadership:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
