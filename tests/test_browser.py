"""What a person sees: the notebooks in a real JupyterLab 4, in a real (headless) Chromium.

A JupyterLab server starts on 127.0.0.1 (a free port, a random token, LORAMINI_SMOKE=1, no PYTHONWARNINGS, the
student lab's configuration from tools/lab/) on a *copy* of notebooks/ (so nothing a browser saves can touch the
committed files). Playwright drives the system Chromium (Debian's `chromium` package; Playwright never downloads
a browser here) the way a reader would: open a notebook, Run > Run All Cells, look at the page, touch every
widget. All notebooks (solutions and student copies) run side by side in their own tabs, one CPU thread each.
It checks

* every solution notebook runs to the end with no error output and no warning or traceback on stderr (read back
  from File > Save, where an error is an error and not just red stderr): a fresh run is as clean as the
  committed outputs (this is the test that re-executes the notebooks without warning filters);
* its math is rendered by MathJax;
* every interactive widget (02's explorer: each slider stepped and sent to both ends, every dropdown option)
  answers, and no interaction leaves an error, a traceback, a warning or any stderr text in the output;
* every student copy (notebooks/exercises/) keeps going past its exercises under Run All, and only the
  unanswered exercises raise;
* the student lab shows no instructor tooling (no nbgrader menu or server extension).

Screenshots land in test-artifacts/browser/ (gitignored; CI keeps them as artifacts).

Without Chromium or Playwright the tests skip on a workstation, but fail when CI=true: CI must run them
(.ci/run installs Chromium with apt-get). LORAMINI_CHROMIUM overrides the browser path (default
/usr/bin/chromium).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOLUTIONS = sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9][0-9]*_*.ipynb"))
STUDENT_COPIES = sorted(p.name for p in (NOTEBOOK_DIR / "exercises").glob("[0-9][0-9]*_*.ipynb"))
WIDGET_NOTEBOOKS = {"02_parameter_counting.ipynb"}  # notebooks that must show interactive widgets
LAB_CONFIG = ROOT / "tools" / "lab"  # what `make lab` uses: autosave off, no nbgrader
SLOWEST = ("03_finetune_roberta.ipynb", "04_rank_ablations.ipynb")  # started first
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("LORAMINI_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 180  # about 5 s on an idle machine; far more when the CPUs are shared and busy
RUN_ALL_TIMEOUT_S = 900  # every notebook and student copy side by side in smoke mode (5-8 min on 2 busy cores)

pytestmark = pytest.mark.browser


def _unavailable(reason: str):
    """Skip on a workstation; fail loudly in CI, where the browser test must run."""
    if IN_CI:
        pytest.fail(f"browser test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------- JupyterLab
@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Free the CPU and memory of a finished notebook before the next one starts."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(settings: Path) -> None:
    """User settings for this throwaway JupyterLab: no news/update polling (offline), no autosave."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                           "checkForUpdates": False},
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    }
    for name, value in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if importlib.util.find_spec("jupyterlab") is None:
        _unavailable("JupyterLab is not installed (pip install -e '.[dev]')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):  # screenshots of this run only
        old.unlink()
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    shutil.copytree(NOTEBOOK_DIR, root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # No benchmarks/ beside it: 03 and 04 read the results the package ships, as after `pip install`.
    _lab_settings(base / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    # The notebooks run side by side (see `runs`), one CPU thread each: on 2 cores that beats taking turns
    # with 2 threads each, since their matrices are tiny.
    env = {**os.environ, "LORAMINI_SMOKE": "1", "OMP_NUM_THREADS": "1", "LORAMINI_THREADS": "1",
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    env.pop("MPLBACKEND", None)  # a reader's kernel uses the inline backend; Agg would hide every plot
    env.pop("PYTHONWARNINGS", None)  # a reader sees every warning, so must this run
    env["JUPYTER_CONFIG_PATH"] = str(LAB_CONFIG)  # the student lab: nbgrader's server extensions off
    log = ARTIFACTS / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.app_settings_dir={LAB_CONFIG}"]
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(cmd, env=env, stdout=log_fh, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}; log:\n{log.read_text()[-3000:]}")
            try:
                server.api("GET", "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {server.url} within {SERVER_START_S} s; "
                                f"log:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield server
    finally:
        proc.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


# ------------------------------------------------------------------------------------------------ Chromium
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Python's playwright is not installed (pip install -e '.[dev]')")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM} (Debian/Ubuntu: apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000}, timeout=60_000)
    except Exception as err:  # noqa: BLE001 - any launch failure means the same thing here
        pw.stop()
        _unavailable(f"Chromium at {CHROMIUM} did not start: {str(err).splitlines()[0]}")
    try:
        yield context
    finally:
        context.close()
        pw.stop()


# ----------------------------------------------------------------------------------------- page helpers
_MATH = re.compile(r"\$[^$\n]+\$|\$\$|\\\(|\\\[|\\begin\{")
_STATE_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell')).map(cell => ({
    markdown: cell.classList.contains('jp-MarkdownCell'),
    prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
    mathjax: cell.querySelectorAll('mjx-container').length,
}))"""
_KERNEL_IDLE_JS = "() => (document.querySelector('#jp-main-statusbar') || {}).textContent?.includes('| Idle')"


def _has_math(markdown: str) -> bool:
    prose = re.sub(r"```.*?```|`[^`\n]*`", "", markdown, flags=re.S)  # MathJax leaves code alone
    return bool(_MATH.search(prose))


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


class Notebook:
    """One notebook opened in its own browser tab."""

    def __init__(self, browser, lab: Lab, relpath: str):
        self.relpath, self.lab = relpath, lab
        self.name = relpath.replace("/", "_").removesuffix(".ipynb")
        self.path = lab.root / relpath
        # The cells as JupyterLab shows them: with jupytext, the paired .py gives the inputs.
        source = self.path.with_suffix(".py")
        self.cells = (jupytext.read(source) if source.exists() else nbformat.read(self.path, as_version=4)).cells
        self.page = browser.new_page()
        self.page.goto(f"{lab.url}/lab/tree/{relpath}?token={lab.token}&reset", timeout=120_000)
        try:
            self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
            self.page.wait_for_function(_KERNEL_IDLE_JS, timeout=120_000)
        except Exception:
            _shot(self.page, f"{self.name}-failed-to-open")
            dialog = self.page.locator(".jp-Dialog").all_inner_texts()
            pytest.fail(f"{relpath}: did not open with an idle kernel within 120 s"
                        + (f"; a dialog says: {dialog[0][:300]!r}" if dialog else "")
                        + f". Server log: {lab.log}")

    def start_run_all(self) -> None:
        """Run > Run All Cells, as a reader would."""
        self.page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        self.page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        self.deadline = time.monotonic() + RUN_ALL_TIMEOUT_S

    def wait_done(self) -> list[dict]:
        """Wait until no cell is queued and the kernel is idle; return each cell's state on the page."""
        stable, state = 0, []
        n_code = sum(c.cell_type == "code" for c in self.cells)
        while True:
            state = self.page.evaluate(_STATE_JS)
            prompts = [c["prompt"] for c in state if not c["markdown"]]
            started = any(_executed(p) for p in prompts)
            quiet = len(prompts) == n_code and not any("*" in p for p in prompts)
            stable = stable + 1 if (started and quiet and self.page.evaluate(_KERNEL_IDLE_JS)) else 0
            if stable >= 3:
                return state
            if time.monotonic() > self.deadline:
                break
            time.sleep(0.5)
        _shot(self.page, f"{self.name}-timeout")
        pytest.fail(f"{self.relpath}: Run All did not finish within {RUN_ALL_TIMEOUT_S} s "
                    f"(prompts: {[c['prompt'] for c in state if not c['markdown']]})")

    def save_and_read(self):
        """File > Save (to the throwaway copy), then read what the page held: outputs with their real types."""
        before = self.path.stat().st_mtime_ns
        self.page.click(".lm-MenuBar-itemLabel:text-is('File')")
        self.page.click(".lm-Menu-itemLabel:text-matches('^Save( Notebook)?$')")
        deadline = time.monotonic() + 30
        while self.path.stat().st_mtime_ns == before or self.page.locator(".lm-TabBar-tab.jp-mod-dirty").count():
            if time.monotonic() > deadline:
                _shot(self.page, f"{self.name}-save-failed")
                pytest.fail(f"{self.relpath}: saving from JupyterLab did not finish within 30 s")
            time.sleep(0.2)
        return nbformat.read(self.path, as_version=4)

    def code_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.cells) if c.cell_type == "code" and c.source.strip()]

    def close(self) -> None:
        self.page.close()


def _selected_notebooks(request) -> list[str]:
    """The notebooks the selected tests need, slowest first: all of them, unless -k narrowed the run."""
    wanted = []
    for item in request.session.items:
        name = item.callspec.params.get("name") if hasattr(item, "callspec") else None
        test = getattr(item, "originalname", None)  # nbval's notebook cells in the same session have none
        if test == "test_notebook_runs_in_jupyterlab":
            wanted.append(f"notebooks/{name}")
        elif test == "test_student_copy_run_all_continues_past_exercises":
            wanted.append(f"notebooks/exercises/{name}")
    wanted = wanted or [f"notebooks/{SOLUTIONS[0]}"]  # the menu-bar check alone needs one open notebook
    return sorted(wanted, key=lambda relpath: Path(relpath).name not in SLOWEST)


@pytest.fixture(scope="module")
def runs(browser, lab, request):
    """Open every notebook under test in its own tab and start Run All in all of them at once."""
    relpaths = _selected_notebooks(request)
    opened = {}
    try:
        for relpath in relpaths:
            if (lab.root / relpath).exists():
                opened[relpath] = Notebook(browser, lab, relpath)
                opened[relpath].start_run_all()
        yield opened
    finally:
        for nb in opened.values():
            nb.close()
        lab.shutdown_kernels()


_STDERR_PROBLEM = re.compile(r"\w*Warning\b|Traceback|\w+Error\b")


def output_problems(saved, allowed=frozenset()) -> list[str]:
    """Error outputs (outside the cells in ``allowed``) and stderr text holding a warning, error or traceback."""
    problems = []
    for i, cell in enumerate(saved.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type == "error" and i not in allowed:
                problems.append(f"cell {i}: {out.ename}: {out.evalue[:200]}")
            elif out.output_type == "stream" and out.name == "stderr":
                m = _STDERR_PROBLEM.search(out.text)
                if m:
                    problems.append(f"cell {i}: stderr: ...{out.text[max(0, m.start() - 120):m.end() + 120]!r}...")
    return problems


def _executed(prompt: str) -> bool:
    return bool(re.search(r"\[\d+\]", prompt))


# ------------------------------------------------------------------------------------------------ widgets
# Anything red in a cell's outputs (stderr or an error: JupyterLab renders both as the stderr type), or the words
# of a traceback, an error or a warning anywhere in them (widget Output areas included).
_CELL_PROBLEMS_JS = r"""(cell) => {
    const found = [];
    for (const el of cell.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-output.jp-mod-error'))
        found.push('stderr/error output: ' + el.textContent.trim().slice(0, 300));
    const text = Array.from(cell.querySelectorAll('.jp-Cell-outputArea')).map(e => e.textContent).join('\n');
    const m = text.match(/Traceback|\w*Warning\b|\w+Error\b/);
    if (m) found.push('output text: ...' + text.slice(Math.max(0, m.index - 150), m.index + 250) + '...');
    return found;
}"""
# What each kind of control gets: sliders a step each way and both ends (the explorer refuses r > min(a, b) at
# one end), dropdowns every option, then back.
_SLIDER_KEYS = ("ArrowRight", "ArrowRight", "End", "Home", "ArrowRight")
_CONTROLS = ".widget-slider, .widget-dropdown select, .widget-checkbox input, .widget-toggle-button, .widget-button"


def _settle(page) -> None:
    """Let the kernel answer a widget change and the page redraw."""
    time.sleep(1.0)
    try:
        page.wait_for_function(_KERNEL_IDLE_JS, timeout=60_000)
    except Exception:  # noqa: BLE001 - a busy kernel shows up as a problem or a stale output below
        pass
    time.sleep(0.5)


def _drive_widgets(nb: Notebook) -> tuple[int, list[str]]:
    """Touch every widget control on the page like a reader; returns (interactions, problems seen after each)."""
    page = nb.page
    cells = page.locator(".jp-Notebook .jp-Cell").filter(has=page.locator(f":is({_CONTROLS})"))
    interactions, problems = 0, []
    for c in range(cells.count()):
        cell = cells.nth(c)
        cell.scroll_into_view_if_needed()

        def touched(what: str) -> None:
            nonlocal interactions
            interactions += 1
            _settle(page)
            for problem in cell.evaluate(_CELL_PROBLEMS_JS):
                problems.append(f"widget cell {c}, after {what}: {problem}")
                cell.screenshot(path=str(ARTIFACTS / f"{nb.name}-widget-problem-{len(problems)}.png"))

        selects = cell.locator(".widget-dropdown select")
        for d in range(selects.count()):
            labels = selects.nth(d).locator("option").all_text_contents()
            for label in labels[1:] + labels[:1]:
                selects.nth(d).select_option(label=label)
                touched(f"dropdown {d} = {label!r}")
        handles = cell.locator(".widget-slider .noUi-handle")
        for k in range(handles.count()):
            for key in _SLIDER_KEYS:
                handles.nth(k).focus()
                page.keyboard.press(key)
                touched(f"slider {k} key {key}")
        for kind in (".widget-checkbox input", ".widget-toggle-button", ".widget-button"):
            controls = cell.locator(kind)
            for b in range(controls.count()):
                controls.nth(b).click()
                touched(f"{kind} {b}")
        cell.screenshot(path=str(ARTIFACTS / f"{nb.name}-widgets-{c}.png"))
    return interactions, problems


def _check_widgets(nb: Notebook, required: bool) -> None:
    page = nb.page
    if page.locator(f".jp-OutputArea :is({_CONTROLS})").count() == 0:  # progress bars are widgets too, not controls
        if required:
            fallback = page.get_by_text(re.compile(r"^(VBox|HBox|interactive)\(")).count()
            pytest.fail(f"{nb.relpath}: no widget control rendered on the page"
                        + ("; its text fallback shows instead: is the ipywidgets lab extension missing?"
                           if fallback else ""))
        return
    if page.locator(".widget-slider").count():
        _slider_changes_output(nb)
    interactions, problems = _drive_widgets(nb)
    assert interactions, f"{nb.relpath}: widget controls on the page, but none was touched"
    assert not problems, (f"{nb.relpath}: {len(problems)} of {interactions} widget interactions left an error "
                          f"or a warning in the output (screenshots in {ARTIFACTS}): " + " | ".join(problems[:3]))


def _slider_changes_output(nb: Notebook) -> None:
    page = nb.page
    cell = page.locator(".jp-Notebook .jp-Cell").filter(has=page.locator(".widget-slider")).first
    output = cell.locator(".widget-output").first
    assert output.count() == 1, f"{nb.relpath}: the widgets have sliders but no output area"
    output.scroll_into_view_if_needed()
    before = output.text_content()  # textContent: innerText is empty for content the page has not laid out
    assert before.strip(), f"{nb.relpath}: the widget output is empty before any slider moves"
    readout = cell.locator(".widget-readout").first.text_content()
    cell.locator(".widget-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")  # one step right, as a reader using the keyboard would
    try:
        page.wait_for_function("([el, b]) => el.textContent !== b", arg=[output.element_handle(), before],
                               timeout=30_000)
    except Exception:  # noqa: BLE001
        _shot(page, f"{nb.name}-widget-unchanged")
        pytest.fail(f"{nb.relpath}: moving the first slider (readout {readout!r}) did not change the output")
    time.sleep(1.0)  # let the chart redraw for the screenshot
    assert cell.locator(".widget-readout").first.text_content() != readout, "the slider's readout did not move"
    cell.screenshot(path=str(ARTIFACTS / f"{nb.name}-explorer-after-slider.png"))


# ------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", SOLUTIONS)
def test_notebook_runs_in_jupyterlab(runs, name):
    nb = runs[f"notebooks/{name}"]
    state = nb.wait_done()
    _shot(nb.page, f"{nb.name}-after-run-all")
    assert len(state) == len(nb.cells), f"{name}: the page shows {len(state)} cells, the file has {len(nb.cells)}"
    saved = nb.save_and_read()
    problems = output_problems(saved)
    assert not problems, f"{name}: Run All in the browser left {len(problems)} problem(s): {problems[:3]}"
    skipped = [i for i in nb.code_indices() if not _executed(state[i]["prompt"])]
    assert not skipped, (f"{name}: Run All left cells {skipped} unexecuted "
                         f"(prompts {[state[i]['prompt'] for i in skipped]})")

    math_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and _has_math(c.source)]
    assert math_cells, f"{name}: no markdown cell with math to check"
    try:  # MathJax typesets asynchronously
        nb.page.wait_for_function(
            "(idx) => { const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');"
            " return idx.every(i => cells[i] && cells[i].querySelector('mjx-container')); }",
            arg=math_cells, timeout=30_000)
    except Exception:  # noqa: BLE001 - the assertion below says which cells
        pass
    state = nb.page.evaluate(_STATE_JS)
    unrendered = [i for i in math_cells if not state[i]["mathjax"]]
    assert not unrendered, f"{name}: math not rendered by MathJax in markdown cells {unrendered}"
    first = nb.page.locator(".jp-Notebook .jp-Cell").nth(math_cells[0])
    first.scroll_into_view_if_needed()
    first.screenshot(path=str(ARTIFACTS / f"{nb.name}-math.png"))

    _check_widgets(nb, required=name in WIDGET_NOTEBOOKS)


class StudentCopyStopped(AssertionError):
    """Run All in a student copy stopped at an exercise instead of going on."""


_EXERCISE = re.compile(r"^\s*# Exercise\b")


@pytest.mark.parametrize("name", STUDENT_COPIES)
def test_student_copy_run_all_continues_past_exercises(runs, name):
    nb = runs[f"notebooks/exercises/{name}"]
    nb.wait_done()
    _shot(nb.page, f"{nb.name}-after-run-all")
    exercises = [i for i in nb.code_indices() if _EXERCISE.match(nb.cells[i].source)]
    assert exercises, f"{nb.relpath}: no exercise cell (a code cell starting `# Exercise`) found"
    saved = nb.save_and_read()
    raised = [i for i in exercises if any(o.output_type == "error" for o in saved.cells[i].outputs)]
    assert raised, f"{nb.relpath}: no unanswered exercise raised and showed it"
    problems = output_problems(saved, allowed=frozenset(exercises))
    assert not problems, f"{nb.relpath}: problems outside the unanswered exercises: {problems[:3]}"
    after = [i for i in nb.code_indices() if i > exercises[0]]
    skipped = [i for i in after if saved.cells[i].get("execution_count") is None]  # the page's model, not its DOM
    if skipped:
        raise StudentCopyStopped(f"{nb.relpath}: Run All stopped at the exercise in cell {exercises[0]}; "
                                 f"{len(skipped)} of the {len(after)} code cells after it never ran "
                                 f"(first: cell {skipped[0]}). Tag exercise cells `raises-exception`.")
    _check_widgets(nb, required=name in WIDGET_NOTEBOOKS)


def test_student_lab_shows_no_instructor_tooling(runs):
    """`make lab`'s configuration (tools/lab/) keeps nbgrader's menu and server extensions out of the lab."""
    nb = next(iter(runs.values()))
    menus = [m.strip() for m in nb.page.locator(".lm-MenuBar-itemLabel").all_text_contents()]
    assert "Run" in menus, f"the menu bar was not read: {menus}"
    assert not [m for m in menus if "nbgrader" in m.lower()], f"instructor tooling in the student lab: {menus}"
    log = nb.lab.log.read_text(errors="replace")
    assert "nbgrader.server_extensions" not in log, "nbgrader's server extensions were loaded in the student lab"


def test_output_problems_catch_errors_warnings_and_tracebacks():
    """The check the browser tests apply to a saved notebook (no browser needed)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("a", outputs=[nbformat.v4.new_output(
            "stream", name="stderr", text="peft_model.py:184: FutureWarning: `is_gradient_checkpointing` is deprecated\n")]),
        nbformat.v4.new_code_cell("b", outputs=[nbformat.v4.new_output(
            "error", ename="ValueError", evalue="cannot parse $\\mathdefault{10^{5}}$", traceback=[])]),
        nbformat.v4.new_code_cell("c", outputs=[nbformat.v4.new_output("stream", name="stdout", text="ok, no Error here\n"),
                                                nbformat.v4.new_output("stream", name="stderr", text="Loading: 40%\n")]),
    ]
    found = output_problems(nb)
    assert [p.split(":")[0] for p in found] == ["cell 0", "cell 1"], found
    assert output_problems(nb, allowed=frozenset({1})) == found[:1]
