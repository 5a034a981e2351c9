"""Structure checks for every notebook in notebooks/ (cheap: reads the JSON, executes nothing).

The notebooks' *outputs* are checked by nbval (see the Makefile); these tests check what nbval cannot: that
each notebook opens from its Colab badge, installs itself only on Colab, starts with the one shared setup call,
was committed executed, has checked cells, imports loramini instead of re-defining it, and that its .py twin
compiles. Also: every link to the repository uses the one REPOSITORY constant, and the results the notebooks
read ship inside the package.
"""

from __future__ import annotations

import json
import py_compile
import shutil
import re
import zipfile
from pathlib import Path

import pytest

from loramini import results as shipped_results
from loramini.notebook import INSTALL_SPEC, REPOSITORY, pick_device, smoke_mode

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]*_*.py"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
STUDENT_COPIES = sorted((NOTEBOOK_DIR / "exercises").glob("*.ipynb"))
MAX_BYTES = 1_000_000

# What tools/execute_notebooks.py keeps out of committed outputs (DESIGN: no frozen progress bars, no
# warnings, no path of the machine that ran them).
OUTPUT_HAZARDS = [
    (re.compile(r"\d+%\||FloatProgress\("), "a frozen progress bar"),
    (re.compile(r"\w*Warning\b"), "a warning"),
    (re.compile(r"/work/|/home/|/root/|/tmp/|site-packages|\.venv\b"), "an absolute path of the machine"),
]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"01_lora_mini_from_scratch.ipynb", "01b_decomposition_math.ipynb", "02_parameter_counting.ipynb"} <= names, names


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, _read(request.param)


def test_valid_nbformat(notebook):
    path, nb = notebook
    nbformat.validate(nb)


def test_first_cell_is_markdown_with_colab_badge(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be markdown (title + badge)"
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name}"
    assert url in first.source, f"{path.name}: first cell lacks the Colab badge link {url}"
    assert "colab-badge.svg" in first.source, f"{path.name}: the Colab link should be the badge image"


def test_install_cell_only_acts_on_colab(notebook):
    path, nb = notebook
    installs = [c for c in _code(nb) if INSTALL_SPEC in c.source]
    assert installs, f"{path.name}: no cell installs {INSTALL_SPEC!r} (loramini.notebook.INSTALL_SPEC)"
    for cell in installs:
        src = cell.source
        assert '"google.colab" in sys.modules' in src, (
            f"{path.name}: the install cell must be guarded by `if \"google.colab\" in sys.modules:`\n{src}")
        # Valid Python (so the .py twin compiles): a subprocess pip call inside the guard, no magic or !pip.
        for line in src.splitlines():
            if INSTALL_SPEC in line or '"pip"' in line:
                assert line.startswith((" ", "\t")), f"{path.name}: unguarded install line: {line!r}"
        assert not re.search(r"^\s*[%!]", src, re.M), f"{path.name}: the install cell uses a magic or !pip:\n{src}"


def test_setup_is_the_one_package_call(notebook):
    """The shared start is loramini.notebook.setup() (device, smoke), not a copy of its logic."""
    path, nb = notebook
    code = "\n".join(c.source for c in _code(nb))
    assert re.search(r"^device, SMOKE = loramini\.notebook\.setup\(\)$", code, re.M), (
        f"{path.name}: no `device, SMOKE = loramini.notebook.setup()` cell")
    for copied in ("torch.backends.mps", 'torch.device("mps")', 'os.environ.get("LORAMINI_SMOKE"'):
        assert copied not in code, f"{path.name}: repeats the shared setup ({copied}); use loramini.notebook"


def test_device_is_cuda_or_cpu_as_training_uses(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if hasattr(torch.backends, "mps"):
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)  # a Mac: train() ignores MPS
    assert pick_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"


def test_smoke_flag():
    assert smoke_mode({"LORAMINI_SMOKE": "1"}) and not smoke_mode({}) and not smoke_mode({"LORAMINI_SMOKE": "0"})
    with pytest.raises(ValueError, match=r"LORAMINI_SMOKE='yes': use 1 \(smoke mode\) or 0"):
        smoke_mode({"LORAMINI_SMOKE": "yes"})


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_py_twin_compiles(source, tmp_path):
    """Linters, type checkers and `python -m py_compile notebooks/0*.py` can read every .py twin."""
    py_compile.compile(str(source), cfile=str(tmp_path / "x.pyc"), doraise=True)


# Where text links to the project's repository: all must name REPOSITORY (tools/set_repository.py sets them).
_REPO_LINKS = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/|mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)/"
                         r"|github\.com/([\w.-]+/loramini)\b")


def test_repository_links_all_use_the_one_constant():
    files = [ROOT / "README.md", *NOTEBOOK_DIR.glob("*.py"), *NOTEBOOK_DIR.glob("*.ipynb"),
             *NOTEBOOK_DIR.glob("exercises/*.ipynb"), *ROOT.glob("docs/*.md")]
    seen, wrong = 0, []
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "raw.githubusercontent.com" not in text, f"{path.name}: fetches from GitHub at run time"
        for m in _REPO_LINKS.finditer(text):
            seen += 1
            if next(g for g in m.groups() if g) != REPOSITORY:
                wrong.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert seen >= 3 * len(SOURCES), f"only {seen} repository links found; is the pattern stale?"
    assert not wrong, (f"links to another repository than loramini.notebook.REPOSITORY={REPOSITORY!r}: {wrong[:5]}. "
                       f"Run `python tools/set_repository.py {REPOSITORY}`.")


@pytest.mark.parametrize("name", sorted(shipped_results.SHIPPED))
def test_shipped_results_are_the_benchmark_files(name):
    """loramini/results/ holds exact copies of benchmarks/results/ (`make results` refreshes them)."""
    original = ROOT / "benchmarks" / "results" / f"{name}.json"
    shipped = shipped_results.load(name)
    assert shipped == json.loads(original.read_text()), (
        f"loramini/results/{name}.json differs from {original.relative_to(ROOT)}: run `make results`")
    assert shipped["note"] and (shipped.get("runs") or shipped.get("groups")
                                or (shipped["cells"] and shipped["lr_sweeps"]))
    with pytest.raises(KeyError, match="no shipped results named 'nope'"):
        shipped_results.load("nope")


def test_wheel_ships_the_results(tmp_path):
    """`pip install .` (a wheel) carries the results files, so 03/04 work without the repository."""
    import subprocess
    import sys

    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("loramini-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in shipped_results.SHIPPED:
        assert f"loramini/results/{name}.json" in names, f"{wheel.name} lacks loramini/results/{name}.json"
    assert "loramini/notebook.py" in names


def test_every_code_cell_was_executed(notebook):
    path, nb = notebook
    missing = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()
               and c.get("execution_count") is None]
    assert not missing, (f"{path.name}: cells {missing} have no execution_count; nbval skips them. Commit the "
                         f"notebook executed (see notebooks/README.md).")
    errors = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: cells {errors} were committed with an error output"


def test_has_checked_cells(notebook):
    path, nb = notebook
    checked = [c for c in _code(nb) if c.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, f"{path.name}: no cell starts with `# NBVAL_CHECK_OUTPUT`"
    empty = [c.source.splitlines()[1] if len(c.source.splitlines()) > 1 else "" for c in checked if not c.outputs]
    assert not empty, f"{path.name}: checked cells without any output check nothing: {empty}"


def test_imports_loramini_and_does_not_redefine_it(notebook):
    path, nb = notebook
    code = "\n".join(c.source for c in _code(nb))
    assert re.search(r"^\s*(import loramini|from loramini\b)", code, re.M), f"{path.name}: never imports loramini"
    for name in ("LoRAMiniLinear", "LoRAMiniConfig"):
        assert not re.search(rf"^\s*class {name}\b", code, re.M), f"{path.name}: re-defines {name}; import it"


def test_size_is_modest(notebook):
    path, _ = notebook
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size:,} bytes (keep under 1 MB)"


def output_problems(nb) -> list[str]:
    """Committed-output hazards in ``nb``: frozen progress bars, warnings, machine paths, saved widget state."""
    problems = []
    if "widgets" in nb.metadata:
        problems.append("notebook metadata holds saved widget state")
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts = [out.text]
            elif out.output_type == "error":
                texts = list(out.traceback) + [out.evalue]
            else:
                texts = [v if isinstance(v, str) else "".join(v)
                         for k, v in out.get("data", {}).items() if k.startswith("text/")]
            for text in texts:
                for pattern, what in OUTPUT_HAZARDS:
                    m = pattern.search(text)
                    if m:
                        snippet = text[max(0, m.start() - 40):m.end() + 30].replace("\n", " ")
                        problems.append(f"cell {i}: {what}: ...{snippet}...")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENT_COPIES,
                         ids=[p.name for p in NOTEBOOKS] + [f"exercises/{p.name}" for p in STUDENT_COPIES])
def test_outputs_hold_no_bars_warnings_or_machine_paths(path):
    problems = output_problems(_read(path))
    assert not problems, (f"{path.relative_to(NOTEBOOK_DIR)}: {len(problems)} committed output problem(s), e.g. "
                          + "; ".join(problems[:4]) + ". Re-execute with `.venv/bin/python tools/execute_notebooks.py "
                          "NOTEBOOK` (or `--no-execute` to only clean the saved outputs).")


def test_output_check_catches_bars_warnings_and_paths():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="  0%|          | 0/3 [00:00<?, ?it/s]"),
        nbformat.v4.new_output("stream", name="stderr", text="x.py:1: UserWarning: careful\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "saved in /tmp/abc/adapter"}),
    ])]
    found = output_problems(nb)
    assert [p.split(":")[1].strip() for p in found] == [
        "a frozen progress bar", "a warning", "an absolute path of the machine"], found
    nb.metadata["widgets"] = {"state": {}}
    assert "notebook metadata holds saved widget state" in output_problems(nb)


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_saving_in_jupyterlab_leaves_the_py_twin_as_committed(source, tmp_path):
    """JupyterLab saves a paired notebook through jupytext's contents manager. With notebooks/jupytext.toml the
    .py twin comes out byte for byte as committed, whichever jupytext release saves it (no version to bump)."""
    pytest.importorskip("jupyter_server")
    from jupytext import TextFileContentsManager

    copy = tmp_path / "notebooks"
    copy.mkdir()
    for path in (source, source.with_suffix(".ipynb"), NOTEBOOK_DIR / "jupytext.toml"):
        shutil.copy2(path, copy / path.name)
    manager = TextFileContentsManager(root_dir=str(tmp_path))
    relpath = f"notebooks/{source.with_suffix('.ipynb').name}"
    model = manager.get(relpath)
    jupytext_meta = model["content"].metadata.setdefault("jupytext", {})
    jupytext_meta.setdefault("text_representation", {})["jupytext_version"] = "0.0.1"  # another release saves
    manager.save(model, relpath)
    assert (copy / source.name).read_text() == source.read_text(), (
        f"saving {source.with_suffix('.ipynb').name} in JupyterLab rewrites {source.name}")
