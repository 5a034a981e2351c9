"""Shared pieces for the notebook generators in this folder.

Each `make_NN.py` describes one notebook as a list of cells and writes it with nbformat. The written
notebook is *not executed*; run it afterwards (see notebooks/README.md) and commit the executed file,
because nbval skips cells that carry no execution count.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OWNER = "loramini-course"  # placeholder GitHub owner; change in one place when the repo is published
REPO = "loramini"
NOTEBOOKS = Path(__file__).resolve().parent.parent


def colab_url(name: str) -> str:
    return f"https://colab.research.google.com/github/{OWNER}/{REPO}/blob/main/notebooks/{name}"


def binder_url(name: str) -> str:
    return f"https://mybinder.org/v2/gh/{OWNER}/{REPO}/main?labpath=notebooks%2F{name}"


def md(text: str):
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str):
    return new_code_cell(textwrap.dedent(text).strip("\n"))


def title_cell(name: str, title: str, blurb: str):
    return md(
        f"# {title}\n\n"
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(name)})\n"
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(name)})\n\n"
        + textwrap.dedent(blurb).strip("\n")
    )


def install_cell():
    return code(
        f'''
        # NBVAL_IGNORE_OUTPUT
        # On Colab: install loramini from GitHub. Everywhere else (your venv, conda, Binder, CI) this cell
        # does nothing, because the package is already installed there.
        import sys

        if "google.colab" in sys.modules:
            %pip install -q "loramini @ git+https://github.com/{OWNER}/{REPO}.git"
        '''
    )


def device_cell():
    return code(
        '''
        # NBVAL_IGNORE_OUTPUT
        # Pick the best accelerator available: CUDA (Colab GPU), then Apple's MPS, then the CPU.
        import os

        import torch

        import loramini

        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")

        # One switch shrinks the experiments (CI and Binder set it); every cell still runs.
        SMOKE = os.environ.get("LORAMINI_SMOKE", "0") == "1"
        print(f"loramini {loramini.__version__} | torch {torch.__version__} | device: {device} | smoke mode: {SMOKE}")
        '''
    )


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"provenance": []}
    path = NOTEBOOKS / name
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def exercise(number: int, title: str, body: str, check_output: bool = True):
    """One exercise: a single code cell holding the setup, the solution between nbgrader's markers and the
    check call (so the student copy, where the solution becomes `raise NotImplementedError()`, still runs top
    to bottom). `check_output`: the cell prints the same ✓ line in every mode, so nbval compares it."""
    marker = "# NBVAL_CHECK_OUTPUT" if check_output else "# NBVAL_IGNORE_OUTPUT"
    body = textwrap.dedent(body).strip("\n")
    assert "### BEGIN SOLUTION" in body and "### END SOLUTION" in body, f"exercise {number} has no solution block"
    return new_code_cell(f"{marker}\n# Exercise {number}: {title}\n{body}")


def exercises_intro():
    return md(
        """
        > **Exercises.** Cells whose first lines read `# Exercise N` are for you. In the student copy of this
        > notebook (in `notebooks/exercises/`) the answer is replaced by `raise NotImplementedError()`: delete that
        > line, write your answer there, and run the cell. The `checks.…` call at the end of the cell prints a ✓
        > when you are right, and otherwise a hint that says what looks wrong. Later cells never depend on your
        > answers, so you can skip an exercise and come back to it.
        """
    )
