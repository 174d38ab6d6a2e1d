"""Tenant isolation enforced by PostgreSQL: row-level security over the tenant column, and a
read-only database role per tenant.

The events table keeps each stream's tenant (``acme`` for ``@acme/...``) in a generated
column (migration 8). :func:`enable_isolation` turns row-level security on for the events
and tombstones tables; :func:`create_tenant_role` creates a login role that may read those
tables and is listed as the tenant's, so that connected as it, raw SQL sees only the
tenant's rows — whatever the query says. The library keeps connecting as the schema's
owner (which row-level security does not restrict) and confines each tenant itself
(:class:`~eventcore.tenants.TenantStore`); tenant roles serve tenant-facing read paths —
projections run as the tenant, reporting, read replicas. They cannot write.

Needs ``pip install eventcore[postgres]`` and a connection allowed to create roles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from eventcore.errors import ConfigurationError, StoreFailure
from eventcore.tenants.scope import check_tenant

__all__ = ["create_tenant_role", "drop_tenant_role", "enable_isolation", "tenant_of_role"]

_TABLES = ("events", "tombstones")


def _database(target: Any) -> Any:
    database = getattr(target, "database", target)
    if not callable(getattr(database, "direct_connection", None)):
        raise ConfigurationError(
            f"expected a PostgresEventStore or PostgresDatabase, got {type(target).__name__}"
        )
    return database


def _sql() -> Any:
    try:
        from psycopg import sql
    except ImportError as exc:  # pragma: no cover - the postgres extra is installed in tests
        raise ImportError(
            "tenant isolation on PostgreSQL needs psycopg: pip install eventcore[postgres]"
        ) from exc
    return sql


@contextlib.contextmanager
def _failures(operation: str, what: str) -> Iterator[None]:
    """Driver errors as ``StoreFailure`` naming the operation (never the statement, which may
    hold a password)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        detail = exc.diag.message_primary or type(exc).__name__
        raise StoreFailure(operation, f"{what}: {detail}; nothing was changed") from None


def _check_role(role: object) -> str:
    if not isinstance(role, str) or not role or len(role) > 63 or "\x00" in role:
        raise ConfigurationError(f"role must be a PostgreSQL role name (1-63 chars), got {role!r}")
    return role


def enable_isolation(target: Any) -> None:
    """Turn row-level security on for the events and tombstones of the store's schema
    (idempotent). Roles other than the owner then read only the rows a policy grants them:
    none, unless :func:`create_tenant_role` listed them as a tenant's."""
    sql = _sql()
    database = _database(target)
    schema = sql.Identifier(database.config.schema)
    with (
        _failures("enable_isolation", "cannot turn row-level security on"),
        database.direct_connection("enable_isolation", autocommit=True) as conn,
        conn.transaction(),
    ):
        for table in _TABLES:
            conn.execute(
                sql.SQL("ALTER TABLE {}.{} ENABLE ROW LEVEL SECURITY").format(
                    schema, sql.Identifier(table)
                )
            )


def create_tenant_role(target: Any, tenant: str, role: str, *, password: str | None = None) -> None:
    """Create login role ``role`` for ``tenant``: it may read the events and tombstones of
    the schema (row-level security shows it the tenant's only) and nothing else. The
    password, if any, is sent to the server and never logged or kept."""
    sql = _sql()
    database = _database(target)
    check_tenant(tenant)
    ident = sql.Identifier(_check_role(role))
    schema = sql.Identifier(database.config.schema)
    secret = (
        sql.SQL("") if password is None else sql.SQL(" PASSWORD {}").format(sql.Literal(password))
    )
    connection = database.direct_connection("create_tenant_role", autocommit=True)
    with (
        _failures("create_tenant_role", f"cannot create role {role!r} for tenant {tenant!r}"),
        connection as conn,
        conn.transaction(),
    ):
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident) + secret)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident))
        for table in _TABLES:
            conn.execute(
                sql.SQL("GRANT SELECT ON {}.{} TO {}").format(schema, sql.Identifier(table), ident)
            )
        conn.execute(
            sql.SQL("INSERT INTO {}.tenant_roles (tenant, role) VALUES (%s, %s)").format(schema),
            (tenant, role),
        )


def drop_tenant_role(target: Any, role: str) -> None:
    """Remove ``role``: its tenant listing, its grants in the schema, the role itself."""
    sql = _sql()
    database = _database(target)
    ident = sql.Identifier(_check_role(role))
    schema = sql.Identifier(database.config.schema)
    connection = database.direct_connection("drop_tenant_role", autocommit=True)
    with (
        _failures("drop_tenant_role", f"cannot drop role {role!r}"),
        connection as conn,
        conn.transaction(),
    ):
        conn.execute(sql.SQL("DELETE FROM {}.tenant_roles WHERE role = %s").format(schema), (role,))
        for table in _TABLES:
            conn.execute(
                sql.SQL("REVOKE ALL ON {}.{} FROM {}").format(schema, sql.Identifier(table), ident)
            )
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(schema, ident))
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def tenant_of_role(target: Any, role: str) -> str | None:
    """The tenant ``role`` reads for, or None."""
    sql = _sql()
    database = _database(target)
    schema = sql.Identifier(database.config.schema)
    with database.direct_connection("tenant_of_role", autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT tenant FROM {}.tenant_roles WHERE role = %s").format(schema), (role,)
        ).fetchone()
    return None if row is None else str(row[0])
