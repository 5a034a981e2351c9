"""Coursework: turn the solution notebooks into student notebooks.

    python -m loramini.course student          # notebooks/*.ipynb → notebooks/exercises/*.ipynb
    python -m loramini.course student --check  # exit 1 if the committed student versions are stale
    python -m loramini.course nbgrader DEST    # nbgrader source notebooks (cells tagged for autograding)
    python -m loramini.course grade FILES...   # run submitted notebooks, list passed exercises (no nbgrader)

The solution notebooks mark exercises with nbgrader's markers, so an instructor who uses nbgrader can take
them as they are; this command does the same job without nbgrader:

    ### BEGIN SOLUTION ... ### END SOLUTION          → `raise NotImplementedError()` (same indentation)
    ### BEGIN HIDDEN TESTS ... ### END HIDDEN TESTS  → removed
    the same markers in a markdown cell              → "YOUR ANSWER HERE" (a written answer)
    `# NBVAL_...` lines, outputs, execution counts   → removed (they are for testing the solutions)

An exercise is one code cell: setup, the solution block, then the check call (and optional hidden tests),
so the student copy runs top to bottom. nbgrader wants the answer and its test in separate, tagged cells;
`nbgrader` writes such a copy (see `nbgrader_notebook`).
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_DIR = ROOT / "notebooks"
STUDENT_DIR = SOLUTION_DIR / "exercises"
_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)
_NBVAL = re.compile(r"^[ \t]*# NBVAL_[A-Z_]+[ \t]*\n?", re.M)
_MD_ANSWER = "YOUR ANSWER HERE"
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.M | re.S)
_STUDENT_NOTE = ("> **Student version.** Cells marked *Exercise* raise `NotImplementedError` until you replace "
                 "that line with your code; the check after it then tells you whether you got it right.\n\n")


def strip_solutions(source: str) -> str:
    """The student version of one cell's source."""
    source = _HIDDEN.sub("", source)
    source = _SOLUTION.sub(lambda m: f"{m.group(1)}raise NotImplementedError(){m.group(2)}", source)
    return source


def strip_markdown_solution(source: str) -> str:
    """The student version of a markdown cell: a written answer becomes YOUR ANSWER HERE (as nbgrader does)."""
    return _SOLUTION.sub(lambda m: f"{m.group(1)}{_MD_ANSWER}{m.group(2)}", source)


def has_exercise(source: str) -> bool:
    return "### BEGIN SOLUTION" in source


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with solutions replaced, hidden tests removed and outputs cleared."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _NBVAL.sub("", strip_solutions(cell.source)).rstrip("\n")
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = strip_markdown_solution(cell.source)
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is not None and _STUDENT_NOTE not in first.source:
        # Badges in the first cell must point at the student copy, which lives in notebooks/exercises/.
        # Colab links use "notebooks/NAME", Binder's labpath the URL-encoded "notebooks%2FNAME".
        first.source = re.sub(r"(notebooks(/|%2F))(\d\d_[\w]+\.ipynb)", r"\1exercises\2\3", first.source)
        first.source = first.source + "\n\n" + _STUDENT_NOTE.strip()
    return nb


def _nbgrader_meta(grade_id: str, *, solution: bool, grade: bool, points: int = 0) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": not solution, "grade_id": grade_id,
            "schema_version": 3, "task": False}
    if grade:
        meta["points"] = points
    return meta


def nbgrader_notebook(nb: nbformat.NotebookNode, prefix: str, points: int = 1) -> nbformat.NotebookNode:
    """A copy of the solution notebook `nb` as an nbgrader *source* notebook.

    Each exercise cell is split after its `### END SOLUTION` line: the part up to there becomes an
    "autograded answer" cell, the rest (the check call and hidden tests) a locked "autograder tests" cell worth
    `points`. A markdown cell with a solution block becomes a "manually graded answer". Outputs are cleared.
    """
    nb = copy.deepcopy(nb)
    cells, n = [], 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        if not has_exercise(cell.source):
            cells.append(cell)
            continue
        n += 1
        gid = f"{prefix}_ex{n:02d}"
        if cell.cell_type == "markdown":
            cell.metadata["nbgrader"] = _nbgrader_meta(gid, solution=True, grade=True, points=points)
            cells.append(cell)
            continue
        source = _NBVAL.sub("", cell.source)
        ends = list(re.finditer(r"^[ \t]*### END SOLUTION[^\n]*(\n|$)", source, re.M))
        answer, tests = source[:ends[-1].end()].rstrip("\n"), source[ends[-1].end():].strip("\n")
        cell.source = answer
        cell.metadata["nbgrader"] = _nbgrader_meta(gid, solution=True, grade=False)
        cells.append(cell)
        if tests.strip():
            test_cell = nbformat.v4.new_code_cell(tests)
            test_cell.metadata["nbgrader"] = _nbgrader_meta(f"{gid}_tests", solution=False, grade=True, points=points)
            cells.append(test_cell)
    nb.cells = cells
    return nb


def write_nbgrader(dest: Path, solution_dir: Path = SOLUTION_DIR) -> list[Path]:
    """nbgrader source notebooks for every solution notebook with exercises, written into `dest`."""
    from .io import atomic_write

    written = []
    for path in sorted(solution_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(has_exercise(c.source) for c in nb.cells):
            text = render(nbgrader_notebook(nb, prefix=f"nb{path.name[:2]}"))
            target = Path(dest) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp, text=text: Path(tmp).write_text(text))
            written.append(target)
    return written


_EXERCISE_TITLE = re.compile(r"^# Exercise (\d+): (.*)$", re.M)


def grade_notebook(path: Path, execute: bool = True, timeout: int = 600) -> list[dict]:
    """One row per exercise cell of a submitted notebook: passed when the cell ran without an error.

    `execute`: run the notebook first (in smoke mode unless LORAMINI_SMOKE is set), so a grade never rests on
    outputs a student could have edited; errors do not stop the run.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if execute:
        from nbclient import NotebookClient

        old = os.environ.get("LORAMINI_SMOKE")
        os.environ["LORAMINI_SMOKE"] = old or "1"  # the kernel inherits it
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        finally:
            if old is None:
                os.environ.pop("LORAMINI_SMOKE")
    rows = []
    for cell in nb.cells:
        title = _EXERCISE_TITLE.search(cell.source) if cell.cell_type == "code" else None
        if title is None:
            continue
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        ran = cell.get("execution_count") is not None
        status = "not run" if not ran else "passed" if error is None else f"{error.ename}: {error.evalue}"
        rows.append({"notebook": path.name, "exercise": int(title.group(1)), "title": title.group(2).strip(),
                     "passed": ran and error is None, "status": status.splitlines()[0][:200] if status else status})
    return rows


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def build_students(solution_dir: Path = SOLUTION_DIR, student_dir: Path = STUDENT_DIR) -> dict[Path, str]:
    """{student path: its text} for every solution notebook that holds at least one exercise."""
    out = {}
    for path in sorted(solution_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(c.cell_type == "code" and has_exercise(c.source) for c in nb.cells):
            out[student_dir / path.name] = render(student_notebook(nb))
    return out


def stale(solution_dir: Path = SOLUTION_DIR, student_dir: Path = STUDENT_DIR) -> list[str]:
    """Names of the student notebooks that are missing or differ from what the solutions give."""
    expected = build_students(solution_dir, student_dir)
    bad = [p.name for p, text in expected.items() if not p.is_file() or p.read_text() != text]
    extra = [p.name for p in student_dir.glob("*.ipynb") if p not in expected]
    return bad + extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loramini.course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="write the student notebooks into notebooks/exercises/")
    student.add_argument("--check", action="store_true", help="only check that they are up to date")
    grader = sub.add_parser("nbgrader", help="write nbgrader source notebooks (answer and test cells tagged)")
    grader.add_argument("dest", help="e.g. <course>/source/loramini (nbgrader's source/<assignment> folder)")
    grade = sub.add_parser("grade", help="run submitted notebooks and list which exercises pass")
    grade.add_argument("files", nargs="+", help="submitted .ipynb files")
    grade.add_argument("--no-execute", action="store_true", help="read the outputs as saved instead of rerunning")
    grade.add_argument("--csv", help="also write one row per exercise to this CSV file")
    args = parser.parse_args(argv)
    if args.command == "grade":
        rows = []
        for name in args.files:
            found = grade_notebook(Path(name), execute=not args.no_execute)
            rows += found
            passed = sum(r["passed"] for r in found)
            print(f"{name}: {passed}/{len(found)} exercises pass")
            for r in found:
                print(f"  {'✓' if r['passed'] else '✗'} Exercise {r['exercise']}: {r['title']}"
                      + ("" if r["passed"] else f"  ({r['status']})"))
        if args.csv:
            with open(args.csv, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["notebook", "exercise", "title", "passed", "status"])
                writer.writeheader()
                writer.writerows(rows)
        return 0
    if args.command == "nbgrader":
        for path in write_nbgrader(Path(args.dest)):
            print(f"wrote {path}")
        return 0
    if args.check:
        bad = stale()
        if bad:
            print(f"Stale student notebooks: {', '.join(bad)}. Run: python -m loramini.course student", file=sys.stderr)
            return 1
        print("Student notebooks are up to date.")
        return 0
    from .io import atomic_write

    for path, text in build_students().items():
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
