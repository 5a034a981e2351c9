"""Student copies of the solution notebooks, nbgrader source assignments, and the exercise table of the guide."""

from __future__ import annotations

import ast
import copy
import os
import re
from pathlib import Path
from typing import Optional

from .guard import _guard_line
from .notebook import (_STUDENT_NOTE, _TODO_IMPORT, Exercise, _clean,
                       _drop_nbval, _parse, _tag, _write, exercises, notebook_id, render, solution_notebooks,
                       strip_markdown_solution)

# ---------------------------------------------------------------- student copies
_LINK = re.compile(r"(\]\(|\b(?:src|href)=\")([^)\"\s]+)")
_PATH_CALL = re.compile(r"\b(Path|open|os\.path\.join)\((\s*)([\"'])([\w.\-]+(?:/[\w.\-]+)*)\3")
_BADGE = re.compile(r"(notebooks(/|%2F))(\d\d\w*\.ipynb)")
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


_CHECKS_IMPORT = r"^from loramini import .*\bchecks\b"


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
    uses_checks = any(re.search(_CHECKS_IMPORT, c.source, re.M) for c in nb.cells if c.cell_type == "code")
    importing = _CHECKS_IMPORT if uses_checks else r"import loramini\b"
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
                lines = cell.source.split("\n")        # (or its first `import loramini` when it uses no checks)
                at = next((i for i, line in enumerate(lines) if re.match(importing, line)), None)
                if at is not None:
                    cell.source = "\n".join(lines[:at + 1] + [_TODO_IMPORT] + lines[at + 1:])
                    imported = True
        cell.source = _repath(cell.source, source, dest)
    if not imported:  # no loramini import: fall back to the builtin, with the same one-line message
        for index in by_cell:
            if nb.cells[index].cell_type == "code":
                nb.cells[index].source = nb.cells[index].source.replace("raise Todo(", "raise NotImplementedError(")
    _clean(nb)
    _retarget_badges(nb)
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is not None and _STUDENT_NOTE not in first.source:
        first.source = first.source.rstrip("\n") + "\n\n" + _STUDENT_NOTE
    return nb


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
    """nbgrader assignment name of a solution notebook: its stem, e.g. `01b_decomposition_math`."""
    return Path(path).stem


def write_nbgrader(source: Path, dest: Path, only: Optional[list] = None, points: float = 1) -> list[Path]:
    """One nbgrader assignment per solution notebook: `dest/<stem>/<stem>.ipynb` (dest = nbgrader's source/)."""
    import nbformat

    written, keep = [], {p.name for p in solution_notebooks(source)}
    for path in solution_notebooks(source, only):
        nb = nbgrader_notebook(nbformat.read(path, as_version=4), prefix=f"nb{notebook_id(path)}", points=points,
                               keep=keep)
        target = Path(dest) / assignment_name(path) / path.name
        _write(target, render(nb))
        written.append(target)
    return written


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
            rows.append(f"| {n} | {notebook_id(path)} | {ex.number}: {ex.title} | {_you_write(ex)} | {_checked_by(ex)} "
                        f"| {_hidden_summary(ex)} |")
    return "\n".join(rows)


def _table_in(text: str) -> Optional[str]:
    if _TABLE_START not in text or _TABLE_END not in text:
        return None
    return text.split(_TABLE_START, 1)[1].split(_TABLE_END, 1)[0].strip("\n")
