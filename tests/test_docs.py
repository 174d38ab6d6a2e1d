"""The workshop pages' (and the stores concept and service pages') examples really run and
print what the pages say they print.

The mechanism of ``test_readme.py``, extended to sessions. A python block preceded by
``<!-- runnable -->`` is run; a text block preceded by ``<!-- output -->`` must equal what the
runnable blocks of its session printed since the session's previous output block. Blocks
belong to the ``main`` session unless the marker names another (``session=eventsourcing``);
each session has its own namespace and runs its blocks in page order. ``requires=module``
skips the session when that module is not installed.

The cheat sheet must also mention every name that ``eventcore`` exports.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
import types
from pathlib import Path

import pytest

import eventcore

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    "tutorial/cheatsheet.md",
    "tutorial/migrating-from-aggregates.md",
    "book/concepts/stores.md",
    "book/concepts/personal-data.md",
    "book/service.md",
    "book/retention.md",
    "book/tenants.md",
]

BLOCK = re.compile(
    r"^<!-- (?P<marker>runnable|output)(?P<attrs>(?: [\w-]+=[\w.-]+)*) -->\n"
    r"```(?P<lang>\w+)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def blocks(page: str) -> list[tuple[str, dict[str, str], str, str]]:
    """(marker, attributes, language, body) of each marked block, in page order."""
    found = []
    for m in BLOCK.finditer((ROOT / page).read_text(encoding="utf-8")):
        attrs = dict(pair.split("=", 1) for pair in m["attrs"].split())
        found.append((m["marker"], attrs, m["lang"], m["body"]))
    return found


def sessions() -> list[tuple[str, str]]:
    return sorted(
        {(page, attrs.get("session", "main")) for page in PAGES for _, attrs, _, _ in blocks(page)}
    )


@pytest.mark.parametrize("page", PAGES)
def test_page_marks_runnable_examples_and_their_output(page: str) -> None:
    marked = blocks(page)
    assert any(marker == "runnable" for marker, _, _, _ in marked), page
    assert any(marker == "output" for marker, _, _, _ in marked), page
    for marker, attrs, lang, _ in marked:
        expected = "python" if marker == "runnable" else "text"
        assert lang == expected, f"{page}: a {marker} block must be ```{expected}"
        assert set(attrs) <= {"session", "requires"}, f"{page}: unknown attributes {attrs}"
    # a marker must sit right above its block: an unmatched marker is a typo
    text = (ROOT / page).read_text(encoding="utf-8")
    assert text.count("<!-- runnable") + text.count("<!-- output") == len(marked), page


@pytest.mark.parametrize(("page", "session"), sessions())
def test_page_examples_run_and_print_what_they_show(page: str, session: str) -> None:
    mine = [b for b in blocks(page) if b[1].get("session", "main") == session]
    for module in {b[1]["requires"] for b in mine if "requires" in b[1]}:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{page} session {session!r} needs {module!r}, which is not installed")
    # A real module: libraries that import a class's module (eventsourcing's Aggregate) work.
    name = "eventcore_docs_" + re.sub(r"\W", "_", f"{page}_{session}")
    module = types.ModuleType(name)
    sys.modules[name] = module
    printed = io.StringIO()
    checked = 0
    try:
        for index, (marker, _, _, body) in enumerate(mine):
            where = f"{page} session {session!r} block {index}"
            if marker == "runnable":
                # dont_inherit: run the block as a reader would, without this file's __future__.
                code = compile(body, where, "exec", dont_inherit=True)
                with contextlib.redirect_stdout(printed):
                    exec(code, module.__dict__)
            else:
                assert printed.getvalue() == body, where
                printed = io.StringIO()
                checked += 1
    finally:
        del sys.modules[name]
    assert checked >= 1, f"{page} session {session!r} compares no output"
    assert printed.getvalue() == "", f"{page} session {session!r}: output after the last block"


def test_cheatsheet_mentions_every_public_name() -> None:
    text = (ROOT / "tutorial/cheatsheet.md").read_text(encoding="utf-8")
    missing = [name for name in eventcore.__all__ if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"tutorial/cheatsheet.md does not mention {missing}; add them"


# -- the course's companion pages ------------------------------------------------------------

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
COMPANION = ["book/course/glossary.md", "book/course/troubleshooting.md"]
TUTORIAL_PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tutorial").glob("*.md"))
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _header_minutes(path: Path) -> tuple[int, int]:
    import json

    first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
    found = re.search(r"\*\*Teaching:\*\* (\d+) min · \*\*Exercises:\*\* (\d+) min", first)
    assert found, f"{path.name}: no Teaching/Exercises minutes"
    return int(found[1]), int(found[2])


def test_the_instructor_guide_times_every_notebook_as_its_header_does() -> None:
    text = (ROOT / "tutorial/instructor-guide.md").read_text(encoding="utf-8")
    rows = {
        m[1]: (int(m[2]), int(m[3]))
        for m in re.finditer(r"^\| (\d\d) [^|]+\| (\d+) \| (\d+) \| \d+ \|$", text, re.MULTILINE)
    }
    assert sorted(rows) == [p.name[:2] for p in NOTEBOOKS], "a notebook is missing from the timings"
    for path in NOTEBOOKS:
        assert rows[path.name[:2]] == _header_minutes(path), f"timings of {path.name}"


def test_the_tutorial_readme_lists_every_exercise_notebook() -> None:
    text = (ROOT / "tutorial/README.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "tutorial/exercises").glob("*.ipynb")):
        assert f"(exercises/{path.name})" in text, f"tutorial/README.md does not list {path.name}"
        assert (ROOT / "tutorial/solutions" / path.name).exists(), f"no solution for {path.name}"


def test_the_glossary_is_sorted_and_points_at_notebooks_that_exist() -> None:
    text = (ROOT / "book/course/glossary.md").read_text(encoding="utf-8")
    terms = re.findall(r"^- \*\*([^*]+)\*\*", text, re.MULTILINE)
    assert len(terms) >= 40 and terms == sorted(terms, key=str.lower), "glossary order"
    for entry in re.split(r"^- ", text, flags=re.MULTILINE)[1:]:
        assert "../notebooks/" in entry, f"glossary entry without a notebook: {entry[:40]}"


def test_troubleshooting_explains_every_error_a_notebook_shows() -> None:
    """Fed by the errors learners actually hit: each error a course or workshop notebook
    shows is on the troubleshooting page (by name, or as a BusinessRuleViolation)."""
    import json

    page = (ROOT / "book/course/troubleshooting.md").read_text(encoding="utf-8")
    shown = set()
    for path in [*NOTEBOOKS, *sorted((ROOT / "tutorial").glob("*/*.ipynb"))]:
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            shown |= {o["ename"] for o in cell.get("outputs", []) if o["output_type"] == "error"}
    missing = sorted(name for name in shown if f"`{name}`" not in page)
    assert not missing, f"book/course/troubleshooting.md does not explain {missing}"


@pytest.mark.parametrize("page", COMPANION + TUTORIAL_PAGES)
def test_links_in_course_pages_open(page: str) -> None:
    path = ROOT / page
    for target in MD_LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#") or "<" in target:
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.exists(), f"{page}: {target} does not exist"
