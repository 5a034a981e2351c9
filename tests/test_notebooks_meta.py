"""Structure checks for every notebook in notebooks/ (cheap: reads the JSON, executes nothing).

The notebooks' *outputs* are checked by nbval (see the Makefile); these tests check what nbval cannot: that
each notebook opens from its Colab badge, installs itself only on Colab, picks a device, was committed
executed, has checked cells, and imports loramini instead of re-defining it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

OWNER = "loramini-course"  # placeholder GitHub owner used by every badge (see notebooks/README.md)
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
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
    assert {"01_decomposition_math.ipynb", "02_parameter_counting.ipynb"} <= names, names


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
    url = f"https://colab.research.google.com/github/{OWNER}/loramini/blob/main/notebooks/{path.name}"
    assert url in first.source, f"{path.name}: first cell lacks the Colab badge link {url}"
    assert "colab-badge.svg" in first.source, f"{path.name}: the Colab link should be the badge image"


def test_install_cell_only_acts_on_colab(notebook):
    path, nb = notebook
    installs = [c for c in _code(nb) if re.search(r"pip install", c.source)]
    assert installs, f"{path.name}: no install cell"
    for cell in installs:
        src = cell.source
        assert '"google.colab" in sys.modules' in src or "'google.colab' in sys.modules" in src, (
            f"{path.name}: an install cell must be guarded by `if \"google.colab\" in sys.modules:`\n{src}")
        # Every pip line sits inside the guard (indented), and uses %pip or a subprocess, never bare !pip.
        for line in src.splitlines():
            if "pip install" in line:
                assert line.startswith((" ", "\t")), f"{path.name}: unguarded pip line: {line!r}"
                assert not line.lstrip().startswith("!"), f"{path.name}: use %pip (or subprocess), not !pip: {line!r}"


def test_device_cell_cuda_mps_cpu(notebook):
    path, nb = notebook
    for cell in _code(nb):
        src = cell.source
        if "torch.cuda.is_available()" in src and "mps" in src:
            i_cuda, i_mps = src.index("torch.cuda.is_available()"), src.index("mps")
            i_cpu = src.index('"cpu"') if '"cpu"' in src else src.index("'cpu'")
            assert i_cuda < i_mps < i_cpu, f"{path.name}: device order should be cuda -> mps -> cpu"
            return
    pytest.fail(f"{path.name}: no device cell choosing cuda -> mps -> cpu")


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
