"""The course run the way learners run it, outside nbval's output comparison.

- every workbook copy (no solutions) runs from top to bottom without an unexpected error;
- notebook 14 runs without psycopg, falling back to SQLite, as it promises;
- on a PostgreSQL server, notebook 14 drops the schema it created and nothing else.

The kernel is ``$EVENTCORE_LAB_KERNEL`` (``make test`` sets it to the kernel of ``.venv-lab``,
the environment ``make lab`` builds), else ``python3``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]
WORKBOOK = sorted((ROOT / "workbook").glob("*.ipynb"))
POSTGRES_NOTEBOOK = ROOT / "notebooks" / "14_postgresql.ipynb"
KERNEL = os.environ.get("EVENTCORE_LAB_KERNEL", "python3")


def run(path: Path, folder: Path, env: dict[str, str] | None = None) -> Any:
    """Execute a copy of ``path`` in ``folder``; a cell that raises without the
    ``raises-exception`` tag fails the test with that cell's error."""
    copy = folder / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(folder)}}
    )
    try:
        client.execute(env=env) if env is not None else client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name}: {str(error).strip().splitlines()[-1]}", pytrace=False)
    return nb


def stdout(nb: Any) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream"
    )


@pytest.mark.parametrize("path", WORKBOOK, ids=lambda p: p.name)
def test_a_workbook_copy_runs_from_top_to_bottom(path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "workbook"
    folder.mkdir()
    nb = run(path, folder)
    # no worked solution is left in a workbook: every check still waits for the learner
    assert not re.search(r"^OK \d+/\d+ checks passed", stdout(nb), re.MULTILINE)
    assert "not implemented yet" in stdout(nb)


def test_notebook_14_falls_back_to_sqlite_without_psycopg(tmp_path: Path) -> None:
    hidden = tmp_path / "no-psycopg"
    (hidden / "psycopg").mkdir(parents=True)
    (hidden / "psycopg" / "__init__.py").write_text(
        'raise ImportError("psycopg is hidden for this test")\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), str(ROOT)])}
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = run(POSTGRES_NOTEBOOK, folder, env)
    printed = stdout(nb)
    assert "no PostgreSQL here (ImportError); using SQLite instead" in printed
    assert "2 account-alice v2 MoneyWithdrawn 30" in printed  # the transfer ran, on SQLite
    assert "psycopg is not installed" in printed  # the exercise says why it cannot run


def _schemas(dsn: str, prefix: str) -> set[str]:
    import psycopg

    with psycopg.connect(dsn) as db:
        rows = db.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",))
        return {row[0] for row in rows.fetchall()}


def test_notebook_14_drops_only_the_schema_it_created(postgres_dsn: str, tmp_path: Path) -> None:
    """Other tests share the server, so look only at schemas named like the notebook's, and
    keep one of our own (a sentinel with the notebook's prefix) that it must leave alone."""
    import secrets

    import psycopg
    from psycopg import sql

    sentinel = f"course_14_sentinel_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(sentinel)))
    try:
        before = _schemas(postgres_dsn, "course_14_")
        folder = tmp_path / "notebooks"
        folder.mkdir()
        env = {**os.environ, "EVENTCORE_POSTGRES_URL": postgres_dsn}
        nb = run(POSTGRES_NOTEBOOK, folder, env)
        assert "using PostgreSQL at" in stdout(nb)
        assert _schemas(postgres_dsn, "course_14_") == before  # its own is gone, ours is not
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as db:
            db.execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(sentinel)))
