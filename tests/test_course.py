"""Coursework tooling: student copies (current, runnable, one-line placeholders), the nbgrader export, the
command line's explicit folders, and the instructor guide's exercise table."""

import os
import re
from pathlib import Path

import nbformat
import pytest

from loramini import course

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks"
STUDENTS = SOLUTIONS / "exercises"

SOLUTION = '''import torch
x = 1
### BEGIN SOLUTION
answer = x + 1
### END SOLUTION
check(answer)
'''
EXERCISE = '''# NBVAL_CHECK_OUTPUT
# Exercise 1: add one
def my_add(x):
    """Add one."""
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION


checks.check(my_add)
### BEGIN HIDDEN TESTS
assert my_add(2) == 3
### END HIDDEN TESTS
'''
WRITTEN = "**Exercise 2 (written): say why.** Why?\n\n### BEGIN SOLUTION\nBecause the rank is capped.\n### END SOLUTION\n"
FIRST = ("# Title\n\n[badge](https://colab.research.google.com/github/o/loramini/blob/main/notebooks/01_x.ipynb)\n"
         "[binder](https://mybinder.org/v2/gh/o/loramini/main?labpath=notebooks%2F01_x.ipynb)\n"
         "See [layer.py](../loramini/layer.py), [next](02_y.ipynb), [web](https://example.org/a.py) and [top](#top).")


def _tiny_solution_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": 1}}}
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    nb.cells = [nbformat.v4.new_markdown_cell(FIRST),
                nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nimport loramini\nfrom loramini import checks\nRESULTS = Path(\"results\") / \"04\""),
                nbformat.v4.new_code_cell(EXERCISE, execution_count=1,
                                          outputs=[nbformat.v4.new_output("stream", text="✓\n")]),
                nbformat.v4.new_markdown_cell(WRITTEN)]
    return nb


def test_strip_solutions_replaces_the_block_with_same_indentation():
    assert course.strip_solutions(SOLUTION) == "import torch\nx = 1\nraise NotImplementedError()\ncheck(answer)\n"
    indented = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert course.strip_solutions(indented, "raise Todo()") == "def f(x):\n    raise Todo()\n"


def test_hidden_tests_are_removed():
    src = "check(a)\n### BEGIN HIDDEN TESTS\nassert a == 2\n### END HIDDEN TESTS\nprint('done')"
    assert course.strip_solutions(src) == "check(a)\nprint('done')"


def test_exercises_are_parsed_into_setup_answer_and_check():
    exs = course.exercises(_tiny_solution_notebook())
    assert [(e.number, e.title, e.written) for e in exs] == [(1, "add one", False), (2, "say why", True)]
    ex = exs[0]
    assert ex.head == ["# Exercise 1: add one", "def my_add(x):", '    """Add one."""'] and ex.indents == ["    "]
    assert ex.answers == [["    return x + 1"]]
    assert ex.after[0][0] == ["", ""] and ex.tail_stmts[0] == "checks.check(my_add)"
    assert ex.hidden_lines == ["assert my_add(2) == 3"]


def test_student_copy_placeholder_tags_links_paths_and_metadata(tmp_path):
    source, dest = tmp_path / "notebooks", tmp_path / "notebooks" / "exercises"
    (source / "results").mkdir(parents=True)
    student = course.student_notebook(_tiny_solution_notebook(), source, dest, keep={"02_y.ipynb"})
    first, setup, code, written = student.cells
    assert "notebooks/exercises/01_x.ipynb" in first.source and "labpath=notebooks%2Fexercises%2F01_x.ipynb" in first.source
    assert "](../../loramini/layer.py)" in first.source  # resolves from notebooks/exercises/
    assert "](02_y.ipynb)" in first.source and "](https://example.org/a.py)" in first.source and "](#top)" in first.source
    assert 'Path("../results")' in setup.source          # the folder beside the solutions, seen from the copy
    assert course._TODO_IMPORT in setup.source and "NBVAL" not in setup.source
    assert code.source.startswith("# Exercise 1: add one") and "NBVAL" not in code.source
    assert '    raise Todo("Exercise 1: add one")\n' in code.source and "return x + 1" not in code.source
    assert "assert my_add(2)" not in code.source and code.source.rstrip().endswith("checks.check(my_add)")
    assert code.metadata.tags == ["raises-exception"]   # Run All goes on past an unanswered exercise
    assert code.outputs == [] and code.execution_count is None
    assert "YOUR ANSWER HERE" in written.source and "capped" not in written.source
    assert "widgets" not in student.metadata and "jupytext" not in student.metadata
    nbformat.validate(student)


def test_student_copy_outside_the_clone_links_to_github(tmp_path):
    student = course.student_notebook(_tiny_solution_notebook(), SOLUTIONS, tmp_path / "copies")
    assert "](https://github.com/o/loramini/blob/main/loramini/layer.py)" in student.cells[0].source


def test_todo_renders_as_one_line():
    err = course.Todo("Exercise 3: build ΔW")
    assert isinstance(err, NotImplementedError)
    lines = err._render_traceback_()
    assert len(lines) == 1 and "Exercise 3: build ΔW" in lines[0] and "\n" not in lines[0]


def test_committed_student_notebooks_are_up_to_date():
    assert course.stale(SOLUTIONS, STUDENTS) == [], "run: python -m loramini.course student"


def test_committed_student_notebooks_carry_no_solution_residue():
    for path in sorted(STUDENTS.glob("*.ipynb")):
        text = path.read_text()
        nb = nbformat.read(path, as_version=4)
        assert "NBVAL_" not in text and "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, path.name
        assert "widgets" not in nb.metadata, path.name
        assert "](../loramini/" not in text, f"{path.name}: a link that does not resolve from notebooks/exercises/"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


STUDENT_NOTEBOOKS = sorted(STUDENTS.glob("*.ipynb"))


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.name for p in STUDENT_NOTEBOOKS])
def test_student_notebook_runs_with_only_exercises_unanswered(path):
    """Run All from notebooks/exercises/: every cell runs; each exercise cell, and only those, fails with Todo,
    shown as one line."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("LORAMINI_SMOKE", "1")  # the kernel inherits it: small sizes, every cell
    # allow_errors=False: only cells tagged raises-exception may fail, exactly as Jupyter's Run All behaves.
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    exercises = [c for c in nb.cells if c.cell_type == "code" and "raise Todo(" in c.source]
    assert exercises, "a student notebook without exercises"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if cell in exercises:
            assert [e.ename for e in errors] == ["Todo"], cell.source[:200]
            assert len(errors[0].traceback) == 1 and re.search(r"Exercise \d+: ", errors[0].traceback[0])
        else:
            assert errors == [], f"{errors[0].ename}: {errors[0].evalue} in cell:\n{cell.source[:300]}"


def test_nbgrader_copy_splits_answer_and_test_cells():
    nb = course.nbgrader_notebook(_tiny_solution_notebook(), prefix="nb01", points=2, keep={"02_y.ipynb"})
    kinds = [(c.cell_type, c.metadata.get("nbgrader", {}).get("grade_id")) for c in nb.cells]
    assert kinds == [("markdown", None), ("code", "nb01_setup"), ("code", "nb01_ex01"), ("code", "nb01_ex01_tests"),
                     ("markdown", "nb01_ex02")]
    first, setup, answer, tests, written = nb.cells
    assert "notebooks/exercises/01_x.ipynb" in first.source  # badges open the student copy, not the solution
    assert "](https://github.com/o/loramini/blob/main/loramini/layer.py)" in first.source
    assert "](https://github.com/o/loramini/blob/main/notebooks/exercises/02_y.ipynb)" in first.source
    assert "NBVAL" not in setup.source and "NBVAL" not in answer.source
    assert answer.source.endswith("    ### END SOLUTION") and "checks.check" not in answer.source
    assert answer.metadata.nbgrader["solution"] and not answer.metadata.nbgrader["grade"]
    assert answer.metadata.tags == ["raises-exception"]
    assert tests.source.startswith(course._GUARD_CALL)  # undo monkeypatching before the check, under nbgrader too
    assert tests.source.split("\n")[1] == "checks.check(my_add)" and "### BEGIN HIDDEN TESTS" in tests.source
    assert course._guard_line() in setup.source and setup.metadata.nbgrader["locked"]  # snapshot, before answers
    assert tests.metadata.nbgrader == {"grade": True, "solution": False, "locked": True, "grade_id": "nb01_ex01_tests",
                                       "schema_version": 3, "task": False, "points": 2}
    assert written.metadata.nbgrader["solution"] and written.metadata.nbgrader["grade"]
    assert answer.outputs == [] and answer.execution_count is None
    assert "widgets" not in nb.metadata
    nbformat.validate(nb)


def test_nbgrader_command_writes_one_assignment_per_notebook(tmp_path):
    assert course.main(["nbgrader", "--source", str(SOLUTIONS), "--dest", str(tmp_path), "--notebooks", "01", "01b",
                        "02"]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.ipynb"))
    assert written == ["01_lora_mini_from_scratch/01_lora_mini_from_scratch.ipynb",
                       "01b_decomposition_math/01b_decomposition_math.ipynb",
                       "02_parameter_counting/02_parameter_counting.ipynb"]
    for path in tmp_path.rglob("*.ipynb"):
        text = path.read_text()
        nb = nbformat.read(path, as_version=4)
        assert "NBVAL_" not in text and "widgets" not in nb.metadata
        assert f"notebooks/exercises/{path.name}" in nb.cells[0].source
        grade_ids = [c.metadata.nbgrader["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
        assert len(grade_ids) == len(set(grade_ids)) and any(g.endswith("_tests") for g in grade_ids)
        assert all(g.startswith(f"nb{path.name.split('_')[0]}_") for g in grade_ids), grade_ids[:3]  # nb01b_ex01


@pytest.mark.parametrize("only, want", [(["01"], ["01_lora_mini_from_scratch.ipynb"]),
                                        (["01b"], ["01b_decomposition_math.ipynb"]),
                                        (["01_lora"], ["01_lora_mini_from_scratch.ipynb"]),
                                        (["01b_decomposition_math"], ["01b_decomposition_math.ipynb"]),
                                        (["02_parameter_counting.ipynb"], ["02_parameter_counting.ipynb"])])
def test_a_notebook_number_picks_that_notebook_only(only, want):
    """01 and 01b are two notebooks: `--notebooks 01` must not pick 01b too (nor `--notebook 01` be ambiguous)."""
    assert [p.name for p in course.solution_notebooks(SOLUTIONS, only)] == want


def _exercise_titles(nb) -> list:
    return [re.match(r"#+ *Exercise (\d+)", line) for c in nb.cells for line in c.source.split("\n")[:3]
            if c.cell_type == "code" and line.startswith("# Exercise ")]


@pytest.mark.parametrize("path", course.solution_notebooks(SOLUTIONS), ids=lambda p: p.name)
def test_exercises_are_numbered_from_one_without_gaps_and_each_has_a_student_cell(path):
    """After the split of 01 (and any later one): each notebook's exercises run 1..N in order, and every exercise
    title of the solution has exactly one cell in the committed student copy that raises its Todo."""
    nb = nbformat.read(path, as_version=4)
    numbers = [ex.number for ex in course.exercises(nb)]
    assert numbers == list(range(1, len(numbers) + 1)), f"{path.name}: exercises numbered {numbers}"
    assert [int(m.group(1)) for m in _exercise_titles(nb)] == [ex.number for ex in course.exercises(nb)
                                                               if not ex.written]
    student = nbformat.read(STUDENTS / path.name, as_version=4)
    for ex in course.exercises(nb):
        if ex.written:
            continue
        cells = [c for c in student.cells if c.cell_type == "code" and ex.placeholder in c.source]
        assert len(cells) == 1 and cells[0].source.startswith(f"# Exercise {ex.number}: {ex.title}"), \
            f"{path.name}: {ex.label} has {len(cells)} student cells"


@pytest.mark.parametrize("argv", [["student", "--source", "{empty}"], ["nbgrader", "--source", "{empty}", "--dest", "{out}"],
                                  ["grade", "--solutions", "{empty}", "{empty}/x.ipynb"], ["table", "--source", "{empty}"]])
def test_commands_fail_loudly_without_notebooks(argv, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.format(empty=tmp_path / "empty", out=tmp_path / "out") for a in argv]
    assert course.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no solution notebooks") and str(tmp_path / "empty") in err[0]
    assert not (tmp_path / "out").exists()


def test_student_command_writes_where_told_and_check_detects_staleness(tmp_path, capsys):
    dest = tmp_path / "copies"
    assert course.main(["student", "--source", str(SOLUTIONS), "--dest", str(dest)]) == 0
    assert sorted(p.name for p in dest.glob("*.ipynb")) == sorted(p.name for p in STUDENT_NOTEBOOKS)
    assert course.main(["student", "--source", str(SOLUTIONS), "--dest", str(dest), "--check"]) == 0
    (dest / STUDENT_NOTEBOOKS[0].name).write_text("{}")
    assert course.main(["student", "--source", str(SOLUTIONS), "--dest", str(dest), "--check"]) == 1
    assert STUDENT_NOTEBOOKS[0].name in capsys.readouterr().err


def test_the_guide_lists_every_exercise_and_hidden_test():
    """docs/teaching.md's table is the generated one (python -m loramini.course table --write docs/teaching.md)."""
    guide = (ROOT / "docs" / "teaching.md").read_text()
    table = course.exercise_table(SOLUTIONS)
    assert course._table_in(guide) == table, "run: python -m loramini.course table --write docs/teaching.md"
    n_exercises = sum(len(course.exercises(nbformat.read(p, as_version=4))) for p in course.solution_notebooks(SOLUTIONS))
    assert len(table.splitlines()) == 2 + n_exercises
    assert "_build" not in guide  # the notebooks are jupytext pairs now


def test_a_student_kernel_imports_no_course_tooling():
    """What a student kernel (and a graded one) imports from loramini.course loads no nbformat/nbclient/nbgrader."""
    import subprocess
    import sys

    code = ("import sys; from loramini.course import Todo, answers; import loramini.course as c; c.fresh_checks; "
            "print(sorted(m for m in ('nbformat', 'nbclient', 'nbgrader', 'jupyter_client') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
