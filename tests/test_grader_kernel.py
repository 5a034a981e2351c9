"""The graders' kernels: a kernel that dies before it answers is the grader's failure (started again), one that
dies while running a submission's cell is the submission's (never run twice); either way one line says why. And
nbgrader's kernel, sandboxed, is killed at its whole-kernel time limit even when the code swallows interrupts.

A CI run graded a blank notebook as "the kernel stopped (RuntimeError)": its kernel died while starting, after the
previous submission had been killed. These tests make a start fail on purpose.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
import pytest

from loramini.course import grader, sandbox

from helpers import interrupt_swallowing_loop, processes_named

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's sandbox is Linux-only")


def _run(monkeypatch, tmp_path, cells: list, dead_starts: int):
    """run_kernel on `cells`, with the first `dead_starts` kernels replaced by a process that exits at once."""
    real, made = grader._kernel_manager, []

    def kernel_manager(scratch, hide):
        km = real(scratch, hide)
        if len(made) < dead_starts:
            km._kernel_spec.argv = [sys.executable, "-c", "raise SystemExit(3)"]
        made.append(km)
        return km
    monkeypatch.setattr(grader, "_kernel_manager", kernel_manager)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    scratch = sandbox.Scratch.create([tmp_path])
    try:
        replies, problem = grader.run_kernel(nb, scratch, sandbox.Limits(timeout=300))
    finally:
        scratch.remove()
    return replies, problem, len(made), nb


def test_a_kernel_that_dies_while_starting_is_started_again(monkeypatch, tmp_path):
    replies, problem, starts, nb = _run(monkeypatch, tmp_path, ["print(6 * 7)"], dead_starts=1)
    assert (starts, problem) == (2, None)
    assert replies[0][0] == "ok" and nb.cells[0].outputs[0]["text"] == "42\n"


def test_a_kernel_that_never_starts_gives_one_line_saying_why(monkeypatch, tmp_path):
    replies, problem, starts, _ = _run(monkeypatch, tmp_path, ["x = 1"], dead_starts=99)
    assert starts == grader._KERNEL_STARTS and replies == {}
    assert problem == "the kernel stopped (RuntimeError: Kernel died before replying to kernel_info)"


def test_a_submission_that_kills_its_kernel_is_not_run_again(monkeypatch, tmp_path):
    # Running a student's cells twice would repeat whatever they did: only a kernel that never answered is retried.
    replies, problem, starts, _ = _run(monkeypatch, tmp_path, ["x = 1", "import os; os._exit(1)", "y = 2"],
                                       dead_starts=0)
    assert starts == 1 and replies[0][0] == "ok" and 2 not in replies
    assert problem.startswith("the kernel stopped (DeadKernelError: ")


TOKEN = "lm-nbg-orphan-" + uuid.uuid4().hex[:8]
LOOPER = interrupt_swallowing_loop(TOKEN)


def test_the_nbgrader_kernel_is_killed_at_its_time_limit_with_its_children(tmp_path):
    # nbgrader interrupts a cell at its own per-cell timeout; a loop that swallows interrupts would then cost that
    # timeout on every cell left. The sandboxed kernel manager kills the whole kernel at `timeout` instead: nbclient
    # sees a dead kernel long before its own (much longer) cell timeout, and the setsid child dies too.
    pytest.importorskip("nbgrader")
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    from loramini.course.nbgrading import SandboxedKernelManager

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LOOPER), nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    scratches = set(Path(tempfile.gettempdir()).glob("loramini-grade-*"))
    config = Config()  # as nbgrader's Execute does it: the client makes (and owns) its kernel manager
    config.SandboxedKernelManager.update(timeout=15, hide=[str(tmp_path)])
    client = NotebookClient(nb, kernel_manager_class=SandboxedKernelManager, config=config, timeout=240,
                            kernel_name="python3", interrupt_on_timeout=True, shutdown_kernel="immediate")
    with pytest.raises(DeadKernelError):
        try:
            client.execute(cwd=str(tmp_path))
        except CellTimeoutError:  # the cell's own timeout came first: the watchdog did not fire
            pytest.fail("the kernel outlived its 15 s limit until nbclient's 240 s cell timeout")
    assert processes_named(TOKEN) == [], "a setsid child outlived the kernel"
    # nbclient cleans up a dead kernel with `cleanup_resources` only: the sandbox's scratch must go with it
    assert set(Path(tempfile.gettempdir()).glob("loramini-grade-*")) <= scratches, "the kernel's scratch was left"
