"""Configuration of the PostgreSQL store: one frozen, validated object.

>>> config = PostgresConfig("postgresql://app:s3cret@db.internal:5432/shop", schema="events")
>>> config.host, config.port, config.schema
('db.internal', '5432', 'events')
>>> "s3cret" in repr(config)
False

Passwords never appear in a repr or in an error message: :meth:`PostgresConfig.mask` replaces
them with ``***`` in any text.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventcore.errors import ConfigurationError

__all__ = ["PostgresConfig"]

SCHEMA_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
"""Accepted schema names: lower-case SQL identifiers that never need quoting rules."""

_ENV_URL: Final = "EVENTCORE_POSTGRES_URL"
_ENV_SCHEMA: Final = "EVENTCORE_POSTGRES_SCHEMA"
_PG_VARS: Final = (
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
)
_SECRET_IN_TEXT: Final = (
    re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE),
    re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)"),
)
MASK: Final = "***"


@dataclass(frozen=True, repr=False)
class PostgresConfig:
    """Where the PostgreSQL event store lives and how it uses the server.

    ``dsn`` is a URL (``postgresql://user:password@host:5432/db``) or a libpq key/value
    string (``host=... dbname=...``). Times are in seconds; ``None`` for
    ``statement_timeout`` or ``lock_timeout`` keeps the server's setting.

    - ``schema``: the PostgreSQL schema holding the store's tables (created if missing).
    - ``pool_min`` / ``pool_max``: connections kept open / opened at most by this process.
    - ``connect_timeout``: giving up on opening one connection (libpq rounds it up to >= 2).
    - ``acquire_timeout``: waiting for a free pooled connection.
    - ``statement_timeout``: the longest one statement may run.
    - ``lock_timeout``: the longest an append waits for another writer's locks.
    - ``application_name``: shown in ``pg_stat_activity``.
    - ``page_size``: events fetched per round trip when reading a stream.
    - ``listen`` / ``poll_interval``: wake ``wait_for_events`` with LISTEN/NOTIFY (turn it
      off behind a transaction-pooling PgBouncer), and poll at least this often anyway.
    """

    dsn: str
    schema: str = "eventcore"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 10.0
    acquire_timeout: float = 30.0
    statement_timeout: float | None = None
    lock_timeout: float | None = 30.0
    application_name: str = "eventcore"
    page_size: int = 1000
    listen: bool = True
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.dsn, str):
            raise ConfigurationError(
                f"dsn must be a str such as 'postgresql://user@host:5432/db', got "
                f"{type(self.dsn).__name__}"
            )
        try:
            params = conninfo_to_dict(self.dsn)
        except ProgrammingError as exc:
            raise ConfigurationError(
                f"dsn is not a PostgreSQL URL or key=value connection string: "
                f"{self.mask(str(exc).strip())}; for example "
                "'postgresql://user:password@localhost:5432/app'"
            ) from None
        port = str(params.get("port") or "")
        if port and not all(p.strip().isdigit() for p in port.split(",")):
            raise ConfigurationError(f"dsn has port {port!r}; a port is a number such as 5432")
        if not isinstance(self.schema, str) or not SCHEMA_NAME.match(self.schema):
            raise ConfigurationError(
                f"schema must be a lower-case identifier matching {SCHEMA_NAME.pattern} "
                f"(letters, digits, '_'), got {self.schema!r}"
            )
        if self.schema.startswith("pg_"):
            raise ConfigurationError(
                f"schema {self.schema!r} starts with 'pg_', which PostgreSQL reserves"
            )
        _check_int("pool_min", self.pool_min, minimum=0)
        _check_int("pool_max", self.pool_max, minimum=1)
        if self.pool_max < self.pool_min:
            raise ConfigurationError(
                f"pool_max ({self.pool_max}) must be >= pool_min ({self.pool_min})"
            )
        _check_int("page_size", self.page_size, minimum=1)
        for name in ("connect_timeout", "acquire_timeout", "poll_interval"):
            _check_seconds(name, getattr(self, name), optional=False)
        for name in ("statement_timeout", "lock_timeout"):
            _check_seconds(name, getattr(self, name), optional=True)
        if not isinstance(self.application_name, str) or len(self.application_name) > 63:
            raise ConfigurationError(
                f"application_name must be a str of at most 63 characters, got "
                f"{self.application_name!r}"
            )
        if not isinstance(self.listen, bool):
            raise ConfigurationError(f"listen must be True or False, got {self.listen!r}")

    # -- construction from the environment -----------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> PostgresConfig:
        """Read ``EVENTCORE_POSTGRES_URL``, else the standard ``PGHOST``, ``PGPORT``,
        ``PGUSER``, ``PGPASSWORD`` and ``PGDATABASE`` variables.

        ``EVENTCORE_POSTGRES_SCHEMA`` sets the schema; keyword arguments override anything.

        >>> PostgresConfig.from_env({"PGHOST": "db", "PGDATABASE": "app"}).dsn
        'host=db dbname=app'
        """
        env = os.environ if environ is None else environ
        if "dsn" not in overrides:
            url = env.get(_ENV_URL, "").strip()
            if url:
                overrides["dsn"] = url
            else:
                params = {key: env[var] for var, key in _PG_VARS if env.get(var)}
                if not params:
                    raise ConfigurationError(
                        f"no PostgreSQL server configured: set {_ENV_URL} (for example "
                        "postgresql://user@localhost:5432/app) or the PGHOST, PGPORT, PGUSER, "
                        "PGPASSWORD and PGDATABASE variables"
                    )
                overrides["dsn"] = make_conninfo(**params)
        if "schema" not in overrides and env.get(_ENV_SCHEMA):
            overrides["schema"] = env[_ENV_SCHEMA]
        return cls(**overrides)

    # -- derived values --------------------------------------------------------------------

    @property
    def params(self) -> dict[str, str]:
        """The connection parameters parsed from ``dsn`` (the password included)."""
        return {k: str(v) for k, v in conninfo_to_dict(self.dsn).items() if v is not None}

    @property
    def host(self) -> str:
        """The server host as configured (``PGHOST`` or ``localhost`` when the DSN has none)."""
        params = self.params
        return (
            params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
        )

    @property
    def port(self) -> str:
        """The server port as configured (``PGPORT`` or ``5432`` when the DSN has none)."""
        return self.params.get("port") or os.environ.get("PGPORT") or "5432"

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def masked_dsn(self) -> str:
        """The DSN with its password replaced by ``***``."""
        params = self.params
        if "password" in params:
            params["password"] = MASK
        return make_conninfo(**params)

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this schema (at most 63 bytes, as PostgreSQL needs)."""
        return f"eventcore_{self.schema}"[:63]

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` besides the DSN."""
        return {
            "autocommit": True,
            "connect_timeout": max(1, math.ceil(self.connect_timeout)),
            "application_name": self.application_name,
        }

    def mask(self, text: str) -> str:
        """``text`` with this configuration's password (and any ``password=``) masked."""
        try:
            password = conninfo_to_dict(self.dsn).get("password")
        except ProgrammingError:
            password = None
        if password:
            text = text.replace(str(password), MASK)
        for pattern in _SECRET_IN_TEXT:
            text = pattern.sub(
                lambda m: m.group(1) + MASK + (m.group(3) if m.lastindex == 3 else ""), text
            )
        return text

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = self.masked_dsn if f.name == "dsn" else getattr(self, f.name)
            shown.append(f"{f.name}={value!r}")
        return f"PostgresConfig({', '.join(shown)})"


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_seconds(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        extra = " or None" if optional else ""
        raise ConfigurationError(f"{name} must be a number of seconds > 0{extra}, got {value!r}")
