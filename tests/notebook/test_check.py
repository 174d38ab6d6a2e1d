"""``make check``: one line saying whether the course can run here (eventcore.notebook.check)."""

from __future__ import annotations

import subprocess
import sys

from eventcore.notebook.check import PACKAGES, diagnose, postgres_status

ALL = dict.fromkeys(PACKAGES, "1.0")


def test_ready_with_postgresql() -> None:
    ready, line = diagnose(
        python=(3, 11, 9), versions=ALL.get, postgres=lambda: "PostgreSQL 15.4 at db:5432"
    )
    assert ready
    assert line == (
        "OK ready for the course: Python 3.11.9, JupyterLab 1.0, pandas 1.0, matplotlib 1.0, "
        "ipywidgets 1.0, Hypothesis 1.0; PostgreSQL 15.4 at db:5432 for notebook 14"
    )
    assert "\n" not in line


def test_ready_without_postgresql_says_notebook_14_falls_back() -> None:
    ready, line = diagnose(
        python=(3, 12, 0), versions=ALL.get, postgres=lambda: "no PostgreSQL server at db:5432"
    )
    assert ready
    assert line.endswith(
        "; no PostgreSQL server at db:5432: notebook 14 runs on SQLite instead (optional)"
    )


def test_missing_packages_are_named_with_the_fix() -> None:
    versions = {**ALL, "pandas": None, "ipywidgets": None}
    ready, line = diagnose(python=(3, 11, 0), versions=versions.get, postgres=lambda: None)
    assert not ready
    assert line == (
        "NOT READY: pandas, ipywidgets missing — run make lab (or pip install -e '.[course]')"
    )


def test_an_old_python_is_not_ready() -> None:
    ready, line = diagnose(python=(3, 10, 4), versions=ALL.get, postgres=lambda: None)
    assert (ready, line) == (
        False,
        "NOT READY: Python 3.10.4 is older than 3.11 — install Python 3.11+",
    )


def test_an_unreachable_server_is_reported_without_its_password() -> None:
    status = postgres_status({"EVENTCORE_POSTGRES_URL": "postgresql://u:s3cret@127.0.0.1:1/x"})
    assert status == "no PostgreSQL server at 127.0.0.1:1"


def test_the_command_prints_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventcore.notebook.check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"EVENTCORE_POSTGRES_URL": "postgresql://u@127.0.0.1:1/x", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("OK ready for the course")
