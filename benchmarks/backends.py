"""Fresh stores for every (implementation, store) cell, and whether PostgreSQL is usable.

SQLite cells each get a new file in a temporary directory; PostgreSQL cells each get a
schema of their own (``eventcore_bench``, or ``eventcore_bench_<impl>`` when the three
implementations' seeded data live side by side), dropped and recreated, so no other data is
ever touched.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.config import POSTGRES_SCHEMA, postgres_url
from benchmarks.model import Bank, Skip


@dataclass
class PostgresStatus:
    """What we learned about PostgreSQL before running anything."""

    url: str
    reachable: bool = False
    server_version: str | None = None
    store_importable: bool = False
    notes: list[str] = field(default_factory=list)


def _redact(url: str) -> str:
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(url)
        if "password" in params:
            params["password"] = "***"
        return make_conninfo(**params)  # type: ignore[arg-type]
    except Exception:
        return "<unparsable url>"


def probe_postgres() -> PostgresStatus:
    """Check the server and the EventCore PostgreSQL store without raising."""
    url = postgres_url()
    status = PostgresStatus(url=_redact(url))
    try:
        import psycopg
    except ImportError as exc:
        status.notes.append(f"psycopg is not installed ({exc}); PostgreSQL skipped")
        return status
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            status.server_version = None if row is None else str(row[0])
        status.reachable = True
    except Exception as exc:
        status.notes.append(
            f"no PostgreSQL server at {status.url} ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
            "PostgreSQL workloads skipped — set EVENTCORE_POSTGRES_URL"
        )
        return status
    try:
        importlib.import_module("eventcore.stores.postgres")
        status.store_importable = True
    except Exception as exc:
        status.notes.append(
            f"eventcore.stores.postgres cannot be imported ({type(exc).__name__}: {exc}); "
            "EventCore's PostgreSQL cells skipped (eventsourcing and raw psycopg still run)"
        )
    return status


def bench_conninfo(schema: str = POSTGRES_SCHEMA) -> str:
    """The server URL with ``search_path`` set to a benchmark schema."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params: dict[str, Any] = conninfo_to_dict(postgres_url())
    options = params.get("options") or ""
    params["options"] = f"{options} -c search_path={check_schema(schema)}".strip()
    return make_conninfo(**params)


def check_schema(schema: str) -> str:
    """Only the benchmark's own schemas are ever dropped."""
    if not (schema == POSTGRES_SCHEMA or schema.startswith(POSTGRES_SCHEMA + "_")):
        raise ValueError(f"not a benchmark schema: {schema!r}")
    if not schema.replace("_", "").isalnum() or not schema.isascii():
        raise ValueError(f"schema names are letters, digits and underscores: {schema!r}")
    return schema


def reset_postgres_schema(schema: str = POSTGRES_SCHEMA) -> None:
    """Drop and recreate one benchmark schema (and nothing else)."""
    import psycopg

    name = check_schema(schema)
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")


def drop_postgres_schema(schema: str = POSTGRES_SCHEMA) -> None:
    import psycopg

    name = check_schema(schema)
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def impl_schema(impl: str) -> str:
    """The schema of one implementation's seeded data."""
    return check_schema(f"{POSTGRES_SCHEMA}_{impl}")


class Workspace:
    """Where the SQLite files live during a run."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="eventcore-bench-")
        self._count = 0

    def sqlite_path(self, label: str) -> str:
        self._count += 1
        return os.path.join(self._tmp.name, f"{self._count:03d}-{label}.db")

    def cleanup(self) -> None:
        self._tmp.cleanup()


def _eventcore_store_events() -> list[type]:
    from benchmarks.impl_eventcore import EVENTS

    return list(EVENTS)


def make_factory(
    impl: str,
    store: str,
    workspace: Workspace,
    pg: PostgresStatus,
    label: str,
    *,
    schema: str = POSTGRES_SCHEMA,
    bank_options: dict[str, Any] | None = None,
) -> Callable[[], Bank]:
    """A function that builds a fresh Bank for one cell, or raises :class:`Skip`.
    ``bank_options`` go to EventCore's bank (``mode``, ``retry``) or to the raw driver's on
    PostgreSQL (``locks_first``)."""
    if store == "postgres" and not pg.reachable:
        raise Skip("no PostgreSQL server")
    if impl == "eventcore":
        return _eventcore_factory(store, workspace, pg, label, schema, bank_options or {})
    if impl == "eventsourcing":
        return _eventsourcing_factory(store, workspace, label, schema)
    if impl == "raw":
        return _raw_factory(store, workspace, label, schema, bank_options or {})
    raise ValueError(f"unknown implementation {impl!r}")


def _eventcore_factory(
    store: str,
    workspace: Workspace,
    pg: PostgresStatus,
    label: str,
    schema: str,
    options: dict[str, Any],
) -> Callable[[], Bank]:
    from benchmarks.impl_eventcore import EventCoreBank

    if store == "memory":
        from eventcore import InMemoryEventStore

        return lambda: EventCoreBank(
            InMemoryEventStore(events=_eventcore_store_events()), **options
        )
    if store == "sqlite":
        from eventcore import SqliteEventStore

        def sqlite_bank() -> Bank:
            path = workspace.sqlite_path(f"eventcore-{label}")
            return EventCoreBank(
                SqliteEventStore(path, events=_eventcore_store_events(), synchronous="FULL"),
                **options,
            )

        return sqlite_bank
    if not pg.store_importable:
        raise Skip("eventcore.stores.postgres not importable")
    module = importlib.import_module("eventcore.stores.postgres")
    store_class: Any = module.PostgresEventStore
    config_class: Any = getattr(module, "PostgresConfig", None)

    def postgres_bank() -> Bank:
        reset_postgres_schema(schema)
        if config_class is not None:
            config = config_class(postgres_url(), schema=schema)
        else:  # a store without a config object: select the schema through search_path
            config = bench_conninfo(schema)
        return EventCoreBank(store_class(config, events=_eventcore_store_events()), **options)

    return postgres_bank


def _eventsourcing_factory(
    store: str, workspace: Workspace, label: str, schema: str
) -> Callable[[], Bank]:
    try:
        from benchmarks.impl_eventsourcing import EventsourcingBank
    except ImportError as exc:
        raise Skip(
            f"the eventsourcing library is not installed ({exc}); pip install -e '.[bench]'"
        ) from None
    if store == "memory":
        return lambda: EventsourcingBank({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    if store == "sqlite":

        def sqlite_bank() -> Bank:
            path = workspace.sqlite_path(f"eventsourcing-{label}")
            return EventsourcingBank(
                {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}
            )

        return sqlite_bank
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(postgres_url())
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname") or params.get("user") or "postgres"),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or os.environ.get("USER", "postgres")),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": "8",
    }

    def postgres_bank() -> Bank:
        reset_postgres_schema(schema)
        return EventsourcingBank(env)

    return postgres_bank


def _raw_factory(
    store: str, workspace: Workspace, label: str, schema: str, options: dict[str, Any]
) -> Callable[[], Bank]:
    if store == "memory":
        raise Skip("n/a: no driver under the in-memory store")
    if store == "sqlite":
        from benchmarks.impl_raw_sqlite import RawSqliteBank

        return lambda: RawSqliteBank(workspace.sqlite_path(f"raw-{label}"))
    from benchmarks.impl_raw_postgres import RawPostgresBank

    def postgres_bank() -> Bank:
        reset_postgres_schema(schema)
        return RawPostgresBank(bench_conninfo(schema), **options)

    return postgres_bank
