"""The `python -m loramini.course` command line (student, nbgrader, nbgrader-autograde, grade, table)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as _DOC
from .notebook import _write


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
        return value
    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loramini.course", description=_DOC.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="write the student copies of the solution notebooks")
    student.add_argument("--source", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    student.add_argument("--dest", help="folder for the copies (default: SOURCE/exercises)")
    student.add_argument("--check", action="store_true", help="only check that the copies are up to date (exit 1 if not)")
    nbg = sub.add_parser("nbgrader", help="write one nbgrader source assignment per notebook")
    nbg.add_argument("--source", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    nbg.add_argument("--dest", required=True, help="nbgrader's source folder, e.g. COURSE/source")
    nbg.add_argument("--notebooks", nargs="+", help="only these notebooks (numbers such as 01 01b 02, or stems)")
    nbg.add_argument("--points", type=float, default=1, help="points per exercise (default 1)")
    grd = sub.add_parser("grade", help="rerun submitted notebooks against the solutions; one line per exercise")
    grd.add_argument("submissions", nargs="+", help="submitted .ipynb files (student copies or nbgrader releases)")
    grd.add_argument("--solutions", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    grd.add_argument("--csv", help="write one row per student and exercise to this CSV file")
    grd.add_argument("--student-from", default="path",
                     help="how to name the student: path (default), name, parent, grandparent, or a regex with a group")
    grd.add_argument("--notebook", help="the solution notebook all submissions answer (default: matched by titles)")
    grd.add_argument("--timeout", type=_positive(float), default=900,
                     help="wall-clock seconds per submission; at the limit the kernel and everything it started "
                          "are killed (default 900)")
    grd.add_argument("--memory", type=_positive(float), default=8,
                     help="memory (address space) limit of a submission's kernel, in GiB (default 8)")
    grd.add_argument("--executed", help="folder for the executed notebooks (default: beside the CSV, "
                                        "CSVNAME.executed/)")
    nag = sub.add_parser("nbgrader-autograde", help="nbgrader's autograde, with the kernel in the sandbox and the "
                                                     "package grader's verdict (run it in the course folder)")
    nag.add_argument("assignment", help="the nbgrader assignment, e.g. 02_parameter_counting")
    nag.add_argument("--solutions", default="notebooks", help="folder of the solution notebooks (default: notebooks)")
    nag.add_argument("--timeout", type=_positive(float), default=900,
                     help="seconds: nbgrader's limit per cell and the package grader's per submission (default 900)")
    nag.add_argument("--memory", type=_positive(float), default=8, help="memory limit of a kernel, GiB (default 8)")
    nag.add_argument("--hide", nargs="+", default=[], help="more folders the kernels must not see")
    nag.add_argument("--student", help="only this student (nbgrader's --student)")
    nag.add_argument("--force", action="store_true", help="grade again what was already autograded")
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
        from .grader import grade, write_csv
        from .sandbox import Limits

        executed = args.executed or (str(Path(args.csv).with_suffix("")) + ".executed" if args.csv else None)
        limits = Limits(timeout=args.timeout, memory=int(args.memory * (1 << 30)))
        rows = grade(args.submissions, Path(args.solutions), args.student_from, args.notebook, args.timeout,
                     limits=limits, executed=Path(executed) if executed else None)
        if args.csv:
            write_csv(Path(args.csv), rows)
            print(f"wrote {args.csv} ({len(rows)} rows; executed notebooks in {executed})")
        return 0
    if args.command == "nbgrader-autograde":
        from .nbgrading import autograde

        extra = ([f"--student={args.student}"] if args.student else []) + (["--force"] if args.force else [])
        return autograde(args.assignment, Path(args.solutions), args.hide, args.timeout, int(args.memory * (1 << 30)),
                         extra)
    from .students import build_students, exercise_table, _table_in, _TABLE_END, _TABLE_START, stale, write_nbgrader

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
