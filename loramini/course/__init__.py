"""Coursework tooling: student copies, per-notebook nbgrader assignments, and a grader that reruns submissions.

    python -m loramini.course student  --source notebooks --dest notebooks/exercises [--check]
    python -m loramini.course nbgrader --source notebooks --dest COURSE/source [--notebooks 01 01b 02]
    python -m loramini.course nbgrader-autograde ASSIGNMENT --solutions notebooks   (in the course folder)
    python -m loramini.course grade    --solutions notebooks SUBMISSION.ipynb ... [--csv grades.csv]
    python -m loramini.course table    --source notebooks [--write docs/teaching.md | --check docs/teaching.md]

A student kernel imports only `Todo` from here (`todo.py`, no tooling). The rest loads on first use:

* `notebook`: the exercise markers of a solution notebook, one `Exercise` per exercise cell;
* `students`: student copies, nbgrader source assignments, the guide's exercise table;
* `grader`: the grader. Each submission is rebuilt from its solution notebook (only the student's answer regions
  are taken) and run by `sandbox` in a throwaway folder, with a wall-clock, memory and file-size limit and a
  minimal environment; the student's answers are written out in safe formats (`answers`), and the checks run
  afterwards in a fresh interpreter that never ran student code (`judge`);
* `nbgrading`: nbgrader's autograde with the kernel in `sandbox` and the package grader's verdict on top;
* `guard`: `fresh_checks`, the in-kernel undo of monkeypatching the nbgrader flow relies on.
"""

from .todo import Todo

_HOMES = ("notebook", "students", "guard", "submission", "grader", "commands")


def __getattr__(name: str):
    """`loramini.course.exercises`, `.grade`, `.fresh_checks`, ...: loaded from their module on first use."""
    import importlib

    if not name.startswith("__"):
        for home in _HOMES:
            module = importlib.import_module(f"{__name__}.{home}")
            if name in vars(module):
                return vars(module)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Todo"]
