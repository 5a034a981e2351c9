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

OWNER = "loramini-course"  # placeholder GitHub owner used by every badge (see notebooks/_build/common.py)
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
MAX_BYTES = 1_000_000


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
