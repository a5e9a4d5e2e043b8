"""JupyterLab in a real browser: run notebook 08, move its slider, see the figure change.

nbval runs kernels without a front end: a widget that JupyterLab shows as the text
``interactive(children=...)`` passes it. This test starts ``jupyter lab`` on 127.0.0.1 (with a token)
in the course's environment, opens a copy of notebook 08 in headless Chromium, runs all cells,
moves the first slider with the keyboard, and checks that the widget is a control, that the figure
under it changed, and that no cell shows an error. A second test opens a tiny notebook in the same
server with the widget manager switched off and a failing cell: the same check must report both.

Everything JupyterLab writes (settings, workspaces, runtime files, checkpoints) stays in a temp folder.
The server leaves out what the test does not use (nbgrader, the language server, terminals).
A screenshot of the notebook after the slider moved is saved in build/test-artifacts/.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from browser_support import ROOT, chromium, local_only, screenshot

pytestmark = pytest.mark.browser

NOTEBOOK = "08_receptive_field_fcn.ipynb"  # the cheapest course notebook with sliders (the RF explorer)
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"
UNUSED_SERVER_EXTENSIONS = ["jupyter_lsp", "jupyter_server_terminals"] + [
    f"nbgrader.server_extensions.{e}" for e in ("formgrader", "validate_assignment", "assignment_list", "course_list")]
UNUSED_LAB_EXTENSIONS = ["@jupyter/nbgrader"]  # its pages call the nbgrader server extensions left out above
BROKEN = [  # a widget (shown as text when the widget manager is off), then a cell that fails
    "import ipywidgets as widgets\nimport matplotlib.pyplot as plt",
    "def show(n=1):\n    plt.figure(figsize=(2, 2))\n    plt.plot(range(n + 1))\n    plt.show()\n\n"
    "widgets.interactive(show, n=widgets.IntSlider(1, 1, 5))",
    "1 / 0",
    "print('not reached: Run All stops at the error')",
]

JS_PROMPTS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
                    .map(e => e.textContent.trim())"""
# The toolbar's execution indicator says "idle" before any kernel exists: wait for the kernel's own status.
JS_KERNEL_IDLE = """() => document.querySelector('.jp-Toolbar-kernelName')?.textContent.trim() !== 'No Kernel'
    && [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\| Idle$/.test(e.textContent.trim()))"""
# JupyterLab gives error outputs and stderr streams the same mime type: keep the ones that are errors.
JS_CELL_ERRORS = """() => [...document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.innerText).filter(t => /Traceback \\(most recent call last\\)|^\\w*(Error|Exception)\\b/m.test(t))
    .map(t => t.slice(0, 300))"""
JS_WIDGET_IMAGE = """() => document.querySelector('.jp-OutputArea-output .widget-output img')
    ?.getAttribute('src') ?? null"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root: Path, state: Path, timeout_s: float = 120) -> Iterator[tuple[str, str]]:
    """``jupyter lab`` serving ``root`` on 127.0.0.1 with a random token, all its state under ``state``;
    yields (base URL, token). Kernels get ``make test``'s settings (fast, offline) and this checkout's
    course_utils. Lab extensions listed in ``state/config/labconfig/page_config.json`` are disabled
    for every page opened after the file is written."""
    port, token = _free_port(), secrets.token_hex(16)
    dirs = {name: state / name for name in ("config", "data", "runtime", "ipython", "workspaces", "settings")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    notifications = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notifications.mkdir(parents=True)  # no "fetch Jupyter news?" question, no update check (no internet)
    (notifications / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
               COURSE_FAST="1", COURSE_OFFLINE="1", HF_HUB_OFFLINE="1", TQDM_DISABLE="1", OMP_NUM_THREADS="1",
               COURSE_DATA=str(state / "data-course"), MPLBACKEND="module://matplotlib_inline.backend_inline",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
           *(f"--ServerApp.jpserver_extensions={name}=False" for name in UNUSED_SERVER_EXTENSIONS)]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    base, log_path = f"http://127.0.0.1:{port}/", state / "lab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    urllib.request.urlopen(f"{base}api/status?token={token}", timeout=2)
                    break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, \
                        f"jupyter lab did not start:\n{log_path.read_text()[-3000:]}"
                    time.sleep(0.3)
            yield base, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def disable_lab_extensions(state: Path, names: list[str]) -> None:
    """What ``jupyter labextension disable --level=user`` writes, in the test server's own config."""
    (state / "config" / "labconfig").mkdir(parents=True, exist_ok=True)
    (state / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in names}}))


def run_all(page, base: str, token: str, notebook: str, timeout_s: float = 240) -> None:
    """Open ``notebook``, wait for its kernel, Run > Run All Cells, wait until the run is over."""
    page.goto(f"{base}lab/tree/{notebook}?token={token}&reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function(JS_KERNEL_IDLE, timeout=120_000, polling=250)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
    # begun: a prompt is no longer "[ ]:"; over: none is "[*]:" (running or queued) and the kernel is idle.
    # Run All stops at an error: the cells after it keep "[ ]:" (check_notebook reports them).
    page.wait_for_function(f"() => ({JS_PROMPTS})().some(t => t !== '[ ]:')", timeout=60_000, polling=100)
    page.wait_for_function(f"() => !({JS_PROMPTS})().includes('[*]:') && ({JS_KERNEL_IDLE})()",
                           timeout=timeout_s * 1000, polling=500)


def check_notebook(page, wait_s: float = 30) -> tuple[list[str], dict]:
    """After :func:`run_all`: the problems (cells that did not run or show an error, a widget shown as
    text or not at all, a figure that did not change when the first slider moved), and what was seen."""
    prompts = page.evaluate(JS_PROMPTS)
    not_run = [i for i, prompt in enumerate(prompts) if not re.fullmatch(r"\[\d+\]:", prompt)]
    problems = [f"code cells {not_run} did not run"] if not_run else []
    problems += [f"cell error: {e}" for e in page.evaluate(JS_CELL_ERRORS)]
    as_text = page.locator(".jp-OutputArea-output", has_text="interactive(children=").count()
    if as_text:
        problems.append(f"{as_text} widget(s) shown as the text 'interactive(children=...)'")
    sliders = page.locator(".jp-OutputArea-output .widget-slider")
    seen = {"sliders": sliders.count()}
    if not seen["sliders"]:
        return problems + ["no slider control rendered"], seen
    slider = sliders.first
    slider.scroll_into_view_if_needed()
    readout = slider.locator(".widget-readout")
    seen["value_before"], image_before = readout.inner_text(), page.evaluate(JS_WIDGET_IMAGE)
    if image_before is None:
        problems.append("no figure under the widget")
    slider.locator(".noUi-handle").focus()  # ipywidgets 8 sliders are noUiSlider: arrow keys move them
    page.keyboard.press("ArrowRight")
    try:
        page.wait_for_function(f"before => ({JS_WIDGET_IMAGE})() !== before", arg=image_before,
                               timeout=wait_s * 1000, polling=200)
    except Exception:  # Playwright's TimeoutError
        problems.append(f"the figure under the widget did not change within {wait_s} s of moving the slider")
    seen["value_after"] = readout.inner_text()
    if seen["value_after"] == seen["value_before"]:
        problems.append(f"the slider did not move (still {seen['value_before']})")
    return problems, seen


# ------------------------------------------------------------------------------------- the tests

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab for this module, serving a copy of notebook 08 and the tiny broken notebook."""
    tmp = tmp_path_factory.mktemp("lab")
    root, state = tmp / "notebooks", tmp / "state"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)  # the committed notebook is never touched
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in BROKEN])
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(broken, root / "broken_widget.ipynb")
    disable_lab_extensions(state, UNUSED_LAB_EXTENSIONS)
    with chromium() as browser, jupyter_lab(root, state) as (base, token):
        yield {"browser": browser, "base": base, "token": token, "state": state}


@contextlib.contextmanager
def lab_page(lab) -> Iterator:
    context = lab["browser"].new_context(viewport={"width": 1400, "height": 1000})
    local_only(context)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_server_needs_its_token(lab):
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{lab['base']}api/contents", timeout=10)
    assert denied.value.code == 403


def test_the_slider_of_notebook_08_redraws_its_figure_in_jupyterlab(lab):
    with lab_page(lab) as page:
        run_all(page, lab["base"], lab["token"], NOTEBOOK)
        problems, seen = check_notebook(page)
        screenshot(page, "lab-08-slider-moved.png")
    assert problems == []
    assert seen["sliders"] >= 1


def test_the_check_fails_on_a_widget_shown_as_text_and_on_a_cell_error(lab):
    disable_lab_extensions(lab["state"], UNUSED_LAB_EXTENSIONS + [WIDGET_MANAGER])
    try:
        with lab_page(lab) as page:
            run_all(page, lab["base"], lab["token"], "broken_widget.ipynb")
            problems, _ = check_notebook(page)
    finally:
        disable_lab_extensions(lab["state"], UNUSED_LAB_EXTENSIONS)
    assert "1 widget(s) shown as the text 'interactive(children=...)'" in problems
    assert "no slider control rendered" in problems
    assert "code cells [3] did not run" in problems
    assert any(p.startswith("cell error:") and "ZeroDivisionError" in p for p in problems), problems
