"""The README's example really runs and prints what the README says it prints.

A python code block preceded by ``<!-- runnable -->`` is run; all runnable blocks share one
namespace, in order. A text block preceded by ``<!-- output -->`` must equal what the
runnable blocks since the previous output block printed.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

BLOCK = re.compile(
    r"^<!-- (?P<marker>runnable|output) -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def marked_blocks() -> list[tuple[str, str, str]]:
    return [(m["marker"], m["lang"], m["body"]) for m in BLOCK.finditer(README.read_text())]


def test_readme_marks_a_runnable_example_and_its_output() -> None:
    markers = [(marker, lang) for marker, lang, _ in marked_blocks()]
    assert ("runnable", "python") in markers
    assert ("output", "text") in markers
    assert all(
        (marker, lang) in {("runnable", "python"), ("output", "text")} for marker, lang in markers
    ), markers


def test_readme_example_runs_and_prints_what_it_shows() -> None:
    namespace: dict[str, object] = {"__name__": "readme"}
    printed = io.StringIO()
    checked = 0
    for index, (marker, _, body) in enumerate(marked_blocks()):
        if marker == "runnable":
            # dont_inherit: run the block as a reader would, without this file's __future__.
            code = compile(body, f"README.md block {index}", "exec", dont_inherit=True)
            with contextlib.redirect_stdout(printed):
                exec(code, namespace)
        else:
            assert printed.getvalue() == body, f"README.md block {index}"
            printed = io.StringIO()
            checked += 1
    assert checked >= 1
    assert printed.getvalue() == "", "output after the last <!-- output --> block"


def test_the_course_table_lists_every_notebook_with_a_working_link() -> None:
    root = README.parent
    text = README.read_text()
    linked = re.findall(r"^\| (\d\d) \| \[[^]]+\]\((notebooks/[^)]+\.ipynb)\)", text, re.MULTILINE)
    notebooks = sorted(p.relative_to(root).as_posix() for p in root.glob("notebooks/[0-9]*.ipynb"))
    assert [path for _, path in linked] == notebooks, "README's course table is out of date"
    assert all(path.startswith(f"notebooks/{number}_") for number, path in linked)
