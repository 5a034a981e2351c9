"""nbgrader's autograde, hardened: `python -m loramini.course nbgrader-autograde ASSIGNMENT --solutions DIR`.

Plain `nbgrader autograde` runs each submission in a kernel that is the instructor (it can read `source/`, the
other students' folders and the gradebook) and takes the verdict from that kernel, where the student's code can
undo any check. This runs the same autograde (same folders, gradebook, feedback and export) with two changes:

* `SandboxedExecute`: nbgrader's Execute preprocessor with a kernel run at arm's length (`sandbox`, as the package
  grader runs its kernels): a throwaway working folder holding a copy of the submission's folder, a minimal
  environment, resource limits, and (with user namespaces) the course folder, the exchange and the solution
  notebooks covered by an empty folder, everything else read-only; every process it started is killed at the end;
* `PackageVerdict`: after nbgrader has run the notebook, the package grader (`grader.grade_submission`) grades
  the same answers against the solution notebook, judging them in a fresh interpreter; each tests cell of an
  exercise it fails gets an error output first, so nbgrader scores that cell 0. A tests cell scores its points
  only when both nbgrader's run and the package grader pass it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Float, Integer, List, Unicode

from . import sandbox

_TESTS_ID = re.compile(r".*_ex(\d+)(?:_part\d+)?_tests")
_EXCHANGE = "/srv/nbgrader/exchange"  # nbgrader's default exchange: every student's released and submitted files


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in `sandbox`: its own scratch folder (a copy of the folder nbgrader asks
    for, that is autograded/<student>/<assignment>/), hidden folders `hide`, memory and file-size limits."""

    hide = List(Unicode(), help="folders the kernel must not see (covered by an empty folder)").tag(config=True)
    memory = Integer(8 << 30, help="address-space limit of the kernel, bytes").tag(config=True)
    timeout = Float(900, help="wall-clock seconds: then the kernel and all it started are killed").tag(config=True)

    _scratch = None
    _since = 0
    _dog = None

    async def _async_pre_start_kernel(self, **kw):
        self._scratch = sandbox.Scratch.create(self.hide)
        self._since = sandbox.now_ticks()
        self.connection_file = str(self._scratch.root / "runtime" / "kernel.json")  # a folder the kernel sees
        if kw.get("cwd"):  # the submission's files (data files nbgrader copied from source/ included)
            shutil.copytree(kw["cwd"], self._scratch.work, dirs_exist_ok=True, symlinks=True)
        kw.update(cwd=str(self._scratch.work), env=self._scratch.env({"LORAMINI_GRADING": "1"}),
                  preexec_fn=sandbox.preexec(sandbox.Limits(memory=self.memory)),
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        return sandbox.wrap(cmd, self._scratch.root, self.hide), kw

    async def _async_launch_kernel(self, kernel_cmd, **kw) -> None:
        await super()._async_launch_kernel(kernel_cmd, **kw)
        # nbgrader's per-cell timeout interrupts, and a loop that swallows interrupts would cost it again on every
        # cell left: the whole kernel gets `timeout` seconds (nbgrader then reports the submission as failed).
        self._dog = sandbox.Watchdog(self.timeout, self._scratch, self._since)
        self._dog.leader = getattr(self.provisioner, "pid", None)
        self._dog.start()

    async def cleanup_resources(self, restart: bool = False) -> None:
        # AsyncKernelManager binds `cleanup_resources` to the base class's coroutine, and nbclient calls only that
        # for a kernel that is already dead (the watchdog's kill): without this, the scratch folder and the
        # final sweep would be skipped exactly when a submission ran out of time.
        await self._async_cleanup_resources(restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._dog is not None:
            self._dog.stop()
        if self._scratch is not None and not restart:
            sandbox.kill_all(getattr(self.provisioner, "pid", None), self._scratch.marker, self._since)
            self._scratch.remove()
            self._scratch = None


class SandboxedExecute(Execute):
    """nbgrader's Execute preprocessor, with the kernel in the sandbox (nbgrader's Execute sets its kernel
    manager class itself, so a config value would be overridden)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)


class PackageVerdict(NbGraderPreprocessor):
    """Fails (with an error output) every tests cell of an exercise the package grader does not pass."""

    solutions = Unicode(help="folder of the solution notebooks").tag(config=True)
    hide = List(Unicode(), help="folders the package grader's kernel must not see").tag(config=True)
    timeout = Float(900, help="wall-clock seconds per submission for the package grader").tag(config=True)
    memory = Integer(8 << 30, help="address-space limit of its kernel, bytes").tag(config=True)

    def preprocess(self, nb, resources):
        import nbformat
        from nbgrader.utils import determine_grade

        from .grader import grade_submission

        name, who = resources["nbgrader"]["notebook"], resources["nbgrader"].get("student", "?")
        solution = Path(self.solutions) / f"{name}.ipynb"
        if not solution.is_file():
            raise SystemExit(f"error: no solution notebook {solution} for {name}; pass --solutions with the folder "
                             f"that holds {name}.ipynb")
        tests = [c for c in nb.cells if _TESTS_ID.fullmatch(str(c.metadata.get("nbgrader", {}).get("grade_id", "")))]
        if all(determine_grade(c)[0] == 0 for c in tests):  # nothing the verdict could take away
            self.log.info("package grader, %s: not run (nbgrader's run passes no tests cell)", who)
            return nb, resources
        with tempfile.TemporaryDirectory(prefix="loramini-nbgrader-") as folder:
            path = Path(folder) / f"{name}.ipynb"
            nbformat.write(nb, path)
            rows = grade_submission(path, solution, nbformat.read(solution, as_version=4),
                                    sandbox.Limits(timeout=self.timeout, memory=self.memory), avoid=self.hide)
        failed = {r["exercise"]: r["status"] for r in rows if r["passed"] is False}
        self.log.info("package grader, %s: %d/%d exercises pass", who,
                      sum(r["passed"] is True for r in rows), sum(r["passed"] is not None for r in rows))
        for cell in tests:
            match = _TESTS_ID.fullmatch(cell.metadata["nbgrader"]["grade_id"])
            if int(match.group(1)) in failed:
                status = failed[int(match.group(1))]
                cell.outputs.insert(0, nbformat.v4.new_output(
                    "error", ename="PackageGraderFail", evalue=status,
                    traceback=[f"PackageGraderFail: the package grader does not pass this exercise ({status})"]))
        return nb, resources


def _hidden(course: Path, solutions: Path, extra: list) -> list:
    """The folders both kernels must not see: the course folder, the exchange, the solutions, `extra`."""
    folders = [course, solutions, *extra]
    if Path(_EXCHANGE).is_dir():
        folders.append(Path(_EXCHANGE))
    for folder in folders:
        if not sandbox.hideable(folder):
            raise SystemExit(f"error: {folder} holds the Python environment, the loramini package or a PYTHONPATH "
                             f"entry, so a kernel could not be kept out of it; keep the course folder and the "
                             f"solutions in folders of their own")
    return [str(Path(f).resolve()) for f in folders]


def autograde(assignment: str, solutions: Path, hide: list, timeout: float, memory: int, extra: list) -> int:
    """Run nbgrader's autograde for `assignment` in the current (course) folder, hardened as described above."""
    from nbgrader.apps.autogradeapp import AutogradeApp
    from nbgrader.converters import Autograde
    from traitlets.config import Config

    if not sandbox.isolation():
        print("warning: no user namespaces here (util-linux unshare): kernels run as plain processes and can read "
              "any file of yours by absolute path; see docs/teaching.md", file=sys.stderr)
    if not (Path(solutions) / f"{assignment}.ipynb").is_file():
        raise SystemExit(f"error: no solution notebook {assignment}.ipynb in {solutions}; pass --solutions with the "
                         f"folder of the solution notebooks (e.g. ../loramini/notebooks)")
    folders = _hidden(Path.cwd(), Path(solutions), [Path(h) for h in hide])
    sandbox.become_subreaper()
    # nbgrader runs `alembic` (its database migrations) from PATH: the environment's bin folder must be on it.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    steps = [SandboxedExecute if p is Execute else p for p in Autograde.class_traits()["autograde_preprocessors"].default()]
    config = Config()
    config.Autograde.autograde_preprocessors = steps[:1] + [PackageVerdict] + steps[1:]
    config.ExecutePreprocessor.timeout = int(timeout)
    config.SandboxedKernelManager.hide = folders
    config.SandboxedKernelManager.memory = memory
    config.SandboxedKernelManager.timeout = timeout
    config.PackageVerdict.solutions = str(Path(solutions).resolve())
    config.PackageVerdict.hide = folders
    config.PackageVerdict.timeout = timeout
    config.PackageVerdict.memory = memory
    app = AutogradeApp()
    app.initialize([assignment, *extra])
    app.update_config(config)
    app.start()
    return 0
