"""The course notebooks as files: their stored outputs are stable and readable.

A stored error shows the error itself (``Type: message``), not a traceback: tracebacks hold
the library's source lines and the absolute path of the machine that ran them, which go
stale with every change. After running a notebook that shows an error, tidy it with::

    python tests/test_notebook_files.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("tutorial/*/*.ipynb"))
ADDRESS = re.compile(r" at 0x[0-9a-f]{6,}")


def _errors(nb: Any) -> list[Any]:
    return [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]


def tidy(path: Path) -> bool:
    """Cut every stored error's traceback to its last line; True if the file changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for out in _errors(nb):
        line = [f"{out.ename}: {out.evalue}"]
        if out.traceback != line:
            out.traceback = line
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def _text(out: Any) -> str:
    parts = [out.get("text", ""), "\n".join(out.get("traceback", []))]
    for value in out.get("data", {}).values():
        parts.append(value if isinstance(value, str) else "")
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_errors_show_the_error_only(path: Path) -> None:
    for out in _errors(nbformat.read(path, as_version=4)):
        assert out.traceback == [f"{out.ename}: {out.evalue}"], (
            f"{path.name}: a stored traceback; run python tests/test_notebook_files.py"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_outputs_hold_no_local_path_or_memory_address(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = _text(out)
            assert str(ROOT) not in text, f"{path.name}: an absolute path in a stored output"
            assert not ADDRESS.search(text), f"{path.name}: a memory address in a stored output"


if __name__ == "__main__":
    for notebook in NOTEBOOKS:
        if tidy(notebook):
            print(f"tidied {notebook.relative_to(ROOT)}")
    sys.exit(0)
