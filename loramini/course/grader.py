"""The package grader: `python -m loramini.course grade --solutions notebooks SUBMISSION.ipynb ...`.

For each submission:

1. rebuild it from its solution notebook (`graded_notebook`): the solution's cells, with only the student's answer
   region of each exercise (matched by title); every check call becomes `answers.record(...)`, which writes the
   check's arguments out (and, for a function, what the function returned on the check's inputs);
2. run that in a kernel at arm's length (`sandbox`): a throwaway folder, a minimal environment, resource limits,
   a wall-clock limit that kills the kernel's whole session; a cell counts as failed on the kernel's error reply,
   whatever it printed;
3. run the checks and the hidden tests in a fresh interpreter that never ran student code (`judge`); hidden tests
   that need the student's functions or the notebook's state run in the kernel, after an undo of monkeypatching,
   and can only fail an exercise there, never pass it.

An exercise passes when its cell ran without error, every check passes in the judge and every hidden test passes.
Status lines are built from fixed words and the checks' hints: nothing the student's code printed reaches them.
"""

from __future__ import annotations

import ast
import builtins
import copy
import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

from . import sandbox
from .guard import _guard_line
from .notebook import _HIDDEN, _MD_ANSWER, _SOLUTION, _clean, _norm, _write, exercises, has_exercise, \
    solution_notebooks, strip_markdown_solution
from .submission import _match_solution, _submitted_exercises, extract_answer, restore_exercise, student_id

_SETUP = ("from loramini.course import Todo\nfrom loramini.course import answers as __lm_answers\n" + _guard_line())
_JUDGED_MODULES = {"torch", "nn", "F", "np", "math", "loramini", "checks"}


# ---------------------------------------------------------------- the graded notebook
def _check_call(node: ast.stmt) -> Optional[ast.Call]:
    """The call of a statement `checks.check_x(...)` / `check_x(...)`, else None."""
    call = node.value if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) else None
    if call is None or any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    return call if name.startswith("check_") else None


def _recorded(stmts: list, prefix: str, steps: list) -> list:
    """The statements after an answer, each check call replaced by a record call (its step goes to `steps`)."""
    text = _HIDDEN.sub("", "\n".join(stmts))
    try:
        body = ast.parse(text).body
    except SyntaxError:
        return text.split("\n")
    lines, out = text.split("\n"), []
    for node in body:
        call = _check_call(node)
        if call is None:
            out += lines[node.lineno - 1:node.end_lineno]
            continue
        key = f"{prefix}c{len(steps)}"
        name = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
        args = "".join(ast.unparse(a) + ", " for a in call.args)
        kwargs = ", ".join(f"{k.arg!r}: {ast.unparse(k.value)}" for k in call.keywords)
        out.append(f"__lm_answers.record({key!r}, {name!r}, lambda: (({args}), {{{kwargs}}}))")
        steps.append({"kind": "check", "id": key, "source": ast.unparse(node)})
    return out


def _free_names(code: str) -> set:
    tree = ast.parse(code)
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return {n for n in used - bound - _JUDGED_MODULES if not hasattr(builtins, n)}


def _answer_values(ex) -> set:
    """Names the exercise's top-level answers assign (values, not functions)."""
    names = set()
    for answer, indent in zip(ex.answers, ex.indents):
        if indent:
            continue
        try:
            tree = ast.parse("\n".join(answer))
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AnnAssign, ast.AugAssign)) else []
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _exercise_cells(ex, answers: list) -> tuple[list, dict]:
    """(cells' sources, plan entry) for one exercise: its cell with record calls, and the hidden tests either
    as a judge step (they read only the answer's values) or as a kernel cell after a monkeypatch undo."""
    prefix, steps = f"e{ex.number}", []
    lines = list(ex.head)
    for answer, (pre, stmts) in zip(answers, ex.after):
        lines += answer + pre
        recorded = _recorded(stmts, prefix, steps)
        if any(line.strip() for line in recorded):
            lines += [_guard_line(ex)] + recorded
    sources = ["\n".join(lines)]
    hidden = "\n".join(ex.hidden_lines)
    if hidden.strip():
        names = _free_names(hidden)
        if names <= _answer_values(ex):
            key = f"{prefix}h"
            thunks = ", ".join(f"{n!r}: lambda: {n}" for n in sorted(names))
            sources[0] += f"\n__lm_answers.record_names({key!r}, {{{thunks}}})"
            steps.append({"kind": "hidden", "id": key, "source": hidden, "names": sorted(names)})
        else:
            sources.append(_guard_line(ex) + "\n" + hidden)
    return sources, {"key": _key(ex), "steps": steps}


def _key(ex) -> str:
    return f"{ex.number}|{_norm(ex.title)}"


def _answer_words(solution_source: str, text: str) -> int:
    """Words the student wrote in a written answer: the cell's words less the question around YOUR ANSWER HERE
    (the question is the solution cell's text outside its model answer), wherever the student left it."""
    before, _, after = strip_markdown_solution(solution_source).partition(_MD_ANSWER)
    words = text.replace(_MD_ANSWER, "").split()
    for part in (_SOLUTION.sub("", before).split(), _SOLUTION.sub("", after).split()):
        n = len(part)
        for start in range(len(words) - n + 1) if n else ():
            if words[start:start + n] == part:
                words = words[:start] + words[start + n:]
                break
    return len(words)


def graded_notebook(solution_nb, submission_nb) -> tuple:
    """(notebook to execute, {exercise key: [cell indices]}, {exercise key: preset status}, judge plan) for a
    submission: the solution's cells with the student's answer regions put in."""
    import nbformat

    sub = _submitted_exercises(submission_nb)
    by_cell = {ex.cell: ex for ex in exercises(solution_nb)}
    cells = [nbformat.v4.new_code_cell(_SETUP)]
    graded, preset, plan = {}, {}, []
    for index, cell in enumerate(solution_nb.cells):
        ex = by_cell.get(index)
        if ex is None:
            if cell.cell_type == "code":
                cells.append(nbformat.v4.new_code_cell(cell.source))
            continue
        found = sub["key"].get(ex.key) or sub["title"].get(_norm(ex.title))
        if ex.written:
            text = found[1] if found and found[0] == "markdown" else ""
            answer = _SOLUTION.sub("", strip_markdown_solution(text)) if has_exercise(text) else text
            words = _answer_words(solution_nb.cells[ex.cell].source, answer)
            preset[ex.key] = "missing" if not found else "not answered" if _MD_ANSWER in text else \
                f"graded by hand ({words} words)"
            continue
        answers = None
        if found is None or found[0] != "code":
            preset[ex.key] = "missing: no cell titled " + repr(f"# {ex.label}")
        else:
            answers = extract_answer(ex, found[1])
            problem = restore_exercise(ex, answers)[1]
            if problem:
                preset[ex.key], answers = problem, None
        sources, step = _exercise_cells(ex, answers or [[ex.indents[i] + ex.placeholder] for i in range(len(ex.answers))])
        graded[ex.key] = list(range(len(cells), len(cells) + len(sources)))
        cells += [nbformat.v4.new_code_cell(s) for s in sources]
        plan.append(step)
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(solution_nb.metadata))
    nb.cells = cells
    _clean(nb)
    return nb, graded, preset, plan


# ---------------------------------------------------------------- running it
_KERNEL_STARTS = 3  # tries to start a kernel that dies before it answers (never after a cell ran)


def _client_class():
    from nbclient import NotebookClient

    class Client(NotebookClient):
        """Keeps each cell's execute_reply status: an error counts even when the kernel printed nothing."""

        def _check_raise_for_error(self, cell, cell_index, exec_reply):
            content = (exec_reply or {}).get("content", {})
            self.replies[cell_index] = (content.get("status"), str(content.get("ename", "")))
            return super()._check_raise_for_error(cell, cell_index, exec_reply)
    return Client


def _kernel_manager(scratch: sandbox.Scratch, hide: list):
    """A python3 kernel manager whose command runs inside the sandbox's namespaces (when available)."""
    import copy as _copy

    from jupyter_client.manager import AsyncKernelManager

    # async: nbclient notices a killed kernel while it waits; the connection file in the scratch, the one folder
    # the kernel surely sees (the instructor's runtime folder may lie under a covered temp folder)
    km = AsyncKernelManager(kernel_name="python3", connection_file=str(scratch.root / "runtime" / "kernel.json"))
    spec = _copy.copy(km.kernel_spec)
    spec.argv = sandbox.wrap(spec.argv, scratch.root, hide)
    km._kernel_spec = spec
    return km


def _error_line(err: BaseException) -> str:
    """`Name: first line of the message`, short (the grader's own errors: the kernel's never reach here)."""
    lines = str(err).strip().splitlines()
    return (f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__)[:160]


def run_kernel(nb, scratch: sandbox.Scratch, limits: sandbox.Limits, hide: Optional[list] = None) \
        -> tuple[dict, Optional[str]]:
    """Execute `nb` (in place) in a sandboxed kernel that cannot see the folders `hide`. Returns
    ({cell index: (status, ename)}, problem), problem being None or one line (timed out / the kernel died)."""
    import atexit

    sandbox.become_subreaper()
    since = sandbox.now_ticks()
    dog = sandbox.Watchdog(limits.timeout, scratch, since)
    replies, failed, started = {}, [], []

    def run_once() -> None:
        client = _client_class()(nb, km=_kernel_manager(scratch, hide or []), timeout=int(limits.timeout) + 60,
                                 kernel_name="python3", allow_errors=True, interrupt_on_timeout=False,
                                 shutdown_kernel="immediate", startup_timeout=120)
        client.replies = replies

        def on_start(**_):  # nbclient calls this once the kernel answered its first message
            started.append(True)
            dog.leader = getattr(client.km.provisioner, "pid", None)
        client.on_notebook_start = on_start
        try:
            # The kernel's own stdout/stderr go nowhere: a submission does not write on the instructor's terminal.
            client.execute(cwd=str(scratch.work), env=scratch.env({"LORAMINI_GRADING": "1"}),
                           preexec_fn=sandbox.preexec(limits), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            atexit.unregister(client._cleanup_kernel)  # nbclient leaves it registered when a start fails

    def execute():
        # A kernel that dies before answering its first message never ran a line of the submission (a port taken
        # between choosing and binding it, a loaded machine): that is the grader's failure, so start it again.
        for attempt in range(_KERNEL_STARTS):
            try:
                return run_once()
            except Exception as err:  # DeadKernelError, a start failure: the cells not run say so
                if started or dog.fired or attempt == _KERNEL_STARTS - 1:
                    failed.append(_error_line(err))
                    return
                sandbox.kill_all(None, scratch.marker, since)
    worker = threading.Thread(target=execute, daemon=True)
    dog.start()
    worker.start()
    # nbclient stops when the watchdog kills the kernel; should it ever wait on a dead kernel, the batch goes on.
    worker.join(limits.timeout + 120)
    dog.stop()
    sandbox.kill_all(dog.leader, scratch.marker, since)
    problem = None
    if worker.is_alive() and not dog.fired:
        problem = "the kernel stopped answering"
    elif failed and not dog.fired:
        problem = f"the kernel stopped ({failed[0]})"
    if dog.fired:
        problem = f"timed out after {limits.timeout:g} s"
    return replies, problem


def run_judge(plan: list, scratch: sandbox.Scratch, timeout: float = 600) -> dict:
    """The verdicts of a fresh interpreter on the recorded answers ({exercise key: {passed, status}})."""
    folder = scratch.root / "judge"
    folder.mkdir(exist_ok=True)
    (folder / "plan.json").write_text(json.dumps({"answers": str(scratch.answers), "exercises": plan}))
    env = dict(os.environ, LORAMINI_GRADING="1", PYTHONSAFEPATH="1")
    try:
        done = subprocess.run([sys.executable, "-m", "loramini.course.judge", "plan.json", "result.json"],
                              cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode == 0:
            return json.loads((folder / "result.json").read_text())
        failure = f"the judge failed ({(done.stderr.strip().splitlines() or ['no output'])[-1][:120]})"
    except subprocess.TimeoutExpired:
        failure = f"the judge timed out after {timeout:g} s"
    return {step["key"]: {"passed": False, "status": failure} for step in plan}


def _kernel_status(reply: Optional[tuple], problem: Optional[str]) -> Optional[str]:
    """A failing kernel cell's status line (None when it ran fine); `ename` is the kernel's word, so only a
    builtin exception's name is repeated."""
    if reply is None or reply[0] is None:
        return problem or "not run"
    status, ename = reply
    if status == "ok":
        return None
    if ename in ("Todo", "NotImplementedError"):
        return "not answered"
    known = isinstance(getattr(builtins, ename, None), type)
    return f"{ename} in the exercise cell" if known else "an error in the exercise cell (see the executed notebook)"


def grade_submission(path: Path, solution_path: Path, solution_nb, limits: Optional[sandbox.Limits] = None,
                     keep: Optional[Path] = None, avoid: Optional[list] = None) -> list[dict]:
    """One row per exercise of the solution notebook: passed (True/False; None for a written answer) and a
    one-line status. `keep`: where to write the executed notebook; `avoid`: folders the scratch must not touch."""
    import nbformat

    limits = limits or sandbox.Limits()
    nb, graded, preset, plan = graded_notebook(solution_nb, nbformat.read(path, as_version=4))
    hide = [Path(solution_path).parent, Path(path).parent] + list(avoid or [])
    scratch = sandbox.Scratch.create(hide)
    try:
        replies, problem = run_kernel(nb, scratch, limits, hide)
        verdicts = run_judge(plan, scratch)
    finally:
        scratch.remove()
    if keep is not None:
        _write(Path(keep), nbformat.writes(nb) + "\n")
    rows = []
    for ex in exercises(solution_nb):
        if ex.written:
            passed, status = None, preset[ex.key]
        elif ex.key in preset:
            passed, status = False, preset[ex.key]
        else:
            cells = graded[ex.key]
            status = _kernel_status(replies.get(cells[0]), problem)
            if status is None:
                verdict = verdicts.get(_key(ex)) or {}
                status = None if verdict.get("passed") is True else str(verdict.get("status", "not judged"))[:300]
            if status is None and len(cells) > 1:
                hidden = _kernel_status(replies.get(cells[1]), problem)
                status = hidden if hidden is None or replies.get(cells[1], (None,))[0] is None else \
                    "a hidden test failed"
            passed, status = status is None, status or "passed"
        rows.append({"notebook": Path(solution_path).name, "exercise": ex.number, "title": ex.title,
                     "passed": passed, "status": status})
    return rows


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("_")[:80] or "submission"


def grade(submissions: list, solutions: Path, student_from: str = "path", notebook: Optional[str] = None,
          timeout: float = 900, out=None, limits: Optional[sandbox.Limits] = None,
          executed: Optional[Path] = None) -> list[dict]:
    """Grade each submitted notebook against its solution notebook in `solutions`; print a summary per
    submission and return one row per (student, exercise). `executed`: folder for the executed notebooks."""
    import nbformat

    out = out or sys.stdout
    limits = limits or sandbox.Limits(timeout=timeout)
    if executed:
        Path(executed).mkdir(parents=True, exist_ok=True)
    if not sandbox.isolation():
        print("warning: no user namespaces here (util-linux unshare): submissions run as plain processes and can "
              "read any file of yours by absolute path; see docs/teaching.md", file=sys.stderr)
    sols = {}
    for solution in solution_notebooks(solutions):
        nb = nbformat.read(solution, as_version=4)
        try:
            sols[solution.name] = (nb, exercises(nb))
        except ValueError as err:  # one malformed solution notebook does not stop the others' grading
            print(f"warning: {solution.name} skipped: {err}", file=sys.stderr)
    rows = []
    for name in submissions:
        path = Path(name)
        if not path.is_file():
            raise SystemExit(f"error: submission {path} does not exist")
        sub = _submitted_exercises(nbformat.read(path, as_version=4))
        solution = _match_solution(path, sub, sols, notebook)
        who = student_id(path, student_from)
        keep = Path(executed) / f"{_safe(who)}__{Path(solution).stem}.ipynb" if executed else None
        # Every submission's folder and the executed notebooks (other students' code) are hidden too.
        found = grade_submission(path, Path(solutions) / solution, sols[solution][0], limits, keep,
                                 [Path(s).parent for s in submissions] + ([Path(executed)] if executed else []))
        auto = [r for r in found if r["passed"] is not None]
        print(f"{who} ({path} → {Path(solution).stem}): {sum(r['passed'] for r in auto)}/{len(auto)} exercises "
              f"pass", file=out)
        for r in found:
            mark = "·" if r["passed"] is None else "✓" if r["passed"] else "✗"
            print(f"  {mark} Exercise {r['exercise']}: {r['title']}" + ("" if r["passed"] else f"  ({r['status']})"),
                  file=out)
            rows.append({"student": who, "submission": str(path), **r,
                         "passed": "" if r["passed"] is None else int(r["passed"])})
    return rows


_CSV_FIELDS = ["student", "submission", "notebook", "exercise", "title", "passed", "status"]


def write_csv(path: Path, rows: list) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    _write(Path(path), buffer.getvalue())
