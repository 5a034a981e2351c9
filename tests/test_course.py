"""Coursework: the student notebooks are generated from the solutions, are current, and run."""

import os
from pathlib import Path

import nbformat
import pytest

from loramini import course

SOLUTION = '''import torch
x = 1
### BEGIN SOLUTION
answer = x + 1
### END SOLUTION
check(answer)
'''


def test_strip_solutions_replaces_the_block_with_same_indentation():
    assert course.strip_solutions(SOLUTION) == "import torch\nx = 1\nraise NotImplementedError()\ncheck(answer)\n"
    indented = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert course.strip_solutions(indented) == "def f(x):\n    raise NotImplementedError()\n"


def test_hidden_tests_are_removed():
    src = "check(a)\n### BEGIN HIDDEN TESTS\nassert a == 2\n### END HIDDEN TESTS\nprint('done')"
    assert course.strip_solutions(src) == "check(a)\nprint('done')"


def test_student_notebook_clears_outputs_and_points_badges_at_the_copy():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
                    "[badge](https://colab.research.google.com/github/o/loramini/blob/main/notebooks/01_x.ipynb)\n"
                    "[binder](https://mybinder.org/v2/gh/o/loramini/main?labpath=notebooks%2F01_x.ipynb)"),
                nbformat.v4.new_code_cell(SOLUTION, execution_count=3,
                                          outputs=[nbformat.v4.new_output("stream", text="2\n")])]
    student = course.student_notebook(nb)
    assert "notebooks/exercises/01_x.ipynb" in student.cells[0].source
    assert "labpath=notebooks%2Fexercises%2F01_x.ipynb" in student.cells[0].source
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert "answer = x + 1" not in student.cells[1].source
    assert nb.cells[1].execution_count == 3  # the solution notebook is not modified


def test_committed_student_notebooks_are_up_to_date():
    assert course.stale() == [], "run: python -m loramini.course student"


STUDENT_NOTEBOOKS = sorted(course.STUDENT_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.name for p in STUDENT_NOTEBOOKS])
def test_student_notebook_runs_with_only_exercises_unimplemented(path, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("LORAMINI_SMOKE", "1")  # the kernel inherits it: small sizes, every cell
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(c.source, o) for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    exercises = [c for c in nb.cells if c.cell_type == "code" and "raise NotImplementedError()" in c.source]
    assert exercises, "a student notebook without exercises"
    for source, error in errors:
        assert error.ename == "NotImplementedError", f"{error.ename}: {error.evalue} in cell:\n{source[:300]}"
        assert "raise NotImplementedError()" in source
    assert len(errors) == len(exercises)


EXERCISE = '''# NBVAL_CHECK_OUTPUT
# Exercise 1: add one
def my_add(x):
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION


check(my_add)
### BEGIN HIDDEN TESTS
assert my_add(2) == 3
### END HIDDEN TESTS
'''
WRITTEN = "Why?\n\n### BEGIN SOLUTION\nBecause the rank is capped.\n### END SOLUTION\n"


def _tiny_solution_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("import x\n# NBVAL_IGNORE_OUTPUT"),
                nbformat.v4.new_code_cell(EXERCISE, execution_count=1), nbformat.v4.new_markdown_cell(WRITTEN)]
    return nb


def test_student_copy_drops_nbval_markers_and_written_answers():
    student = course.student_notebook(_tiny_solution_notebook())
    code = student.cells[2].source
    assert "NBVAL" not in code and "# Exercise 1: add one" in code
    assert "    raise NotImplementedError()\n" in code and "assert my_add(2)" not in code
    assert student.cells[3].source == "Why?\n\nYOUR ANSWER HERE\n"
    assert "NBVAL" not in student.cells[1].source


def test_nbgrader_copy_splits_answer_and_test_cells():
    nb = course.nbgrader_notebook(_tiny_solution_notebook(), prefix="nb01")
    kinds = [(c.cell_type, c.metadata.get("nbgrader", {}).get("grade_id")) for c in nb.cells]
    assert kinds == [("markdown", None), ("code", None), ("code", "nb01_ex01"), ("code", "nb01_ex01_tests"),
                     ("markdown", "nb01_ex02")]
    answer, tests, written = nb.cells[2], nb.cells[3], nb.cells[4]
    assert answer.source.endswith("### END SOLUTION") and "check(" not in answer.source
    assert answer.metadata.nbgrader["solution"] and not answer.metadata.nbgrader["grade"]
    assert tests.source.startswith("check(my_add)") and "### BEGIN HIDDEN TESTS" in tests.source
    assert tests.metadata.nbgrader == {"grade": True, "solution": False, "locked": True, "grade_id": "nb01_ex01_tests",
                                       "schema_version": 3, "task": False, "points": 1}
    assert written.metadata.nbgrader["solution"] and written.metadata.nbgrader["grade"]
    assert answer.outputs == [] and answer.execution_count is None
    nbformat.validate(nb)


def test_nbgrader_command_writes_every_notebook_with_exercises(tmp_path):
    assert course.main(["nbgrader", str(tmp_path / "source" / "loramini")]) == 0
    written = sorted(p.name for p in (tmp_path / "source" / "loramini").glob("*.ipynb"))
    assert written == sorted(p.name for p in STUDENT_NOTEBOOKS)


def test_grade_runs_a_submission_and_lists_passed_exercises(tmp_path, capsys):
    answered = nbformat.v4.new_notebook()
    answered.cells = [nbformat.v4.new_code_cell("def check(f):\n    assert f(2) == 3, 'off by one'\n    print('✓')"),
                      nbformat.v4.new_code_cell(EXERCISE.replace("# NBVAL_CHECK_OUTPUT\n", "")),
                      nbformat.v4.new_code_cell("# Exercise 2: wrong\ndef my_sub(x):\n    return x\n\n\ncheck(my_sub)")]
    blank = course.student_notebook(answered)
    for name, nb in [("answered.ipynb", answered), ("blank.ipynb", blank)]:
        nbformat.write(nb, tmp_path / name)
    report = tmp_path / "grades.csv"
    assert course.main(["grade", str(tmp_path / "answered.ipynb"), str(tmp_path / "blank.ipynb"), "--csv", str(report)]) == 0
    out = capsys.readouterr().out
    assert "answered.ipynb: 1/2 exercises pass" in out and "blank.ipynb: 0/2 exercises pass" in out
    assert "AssertionError: off by one" in out and "NotImplementedError" in out
    rows = report.read_text().splitlines()
    assert rows[0] == "notebook,exercise,title,passed,status" and len(rows) == 5
    # Without executing, an unrun notebook passes nothing.
    assert [r["status"] for r in course.grade_notebook(tmp_path / "blank.ipynb", execute=False)] == ["not run"] * 2
