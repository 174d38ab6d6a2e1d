"""What ``eventcore`` works on: an SQLite file or a PostgreSQL schema, opened through the
stores' public API, and the exit codes of the command.

A target is an SQLite path, or a ``postgresql://`` (``postgres://``) URL; with neither,
``EVENTCORE_POSTGRES_URL`` is used. Passwords never reach the output: :func:`masked` hides
the one in a URL, and every error text is masked again before it is printed.

>>> masked("postgresql://app:s3cret@db:5432/shop")
'postgresql://app:***@db:5432/shop'
>>> masked("shop.db")
'shop.db'
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from eventcore.errors import ConfigurationError, EventCoreError, StoreFailure

__all__ = [
    "EXIT_CODES",
    "EXIT_NOT_FOUND",
    "EXIT_PROBLEMS",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "Opened",
    "is_postgres",
    "masked",
    "open_target",
]

EXIT_PROBLEMS: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_NOT_FOUND: Final = 4
EXIT_REFUSED: Final = 5

EXIT_CODES: Final = {
    0: "success",
    EXIT_PROBLEMS: "verify found problems (each is printed), or dead-letters retry left "
    "letters that failed again",
    EXIT_USAGE: "bad arguments or options (click's usage errors; a retention policy that does "
    "not parse: nothing is written)",
    EXIT_UNAVAILABLE: "the target cannot be opened: no such file, server unreachable, schema "
    "behind (run eventcore migrate), or the cli extra missing",
    EXIT_NOT_FOUND: "the stream, dead letter, snapshot or archive asked for does not exist",
    EXIT_REFUSED: "the store refused the operation and wrote nothing (an import that does "
    "not continue the log, a corrupt input line, a discard without --yes, a restore into a "
    "store that is not empty, a tombstone on a deleted stream)",
}
"""Every exit code of ``eventcore`` and what it means (``eventcore --help`` lists them)."""

_URL_PASSWORD: Final = re.compile(r"^(postgres(?:ql)?://[^:/@]*:)([^@]*)(@)")


class CliError(Exception):
    """An error the command reports in one line and exits with ``code`` for."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


_KEYWORD: Final = re.compile(r"(?:^|\s)(?:host|hostaddr|dbname|user|password|port|service)\s*=")
_KEYWORD_PASSWORD: Final = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def is_postgres(spec: str) -> bool:
    """Whether ``spec`` is a PostgreSQL URL or libpq ``key=value`` string (else it is an
    SQLite path).

    >>> is_postgres("postgresql://app@db/shop"), is_postgres("host=db dbname=shop")
    (True, True)
    >>> is_postgres("data/shop.db")
    False
    """
    return spec.startswith(("postgresql://", "postgres://")) or bool(_KEYWORD.search(spec))


def masked(spec: str) -> str:
    """``spec`` with the password of a URL or a ``password=`` replaced by ``***``.

    >>> masked("host=db password='two words' dbname=shop")
    'host=db password=*** dbname=shop'
    """
    spec = _URL_PASSWORD.sub(lambda m: m.group(1) + "***" + m.group(3), spec)
    return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + "***", spec)


@dataclass(frozen=True)
class Opened:
    """The stores of one target, sharing one database; :meth:`close` closes them."""

    kind: str
    where: str
    store: Any
    checkpoints: Any
    dead_letters: Any
    snapshots: Any
    leadership: Any
    mask: Any

    def close(self) -> None:
        for part in (self.leadership, self.snapshots, self.dead_letters, self.checkpoints):
            with contextlib.suppress(Exception):
                part.close()
        database = getattr(self.store, "database", None)
        self.store.close()
        if database is not None:
            database.close()


def _resolve(spec: str | None) -> str:
    if spec:
        return spec
    url = os.environ.get("EVENTCORE_POSTGRES_URL", "").strip()
    if url:
        return url
    raise CliError(
        "no target: pass --db PATH (an SQLite file) or --db postgresql://user@host/db, or set "
        "EVENTCORE_POSTGRES_URL",
        EXIT_USAGE,
    )


@contextlib.contextmanager
def open_target(
    spec: str | None,
    schema: str | None,
    *,
    migrate: bool = False,
    create: bool = False,
    events: tuple[type, ...] = (),
) -> Iterator[Opened]:
    """Open the target's stores. ``migrate``: upgrade a schema that is behind (else refuse);
    ``create``: an SQLite file may be created (import, migrate). Errors become
    :class:`CliError` with the right exit code."""
    target = _resolve(spec)
    mask = _masker(target)
    try:
        opened = _open_postgres(target, schema, migrate, events) if is_postgres(target) else None
        if opened is None:
            if schema is not None:
                raise CliError(
                    "--schema applies to PostgreSQL targets only; an SQLite file has one log",
                    EXIT_USAGE,
                )
            opened = _open_sqlite(target, migrate, create, events)
    except EventCoreError as exc:
        raise CliError(f"cannot open {masked(target)}: {mask(str(exc))}", EXIT_UNAVAILABLE) from exc
    try:
        yield opened
    finally:
        opened.close()


def _masker(target: str) -> Any:
    if not is_postgres(target):
        return lambda text: text
    found = _URL_PASSWORD.match(target) or _KEYWORD_PASSWORD.search(target)
    secret = found.group(2).strip("'") if found else ""

    def mask(text: str) -> str:
        return masked(text.replace(secret, "***") if secret else text)

    return mask


def _open_sqlite(path: str, migrate: bool, create: bool, events: tuple[type, ...]) -> Opened:
    from eventcore.projections.sqlite import (
        SqliteCheckpointStore,
        SqliteDeadLetterStore,
        SqliteLeadership,
    )
    from eventcore.snapshots.sqlite import SqliteSnapshotStore
    from eventcore.stores.sqlite import SqliteDatabase, SqliteEventStore

    if path == ":memory:":
        raise CliError("':memory:' holds nothing to inspect; pass an SQLite file", EXIT_USAGE)
    if os.path.isdir(path):
        raise CliError(f"{path!r} is a directory, not an SQLite file", EXIT_USAGE)
    if not create and not os.path.exists(path):
        raise CliError(
            f"no SQLite file at {path!r} (nothing was created); check the path, or pass a "
            "postgresql:// URL",
            EXIT_UNAVAILABLE,
        )
    if not os.path.exists(path):
        migrate = True  # a new file: create it with the current schema
    database = SqliteDatabase(path, migrate=migrate, busy_timeout=5.0)
    try:
        return Opened(
            "sqlite",
            path,
            SqliteEventStore(database, events=events),
            SqliteCheckpointStore(database),
            SqliteDeadLetterStore(database),
            SqliteSnapshotStore(database),
            SqliteLeadership(database),
            lambda text: text,
        )
    except BaseException:
        database.close()
        raise


def _open_postgres(url: str, schema: str | None, migrate: bool, events: tuple[type, ...]) -> Opened:
    try:
        from eventcore.stores.postgres import PostgresConfig, PostgresDatabase, PostgresEventStore
        from eventcore.stores.postgres.projections import (
            PostgresCheckpointStore,
            PostgresDeadLetterStore,
            PostgresLeadership,
        )
    except ImportError as exc:
        raise CliError(
            f"a PostgreSQL target needs psycopg: pip install 'eventcore[cli,postgres]' ({exc})",
            EXIT_UNAVAILABLE,
        ) from None
    from eventcore.snapshots.postgres import PostgresSnapshotStore

    chosen = schema or os.environ.get("EVENTCORE_POSTGRES_SCHEMA") or "eventcore"
    try:
        config = PostgresConfig(
            url,
            schema=chosen,
            pool_min=0,
            pool_max=2,
            connect_timeout=5.0,
            application_name="eventcore-cli",
        )
    except ConfigurationError as exc:
        raise CliError(f"bad PostgreSQL target: {exc}", EXIT_USAGE) from None
    database = PostgresDatabase(config, migrate=migrate)
    try:
        store = PostgresEventStore(database, events=events)
        return Opened(
            "postgres",
            f"{masked(url)} (schema {chosen})",
            store,
            PostgresCheckpointStore(database),
            PostgresDeadLetterStore(database),
            PostgresSnapshotStore(database),
            PostgresLeadership(database),
            config.mask,
        )
    except BaseException:
        database.close()
        raise


def store_error(exc: EventCoreError, opened: Opened | None = None) -> CliError:
    """The :class:`CliError` for an error a store raised during a command."""
    text = str(exc) if opened is None else opened.mask(str(exc))
    code = EXIT_UNAVAILABLE if isinstance(exc, StoreFailure) else EXIT_REFUSED
    return CliError(text, code)
