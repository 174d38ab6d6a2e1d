"""The course notebooks as files: clean learner cells, stable outputs, learner copies.

Also the tool that keeps them so (run it from the repository root)::

    python tests/test_notebook_files.py            # tidy every notebook, rewrite workbook/
    python tests/test_notebook_files.py refresh --kernel eventcore-lab   # re-execute first

``make notebooks-refresh`` runs the second form. Tidying is idempotent and does four things:

- test markers become cell tags: a ``# NBVAL_RAISES_EXCEPTION`` (or ``NBVAL_IGNORE_OUTPUT``,
  ``NBVAL_SKIP``, ``NBVAL_CHECK_OUTPUT``) comment line is removed from the cell and the tag
  nbval and JupyterLab read (``raises-exception``, ``nbval-ignore-output``, ...) is added, so
  learner cells carry no test machinery;
- a stored error keeps ``Type: message`` only: tracebacks hold library source lines and this
  machine's paths, which go stale with every change;
- execution timings, widget state and the Python patch version are dropped from metadata, and
  consecutive prints to one stream are stored as one output;
- ``workbook/`` is regenerated: one learner copy per notebook, without outputs or solutions.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE = sorted(ROOT.glob("notebooks/[0-9]*.ipynb"))
TUTORIAL = sorted(ROOT.glob("tutorial/**/*.ipynb"))
NOTEBOOKS = COURSE + TUTORIAL
WORKBOOK = ROOT / "workbook"
ADDRESS = re.compile(r" at 0x[0-9a-f]{6,}")

# nbval's comment markers and the cell tags that mean the same (nbval 0.11 reads both).
MARKER_TAGS = {
    "NBVAL_RAISES_EXCEPTION": "raises-exception",
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_SKIP": "nbval-skip",
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
}
MARKER_LINE = re.compile(r"^[ \t]*#[ \t]*(NBVAL_[A-Z_]+)[ \t]*(?:\n|$)", re.MULTILINE)
# Cell metadata and notebook metadata that change on every run (what nbstripout drops).
CELL_KEYS = ("execution", "ExecuteTime", "collapsed", "scrolled")
# Cells the learner copies leave out: worked solutions (collapsed in the full notebook).
SOLUTION = "solution"


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _tags(cell: Any) -> list[str]:
    tags: list[str] = cell.metadata.setdefault("tags", [])
    return tags


def convert_markers(cell: Any) -> bool:
    """Move ``# NBVAL_...`` comment lines of a code cell into cell tags; True if changed."""
    if cell.cell_type != "code" or not MARKER_LINE.search(cell.source):
        return False
    for name in MARKER_LINE.findall(cell.source):
        if name not in MARKER_TAGS:
            raise SystemExit(f"unknown nbval marker {name}: add it to MARKER_TAGS")
        tag = MARKER_TAGS[name]
        if tag not in _tags(cell):
            _tags(cell).append(tag)
    cell.source = MARKER_LINE.sub("", cell.source)
    return True


def _errors(nb: Any) -> list[Any]:
    return [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]


def cut_tracebacks(nb: Any) -> bool:
    changed = False
    for out in _errors(nb):
        line = [f"{out.ename}: {out.evalue}"]
        if out.traceback != line:
            out.traceback = line
            changed = True
    return changed


def strip_metadata(nb: Any) -> bool:
    changed = False
    for key in ("widgets", "signature"):
        changed |= nb.metadata.pop(key, None) is not None
    changed |= nb.metadata.get("language_info", {}).pop("version", None) is not None
    for cell in nb.cells:
        for key in CELL_KEYS:
            changed |= cell.metadata.pop(key, None) is not None
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
            changed = True
    return changed


def merge_streams(cell: Any) -> bool:
    """Join consecutive stdout (or stderr) outputs: how a print is chunked varies by run."""
    merged: list[Any] = []
    for out in cell.get("outputs", []):
        last = merged[-1] if merged else None
        if (
            last is not None
            and out.output_type == last.output_type == "stream"
            and out.name == last.name
        ):
            last.text += out.text
        else:
            merged.append(out)
    if cell.cell_type != "code" or len(merged) == len(cell.outputs):
        return False
    cell.outputs = merged
    return True


def tidy_notebook(nb: Any) -> bool:
    """Tidy ``nb`` in place (see the module docstring); True if anything changed."""
    changed = False
    for cell in nb.cells:
        changed |= convert_markers(cell)
        changed |= merge_streams(cell)
    changed |= cut_tracebacks(nb)
    changed |= strip_metadata(nb)
    return changed


def tidy(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    changed = tidy_notebook(nb)
    if changed:
        nbformat.write(nb, path)
    return changed


# -- learner copies -------------------------------------------------------------------------

WORKBOOK_NOTE = (
    "*Workbook copy of [`notebooks/{name}`](../notebooks/{name}): no outputs and no worked "
    "solutions, for you to run and type into. Generated by `tests/test_notebook_files.py`; "
    "edit the notebook in `notebooks/`, not this copy.*"
)


def workbook_copy(nb: Any, name: str) -> Any:
    """The learner copy of a course notebook: outputs and execution counts cleared, solution
    cells left out, a note on top saying where the full notebook is."""
    clean = copy.deepcopy(nb)
    cells = []
    for cell in clean.cells:
        if SOLUTION in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    note = nbformat.v4.new_markdown_cell(WORKBOOK_NOTE.format(name=name))
    note.id = "workbook-note"
    clean.cells = [note, *cells]
    return clean


def write_workbooks() -> list[Path]:
    """Regenerate ``workbook/`` from ``notebooks/``; return the files that changed."""
    WORKBOOK.mkdir(exist_ok=True)
    changed = []
    wanted = set()
    for path in COURSE:
        target = WORKBOOK / path.name
        wanted.add(target)
        text = nbformat.writes(workbook_copy(nbformat.read(path, as_version=4), path.name))
        if not target.exists() or target.read_text(encoding="utf-8") != text + "\n":
            target.write_text(text + "\n", encoding="utf-8")
            changed.append(target)
    for stale in set(WORKBOOK.glob("*.ipynb")) - wanted:
        stale.unlink()
        changed.append(stale)
    return changed


# -- re-executing ---------------------------------------------------------------------------


def execute(path: Path, kernel: str) -> None:
    """Run every cell of ``path`` in its folder on ``kernel`` and store the outputs. A cell
    that raises without the ``raises-exception`` tag stops the run with an error."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    nbformat.write(nb, path)


def main(argv: Iterable[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="tidy", choices=["tidy", "refresh"])
    parser.add_argument("--kernel", default="python3", help="kernel to re-execute on")
    args, rest = parser.parse_known_args(list(argv))
    paths = [Path(p).resolve() for p in rest] or NOTEBOOKS  # notebooks (default: all)
    for path in paths:
        if args.mode == "refresh":
            print(f"running {rel(path)}", flush=True)
            execute(path, args.kernel)
        if tidy(path):
            print(f"tidied {rel(path)}")
    for path in write_workbooks():
        print(f"wrote {rel(path)}")
    return 0


# -- the tests ------------------------------------------------------------------------------

ids = {"ids": lambda p: rel(p)}


@pytest.mark.parametrize("path", NOTEBOOKS, **ids)
def test_learner_cells_carry_no_test_markers(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    marked = [i for i, c in code if MARKER_LINE.search(c.source)]
    assert not marked, (
        f"{path.name}: cells {marked} carry a '# NBVAL_...' line; "
        "run python tests/test_notebook_files.py (it moves them into cell tags)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, **ids)
def test_notebook_is_tidy(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert not tidy_notebook(nb), (
        f"{path.name}: stored tracebacks, markers or run metadata; "
        "run python tests/test_notebook_files.py"
    )


def _text(out: Any) -> str:
    parts = [out.get("text", ""), "\n".join(out.get("traceback", []))]
    for value in out.get("data", {}).values():
        parts.append(value if isinstance(value, str) else "")
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


@pytest.mark.parametrize("path", NOTEBOOKS, **ids)
def test_stored_outputs_hold_no_local_path_or_memory_address(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = _text(out)
            assert str(ROOT) not in text, f"{path.name}: an absolute path in a stored output"
            assert not ADDRESS.search(text), f"{path.name}: a memory address in a stored output"


def test_the_workbook_is_generated_from_the_notebooks() -> None:
    for path in COURSE:
        stored = WORKBOOK / path.name
        assert stored.exists(), f"workbook/{path.name} is missing; run tests/test_notebook_files.py"
        expected = nbformat.writes(workbook_copy(nbformat.read(path, as_version=4), path.name))
        assert stored.read_text(encoding="utf-8") == expected + "\n", (
            f"workbook/{path.name} is out of date; run python tests/test_notebook_files.py"
        )
    extra = {p.name for p in WORKBOOK.glob("*.ipynb")} - {p.name for p in COURSE}
    assert not extra, f"workbook/ holds copies of no notebook: {sorted(extra)}"


@pytest.mark.parametrize("path", COURSE, **ids)
def test_a_workbook_copy_has_no_outputs_and_no_solutions(path: Path) -> None:
    full = nbformat.read(path, as_version=4)
    clean = nbformat.read(WORKBOOK / path.name, as_version=4)
    code = [c for c in clean.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert not [c for c in clean.cells if SOLUTION in c.metadata.get("tags", [])]
    solutions = [c for c in full.cells if SOLUTION in c.metadata.get("tags", [])]
    kept = {c.source for c in full.cells} - {c.source for c in solutions}
    assert {c.source for c in clean.cells[1:]} == kept


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
