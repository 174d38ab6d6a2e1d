"""The course as a learner uses it: JupyterLab in Chromium, "Run All" on every notebook.

Starts the JupyterLab of ``.venv-lab`` — the environment ``make lab`` builds, with the
project's settings (``jupyter/``) — serving a copy of the checkout, the way ``make lab``
serves the checkout itself, with its own config, data, runtime, settings, IPython and
matplotlib folders. Debian's Chromium, driven by Playwright for Python (its wheel ships the
driver; no browser is downloaded), opens every course and workshop notebook, waits for the
kernel to be connected and idle, runs all cells, and checks:

- no cell shows an error except the deliberate ones (cells tagged ``raises-exception``), and
  a deliberate EventCore error reads as one line plus the cell it came from;
- every plot the stored notebook has is rendered as an image;
- no raw ``VBox(children=...)`` and no emoji reach the page;
- every relative link of the notebook opens on the server;
- the explorer's slider answers the keyboard and redraws;
- JupyterLab greeted nobody with a news or update prompt.

Notebook 14 runs with ``EVENTCORE_POSTGRES_URL`` pointing at a closed port, so the browser
covers its SQLite fallback (nbval covers the server). On a failure the page's screenshot and
the server's log go to ``tests/browser-failures/`` (ignored by git). Without
``/usr/bin/chromium``, Playwright or ``.venv-lab`` the test is skipped, except in CI, where it
fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9]*.ipynb")) + sorted(ROOT.glob("tutorial/*/*.ipynb"))
FAILURES = ROOT / "tests" / "browser-failures"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 90.0  # seconds for JupyterLab to answer
RUN_TIMEOUT_MS = 120_000  # for a kernel to start and for "Run All" to finish
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EMOJI = re.compile("[\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _unavailable(reason: str) -> None:
    """Skip with one line locally; in CI the browser test must run, so fail."""
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _lab_python() -> Path:
    """The Python of .venv-lab (``make test`` passes it as EVENTCORE_LAB_PYTHON)."""
    named = os.environ.get("EVENTCORE_LAB_PYTHON")
    python = Path(named) if named else ROOT / ".venv-lab" / "bin" / "python"
    if not python.exists():
        _unavailable(f"no learner environment at {python} (make lab-venv builds it)")
    return python


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str) -> int:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:  # not listening yet, or already gone
            return 0

    def get_json(self, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read())


def _copy_checkout(target: Path) -> None:
    """What make lab serves, as a copy (Run All would otherwise save into the checkout)."""
    for folder in ("notebooks", "workbook", "tutorial"):
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(
        ROOT / "book", target / "book", symlinks=True, ignore=shutil.ignore_patterns("_build")
    )
    for page in ROOT.glob("*.md"):
        shutil.copy(page, target / page.name)


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, and Playwright to drive it (checked before JupyterLab starts)."""
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture(scope="module")
def lab(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The JupyterLab of .venv-lab on a copy of the checkout, isolated from the user's
    Jupyter, IPython and matplotlib settings; shut down afterwards."""
    python = _lab_python()
    tmp = tmp_path_factory.mktemp("lab")
    checkout = tmp / "checkout"
    _copy_checkout(checkout)
    home = tmp / "home"
    env = {**os.environ}
    for name in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTERLAB_SETTINGS_DIR",
        "JUPYTERLAB_WORKSPACES_DIR",
        "IPYTHONDIR",
        "MPLCONFIGDIR",
    ):
        folder = home / name.lower()
        folder.mkdir(parents=True)
        env[name] = str(folder)
    env.pop("JUPYTER_PATH", None)
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["EVENTCORE_POSTGRES_URL"] = "postgresql://course@127.0.0.1:1/none"  # nobody listens
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(python),
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={port}",
                f"--ServerApp.root_dir={checkout}",
                f"--IdentityProvider.token={token}",
                "--ServerApp.disable_check_xsrf=True",
                "--LabApp.expose_app_in_browser=True",
            ],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its kernels are in its own process group
        )
    server = Lab(f"http://127.0.0.1:{port}", token, checkout, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while server.request("GET", "/api/status") != 200:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in {START_TIMEOUT:.0f} s")
            time.sleep(0.25)
        yield server
    finally:
        _shut_down(server)


def _shut_down(server: Lab) -> None:
    """Ask the server to stop (it stops its kernels), then end what this test started."""
    server.request("POST", "/api/shutdown")  # answers 0 when the server is already gone
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
    # A kernel the server could not stop is still in the server's own process group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def page(chromium: Path, lab: Lab) -> Iterator[Any]:
    """One Chromium page on JupyterLab, for every notebook in turn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(RUN_TIMEOUT_MS)
            tab.goto(f"{lab.url}/lab?token={lab.token}")
            tab.wait_for_function(
                "() => !!(window.jupyterapp && window.jupyterapp.commands.hasCommand("
                "'docmanager:open') && window.jupyterapp.commands.hasCommand("
                "'notebook:run-all-cells'))"
            )
            yield tab
        finally:
            browser.close()


# The notebook under test is kept in window.notebookUnderTest; a click into it makes it the
# shell's current widget, which the notebook commands act on.
OPEN = """async (path) => {
    const app = window.jupyterapp;
    const panel = await app.commands.execute("docmanager:open", {path, factory: "Notebook"});
    app.shell.activateById(panel.id);
    await panel.context.ready;
    window.notebookUnderTest = panel;
    return panel.id;
}"""

KERNEL_READY = """() => {
    const widget = window.notebookUnderTest;
    const context = widget && widget.sessionContext;
    const kernel = context && context.session && context.session.kernel;
    return !!(context && context.isReady && kernel
              && kernel.connectionStatus === "connected" && kernel.status === "idle");
}"""

# Done when the kernel is idle, no cell waits ([*]), and either every code cell ran or a cell
# failed that was not meant to (Run All stops there).
RUN_FINISHED = """() => {
    const panel = window.notebookUnderTest;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    if (!kernel || kernel.status !== "idle") return false;
    const prompts = [...panel.node.querySelectorAll(".jp-InputPrompt")];
    if (prompts.some(p => p.textContent.includes("*"))) return false;
    let ran = true, failed = false;
    for (const cell of panel.content.widgets) {
        if (cell.model.type !== "code") continue;
        if (cell.model.executionCount === null) ran = false;
        const tags = cell.model.getMetadata("tags") || [];
        const error = cell.model.outputs.toJSON().some(o => o.output_type === "error");
        if (error && !tags.includes("raises-exception")) failed = true;
    }
    return ran || failed;
}"""

CELLS = """() => {
    const panel = window.notebookUnderTest;
    return panel.content.widgets.filter(c => c.model.type === "code").map(cell => ({
        tags: cell.model.getMetadata("tags") || [],
        count: cell.model.executionCount,
        outputs: cell.model.outputs.toJSON(),
        images: [...cell.node.querySelectorAll(".jp-OutputArea-output.jp-RenderedImage img")]
            .filter(img => img.complete && img.naturalWidth > 0).length,
        source: cell.model.sharedModel.getSource().slice(0, 60),
    }));
}"""

CLOSE = """async () => {
    const panel = window.notebookUnderTest;
    await panel.sessionContext.shutdown();
    panel.context.model.dirty = false;
    panel.dispose();
}"""


def _open_and_run(page: Any, path: str) -> list[dict[str, Any]]:
    panel = page.evaluate(OPEN, path)
    page.locator(f"#{panel} .jp-Cell").first.click()
    page.wait_for_function("id => window.jupyterapp.shell.currentWidget?.id === id", arg=panel)
    # The toolbar says idle for a moment before a kernel exists: wait for a connected one.
    page.wait_for_function(KERNEL_READY, timeout=RUN_TIMEOUT_MS)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        "() => [...window.notebookUnderTest.node"
        ".querySelectorAll('.jp-InputPrompt')].some(p => /\\d|\\*/.test(p.textContent))"
    )
    page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS, polling=500)
    time.sleep(0.5)  # let the last images and widgets render
    page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS)
    cells: list[dict[str, Any]] = page.evaluate(CELLS)
    return cells


def _stored(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _problems(path: Path, cells: list[dict[str, Any]], page: Any, lab: Lab) -> list[str]:
    name = path.name
    problems = []
    stored = [c for c in _stored(path)["cells"] if c["cell_type"] == "code"]
    for index, cell in enumerate(cells):
        where = f"{name} code cell {index} ({cell['source']!r})"
        if cell["count"] is None:
            problems.append(f"{where} did not run")
        for out in cell["outputs"]:
            if out["output_type"] != "error":
                continue
            lines = [ANSI.sub("", line) for line in out.get("traceback", [])]
            if "raises-exception" not in cell["tags"]:
                problems.append(f"{where}: {out['ename']}: {out['evalue']}")
            elif lines and lines[0] == f"{out['ename']}: {out['evalue']}":
                # an EventCore error: one line, then the learner's own frames only
                library = [line for line in lines if "eventcore/" in line or ".py, line" in line]
                if library or len(lines) > 5:
                    problems.append(f"{where}: library frames in the error: {lines}")
        expected = sum("image/png" in o.get("data", {}) for o in stored[index].get("outputs", []))
        if cell["images"] < expected:
            problems.append(f"{where}: {cell['images']} of {expected} plots rendered")
    text = page.evaluate("() => window.notebookUnderTest.node.innerText")
    if "VBox(children" in text:
        problems.append(f"{name}: raw VBox(children=...) on the page")
    if EMOJI.search(text):
        problems.append(f"{name}: emoji on the page: {sorted(set(EMOJI.findall(text)))}")
    for link in _relative_links(path):
        served = (path.parent / link).resolve().relative_to(ROOT)
        quoted = urllib.parse.quote(served.as_posix())
        if lab.request("GET", f"/api/contents/{quoted}?content=0") != 200:
            problems.append(f"{name}: the link {link} does not open in JupyterLab")
    return problems


def _relative_links(path: Path) -> list[str]:
    found = []
    for cell in _stored(path)["cells"]:
        if cell["cell_type"] == "markdown":
            for target in LINK.findall("".join(cell["source"])):
                if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
                    found.append(target.split("#")[0].rstrip("/") or ".")
    return found


def _save_failure(page: Any, lab: Lab, name: str) -> Path:
    FAILURES.mkdir(exist_ok=True)
    shot = FAILURES / f"{name}.png"
    with contextlib.suppress(Exception):
        page.screenshot(path=str(shot), full_page=True)
    with contextlib.suppress(OSError):
        shutil.copy(lab.log, FAILURES / "jupyterlab.log")
    return shot


def _explorer_responds(page: Any) -> list[str]:
    """Notebook 11's explorer: the slider is where the notebook put it, and ArrowRight moves
    it and redraws the picture."""
    from playwright.sync_api import expect

    panel = page.locator(".jp-NotebookPanel:visible")
    slider = panel.locator(".jupyter-widgets.widget-slider").first
    expect(slider).to_be_visible()
    readout = slider.locator(".widget-readout")
    expect(readout).to_have_text("10")  # the notebook set position 10
    image = panel.locator(".widget-image img, img.widget-image").first
    expect(image).to_be_visible()
    before = image.get_attribute("src")
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    expect(readout).to_have_text("11")
    page.wait_for_function(
        "([img, old]) => img.getAttribute('src') !== old", arg=[image.element_handle(), before]
    )
    return []


def _one_line_refusal(cells: list[dict[str, Any]]) -> list[str]:
    """Notebook 01's refused transfer reads as one line, then the learner's cells only."""
    for cell in cells:
        for out in cell["outputs"]:
            if out["output_type"] == "error" and out["ename"] == "InsufficientFunds":
                lines = [ANSI.sub("", line) for line in out["traceback"]]
                expected = "InsufficientFunds: account-bob holds 30, cannot withdraw 500"
                cell_line = r"  Cell In\[\d+\], line 1: execute\(store, .*\)"
                ok = lines[0] == expected and re.fullmatch(cell_line, lines[1])
                if ok and all(line.startswith("  Cell In[") for line in lines[1:]):
                    return []  # the cell that executed, then the learner's handle()
                return [f"01: the refused transfer shows {lines}"]
    return ["01: the refused transfer raised nothing"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_run_all_in_jupyterlab(path: Path, lab: Lab, page: Any) -> None:
    relative = path.relative_to(ROOT).as_posix()
    name = relative.replace("/", "_").removesuffix(".ipynb")
    try:
        cells = _open_and_run(page, relative)
        problems = _problems(path, cells, page, lab)
        if path.name.startswith("11_"):
            problems += _explorer_responds(page)
        if path.name.startswith("01_"):
            problems += _one_line_refusal(cells)
        if path.name.startswith("14_"):
            printed = "".join(o.get("text", "") for c in cells for o in c["outputs"])
            if "using SQLite instead" not in printed:
                problems.append("notebook 14 did not fall back to SQLite")
        assert not problems, "\n".join(problems)
    except Exception:
        shot = _save_failure(page, lab, name)
        print(f"screenshot: {shot}", file=sys.stderr)
        raise
    finally:
        with contextlib.suppress(Exception):
            page.evaluate(CLOSE)


def test_no_news_or_update_prompt_greeted_the_learner(lab: Lab, page: Any) -> None:
    """The project's settings (installed into .venv-lab by make) turn the prompts off."""
    toasts = page.locator(".Toastify__toast")
    texts = [toasts.nth(i).inner_text() for i in range(toasts.count())]
    assert not [t for t in texts if "news" in t.lower() or "update" in t.lower()], texts
    config = lab.get_json("/lab/api/settings/@jupyterlab/apputils-extension:notification")
    defaults = {name: spec["default"] for name, spec in config["schema"]["properties"].items()}
    assert (defaults["fetchNews"], defaults["checkForUpdates"]) == ("false", False)
