"""Configuration of the PostgreSQL store: one frozen, validated object.

>>> config = PostgresConfig("postgresql://app:s3cret@db.internal:5432/shop", schema="events")
>>> config.host, config.port, config.schema
('db.internal', '5432', 'events')
>>> "s3cret" in repr(config)
False

Passwords never appear in a repr or in an error message: :meth:`PostgresConfig.mask` replaces
them with ``***`` in any text. A URL whose user name or password is not percent-encoded
(an ``@``, ``/``, ``?``, ``#`` or space in it, or a ``%`` that starts no escape) is refused
without quoting any of it, because its parts would be read as the host, the port or the
database and shown as such:

>>> PostgresConfig("postgresql://app:s3c@ret@db/shop")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
eventcore.errors.ConfigurationError: dsn has an '@' in its host part: ...
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
        problem = _url_problem(self.dsn)
        if problem is not None:
            raise ConfigurationError(problem)
        try:
            params = conninfo_to_dict(self.dsn)
        except (ProgrammingError, UnicodeDecodeError) as exc:
            if isinstance(exc, UnicodeDecodeError):
                detail = "a percent escape in it does not decode to UTF-8 text"
            elif _holds_password(self.dsn):
                detail = "the details are not shown because it holds a password"
            else:
                detail = self.mask(str(exc).strip())
            raise ConfigurationError(
                f"dsn is not a PostgreSQL URL or key=value connection string ({detail}); for "
                "example 'postgresql://user:password@localhost:5432/app' (percent-encode the "
                "password) or \"host=localhost password='two words'\" (quote values with "
                "spaces)"
            ) from None
        port = str(params.get("port") or "")
        if port and not all(p.strip().isdigit() for p in port.split(",")):
            raise ConfigurationError(
                f"dsn has port {self.mask(repr(port))}; a port is a number such as 5432"
            )
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
        """``text`` with this configuration's password (as parsed and as written in the DSN,
        and any ``password=``) masked."""
        try:
            password = conninfo_to_dict(self.dsn).get("password")
        except ProgrammingError:
            password = None
        for secret in sorted({str(password or ""), *_written_passwords(self.dsn)}, key=len)[::-1]:
            if secret:
                text = text.replace(secret, MASK)
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


_URL_PREFIXES: Final = ("postgresql://", "postgres://")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODE_HINT: Final = (
    "percent-encode the user name and password, for example with "
    "urllib.parse.quote(password, safe=''), or pass the password in PGPASSWORD"
)


def _split_url(dsn: str) -> tuple[str, str] | None:
    """``(userinfo, rest)`` of a URL DSN with an ``@`` (libpq splits at the first one), or
    None for a key/value DSN or a URL without user information."""
    if not dsn[:16].lower().startswith(_URL_PREFIXES):
        return None
    after = dsn.split("://", 1)[1]
    if "@" not in after:
        return None
    userinfo, _, rest = after.partition("@")
    return userinfo, rest


def _url_problem(dsn: str) -> str | None:
    """Why a URL DSN's user information would be misread (and its parts shown as the host,
    port or database), or None. The message quotes nothing from the DSN."""
    split = _split_url(dsn)
    if split is not None:
        userinfo, rest = split
        host = re.split("[/?#]", rest, maxsplit=1)[0]
        if "@" in host:
            return (
                "dsn has an '@' in its host part: the user name or password holds an '@' "
                f"(or the URL another one); {_ENCODE_HINT}"
            )
        if any(ch in userinfo for ch in "/?#") or "@" in rest:
            return (
                "dsn has an '@' after its host part: if it belongs to the password, "
                f"{_ENCODE_HINT}; anywhere else (the database name, a parameter) write it as %40"
            )
        if any(ch.isspace() for ch in userinfo):
            return f"dsn has a space in its user name or password; {_ENCODE_HINT}"
        if _BAD_ESCAPE.search(userinfo):
            return (
                "dsn has a '%' in its user name or password that starts no percent escape "
                f"(%XX); {_ENCODE_HINT}"
            )
    if dsn[:16].lower().startswith(_URL_PREFIXES):
        for value in _query_passwords(dsn):
            if _BAD_ESCAPE.search(value) or any(ch.isspace() for ch in value):
                return (
                    "dsn has a password query parameter that is not percent-encoded (a space, "
                    "or a '%' that starts no escape); encode it with "
                    "urllib.parse.quote(password, safe='')"
                )
    return None


def _query_passwords(dsn: str) -> list[str]:
    """The raw values of ``password=`` in a URL's query string."""
    query = dsn.partition("?")[2].partition("#")[0]
    return [
        value
        for key, _, value in (item.partition("=") for item in query.split("&"))
        if key.strip().lower() == "password"
    ]


def _written_passwords(dsn: str) -> set[str]:
    """The password as written in a URL DSN (percent-encoded), for masking texts."""
    if not dsn[:16].lower().startswith(_URL_PREFIXES):
        return set()
    found = set(_query_passwords(dsn))
    split = _split_url(dsn)
    if split is not None and ":" in split[0]:
        found.add(split[0].partition(":")[2])
    return {value for value in found if value}


def _holds_password(dsn: str) -> bool:
    """Whether the DSN text may hold a password (so no parser message may quote it)."""
    split = _split_url(dsn)
    return (split is not None and ":" in split[0]) or "password" in dsn.lower()
