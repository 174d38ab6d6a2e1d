"""Sphinx configuration of the EventCore book: the course notebooks, concepts, how-tos, API.

Build it with ``make book`` (``sphinx-build -W --keep-going -b html book book/_build/html``).
Everything it needs comes from PyPI: nothing is downloaded while building.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # document the checkout, installed or not

project = "EventCore"
author = "the EventCore contributors"
copyright = "2026, the EventCore contributors"
release = version = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_design",
    "sphinx_togglebutton",
]

root_doc = "index"
exclude_patterns = [
    "_build",
    "README.md",
    "notebooks/README.md",
    "**/.ipynb_checkpoints",
    "**/.*",
]

# -- MyST and notebooks -------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# Execute every notebook during the build, so the book shows what the code does today.
# "cache" keeps results in _build/.jupyter_cache: a second build re-runs only changed ones.
nb_execution_mode = "cache"
nb_execution_cache_path = str(HERE / "_build" / ".jupyter_cache")
nb_execution_timeout = 180
nb_execution_raise_on_error = True  # an unexpected error fails the build
nb_execution_show_tb = True
nb_execution_in_temp = True  # files a notebook writes (SQLite databases) go to a temp folder
nb_merge_streams = True
# A notebook may link to a folder of the repository ("../tutorial/exercises/"): JupyterLab opens
# it in the file browser, and the book has no page for it. Only links ending in "/" are let
# through; a link to a missing file still fails the build.
nitpick_ignore_regex = [("myst", r"[\w./-]*/")]
# Course pages may also link to the repository's own documents (../DEVELOPERS.md): valid in
# JupyterLab, outside the book, so shown as plain text here.
nitpick_ignore = [("myst", os.fspath(p.with_suffix(""))) for p in sorted(HERE.parent.glob("*.md"))]
# Widgets do not run in a static page: the explorer's cell carries `remove-output` and the
# notebook draws a static figure of the same view. So no widget JavaScript is loaded from a CDN.
nb_ipywidgets_js: dict[str, dict[str, str]] = {}

# -- API reference --------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- HTML ------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "EventCore"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
}
html_static_path: list[str] = []

# Pages listed only when they exist: a missing page must not break the build, and an existing
# page must not be left out of every toctree. Guides written beside this file (postgresql.md,
# projections.md, ...) join the how-to list, in this order first; performance.md (the benchmark
# results) joins the reference. The workshop material lives in tutorial/ (-> ../tutorial).
HOWTO_ORDER = ("postgresql", "projections", "snapshots")
REFERENCE_PAGES = ("performance",)


def _top_level_pages() -> tuple[list[str], list[str]]:
    found = {p.stem for p in HERE.glob("*.md")} - {"index", "README"}
    howto = [p for p in HOWTO_ORDER if p in found]
    howto += sorted(found - set(howto) - set(REFERENCE_PAGES))
    return howto, [p for p in REFERENCE_PAGES if p in found]


def _workshop_pages() -> list[str]:
    """Every page and notebook under tutorial/, each folder's README first."""
    folder = HERE / "tutorial"
    pages = [
        path.relative_to(HERE)
        for path in folder.rglob("*")
        if path.suffix in (".md", ".ipynb")
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    pages.sort(key=lambda p: (p.parent.as_posix(), p.name != "README.md", p.name))
    return [p.with_suffix("").as_posix() for p in pages]


def _fill_toctrees(app: object, docname: str, source: list[str]) -> None:
    if docname != root_doc:
        return
    howto, reference = _top_level_pages()
    source[0] = source[0].replace("HOWTO_PAGES", "\n".join(howto))
    source[0] = source[0].replace("REFERENCE_PAGES", "\n".join(reference))
    source[0] = source[0].replace("WORKSHOP_PAGES", "\n".join(_workshop_pages()))


# The notebooks are reached through symlinks (book/notebooks -> ../notebooks, and
# book/tutorial -> ../tutorial). Sphinx resolves symlinks when it follows a relative link,
# which would turn "03_commands_and_rules.ipynb" into a path outside the book; keep the path
# inside the book when the resolved one leaves it.
def _keep_symlinked_paths() -> None:
    from sphinx.environment import BuildEnvironment

    original = BuildEnvironment.relfn2path
    if getattr(original, "_eventcore", False):
        return

    def relfn2path(
        self: BuildEnvironment, filename: str | Path, docname: str | None = None
    ) -> tuple[str, str]:
        rel_fn, abs_fn = original(self, filename, docname)
        srcdir = Path(self.srcdir)
        if Path(abs_fn).is_relative_to(srcdir.resolve()):
            return rel_fn, abs_fn
        name = Path(filename)
        if name.parts[:1] in {("/",), ("\\",)}:
            return rel_fn, abs_fn
        doc_dir = self.doc2path(docname or self.docname, base=False).parent
        kept = Path(os.path.normpath(srcdir / doc_dir / name))
        if not kept.is_relative_to(srcdir) or not kept.exists():
            return rel_fn, abs_fn
        return kept.relative_to(srcdir).as_posix(), os.fspath(kept)

    relfn2path._eventcore = True  # type: ignore[attr-defined]
    BuildEnvironment.relfn2path = relfn2path  # type: ignore[method-assign]


def setup(app: object) -> None:
    _keep_symlinked_paths()
    app.connect("source-read", _fill_toctrees)  # type: ignore[attr-defined]
