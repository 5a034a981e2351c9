"""Each notebook is a jupytext pair: `notebooks/0N_name.py` (percent format, the source people edit) and the
executed `notebooks/0N_name.ipynb` (what readers open and nbval runs). These tests fail when the two disagree,
i.e. when someone edited one side and forgot `jupytext --sync` (see notebooks/README.md).

Only inputs are compared (cell type, source, tags); outputs live in the .ipynb alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]*_*.py"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]*_*.ipynb"))
FORMATS = "ipynb,py:percent"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SYNC_HINT = "run `.venv/bin/jupytext --sync notebooks/{name}` (the newer file wins), then re-execute"


def _inputs(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a pair must agree on: per cell its type, source and tags (outputs and ids are the .ipynb's own)."""
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def pair_differences(source_nb, ipynb_nb) -> list[str]:
    """Human-readable differences between the cells jupytext reads from the .py and the .ipynb's cells."""
    a, b = _inputs(source_nb), _inputs(ipynb_nb)
    diffs = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            what = "type" if x[0] != y[0] else "tags" if x[2] != y[2] else "source"
            first = (x[1].splitlines() or [""])[0][:70]
            diffs.append(f"cell {i} ({what} differs; .py cell starts {first!r})")
    if len(a) != len(b):
        diffs.append(f"the .py has {len(a)} cells, the .ipynb {len(b)}")
    return diffs


def test_every_notebook_has_its_pair():
    stems_py, stems_nb = {p.stem for p in SOURCES}, {p.stem for p in NOTEBOOKS}
    assert stems_py, "no notebooks/0N_*.py sources found"
    assert stems_py == stems_nb, (f"unpaired: .py without .ipynb {sorted(stems_py - stems_nb)}, "
                                  f".ipynb without .py {sorted(stems_nb - stems_py)}; "
                                  f"create the missing side with `jupytext --set-formats {FORMATS} FILE`")


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_pair_in_sync(source):
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.exists():
        pytest.fail(f"{source.name} has no {ipynb.name}")
    diffs = pair_differences(jupytext.read(source), nbformat.read(ipynb, as_version=4))
    assert not diffs, (f"{source.name} and {ipynb.name} are out of sync: " + "; ".join(diffs[:5])
                       + f". Fix: {SYNC_HINT.format(name=source.name)}")


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_pair_declares_formats_and_kernel(source):
    for nb, name in ((jupytext.read(source), source.name),
                     (nbformat.read(source.with_suffix(".ipynb"), as_version=4), source.with_suffix(".ipynb").name)):
        formats = nb.metadata.get("jupytext", {}).get("formats")
        assert formats == FORMATS, f"{name}: jupytext formats {formats!r}, want {FORMATS!r} (keeps the pair paired)"
        ks = dict(nb.metadata.get("kernelspec", {}))
        assert ks == KERNELSPEC, f"{name}: kernelspec {ks}, want {KERNELSPEC} (the name ipykernel installs)"


def test_student_copies_name_the_ipykernel_kernel():
    copies = sorted((NOTEBOOK_DIR / "exercises").glob("*.ipynb"))
    for path in copies:
        ks = dict(nbformat.read(path, as_version=4).metadata.get("kernelspec", {}))
        assert ks == KERNELSPEC, f"exercises/{path.name}: kernelspec {ks}, want {KERNELSPEC}"


def test_pair_check_catches_an_edit():
    """The checker itself: one edited line, one changed tag, one extra cell each count as out of sync."""
    source = SOURCES[0]
    a, b = jupytext.read(source), nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert pair_differences(a, b) == []
    code = next(i for i, c in enumerate(b.cells) if c.cell_type == "code")
    b.cells[code].source += "\nprint('edited in Jupyter only')"
    assert any(f"cell {code} (source" in d for d in pair_differences(a, b))
    b.cells[code].source = a.cells[code].source
    b.cells[code].metadata["tags"] = list(a.cells[code].metadata.get("tags", [])) + ["added-in-jupyter"]
    assert any(f"cell {code} (tags" in d for d in pair_differences(a, b))
    b.cells[code].metadata["tags"] = list(a.cells[code].metadata.get("tags", []))
    b.cells.append(nbformat.v4.new_markdown_cell("new"))
    assert pair_differences(a, b) == [f"the .py has {len(a.cells)} cells, the .ipynb {len(b.cells)}"]
