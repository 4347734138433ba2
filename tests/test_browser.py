"""Every notebook, run in JupyterLab in a real browser (headless Chromium driven by Playwright).

    make browser-test          # python -m pytest -m browser; writes bench/results/browser.md

A notebook fails on an error output, a code cell left unexecuted, a widget that does not render, or an
error on the page. The notebooks run from a copy in a temporary folder, so nothing in notebooks/ is
saved over. Skipped, with the reason, when Playwright or Chromium is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = os.environ.get("FMCOURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
RESULTS = ROOT / "bench" / "results" / "browser.md"
_rows: dict[str, str] = {}
LAB_FOLDER: dict[str, Path] = {}  # the folder each JupyterLab serves, by its address

# What the notebook model says once Run All has finished: each code cell's execution count, the output
# types (an "error" fails), and for every widget output whether the page drew it.
INSPECT = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
  return cells.map(cell => ({
    count: cell.model.executionCount,
    errors: Array.from({length: cell.model.outputs.length}, (_, i) => cell.model.outputs.get(i))
                 .filter(o => o.type === 'error').map(o => o.toJSON().ename + ': ' + o.toJSON().evalue),
    widgets: Array.from({length: cell.model.outputs.length}, (_, i) => cell.model.outputs.get(i))
                  .filter(o => o.data && o.data['application/vnd.jupyter.widget-view+json']).length,
    drawn: cell.node.querySelectorAll('.jp-OutputArea-output .widget-slider, .jp-OutputArea-output .widget-dropdown,'
                                      + ' .jp-OutputArea-output .widget-button, .jp-OutputArea-output .widget-toggle-buttons').length,
    plots: cell.node.querySelectorAll('.jp-OutputArea-output img').length,
    broken: /Error displaying widget|Loading widget\\.\\.\\.|model not found/.test(cell.node.innerText),
  }));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright: pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the browser tests need Chromium at {CHROMIUM} (Debian: apt install chromium; or set FMCOURSE_CHROMIUM)")
    folder = tmp_path_factory.mktemp("notebooks")
    for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.*"):
        shutil.copy(path, folder / path.name)
    port, token = free_port(), secrets.token_hex(16)
    # Live plots and widgets, drawn by the notebook's own backend (the test suite's Agg would hide them).
    environment = {k: v for k, v in os.environ.items() if k not in ("FMCOURSE_HEADLESS", "MPLBACKEND")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", f"--ServerApp.token={token}",
         f"--notebook-dir={folder}", f"--LabApp.workspaces_dir={folder / '.workspaces'}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    LAB_FOLDER[base] = folder
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within a minute")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser, base, token
        browser.close()
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_jupyterlab_in_a_browser(lab, notebook):
    browser, base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    # A workspace of its own, reset: no tab of another notebook comes back from an earlier page.
    page.goto(f"{base}/lab/workspaces/{notebook.stem}/tree/{notebook.name}?reset&token={token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel", timeout=120_000)
    page.wait_for_function("() => { const p = window.jupyterapp.shell.currentWidget;"
                           " return p.context.isReady && p.content.widgets.length > 0"
                           " && p.sessionContext.session.kernel.status === 'idle'; }", timeout=120_000)
    start = time.perf_counter()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    screenshot = RESULTS.parent / "screenshots" / f"{notebook.stem}.png"
    try:
        page.wait_for_function(
            "() => { const p = window.jupyterapp.shell.currentWidget;"
            " return p.sessionContext.session.kernel.status === 'idle' &&"
            " p.content.widgets.filter(c => c.model.type === 'code').every(c => c.model.executionCount !== null); }",
            timeout=600_000, polling=500)
    except Exception:
        page.screenshot(path=str(screenshot))
        raise
    seconds = time.perf_counter() - start
    page.wait_for_timeout(1500)  # let the last widgets draw
    cells = page.evaluate(INSPECT)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    widgets = sum(c["widgets"] for c in cells)
    drawn = sum(c["drawn"] for c in cells)
    plots = sum(c["plots"] for c in cells)
    _rows[notebook.stem] = (f"| {notebook.stem} | {len(cells)} | {seconds:.1f} | {plots} | {widgets} | {drawn} | "
                            f"{len(page_errors)} |")
    page.screenshot(path=str(screenshot))
    page.close()
    errors = [f"cell {i}: {e}" for i, c in enumerate(cells) for e in c["errors"]]
    assert not errors, f"{notebook.name}: error outputs: {errors}"
    assert all(c["count"] is not None for c in cells), f"{notebook.name}: code cells left unexecuted"
    assert not [i for i, c in enumerate(cells) if c["broken"]], f"{notebook.name}: a widget did not render"
    # Progress bars that finished are closed (no controls left); explorers and the solutions button stay.
    assert drawn or not widgets, f"{notebook.name}: widget outputs, but no slider, menu or button on the page"
    assert plots > 0, f"{notebook.name}: no plot on the page"
    assert not page_errors, f"{notebook.name}: errors on the page: {page_errors}"


def teardown_module():
    if not _rows:
        return
    RESULTS.write_text(
        "# Every notebook in JupyterLab, in headless Chromium\n\n"
        "`make browser-test`: each notebook opened in JupyterLab, Run All, then checked for error outputs,\n"
        "unexecuted cells, plots, widgets that did not render and errors on the page. Run All's time includes\n"
        "the live training curves and progress bars drawn in the page.\n\n"
        "| notebook | code cells | run all (s) | plots shown | widget outputs | controls drawn | page errors |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n" + "\n".join(_rows[k] for k in sorted(_rows)) + "\n")


def test_a_chapter_presents_as_slides_in_presenter_mode(lab):
    """Chapter 02, run in presenter mode and saved, opens as a RISE slideshow with its plots."""
    import json

    browser, base, token = lab
    source = ROOT / "notebooks" / "02_losses_and_backprop.ipynb"
    notebook = json.loads(source.read_text(encoding="utf-8"))
    presenter = {"cell_type": "code", "execution_count": None, "metadata": {"slideshow": {"slide_type": "skip"}},
                 "outputs": [], "source": ["%env FMCOURSE_PRESENTER=1"]}
    check = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
             "source": ["import matplotlib as mpl\n", "print('font size', mpl.rcParams['font.size'])"]}
    notebook["cells"] = [presenter] + notebook["cells"] + [check]
    notebook["metadata"].pop("jupytext", None)  # a plain notebook: no .py pair to keep in step
    name = "02_presenter.ipynb"
    served = LAB_FOLDER[base] / name
    served.write_text(json.dumps(notebook), encoding="utf-8")

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(f"{base}/lab/workspaces/presenter/tree/{name}?reset&token={token}")
    page.wait_for_function("() => { const p = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                           " return p && p.context && p.context.isReady && p.sessionContext.session"
                           " && p.sessionContext.session.kernel && p.sessionContext.session.kernel.status === 'idle'; }",
                           timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function("() => { const p = window.jupyterapp.shell.currentWidget;"
                           " return p.sessionContext.session.kernel.status === 'idle' &&"
                           " p.content.widgets.filter(c => c.model.type === 'code').every(c => c.model.executionCount !== null); }",
                           timeout=600_000, polling=500)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(2000)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    saved = json.loads(served.read_text(encoding="utf-8"))
    printed = "".join("".join(o.get("text", "")) for o in saved["cells"][-1]["outputs"])
    assert "font size 16" in printed, f"presenter mode did not enlarge the fonts: {printed!r}"

    page.goto(f"{base}/rise/{name}?token={token}")
    page.wait_for_selector(".reveal .slides section", timeout=120_000)
    slides = page.evaluate("() => document.querySelectorAll('.reveal .slides > section').length")
    marked = sum(c["metadata"].get("slideshow", {}).get("slide_type") == "slide" for c in saved["cells"])
    assert slides == marked, f"{slides} slides on the page, {marked} cells open a slide"
    # Step through the slides (space: the next one, sub-slides included) to the first that shows a plot.
    plot_on_slide = "() => !!document.querySelector('.reveal .slides section.present .jp-OutputArea-output img')"
    for _ in range(100):
        if page.evaluate(plot_on_slide):
            break
        page.keyboard.press("Space")
        page.wait_for_timeout(200)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(RESULTS.parent / "screenshots" / "slides_02_presenter.png"))
    images = page.evaluate("() => document.querySelectorAll('.reveal .slides .jp-OutputArea-output img').length")
    on_slide = page.evaluate(plot_on_slide)
    page.close()
    assert images > 5 and on_slide, "the slides carry the chapter's plots, and stepping through reaches one"
    assert not page_errors, f"errors on the slideshow page: {page_errors}"
