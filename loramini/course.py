"""Coursework tooling: student copies, per-notebook nbgrader assignments, and a grader that reruns submissions.

    python -m loramini.course student  --source notebooks --dest notebooks/exercises [--check]
    python -m loramini.course nbgrader --source notebooks --dest COURSE/source [--notebooks 01 02]
    python -m loramini.course grade    --solutions notebooks SUBMISSION.ipynb ... [--csv grades.csv]
    python -m loramini.course table    --source notebooks [--write docs/teaching.md | --check docs/teaching.md]

The solution notebooks mark exercises the way nbgrader does. An exercise is ONE code cell whose first line is
`# Exercise N: title`: setup, the answer between `### BEGIN SOLUTION` / `### END SOLUTION`, then the check call
and optional `### BEGIN HIDDEN TESTS` ... `### END HIDDEN TESTS`. A written exercise is a markdown cell with the
same solution markers. From that:

* `student`: the answer becomes `raise Todo("Exercise N: title")` (one line in Jupyter), hidden tests and
  `# NBVAL_` lines go, outputs and widget state are cleared, exercise cells are tagged `raises-exception` (Run
  All goes on past them), badges point at the copy and relative links are rewritten for the copy's folder.
* `nbgrader`: one nbgrader *source* assignment per notebook (named after it), each exercise split into a tagged
  "autograded answer" cell and a locked "autograder tests" cell with points.
* `grade`: rebuilds each submission from its solution notebook, taking from the submission only the student's
  answer region of each exercise (matched by title). Checks and hidden tests always come from the solution;
  a missing exercise fails; `loramini.checks` is re-imported (and common monkeypatches undone) before every
  check. Runs with LORAMINI_GRADING=1 and, unless set, LORAMINI_SMOKE=1.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import io
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


class Todo(NotImplementedError):
    """Raised by an exercise cell of a student copy until the student answers it.

    A NotImplementedError (so code that treats "not done yet" specially still does), shown by IPython as one
    line instead of a traceback (`_render_traceback_`)."""

    def _render_traceback_(self):
        return [f"\x1b[1;31m{self.args[0] if self.args else 'Exercise'}\x1b[0m: not answered yet. Replace the "
                f"`raise Todo(...)` line with your answer and run the cell again."]


# ---------------------------------------------------------------- notebook text
_NBVAL = re.compile(r"^[ \t]*# NBVAL_[A-Z_]+[ \t]*(\n|$)", re.M)
_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.M | re.S)
_BEGIN = re.compile(r"^[ \t]*### BEGIN SOLUTION")
_END = re.compile(r"^[ \t]*### END SOLUTION")
_TITLE = re.compile(r"^# Exercise (\d+): *(.*?)\s*$")
_WRITTEN_TITLE = re.compile(r"Exercise (\d+)[^:\n]*:\**\s*(.+?)\s*(?:\*\*|$)", re.M)
_NOTEBOOK = "[0-9][0-9]_*.ipynb"
_MD_ANSWER = "YOUR ANSWER HERE"
_STUDENT_NOTE = ("> **Student version.** An exercise cell raises `Todo` (a one-line message) until you replace "
                 "its `raise Todo(...)` line with your answer; the `checks` call after it then prints ✓ or a hint. "
                 "*Run All* runs past unanswered exercises.")
_TODO_IMPORT = "from loramini.course import Todo  # what an unanswered exercise cell raises"


def _drop_nbval(source: str) -> str:
    return _NBVAL.sub("", source)


def has_exercise(source: str) -> bool:
    return "### BEGIN SOLUTION" in source


def strip_solutions(source: str, placeholder: str = "raise NotImplementedError()") -> str:
    """The student version of one code cell's source: hidden tests removed, each answer → `placeholder`."""
    source = _HIDDEN.sub("", source)
    return _SOLUTION.sub(lambda m: f"{m.group(1)}{placeholder}{m.group(2)}", source)


def strip_markdown_solution(source: str) -> str:
    """The student version of a markdown cell: a written answer becomes YOUR ANSWER HERE (as nbgrader does)."""
    return _SOLUTION.sub(lambda m: f"{m.group(1)}{_MD_ANSWER}{m.group(2)}", source)


def _norm(title: str) -> str:
    return " ".join(title.lower().split())


@dataclass
class Exercise:
    """One exercise of a solution notebook, as line lists with NBVAL lines removed.

    `head`: the code before the first `### BEGIN SOLUTION`; `answers[i]`: the model answer of solution block i
    (indented by `indents[i]`); `after[i]` = (pre, stmts): the code after block i up to the next block (the
    last one is the tail), split at its first top-level statement: `pre` (the rest of an enclosing block,
    comments) and `stmts` (check calls and hidden tests, which the graders always restore)."""

    number: int
    title: str
    cell: int
    written: bool = False
    head: list = field(default_factory=list)
    answers: list = field(default_factory=list)
    indents: list = field(default_factory=list)
    after: list = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return self.number, _norm(self.title)

    @property
    def label(self) -> str:
        return f"Exercise {self.number}: {self.title}"

    @property
    def placeholder(self) -> str:
        quoted = self.label.replace("\\", "\\\\").replace('"', '\\"')
        return f'raise Todo("{quoted}")'

    @property
    def tail_stmts(self) -> list:
        return self.after[-1][1] if self.after else []

    @property
    def hidden_lines(self) -> list:
        return [line for _, stmts in self.after for m in _HIDDEN.finditer("\n".join(stmts))
                for line in m.group(0).split("\n") if line.strip() and "### " not in line]

    def visible_after(self, i: int) -> list:
        """What the student sees after block i: hidden tests removed."""
        pre, stmts = self.after[i]
        text = _HIDDEN.sub("", "\n".join(pre + stmts))
        return text.split("\n") if text else []

    def assemble(self, answers: list, guard: Optional[str] = None) -> tuple[list, list]:
        """(lines, ranges): the cell with `answers` in its blocks and `guard` before each block of statements
        that follows an answer; ranges[i] = (start, stop) of the lines after answer i that come from the
        solution (guard included)."""
        lines, ranges = list(self.head), []
        for answer, (pre, stmts) in zip(answers, self.after):
            lines += answer
            start = len(lines)
            lines += pre + ([guard] if guard and stmts else []) + stmts
            ranges.append((start, len(lines)))
        return lines, ranges

    def student_source(self) -> str:
        """The exercise cell as the student copy shows it (also what the grader runs for a missing exercise)."""
        lines = list(self.head)
        for i, indent in enumerate(self.indents):
            lines += [indent + self.placeholder] + self.visible_after(i)
        return "\n".join(lines).rstrip("\n")


def _parse(source: str) -> ast.Module:
    """`ast.parse`, after IPython's own transforms when the cell holds magics (`%pip`, `!ls`)."""
    try:
        return ast.parse(source)
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))


def _split_code_exercise(ex: Exercise, source: str) -> Exercise:
    lines = source.split("\n")
    begins = [i for i, line in enumerate(lines) if _BEGIN.match(line)]
    ends = [i for i, line in enumerate(lines) if _END.match(line)]
    if len(begins) != len(ends) or any(not b < e for b, e in zip(begins, ends)) or \
            any(not e < b for e, b in zip(ends, begins[1:])):
        raise ValueError(f"{ex.label}: unbalanced ### BEGIN SOLUTION / ### END SOLUTION markers")
    try:
        starts = [node.lineno - 1 for node in _parse(source).body]  # 0-based first line of each statement
    except SyntaxError:
        starts = []
    ex.head = lines[:begins[0]]
    for i, (begin, end) in enumerate(zip(begins, ends)):
        stop = begins[i + 1] if i + 1 < len(begins) else len(lines)
        ex.answers.append(lines[begin + 1:end])
        ex.indents.append(re.match(r"[ \t]*", lines[begin]).group(0))
        first = next((s for s in starts if end < s < stop), stop)
        ex.after.append((lines[end + 1:first], lines[first:stop]))
    return ex


def exercises(nb) -> list[Exercise]:
    """The exercises of a solution notebook, in order."""
    found = []
    for index, cell in enumerate(nb.cells):
        if not has_exercise(cell.source):
            continue
        source = _drop_nbval(cell.source)
        if cell.cell_type == "code":
            first = next((line for line in source.split("\n") if line.strip()), "")
            title = _TITLE.match(first)
            if title is None:
                raise ValueError(f"cell {index}: a solution block outside an exercise cell; start the cell with "
                                 f"'# Exercise N: title'")
            found.append(_split_code_exercise(Exercise(int(title.group(1)), title.group(2), index), source))
        elif cell.cell_type == "markdown":
            title = _WRITTEN_TITLE.search(source)
            if title is None:
                raise ValueError(f"cell {index}: a written answer without a title; write 'Exercise N (written): "
                                 f"title' before it")
            found.append(Exercise(int(title.group(1)), title.group(2).rstrip(".").strip(), index, written=True))
    return found


def solution_notebooks(source: Path, only: Optional[list] = None) -> list[Path]:
    """`NN_*.ipynb` in `source` that hold at least one exercise; `only`: prefixes or names to keep.
    Raises SystemExit with one line when there are none (wrong folder, not a clone)."""
    import nbformat

    source = Path(source)
    paths = []
    for path in sorted(source.glob(_NOTEBOOK)):
        if only and not any(path.name.startswith(str(o)) or path.stem == str(o) for o in only):
            continue
        if any(has_exercise(c.source) for c in nbformat.read(path, as_version=4).cells):
            paths.append(path)
    if not paths:
        what = f" matching {' '.join(map(str, only))}" if only else ""
        raise SystemExit(f"error: no solution notebooks{what} (NN_name.ipynb with '### BEGIN SOLUTION') in "
                         f"{source.resolve()}; pass --source/--solutions <the folder holding them>")
    return paths


# ---------------------------------------------------------------- student copies
_LINK = re.compile(r"(\]\(|\b(?:src|href)=\")([^)\"\s]+)")
_PATH_CALL = re.compile(r"\b(Path|open|os\.path\.join)\((\s*)([\"'])([\w.\-]+(?:/[\w.\-]+)*)\3")
_BADGE = re.compile(r"(notebooks(/|%2F))(\d\d_[\w]+\.ipynb)")
_GITHUB = re.compile(r"colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/blob/([\w.-]+)/")


def _is_relative(target: str) -> bool:
    return not re.match(r"^([a-zA-Z][\w+.-]*:|#|/)", target)


def _relink(text: str, source: Path, dest: Optional[Path], keep: set, github: Optional[str],
            copies_on_github: bool = False) -> str:
    """Relative links in markdown, written for `source`, rewritten to work from `dest` (or as GitHub URLs
    when `github` is the repository's blob URL). Links to notebooks in `keep` stay (their copies sit beside)."""
    def fix(m):
        target = m.group(2)
        path = target.split("#")[0]
        if not _is_relative(target) or not path:
            return m.group(0)
        if path in keep:  # a notebook with a student copy: the copy beside, or on GitHub for a released copy
            return m.group(0) if not (github and copies_on_github) else \
                m.group(1) + github + f"{source.name}/exercises/" + target
        if github is None and dest is None:
            return m.group(0)
        if github:
            full = os.path.normpath(os.path.join(source.name, path)).replace(os.sep, "/")
            return m.group(1) + github + full + target[len(path):]
        rel = os.path.relpath(os.path.abspath(source / path), os.path.abspath(dest)).replace(os.sep, "/")
        return m.group(1) + rel + target[len(path):]
    return _LINK.sub(fix, text)


def _repath(code: str, source: Path, dest: Path) -> str:
    """`Path("results")` (a folder beside the solutions) → `Path("../results")` in a copy that lives elsewhere."""
    def fix(m):
        literal = m.group(4)
        if (source / literal).exists() and not (dest / literal).exists():
            literal = os.path.relpath(os.path.abspath(source / literal), os.path.abspath(dest)).replace(os.sep, "/")
        return f"{m.group(1)}({m.group(2)}{m.group(3)}{literal}{m.group(3)}"
    return _PATH_CALL.sub(fix, code)


def _clean(nb) -> None:
    """Outputs, execution counts, timing metadata, widget state and jupytext pairing go (in place)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    for key in ("widgets", "jupytext"):
        nb.metadata.pop(key, None)


def _tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def _retarget_badges(nb, folder: str = "exercises") -> None:
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is not None:
        first.source = _BADGE.sub(lambda m: m.group(1) + folder + m.group(2) + m.group(3), first.source)


def _github_blob(nb) -> Optional[str]:
    for cell in nb.cells:
        m = _GITHUB.search(cell.source)
        if m:
            return f"https://github.com/{m.group(1)}/{m.group(2)}/blob/{m.group(3)}/"
    return None


def student_notebook(nb, source: Path = Path("notebooks"), dest: Path = Path("notebooks/exercises"),
                     keep: Optional[set] = None):
    """The student copy of solution notebook `nb` (which lives in `source`; the copy goes to `dest`).

    `keep`: file names of the notebooks that get copies beside it (links to them stay as they are)."""
    nb = copy.deepcopy(nb)
    by_cell = {ex.cell: ex for ex in exercises(nb)}
    keep = keep or set()
    # Relative links work from a copy inside the same clone; a copy written elsewhere links to GitHub.
    inside = Path(os.path.abspath(dest)).is_relative_to(Path(os.path.abspath(source)).parent)
    github = None if inside else _github_blob(nb)
    imported = False
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = _relink(strip_markdown_solution(cell.source), source, dest, keep, github)
            # Text that tells students what an unanswered cell holds names what this copy really holds.
            cell.source = cell.source.replace("`raise NotImplementedError()`", "`raise Todo(...)`")
            continue
        if cell.cell_type != "code":
            continue
        if index in by_cell:
            cell.source = by_cell[index].student_source()
            _tag(cell, "raises-exception")
        else:
            cell.source = _drop_nbval(cell.source).rstrip("\n")
            if not imported:  # make `Todo` known: right after the notebook's first `from loramini import checks`
                lines = cell.source.split("\n")
                at = next((i for i, line in enumerate(lines) if re.match(r"from loramini import .*\bchecks\b", line)),
                          None)
                if at is not None:
                    cell.source = "\n".join(lines[:at + 1] + [_TODO_IMPORT] + lines[at + 1:])
                    imported = True
        cell.source = _repath(cell.source, source, dest)
    if not imported:  # no checks import: fall back to the builtin, with the same one-line message
        for index in by_cell:
            if nb.cells[index].cell_type == "code":
                nb.cells[index].source = nb.cells[index].source.replace("raise Todo(", "raise NotImplementedError(")
    _clean(nb)
    _retarget_badges(nb)
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is not None and _STUDENT_NOTE not in first.source:
        first.source = first.source.rstrip("\n") + "\n\n" + _STUDENT_NOTE
    return nb


def render(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def build_students(source: Path, dest: Path) -> dict[Path, str]:
    """{student path: its text} for every solution notebook in `source` that holds an exercise."""
    import nbformat

    paths = solution_notebooks(source)
    keep = {p.name for p in paths}
    return {Path(dest) / p.name: render(student_notebook(nbformat.read(p, as_version=4), Path(source), Path(dest), keep))
            for p in paths}


def stale(source: Path, dest: Path) -> list[str]:
    """Names of the student notebooks in `dest` that are missing, differ from what the solutions give, or extra."""
    expected = build_students(source, dest)
    bad = [p.name for p, text in expected.items() if not p.is_file() or p.read_text() != text]
    extra = [p.name for p in Path(dest).glob("*.ipynb") if p not in expected]
    return bad + extra


def _write(path: Path, text: str) -> None:
    from .io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# ---------------------------------------------------------------- nbgrader
def _nbgrader_meta(grade_id: str, *, solution: bool, grade: bool, points: float = 0) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": not solution, "grade_id": grade_id,
            "schema_version": 3, "task": False}
    if grade:
        meta["points"] = points
    return meta


def nbgrader_notebook(nb, prefix: str, points: float = 1, keep: Optional[set] = None):
    """Solution notebook `nb` as an nbgrader *source* notebook.

    Each exercise cell becomes an "autograded answer" cell (setup + solution block, tagged `raises-exception`)
    and a locked "autograder tests" cell worth `points` (the check call and the hidden tests, after a line that
    undoes monkeypatching: `fresh_checks`, whose snapshot is taken in the locked cell importing the checks); a
    written exercise becomes a "manually graded answer" worth `points`. NBVAL lines, outputs and widget state go, badges
    point at the student copies, relative links become GitHub links (released copies live elsewhere)."""
    import nbformat

    nb = copy.deepcopy(nb)
    github, keep = _github_blob(nb), keep or set()
    by_cell = {ex.cell: ex for ex in exercises(nb)}
    cells, snapshot = [], False
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = _relink(cell.source, Path("notebooks"), None, keep, github, copies_on_github=True)
        ex = by_cell.get(index)
        if ex is None:
            if cell.cell_type == "code":
                cell.source = _drop_nbval(cell.source).rstrip("\n")
                lines = cell.source.split("\n")
                at = next((i for i, line in enumerate(lines) if re.match(r"from loramini import .*\bchecks\b", line)),
                          None)
                if at is not None and not snapshot:  # the guard's snapshot, before any student code; locked
                    cell.source = "\n".join(lines[:at + 1] + [_guard_line()] + lines[at + 1:])
                    cell.metadata["nbgrader"] = _nbgrader_meta(f"{prefix}_setup", solution=False, grade=False)
                    snapshot = True
            cells.append(cell)
            continue
        gid = f"{prefix}_ex{ex.number:02d}"
        if ex.written:
            cell.metadata["nbgrader"] = _nbgrader_meta(gid, solution=True, grade=True, points=points)
            cells.append(cell)
            continue
        cells += _nbgrader_exercise_cells(ex, cell, gid, points)
    nb.cells = cells
    _clean(nb)
    _retarget_badges(nb)
    return nb


def _parses(lines: list) -> bool:
    try:
        _parse("\n".join(lines))
        return True
    except SyntaxError:
        return False


def _nbgrader_exercise_cells(ex: Exercise, cell, gid: str, points: float) -> list:
    """Answer and tests cells of one exercise: after each solution block, the statements that follow it
    (check calls, hidden tests) become a locked tests cell when they stand on their own."""
    import nbformat

    groups, current = [], list(ex.head)  # groups: (answer lines, tests lines)
    for i, (answer, (pre, stmts)) in enumerate(zip(ex.answers, ex.after)):
        indent = ex.indents[i]
        current += [indent + "### BEGIN SOLUTION"] + answer + [indent + "### END SOLUTION"] + pre
        if stmts and (i == len(ex.answers) - 1 or _parses(stmts)):
            groups.append((current, stmts))
            current = []
        else:
            current += stmts
    if current:
        groups.append((current, []))
    n_tests = sum(1 for _, tests in groups if "\n".join(tests).strip())
    out = []
    for k, (answer, tests) in enumerate(groups):
        answer_id = gid if k == 0 else f"{gid}_part{k + 1}"
        answer_cell = cell if k == 0 else nbformat.v4.new_code_cell()
        answer_cell.source = "\n".join(answer).strip("\n") if k else "\n".join(answer).rstrip("\n")
        answer_cell.metadata["nbgrader"] = _nbgrader_meta(answer_id, solution=True, grade=False)
        _tag(answer_cell, "raises-exception")
        out.append(answer_cell)
        if "\n".join(tests).strip():
            test_cell = nbformat.v4.new_code_cell(_guard_line(ex) + "\n" + "\n".join(tests).strip("\n"))
            test_cell.metadata["nbgrader"] = _nbgrader_meta(f"{answer_id}_tests", solution=False, grade=True,
                                                            points=round(points / n_tests, 6))
            _tag(test_cell, "raises-exception")
            out.append(test_cell)
    return out


def assignment_name(path: Path) -> str:
    """nbgrader assignment name of a solution notebook: its stem, e.g. `01_decomposition_math`."""
    return Path(path).stem


def write_nbgrader(source: Path, dest: Path, only: Optional[list] = None, points: float = 1) -> list[Path]:
    """One nbgrader assignment per solution notebook: `dest/<stem>/<stem>.ipynb` (dest = nbgrader's source/)."""
    import nbformat

    written, keep = [], {p.name for p in solution_notebooks(source)}
    for path in solution_notebooks(source, only):
        nb = nbgrader_notebook(nbformat.read(path, as_version=4), prefix=f"nb{path.name[:2]}", points=points,
                               keep=keep)
        target = Path(dest) / assignment_name(path) / path.name
        _write(target, render(nb))
        written.append(target)
    return written


# ---------------------------------------------------------------- grading
class _Guard:
    """Undoes a submission's monkeypatching before each exercise and each check (runs inside the kernel).

    Snapshots the attributes of torch, torch.nn.functional, torch.Tensor, nn.Module, nn.Linear, math, loramini,
    loramini.layer and LoRAMiniLinear before any submitted code runs; `restore` puts back whatever changed,
    re-imports loramini.checks (importlib.reload) and rebinds the notebook's names for it."""

    def __init__(self, namespace: dict):
        import builtins
        import importlib
        import math

        import torch
        import torch.nn.functional

        import loramini
        import loramini.checks
        import loramini.layer

        self._ns, self._reload, self._modules = namespace, importlib.reload, sys.modules
        self._checks, self._package = loramini.checks, loramini
        targets = [torch, torch.nn.functional, math, builtins, loramini, loramini.layer]
        # Attributes added later are removed only from the layer classes: torch may cache things on its own types.
        classes = [(torch.Tensor, False), (torch.nn.Module, False), (torch.nn.Linear, True),
                   (loramini.layer.LoRAMiniLinear, True)]
        self._saved = [(obj, dict(vars(obj)), False) for obj in targets] + \
                      [(cls, dict(vars(cls)), prune) for cls, prune in classes]

    def restore(self, bindings: dict = None) -> None:
        """`bindings`: {notebook name: "checks" | "loramini" | a check function's name} to rebind."""
        missing = object()
        for obj, saved, is_class in self._saved:
            current = vars(obj)
            for key, value in saved.items():
                if current.get(key, missing) is not value:
                    try:
                        setattr(obj, key, value)
                    except (AttributeError, TypeError):
                        pass
            if is_class:
                for key in set(current) - set(saved):
                    try:
                        delattr(obj, key)
                    except (AttributeError, TypeError):
                        pass
        self._modules["loramini"] = self._package
        self._modules["loramini.checks"] = self._checks
        self._reload(self._checks)
        self._package.checks = self._checks
        for name, what in (bindings or {}).items():
            self._ns[name] = (self._checks if what == "checks" else self._package if what == "loramini"
                              else getattr(self._checks, what))


def _check_bindings(ex: Exercise) -> dict:
    """Names the exercise's check lines use to reach loramini.checks: {"checks": "checks"}, {"check_x": "check_x"}."""
    found = {}
    try:
        tree = ast.parse("\n".join(line for _, stmts in ex.after for line in stmts if not line[:1].isspace()))
    except SyntaxError:
        return {"checks": "checks"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("check_"):
            base = node.value
            if isinstance(base, ast.Name):
                found[base.id] = "checks"
            elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.attr == "checks":
                found[base.value.id] = "loramini"
        elif isinstance(node, ast.Name) and node.id.startswith("check_"):
            found[node.id] = node.id
    return found


_GUARD_CALL = "import loramini.course; loramini.course.fresh_checks(globals()"


def _guard_line(ex: Optional[Exercise] = None) -> str:
    """The line both graders run before a check (nbgrader: first line of each tests cell)."""
    bindings = f", {_check_bindings(ex)!r}" if ex is not None else ""
    return f"{_GUARD_CALL}{bindings})  # grading: fresh checks, monkeypatching undone"


_GUARD = None


def fresh_checks(namespace: dict, bindings: Optional[dict] = None) -> None:
    """Grading helper: undo a submission's monkeypatching and re-import loramini.checks (see `_Guard`).

    The first call in a kernel takes the snapshot, so graders call it once before any submitted code runs.
    `namespace`: the notebook's globals(); `bindings`: {name: "checks" | "loramini" | "check_…"} to rebind."""
    global _GUARD
    if _GUARD is None or _GUARD._ns is not namespace:
        _GUARD = _Guard(namespace)
    _GUARD.restore(bindings)


def _common_prefix(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n].rstrip() == b[n].rstrip():
        n += 1
    return n


def _find_block(lines: list, block: list, start: int) -> Optional[int]:
    """Index of the first run of `lines` from `start` on that equals `block` (trailing spaces ignored)."""
    want = [line.rstrip() for line in block]
    for i in range(start, len(lines) - len(want) + 1):
        if [line.rstrip() for line in lines[i:i + len(want)]] == want:
            return i
    return None


def _trim(lines: list) -> list:
    text = "\n".join(lines).strip("\n")
    return text.split("\n") if text else []


def extract_answer(ex: Exercise, submitted: str) -> Optional[list]:
    """The student's answers (one line list per solution block) in `submitted` (an exercise cell, or nbgrader's
    answer and tests cells joined): the lines between the code the student was given. None when a given piece
    between two answers cannot be found (the student changed it)."""
    # Marker lines and hidden tests in a submission (e.g. the solution notebook itself) are not the student's.
    text = _HIDDEN.sub("", _drop_nbval(submitted))
    lines = [line for line in text.rstrip("\n").split("\n")
             if not (_BEGIN.match(line) or _END.match(line) or line.startswith(_GUARD_CALL))]
    head = strip_solutions("\n".join(ex.head)).split("\n") if ex.head else []
    tail = _trim(ex.visible_after(len(ex.answers) - 1))
    start = _common_prefix(lines, head)
    rest = lines[start:]
    middle = rest[:len(rest) - _common_prefix(rest[::-1], tail[::-1])]
    answers, pos = [], 0
    for i in range(len(ex.answers) - 1):
        block = _trim(ex.visible_after(i))
        at = _find_block(middle, block, pos) if block else len(middle)
        if at is None:
            return None
        answers.append(_trim(middle[pos:at]))
        pos = min(at + len(block), len(middle))
    answers.append(_trim(middle[pos:]))
    return answers


def restore_exercise(ex: Exercise, answers: Optional[list]) -> tuple[str, Optional[str]]:
    """(source to run, problem): the solution's cell with the student's `answers` in its solution blocks and a
    guard line before each run of check lines. `problem` is set (and the source is the blank student version)
    when the given code between answers was changed, or an answer would swallow the check lines."""
    if answers is None:
        return ex.student_source(), "altered: the code given between the answers was changed"
    guard = _guard_line(ex)
    lines, ranges = ex.assemble(answers, guard)
    ref_lines, ref_ranges = ex.assemble(ex.answers, guard)

    def fixed(src: list, spans: list) -> list:
        body = _parse("\n".join(src)).body
        return [[ast.dump(n) for n in body if a <= n.lineno - 1 and n.end_lineno <= b] for a, b in spans]
    try:
        got = fixed(lines, ranges)
    except SyntaxError as err:
        return ex.student_source(), f"SyntaxError in the answer: {err.msg} (line {err.lineno})"
    if got != fixed(ref_lines, ref_ranges):
        return ex.student_source(), "altered: an answer swallows the check lines (an open block or string)"
    return "\n".join(lines), None


def _submitted_exercises(nb) -> dict:
    """{(number, normalized title): source} of a submission; also {title: source}. An nbgrader answer cell is
    joined with the cells of the same exercise after it (its locked tests cell, further parts)."""
    by_key, by_title = {}, {}
    cells = nb.cells
    for i, cell in enumerate(cells):
        source = _drop_nbval(cell.source)
        if cell.cell_type == "code":
            first = next((line for line in source.split("\n") if line.strip()), "")
            m = _TITLE.match(first)
            if m is None:
                continue
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            for nxt in cells[i + 1:] if gid else []:  # nbgrader: nb01_ex04 + nb01_ex04_tests (+ _part2, …)
                if not str(nxt.metadata.get("nbgrader", {}).get("grade_id", "")).startswith(gid + "_"):
                    break
                source = source.rstrip("\n") + "\n\n" + nxt.source
        elif cell.cell_type == "markdown":
            m = _WRITTEN_TITLE.search(source)
            if m is None or not (cell.metadata.get("nbgrader", {}).get("solution") or _MD_ANSWER in source
                                 or "written" in source.lower()):
                continue
        else:
            continue
        title = m.group(2).rstrip(".").strip() if cell.cell_type == "markdown" else m.group(2)
        by_key[(int(m.group(1)), _norm(title))] = (cell.cell_type, source)
        by_title[_norm(title)] = (cell.cell_type, source)
    return {"key": by_key, "title": by_title}


def _match_solution(path: Path, sub: dict, solutions: dict, forced: Optional[str]) -> str:
    if forced:
        hits = [name for name in solutions if name == forced or name.startswith(forced) or Path(name).stem == forced]
        if len(hits) != 1:
            raise SystemExit(f"error: --notebook {forced!r} names {len(hits)} of the solution notebooks "
                             f"({', '.join(solutions)}); give one of them")
        return hits[0]
    overlap = {name: sum(ex.key in sub["key"] for ex in exs) for name, (_, exs) in solutions.items()}
    best = max(overlap.values(), default=0)
    named = [n for n in solutions if n == path.name or Path(n).stem in path.stem
             or re.search(rf"(^|\D){n[:2]}(\D|$)", path.stem)]
    if best > 0:
        top = [n for n, v in overlap.items() if v == best]
        return next((n for n in top if n in named), top[0])
    if len(named) == 1:
        return named[0]
    raise SystemExit(f"error: cannot tell which notebook {path} answers (no exercise titles found); name the file "
                     f"like the solution (e.g. {next(iter(solutions))}) or pass --notebook")


def student_id(path: Path, rule: str) -> str:
    """Who submitted `path`: rule "path" (as given), "name" (file stem), "parent", "grandparent" (folder names,
    as in nbgrader's submitted/<student>/<assignment>/), or a regex whose first group is the student."""
    path = Path(path)
    if rule == "path":
        return str(path)
    if rule == "name":
        return path.stem
    if rule == "parent":
        return path.parent.name
    if rule == "grandparent":
        return path.parent.parent.name
    m = re.search(rule, path.as_posix())
    if m is None or not m.groups():
        raise SystemExit(f"error: --student-from {rule!r} does not match {path.as_posix()} (or has no group); use "
                         f"path, name, parent, grandparent or a regex such as 'submitted/([^/]+)/'")
    return m.groupdict().get("student") or m.group(1)


_SETUP = "from loramini.course import Todo\n" + _guard_line()


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
    """(notebook to execute, {exercise index in it: Exercise}, {Exercise key: preset status}) for a submission."""
    import nbformat

    sub = _submitted_exercises(submission_nb)
    exs = exercises(solution_nb)
    by_cell = {ex.cell: ex for ex in exs}
    cells = [nbformat.v4.new_code_cell(_SETUP)]
    graded, preset = {}, {}
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
        if found is None or found[0] != "code":
            source, problem = ex.student_source(), "missing: no cell titled " + repr(f"# {ex.label}")
        else:
            source, problem = restore_exercise(ex, extract_answer(ex, found[1]))
        if problem:
            preset[ex.key] = problem
        cells.append(nbformat.v4.new_code_cell(_guard_line(ex)))
        graded[len(cells)] = ex
        cells.append(nbformat.v4.new_code_cell(source))
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(solution_nb.metadata))
    nb.cells = cells
    _clean(nb)
    return nb, graded, preset


def grade_submission(path: Path, solution_path: Path, solution_nb, timeout: int = 600) -> list[dict]:
    """One row per exercise of the solution notebook: passed (True/False; None for a written answer) and a
    one-line status. The submission is rebuilt from the solution (see `graded_notebook`) and executed."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    submission = nbformat.read(path, as_version=4)
    nb, graded, preset = graded_notebook(solution_nb, submission)
    saved = {k: os.environ.get(k) for k in ("LORAMINI_GRADING", "LORAMINI_SMOKE")}
    os.environ["LORAMINI_GRADING"] = "1"  # the kernel inherits both: terse hints, small sizes
    os.environ["LORAMINI_SMOKE"] = saved["LORAMINI_SMOKE"] or "1"
    died = None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
                       resources={"metadata": {"path": str(Path(solution_path).parent)}}).execute()
    except DeadKernelError as err:
        died = f"not run: the kernel died ({str(err).splitlines()[0][:80]})"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    results = {}
    for index, ex in graded.items():
        cell = nb.cells[index]
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if ex.key in preset:
            status, passed = preset[ex.key], False
        elif cell.get("execution_count") is None:
            status, passed = died or "not run", False
        elif error is None:
            status, passed = "passed", True
        elif error.ename in ("Todo", "NotImplementedError"):
            status, passed = "not answered", False
        else:
            status, passed = f"{error.ename}: {error.evalue}".splitlines()[0][:200], False
        results[ex.key] = (passed, status)
    rows = []
    for ex in exercises(solution_nb):
        passed, status = (None, preset[ex.key]) if ex.written else results[ex.key]
        rows.append({"notebook": solution_path.name, "exercise": ex.number, "title": ex.title,
                     "passed": passed, "status": status})
    return rows


def grade(submissions: list, solutions: Path, student_from: str = "path", notebook: Optional[str] = None,
          timeout: int = 600, out=None) -> list[dict]:
    """Grade each submitted notebook against its solution notebook in `solutions`; print a summary per
    submission and return one row per (student, exercise)."""
    import nbformat

    out = out or sys.stdout
    sols = {p.name: nbformat.read(p, as_version=4) for p in solution_notebooks(solutions)}
    sols = {name: (nb, exercises(nb)) for name, nb in sols.items()}
    rows = []
    for name in submissions:
        path = Path(name)
        if not path.is_file():
            raise SystemExit(f"error: submission {path} does not exist")
        sub = _submitted_exercises(nbformat.read(path, as_version=4))
        solution = _match_solution(path, sub, sols, notebook)
        who = student_id(path, student_from)
        found = grade_submission(path, Path(solutions) / solution, sols[solution][0], timeout=timeout)
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


# ---------------------------------------------------------------- the exercise table of the guide
_TABLE_START, _TABLE_END = "<!-- exercise-table: start (python -m loramini.course table) -->", \
                           "<!-- exercise-table: end -->"


def _you_write(ex: Exercise) -> str:
    """What the student writes: the function whose body is an answer, or the names an answer assigns."""
    if ex.written:
        return "a paragraph (markdown)"
    names = []
    before = list(ex.head)
    for answer, indent, (pre, stmts) in zip(ex.answers, ex.indents, ex.after):
        if indent:  # the answer is a function body: name the function
            m = next((re.match(r"\s*def (\w+)\((.*?)\)", line) for line in reversed(before)
                      if re.match(r"\s*def \w+\(", line)), None)
            if m and f"`{m.group(1)}({m.group(2)})`" not in names:
                names.append(f"`{m.group(1)}({m.group(2)})`")
        else:
            try:
                tree = ast.parse("\n".join(answer))
            except SyntaxError:
                tree = ast.Module(body=[], type_ignores=[])
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                    node, (ast.AnnAssign, ast.AugAssign)) else []
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and not name.id.startswith("_") and f"`{name.id}`" not in names:
                            names.append(f"`{name.id}`")
        before += answer + pre + stmts
    return ", ".join(names) or "code"


def _checked_by(ex: Exercise) -> str:
    visible = "\n".join(line for i in range(len(ex.after)) for line in ex.visible_after(i))
    names = sorted(set(re.findall(r"\b(check_\w+)\(", visible)), key=visible.index)
    return ", ".join(f"`{n}`" for n in names) or ("by hand" if ex.written else "—")


def _hidden_summary(ex: Exercise) -> str:
    if not ex.hidden_lines:
        return "—"
    try:
        tree = ast.parse("\n".join(ex.hidden_lines))
    except SyntaxError:
        return "yes"
    import builtins

    answer_names = set(re.findall(r"`(\w+)", _you_write(ex)))
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    skip = set(dir(builtins)) | bound | {"torch", "nn", "F", "np", "pd", "math", "loramini", "checks"}
    used, other = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "loramini":
            other.append(f"loramini.{node.attr}")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and not node.id.startswith("_"):
            (used if node.id in answer_names else other).append(node.id)
    used = list(dict.fromkeys(used))
    other = [n for n in dict.fromkeys(other) if n not in skip]
    against = f" against {', '.join(f'`{n}`' for n in other)}" if other else ""
    if not used:
        return f"does not read the answer (checks{against.replace(' against', '') or ' constants'})"
    return f"tests {', '.join(f'`{n}`' for n in used)}{against}"


def exercise_table(source: Path) -> str:
    """The guide's exercise table, generated from the solution notebooks in `source`."""
    import nbformat

    rows = ["| # | notebook | exercise | the student writes | visible check | hidden test |",
            "|---|---|---|---|---|---|"]
    n = 0
    for path in solution_notebooks(source):
        for ex in exercises(nbformat.read(path, as_version=4)):
            n += 1
            rows.append(f"| {n} | {path.name[:2]} | {ex.number}: {ex.title} | {_you_write(ex)} | {_checked_by(ex)} "
                        f"| {_hidden_summary(ex)} |")
    return "\n".join(rows)


def _table_in(text: str) -> Optional[str]:
    if _TABLE_START not in text or _TABLE_END not in text:
        return None
    return text.split(_TABLE_START, 1)[1].split(_TABLE_END, 1)[0].strip("\n")


# ---------------------------------------------------------------- command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loramini.course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="write the student copies of the solution notebooks")
    student.add_argument("--source", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    student.add_argument("--dest", help="folder for the copies (default: SOURCE/exercises)")
    student.add_argument("--check", action="store_true", help="only check that the copies are up to date (exit 1 if not)")
    nbg = sub.add_parser("nbgrader", help="write one nbgrader source assignment per notebook")
    nbg.add_argument("--source", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    nbg.add_argument("--dest", required=True, help="nbgrader's source folder, e.g. COURSE/source")
    nbg.add_argument("--notebooks", nargs="+", help="only these notebooks (prefixes such as 01 02, or stems)")
    nbg.add_argument("--points", type=float, default=1, help="points per exercise (default 1)")
    grd = sub.add_parser("grade", help="rerun submitted notebooks against the solutions; one line per exercise")
    grd.add_argument("submissions", nargs="+", help="submitted .ipynb files (student copies or nbgrader releases)")
    grd.add_argument("--solutions", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    grd.add_argument("--csv", help="write one row per student and exercise to this CSV file")
    grd.add_argument("--student-from", default="path",
                     help="how to name the student: path (default), name, parent, grandparent, or a regex with a group")
    grd.add_argument("--notebook", help="the solution notebook all submissions answer (default: matched by titles)")
    grd.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    tab = sub.add_parser("table", help="print the exercise table of the instructor guide")
    tab.add_argument("--source", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    tab.add_argument("--write", help="replace the table between the markers in this file (docs/teaching.md)")
    tab.add_argument("--check", help="exit 1 if the table in this file is not the generated one")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
            return 1
        raise


def _run(args) -> int:
    if args.command == "grade":
        rows = grade(args.submissions, Path(args.solutions), args.student_from, args.notebook, args.timeout)
        if args.csv:
            write_csv(Path(args.csv), rows)
            print(f"wrote {args.csv} ({len(rows)} rows)")
        return 0
    if args.command == "nbgrader":
        for path in write_nbgrader(Path(args.source), Path(args.dest), args.notebooks, args.points):
            print(f"wrote {path} (assignment {path.parent.name})")
        return 0
    if args.command == "table":
        table = exercise_table(Path(args.source))
        target = args.write or args.check
        if target is None:
            print(table)
            return 0
        text = Path(target).read_text()
        current = _table_in(text)
        if current is None:
            raise SystemExit(f"error: {target} has no exercise-table markers; add the lines {_TABLE_START} and "
                             f"{_TABLE_END}")
        if args.check:
            if current != table:
                raise SystemExit(f"error: the exercise table in {target} is stale; run: python -m loramini.course "
                                 f"table --write {target}")
            print(f"{target}: the exercise table is up to date")
            return 0
        start, rest = text.split(_TABLE_START, 1)
        _write(Path(target), start + _TABLE_START + "\n" + table + "\n" + _TABLE_END + rest.split(_TABLE_END, 1)[1])
        print(f"wrote the exercise table into {target}")
        return 0
    source = Path(args.source)
    dest = Path(args.dest) if args.dest else source / "exercises"
    if args.check:
        bad = stale(source, dest)
        if bad:
            raise SystemExit(f"error: stale student notebooks in {dest}: {', '.join(bad)}; run: python -m "
                             f"loramini.course student --source {source} --dest {dest}")
        print("Student notebooks are up to date.")
        return 0
    for path, text in build_students(source, dest).items():
        _write(path, text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
