"""Running the versioned migrations of the PostgreSQL store (the scripts themselves, tables,
triggers and the append function, are in :mod:`eventcore.stores.postgres.migrations`).

Migrations run when a store opens. They are idempotent (each version is applied once and
recorded in ``<schema>.migrations``) and serialised across processes by a transaction-level
advisory lock, so two processes opening a fresh database at once are safe. A store that is
already up to date only reads the migrations table (no lock, no DDL privileges needed).
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

from eventcore.errors import ConfigurationError
from eventcore.stores.postgres.migrations import MIGRATIONS

__all__ = [
    "CONFLICT_SQLSTATE",
    "IDEMPOTENCY_SQLSTATE",
    "IMMUTABLE_SQLSTATE",
    "ISOLATION_SQLSTATE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TOMBSTONE_SQLSTATE",
    "TRIGGERS",
    "migrate",
    "schema_version",
]

CONFLICT_SQLSTATE: Final = "EC001"
"""Raised by ``eventcore_append`` on a version conflict; the detail is a JSON list."""
IMMUTABLE_SQLSTATE: Final = "EC002"
"""Raised by the triggers that reject UPDATE, DELETE and TRUNCATE on events."""
ISOLATION_SQLSTATE: Final = "EC003"
"""Raised by ``eventcore_append`` outside READ COMMITTED (its checks need fresh snapshots)."""
TOMBSTONE_SQLSTATE: Final = "EC008"
"""Raised by the tombstone trigger when an event targets a closed or deleted stream; the
detail is a JSON object (stream, state, position, at, reason)."""
IDEMPOTENCY_SQLSTATE: Final = "EC005"
"""Raised by ``eventcore_append`` when an idempotency key comes with another fingerprint; the
detail is a JSON object (key, stored, given)."""

_MIGRATIONS: Final = MIGRATIONS  # read at each call, so a test can patch it

SCHEMA_VERSION: Final = max(version for version, _, _ in _MIGRATIONS)


TRIGGERS: Final = ("events_no_update", "events_no_truncate")
"""The immutability triggers of migration 1 (``verify`` checks they are present and enabled)."""


def stream_lock_prefix(schema: str) -> str:
    """The text put before a stream id when hashing it into an advisory-lock key."""
    return f"eventcore/{schema}/stream/"


def key_lock_prefix(schema: str) -> str:
    """The text put before an idempotency key when hashing it into an advisory-lock key."""
    return f"eventcore/{schema}/key/"


def retention_guard_text(schema: str) -> str:
    """The value of ``eventcore.retention`` that lets ``apply_retention`` delete in
    ``schema`` (set for its own transaction only)."""
    return f"eventcore/{schema}/apply_retention"


def global_lock_text(schema: str) -> str:
    """The text hashed into the schema-wide write lock (held from insert to commit)."""
    return f"eventcore/{schema}/write"


def _migration_lock_text(schema: str) -> str:
    return f"eventcore/{schema}/migrate"


def migrate(conn: psycopg.Connection[Any], schema: str, channel: str) -> int:
    """Bring ``schema`` up to :data:`SCHEMA_VERSION`; return the version found before.

    ``conn`` must be in autocommit mode; the work runs in one transaction per call.
    """
    ident = sql.Identifier(schema)
    current = schema_version(conn, schema)
    if current == SCHEMA_VERSION:
        return current
    _check_not_newer(current, schema)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (_migration_lock_text(schema),),
        )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.migrations ("
                "version integer PRIMARY KEY, description text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        done = _applied(conn, schema)  # again, now that we hold the lock
        _check_not_newer(max(done, default=0), schema)
        params = {
            "schema": ident,
            "prefix": sql.Literal(stream_lock_prefix(schema)),
            "key_prefix": sql.Literal(key_lock_prefix(schema)),
            "global_key": sql.Literal(global_lock_text(schema)),
            "channel": sql.Literal(channel),
            "retention_guard": sql.Literal(retention_guard_text(schema)),
        }
        for version, description, script in sorted(_MIGRATIONS):
            if version in done:
                continue
            conn.execute(sql.SQL(script).format(**params))
            conn.execute(
                sql.SQL("INSERT INTO {}.migrations (version, description) VALUES (%s, %s)").format(
                    ident
                ),
                (version, description),
            )
    return current


def schema_version(conn: psycopg.Connection[Any], schema: str) -> int:
    """The schema's version: the last migration before the first one missing (0 for none),
    or the highest recorded when that is newer than this library."""
    done = _applied(conn, schema)
    if done and max(done) > SCHEMA_VERSION:
        return max(done)
    version = 0
    for known, _, _ in sorted(_MIGRATIONS):  # numbers may skip: only known ones count
        if known not in done:
            break
        version = known
    return version


def _applied(conn: psycopg.Connection[Any], schema: str) -> set[int]:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.migrations",)).fetchone()
    if not row or not row[0]:
        return set()
    rows = conn.execute(
        sql.SQL("SELECT version FROM {}.migrations").format(sql.Identifier(schema))
    ).fetchall()
    return {int(r[0]) for r in rows}


def _check_not_newer(version: int, schema: str) -> None:
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"PostgreSQL schema {schema!r} has EventCore schema version {version}, newer than "
            f"this library's {SCHEMA_VERSION}; upgrade eventcore"
        )
