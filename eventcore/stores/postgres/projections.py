"""Checkpoints, dead letters and leadership for projections on PostgreSQL.

:class:`PostgresCheckpointStore` and :class:`PostgresDeadLetterStore` keep their rows in
the store's schema (tables ``checkpoints`` and ``dead_letters``, created by migration 3)
and use the store's connection pool. The checkpoint store is transactional:
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
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from eventcore.errors import ConfigurationError, LeadershipUnavailable, StoreFailure
from eventcore.projections.checkpoints import check_name, check_position
from eventcore.projections.dead_letters import DeadLetter
from eventcore.stores.postgres.store import PostgresEventStore

__all__ = ["PostgresCheckpointStore", "PostgresDeadLetterStore", "PostgresLeadership"]

Connection = psycopg.Connection[TupleRow]


def _check_store(store: object, who: str) -> PostgresEventStore:
    if not isinstance(store, PostgresEventStore):
        raise ConfigurationError(f"{who} takes a PostgresEventStore, got {type(store).__name__}")
    return store


class _Tables:
    """Shared plumbing: the store's pool, its schema and its error translation."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        self.schema = sql.Identifier(store.config.schema)
        self.database_key: tuple[str, ...] = (
            "postgres",
            store.config.masked_dsn,
            store.config.schema,
        )

    def q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=self.schema)

    def fetch(self, operation: str, query: sql.Composed, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.store._fetch(operation, query, params)

    def execute(self, operation: str, query: sql.Composed, params: tuple[Any, ...]) -> int:
        with self.store._connection(operation) as conn:
            try:
                return conn.execute(query, params).rowcount
            except psycopg.Error as exc:
                raise self.store._translate(operation, exc) from exc

    @contextlib.contextmanager
    def transaction(self, operation: str, *, translate: bool = True) -> Iterator[Connection]:
        """BEGIN … COMMIT on a pooled connection. Errors of BEGIN and COMMIT become
        StoreFailure; so do driver errors inside the block when ``translate``."""
        store = self.store
        with store._connection(operation) as conn:
            try:
                conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            except psycopg.Error as exc:
                raise store._translate(operation, exc) from exc
            try:
                yield conn
            except psycopg.Error as exc:
                _rollback_quietly(conn)
                if translate:
                    raise store._translate(operation, exc) from exc
                raise
            except BaseException:
                _rollback_quietly(conn)
                raise
            if conn.info.transaction_status == TransactionStatus.INERROR:
                _rollback_quietly(conn)
                raise StoreFailure(
                    "commit",
                    "a statement inside the projection transaction failed, so PostgreSQL "
                    "rolled it back; nothing was committed",
                )
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                raise store._translate("commit", exc) from exc


class PostgresCheckpointStore:
    """Checkpoints in ``<schema>.checkpoints``; transactional (see the module docstring).

    A lower ``save`` is ignored.
    """

    def __init__(self, store: PostgresEventStore) -> None:
        self._t = _Tables(_check_store(store, "PostgresCheckpointStore"))
        self.database_key = self._t.database_key
        self._load = self._t.q("SELECT position FROM {schema}.checkpoints WHERE name = %s")
        self._save = self._t.q(
            "INSERT INTO {schema}.checkpoints AS c (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now() "
            "WHERE c.position < EXCLUDED.position"
        )
        self._lock_row = self._t.q(
            "SELECT position FROM {schema}.checkpoints WHERE name = %s FOR UPDATE"
        )
        self._save_expected = self._t.q(
            "INSERT INTO {schema}.checkpoints AS c (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now() "
            "WHERE c.position IS NOT DISTINCT FROM %s RETURNING position"
        )

    def __repr__(self) -> str:
        return f"PostgresCheckpointStore(schema={self._t.store.config.schema!r})"

    def load(self, name: str) -> int | None:
        rows = self._t.fetch("load checkpoint", self._load, (check_name(name),))
        return int(rows[0][0]) if rows else None

    def save(self, name: str, position: int) -> None:
        check_name(name)
        check_position(position)
        self._t.execute("save checkpoint", self._save, (name, position))

    def reset(self, name: str) -> None:
        """Forget the checkpoint of ``name`` (the next run starts from the beginning)."""
        query = self._t.q("DELETE FROM {schema}.checkpoints WHERE name = %s")
        self._t.execute("reset checkpoint", query, (check_name(name),))

    def transaction(self) -> contextlib.AbstractContextManager[Connection]:
        """A READ COMMITTED transaction on a pooled connection; commits when the block ends,
        rolls back if it raises. Do not commit inside it."""
        return self._t.transaction("projection transaction", translate=False)

    @contextlib.contextmanager
    def savepoint(self, tx: Connection) -> Iterator[None]:
        """A savepoint in ``tx``, rolled back alone if the block raises."""
        try:
            tx.execute("SAVEPOINT eventcore_event")
        except psycopg.Error as exc:
            raise self._t.store._translate("savepoint", exc) from exc
        try:
            yield
        except BaseException:
            try:
                tx.execute("ROLLBACK TO SAVEPOINT eventcore_event")
                tx.execute("RELEASE SAVEPOINT eventcore_event")
            except psycopg.Error as exc:
                raise self._t.store._translate("savepoint", exc) from exc
            raise
        try:
            tx.execute("RELEASE SAVEPOINT eventcore_event")
        except psycopg.Error as exc:
            raise self._t.store._translate("savepoint", exc) from exc

    def save_in(self, tx: Connection, name: str, position: int, *, expected: int | None) -> None:
        """Save inside ``tx`` if the checkpoint is still ``expected`` (locking its row),
        else raise :class:`~eventcore.errors.LeadershipUnavailable` (the caller rolls back)."""
        check_name(name)
        check_position(position)
        try:
            row = tx.execute(self._lock_row, (name,)).fetchone()
            current = None if row is None else int(row[0])
            if current == expected:
                saved = tx.execute(self._save_expected, (name, position, expected)).fetchone()
                if saved is not None:
                    return
                row = tx.execute(self._load, (name,)).fetchone()
                current = None if row is None else int(row[0])
        except psycopg.Error as exc:
            raise self._t.store._translate("save checkpoint", exc) from exc
        raise LeadershipUnavailable(
            name,
            f"its checkpoint moved from {expected} to {current} while this instance was "
            "applying events (did it lose its leadership?); this instance's transaction was "
            "rolled back, so nothing was applied twice",
        )


_LETTER_COLUMNS: Final = (
    "projection, position, event_id, stream_id, event_type, error_type, message, traceback, "
    "attempts, recorded_at"
)


class PostgresDeadLetterStore:
    """Dead letters in ``<schema>.dead_letters``."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._t = _Tables(_check_store(store, "PostgresDeadLetterStore"))
        self.database_key = self._t.database_key
        self._insert = self._t.q(
            "INSERT INTO {schema}.dead_letters (" + _LETTER_COLUMNS + ") "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (projection, position) DO UPDATE SET event_id = EXCLUDED.event_id, "
            "stream_id = EXCLUDED.stream_id, event_type = EXCLUDED.event_type, "
            "error_type = EXCLUDED.error_type, message = EXCLUDED.message, "
            "traceback = EXCLUDED.traceback, attempts = EXCLUDED.attempts, "
            "recorded_at = EXCLUDED.recorded_at"
        )
        self._select = "SELECT " + _LETTER_COLUMNS + " FROM {schema}.dead_letters "

    def __repr__(self) -> str:
        return f"PostgresDeadLetterStore(schema={self._t.store.config.schema!r})"

    def record(self, letter: DeadLetter) -> None:
        self._t.execute("record dead letter", self._insert, _row(letter))

    def record_in(self, tx: Connection, letter: DeadLetter) -> None:
        """Record ``letter`` inside an open transaction on the same database."""
        try:
            tx.execute(self._insert, _row(letter))
        except psycopg.Error as exc:
            raise self._t.store._translate("record dead letter", exc) from exc

    def list(self, name: str) -> builtins.list[DeadLetter]:
        query = self._t.q(self._select + "WHERE projection = %s ORDER BY position")
        return [_letter(r) for r in self._t.fetch("list dead letters", query, (check_name(name),))]

    def get(self, name: str, position: int) -> DeadLetter | None:
        query = self._t.q(self._select + "WHERE projection = %s AND position = %s")
        rows = self._t.fetch("get dead letter", query, (check_name(name), check_position(position)))
        return _letter(rows[0]) if rows else None

    def discard(self, name: str, position: int | None = None) -> int:
        query, params = self._discard(name, position)
        return self._t.execute("discard dead letters", query, params)

    def discard_in(self, tx: Connection, name: str, position: int | None = None) -> int:
        """Discard inside an open transaction on the same database."""
        query, params = self._discard(name, position)
        try:
            return tx.execute(query, params).rowcount
        except psycopg.Error as exc:
            raise self._t.store._translate("discard dead letters", exc) from exc

    def _discard(self, name: str, position: int | None) -> tuple[sql.Composed, tuple[Any, ...]]:
        if position is None:
            return (
                self._t.q("DELETE FROM {schema}.dead_letters WHERE projection = %s"),
                (check_name(name),),
            )
        return (
            self._t.q("DELETE FROM {schema}.dead_letters WHERE projection = %s AND position = %s"),
            (check_name(name), check_position(position)),
        )


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

    def __init__(self, store: PostgresEventStore, *, keepalive_idle: int = 10) -> None:
        self._store = _check_store(store, "PostgresLeadership")
        self._keepalive_idle = keepalive_idle
        self._held: dict[str, Connection] = {}

    def __repr__(self) -> str:
        schema = self._store.config.schema
        return f"PostgresLeadership(schema={schema!r}, held={sorted(self._held)})"

    def lock_text(self, name: str) -> str:
        """The text hashed (``hashtextextended``) into the advisory-lock key of ``name``."""
        return f"eventcore/{self._store.config.schema}/projection/{check_name(name)}"

    def acquire(self, name: str) -> bool:
        if name in self._held:
            return False
        config = self._store.config
        kwargs = config.connect_kwargs()
        kwargs["application_name"] = f"{config.application_name}:lead:{name}"[:63]
        kwargs.update(
            keepalives=1,
            keepalives_idle=self._keepalive_idle,
            keepalives_interval=5,
            keepalives_count=3,
        )
        try:
            conn: Connection = psycopg.connect(config.dsn, **kwargs)
        except psycopg.Error as exc:
            raise self._store._cannot_connect("acquire leadership", exc) from exc
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.lock_text(name),)
            ).fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise self._store._translate("acquire leadership", exc) from exc
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
        rows = self._store._fetch("leadership holder", query, (self.lock_text(name),))
        if not rows:
            return None
        pid, app, client = rows[0]
        return f"server pid {pid}, application {app!r}, client {client}"

    def close(self) -> None:
        """Release every projection held by this object."""
        for name in list(self._held):
            self.release(name)

    def __enter__(self) -> PostgresLeadership:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rollback_quietly(conn: Connection) -> None:
    with contextlib.suppress(psycopg.Error):
        if not conn.closed:
            conn.execute("ROLLBACK")
