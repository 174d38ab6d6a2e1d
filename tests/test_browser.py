"""The course as a learner uses it: JupyterLab in Chromium, "Run All" on notebook 10.

Starts JupyterLab headless on a free port with a known token and its own config, data,
runtime, settings, IPython and matplotlib folders; opens a copy of the timeline notebook in
Debian's Chromium, driven by Playwright for Python (its wheel ships the driver; no browser is
downloaded); waits for the kernel to be connected and idle; runs every cell; and checks that
the plots rendered as images and that the explorer's slider rendered and answers the
keyboard. Without /usr/bin/chromium the test is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "10_visualising_timelines.ipynb"
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
RUN_TIMEOUT_MS = 120_000  # for the kernel to start and for "Run All" to finish


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


@dataclass
class Lab:
    url: str
    token: str
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


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium, and Playwright to drive it (checked before JupyterLab starts)."""
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture
def lab(chromium: Path, tmp_path: Path) -> Iterator[Lab]:
    """A JupyterLab server serving a folder with a copy of notebook 10, isolated from the
    user's Jupyter, IPython and matplotlib settings; shut down afterwards."""
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, course / NOTEBOOK)
    home = tmp_path / "home"
    env = {**os.environ}
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab-workspaces",
        "IPYTHONDIR": home / "ipython",
        "MPLCONFIGDIR": home / "matplotlib",
    }
    for name, folder in dirs.items():
        folder.mkdir(parents=True)
        env[name] = str(folder)
    news = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("JUPYTER_PATH", None)
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={port}",
                f"--ServerApp.root_dir={course}",
                f"--IdentityProvider.token={token}",
                "--ServerApp.disable_check_xsrf=True",
                "--LabApp.expose_app_in_browser=True",
            ],
            cwd=course,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its kernels are in its own process group
        )
    server = Lab(f"http://127.0.0.1:{port}", token, process, log)
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


KERNEL_READY = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const context = widget && widget.sessionContext;
    const kernel = context && context.session && context.session.kernel;
    return !!(context && context.isReady && kernel
              && kernel.connectionStatus === "connected" && kernel.status === "idle");
}"""


def test_notebook_10_runs_in_jupyterlab_and_its_widgets_respond(chromium: Path, lab: Lab) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(RUN_TIMEOUT_MS)
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
            page.wait_for_function(KERNEL_READY, timeout=RUN_TIMEOUT_MS)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            # The solution cell is the last code cell: its ✅ means every cell ran.
            expect(page.get_by_text("✅ 4/4 checks passed")).to_be_visible()
            page.wait_for_function(KERNEL_READY, timeout=RUN_TIMEOUT_MS)

            plots = page.locator(".jp-OutputArea-output.jp-RenderedImage img")
            expect(plots.first).to_be_visible()
            assert plots.count() >= 4  # timeline, replay cursor, causation graph, explorer
            assert all(plots.nth(i).evaluate("img => img.naturalWidth > 0") for i in range(4))

            slider = page.locator(".jupyter-widgets.widget-slider").first
            expect(slider).to_be_visible()
            readout = slider.locator(".widget-readout")
            expect(readout).to_have_text("9")  # the notebook moved it to position 9
            expect(page.locator(".widget-image img, img.widget-image").first).to_be_visible()
            slider.locator(".noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")
            expect(readout).to_have_text("10")
        finally:
            browser.close()
