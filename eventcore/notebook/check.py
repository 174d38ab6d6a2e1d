r"""Is this machine ready for the course? One line of answer (``make check``).

``python -m eventcore.notebook.check`` prints one line, for example ``OK ready for the
course: Python 3.11.9, JupyterLab 4.6.6, pandas 3.1.1, ...; PostgreSQL 15.4 at
127.0.0.1:5432 for notebook 14``, and exits with status 0; or it names what is missing and
how to get it, and exits with 1. PostgreSQL is optional: without a server, notebook 14 runs
the same cells on SQLite, and the line says so. The server is the one
``EVENTCORE_POSTGRES_URL`` (or the ``PG*`` variables) names, else :data:`COURSE_POSTGRES_URL`.

>>> ready, line = diagnose(python=(3, 11, 9), versions={}.get, postgres=lambda: None)
>>> ready
False
>>> print(line.replace(" — ", "\n").replace(", m", ",\nm"))
NOT READY: pandas, jupyterlab, ipykernel, ipywidgets,
matplotlib, hypothesis, cryptography, fastapi, httpx missing
run make lab (or pip install -e '.[course]')
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib import metadata

__all__ = ["COURSE_POSTGRES_URL", "PACKAGES", "diagnose", "main", "postgres_status"]

COURSE_POSTGRES_URL = "postgresql://127.0.0.1:5432/postgres"
"""The server the course uses when no ``EVENTCORE_POSTGRES_URL`` or ``PG*`` variable is set."""

PACKAGES = {
    "pandas": "pandas",
    "jupyterlab": "JupyterLab",
    "ipykernel": "ipykernel",
    "ipywidgets": "ipywidgets",
    "matplotlib": "matplotlib",
    "hypothesis": "Hypothesis",
    "cryptography": "cryptography",  # notebook 19 encrypts (the crypto extra)
    "fastapi": "FastAPI",  # notebook 16 drives the bank service in-process
    "httpx": "httpx",
}
"""The distributions the course needs (the ``course`` extra), with the names to print."""

_SHOWN = ("jupyterlab", "pandas", "matplotlib", "ipywidgets", "hypothesis")


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def postgres_status(environ: dict[str, str] | None = None, timeout: float = 2.0) -> str | None:
    """``"PostgreSQL 15.4 at host:port"`` when a server answers, else a short reason it does
    not (``None`` only when the reason is unknown). Never prints a password."""
    env = dict(os.environ if environ is None else environ)
    try:
        import psycopg

        from eventcore.errors import ConfigurationError
        from eventcore.stores.postgres import PostgresConfig
    except ImportError:
        return "no psycopg (pip install -e '.[postgres]')"
    try:
        config = PostgresConfig.from_env(env)
    except ConfigurationError:
        config = PostgresConfig(COURSE_POSTGRES_URL)
    try:
        with psycopg.connect(config.dsn, connect_timeout=max(1, round(timeout))) as db:
            row = db.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return f"no PostgreSQL server at {config.address}"
    version = str(row[0]).split()[0] if row else "?"
    return f"PostgreSQL {version} at {config.address}"


def diagnose(
    *,
    python: tuple[int, ...] = tuple(sys.version_info[:3]),
    versions: Callable[[str], str | None] = _installed,
    postgres: Callable[[], str | None] = postgres_status,
) -> tuple[bool, str]:
    """``(ready, line)``: whether the course can run here, and the one line that says so."""
    dotted = ".".join(map(str, python))
    if python < (3, 11):
        return False, f"NOT READY: Python {dotted} is older than 3.11 — install Python 3.11+"
    found = {name: versions(name) for name in PACKAGES}
    missing = [name for name, version in found.items() if version is None]
    if missing:
        return False, (
            f"NOT READY: {', '.join(missing)} missing — run make lab "
            "(or pip install -e '.[course]')"
        )
    parts = [f"Python {dotted}"] + [f"{PACKAGES[n]} {found[n]}" for n in _SHOWN]
    server = postgres() or "PostgreSQL status unknown"
    if server.startswith("PostgreSQL "):
        tail = f"{server} for notebook 14"
    else:
        tail = f"{server}: notebook 14 runs on SQLite instead (optional)"
    return True, f"OK ready for the course: {', '.join(parts)}; {tail}"


def main() -> int:
    ready, line = diagnose()
    print(line)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
