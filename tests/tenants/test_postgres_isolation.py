"""Tenant isolation enforced by PostgreSQL itself: connected as tenant A's role, raw SQL
reads none of tenant B's rows, whatever the query says, and cannot write at all.

Roles are cluster-wide: each test creates its own with a unique name and drops it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from eventcore import StreamId
from eventcore.execution import execute
from tests.bank import EVENTS, Deposit

ACCOUNT = StreamId("account-1")


@pytest.fixture
def setup(postgres_dsn: str, postgres_schema: str) -> Iterator[tuple[Any, str, str, str]]:
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
    from eventcore.tenants.postgres import create_tenant_role, drop_tenant_role, enable_isolation

    config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=2)
    role = f"ec_tenant_{uuid.uuid4().hex[:12]}"
    with PostgresEventStore(config, events=EVENTS) as store:
        execute(store.for_tenant("acme"), Deposit(account=ACCOUNT, amount=5))
        execute(store.for_tenant("beta"), Deposit(account=ACCOUNT, amount=7))
        execute(store, Deposit(account=StreamId("global-1"), amount=9))
        store.for_tenant("beta").close_stream(ACCOUNT)
        store.for_tenant("acme").close_stream(StreamId("done"))
        enable_isolation(store)
        enable_isolation(store)  # idempotent
        create_tenant_role(store, "acme", role)
        try:
            yield store, postgres_dsn, postgres_schema, role
        finally:
            drop_tenant_role(store, role)


def _as(dsn: str, role: str) -> Any:
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["user"] = role
    assert params.get("host") == "127.0.0.1"
    return psycopg.connect(psycopg.conninfo.make_conninfo(**params), autocommit=True)


def test_a_tenant_role_reads_only_its_own_rows(setup: tuple[Any, str, str, str]) -> None:
    store, dsn, schema, role = setup
    with _as(dsn, role) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)
        rows = conn.execute(
            f"SELECT stream_id, tenant FROM {schema}.events ORDER BY position"
        ).fetchall()
        assert rows == [("@acme/account-1", "acme"), ("@acme/done", "acme")]
        tombstones = conn.execute(f"SELECT stream_id FROM {schema}.tombstones").fetchall()
        assert tombstones == [("@acme/done",)]
        for query in (
            f"SELECT count(*) FROM {schema}.events WHERE stream_id LIKE '@beta/%'",
            f"SELECT count(*) FROM {schema}.events WHERE tenant = 'beta'",
            f"SELECT count(*) FROM {schema}.events WHERE tenant IS NULL",
            f"SELECT count(*) FROM {schema}.tombstones WHERE stream_id NOT LIKE '@acme/%'",
        ):
            assert conn.execute(query).fetchone() == (0,), query
    assert len(store.read_all()) == 5  # the owner (the library) still reads every row


def test_a_tenant_role_cannot_switch_security_off_or_write(
    setup: tuple[Any, str, str, str],
) -> None:
    import psycopg

    _, dsn, schema, role = setup
    with _as(dsn, role) as conn:
        conn.execute("SET row_security = off")
        with pytest.raises(psycopg.Error, match="row-level security"):
            conn.execute(f"SELECT * FROM {schema}.events")
        conn.execute("SET row_security = on")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                f"INSERT INTO {schema}.tenant_roles (tenant, role) VALUES ('beta', current_user)"
            )
        for statement in (
            f"DELETE FROM {schema}.events",
            f"UPDATE {schema}.events SET event_type = 'x'",
            f"SELECT * FROM {schema}.checkpoints",
            f"SELECT * FROM {schema}.tenant_roles",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_role_of_no_tenant_reads_nothing(setup: tuple[Any, str, str, str]) -> None:
    from psycopg import sql

    from eventcore.tenants.postgres import tenant_of_role

    store, dsn, schema, role = setup
    assert tenant_of_role(store, role) == "acme"
    other = f"ec_tenant_{uuid.uuid4().hex[:12]}"
    assert tenant_of_role(store, other) is None
    with store.database.direct_connection("test", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
        try:
            admin.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(schema), sql.Identifier(other)
                )
            )
            admin.execute(
                sql.SQL("GRANT SELECT ON {}.events TO {}").format(
                    sql.Identifier(schema), sql.Identifier(other)
                )
            )
            with _as(dsn, other) as conn:
                assert conn.execute(f"SELECT count(*) FROM {schema}.events").fetchone() == (0,)
        finally:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(other)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))


def test_role_mistakes_are_typed_errors_without_secrets(setup: tuple[Any, str, str, str]) -> None:
    from eventcore.errors import ConfigurationError, StoreFailure
    from eventcore.tenants.postgres import create_tenant_role, drop_tenant_role

    store, _, _, role = setup
    with pytest.raises(StoreFailure, match="cannot create role") as info:
        create_tenant_role(store, "beta", role, password="s3cret-pw")
    assert "s3cret-pw" not in str(info.value)
    with pytest.raises(StoreFailure, match="cannot drop role"):
        drop_tenant_role(store, f"ec_tenant_missing_{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError):
        create_tenant_role(store, "Bad Tenant", role)
    with pytest.raises(ConfigurationError):
        create_tenant_role(store, "beta", "")
