"""The bottom layers know nothing of the upper ones: checked on the source, every import
counted (module level, inside functions and under ``TYPE_CHECKING``).

The pipeline is given its replay strategy; snapshots are one such strategy, so neither the
command nor the pipeline knows of them. The shells import the snapshot package only when a
snapshot store is passed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import eventcore

PACKAGE = Path(eventcore.__file__).parent


def imported_modules(relative: str) -> set[str]:
    """Every module named by an import statement anywhere in ``eventcore/<relative>``."""
    tree = ast.parse((PACKAGE / relative).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_errors_import_only_leaves_of_eventcore() -> None:
    """errors.py may import only modules that themselves import nothing from eventcore
    (the traceback renderer IPython calls, which is standard library only)."""
    for module in {m for m in imported_modules("errors.py") if m.startswith("eventcore")}:
        path = module.removeprefix("eventcore.").split(".")[0] + ".py"
        if not (PACKAGE / path).exists():
            continue  # "eventcore._traceback.render_traceback": a name, not a module
        inner = {m for m in imported_modules(path) if m.startswith("eventcore")}
        assert not inner, f"errors.py imports {module}, which imports {sorted(inner)}"


@pytest.mark.parametrize(
    "module",
    [
        "errors.py",
        "events.py",
        "metadata.py",
        "types.py",
        "retry.py",
        "store.py",
        "commands.py",
        "pipeline.py",
    ],
)
def test_bottom_modules_know_neither_snapshots_nor_projections(module: str) -> None:
    upper = {
        m
        for m in imported_modules(module)
        if m.startswith(("eventcore.snapshots", "eventcore.projections"))
    }
    assert not upper, f"{module} imports {sorted(upper)}"


def test_the_checker_sees_imports_inside_functions_and_type_checking_blocks() -> None:
    found = imported_modules("projections/errors.py")
    assert "eventcore.projections.api.ProjectionReport" in found  # under TYPE_CHECKING


def module_level_imports(relative: str) -> set[str]:
    """The modules imported when ``eventcore/<relative>`` is imported (not those imported
    inside functions or under ``if TYPE_CHECKING:``)."""
    tree = ast.parse((PACKAGE / relative).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", ["execution.py", "aio.py"])
def test_the_shells_import_snapshots_only_when_they_are_used(module: str) -> None:
    assert not {m for m in module_level_imports(module) if m.startswith("eventcore.snapshots")}
    assert any(m.startswith("eventcore.snapshots") for m in imported_modules(module))


def foreign_private_reads(source: str) -> list[str]:
    """``x._name`` reads in ``source`` of a private name that ``source`` never defines
    (assigns, declares or imports), on anything but ``self``/``cls``: a reach into another
    module's internals."""
    tree = ast.parse(source)
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.alias):
            defined.add(node.asname or node.name.split(".")[-1])
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in defined:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"line {node.lineno}: .{name}")
    return found


def test_no_module_reads_another_modules_private_attributes() -> None:
    problems = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if (found := foreign_private_reads(path.read_text(encoding="utf-8")))
    }
    assert problems == {}, f"private attributes read across modules: {problems}"


def test_the_private_read_check_sees_a_reach_and_allows_the_modules_own() -> None:
    source = (
        "class A:\n    def __init__(self):\n        self._mine = 1\n"
        "def f(a, store):\n    return a._mine, store._conn\n"
    )
    assert foreign_private_reads(source) == ["line 5: ._conn"]
