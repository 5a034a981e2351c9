"""The grader cannot be fooled: crafted submissions, generated from the solution notebooks (so they follow the
exercises as they change), graded by `python -m loramini.course grade` on notebooks 01, 01b and 02.

* a correct student (one of them with the check lines deleted: the grader restores them) passes everything;
* a "gamer" (checks monkeypatched in the first answer, whose value equals everything, torch.allclose patched, an
  exercise cell deleted, the check lines deleted under a wrong answer, an answer that tries to swallow the check,
  wrong answers elsewhere) passes nothing;
* a half-right student who submits nbgrader's format (answer cell + locked tests cell) passes exactly the
  exercises they answered right.
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import nbformat
import pytest

from loramini import course

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks"
NBGRADER_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
MONKEYPATCH = [
    "import loramini.checks as _lc",
    "for _n in dir(_lc):",
    "    if _n.startswith('check_'):",
    "        setattr(_lc, _n, lambda *a, **k: print('✓ patched'))",
    "checks = type('Fake', (), {'__getattr__': lambda self, n: (lambda *a, **k: None)})()",
    "torch.allclose = lambda *a, **k: True",
]


def _solution(prefix: str):
    path = next(SOLUTIONS.glob(f"{prefix}_*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    return path, nb, [ex for ex in course.exercises(nb) if not ex.written]


def _wrong(ex) -> list:
    """Wrong answers (one per solution block) that raise nothing by themselves: `return None` in a function,
    else the block's names = None."""
    wrong = []
    for answer, indent in zip(ex.answers, ex.indents):
        if indent:
            wrong.append([indent + "return None"])
            continue
        tree = ast.parse("\n".join(answer))
        names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)]
        assert names, f"cannot write a wrong answer for {ex.label}"
        wrong.append([f"{name} = None" for name in names])
    return wrong


def _cell(nb, ex):
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(f"# Exercise {ex.number}:"))


def _fill(nb, ex, answers: list, placeholder: str) -> None:
    """Put answers[i] where the student copy (or nbgrader release) has its i-th placeholder in exercise `ex`.
    In nbgrader's format the later blocks sit in the cells after the titled one."""
    cells = nb.cells[nb.cells.index(_cell(nb, ex)):]
    for answer, indent in zip(answers, ex.indents):
        stub = "\n".join(indent + line for line in placeholder.split("\n"))
        cell = next(c for c in cells if stub in c.source)
        cell.source = cell.source.replace(stub, "\n".join(answer), 1)


def _student(sol_nb):
    return course.student_notebook(sol_nb, SOLUTIONS, SOLUTIONS / "exercises")


def _single(exs):
    return [ex for ex in exs if len(ex.answers) == 1]


def _correct(sol_nb, exs):
    nb = _student(sol_nb)
    for ex in exs:
        _fill(nb, ex, ex.answers, ex.placeholder)
    # One exercise with its check lines deleted: the grader puts them back, and the right answer passes.
    last = _single(exs)[-1]
    _cell(nb, last).source = "\n".join(last.head + last.answers[0])
    return nb


def _gamer(sol_nb, exs):
    single = _single(exs)
    assert len(single) >= 4, "the gamer needs four one-block exercises"
    nb = _student(sol_nb)
    first, deleted, unchecked, swallow = single[:4]
    rest = [ex for ex in exs if ex not in (first, deleted, unchecked, swallow)]
    anything = 'type("AnyEq", (), {"__eq__": lambda s, o: True, "__hash__": lambda s: 0})()'  # == passes
    _fill(nb, first, [[first.indents[0] + line for line in MONKEYPATCH]
                      + [line.replace("None", anything) for line in _wrong(first)[0]]], first.placeholder)
    nb.cells.remove(_cell(nb, deleted))
    _cell(nb, unchecked).source = "\n".join(unchecked.head + _wrong(unchecked)[0])  # no check line left
    _fill(nb, swallow, [_wrong(swallow)[0] + [swallow.indents[0] + '_ = """']], swallow.placeholder)
    for ex in rest:
        _fill(nb, ex, _wrong(ex), ex.placeholder)
    return nb, {deleted.number: "missing", swallow.number: "SyntaxError"}


def _release(sol_nb, prefix: str):
    """What nbgrader's generate_assignment gives students: the nbgrader source with answers → its code stub and
    hidden tests removed."""
    nb = course.nbgrader_notebook(sol_nb, prefix=prefix)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = course._HIDDEN.sub("", cell.source)
            cell.source = course._SOLUTION.sub(
                lambda m: "\n".join(m.group(1) + line for line in NBGRADER_STUB.split("\n")) + m.group(2), cell.source)
    return nb


def _half_right(sol_nb, exs, prefix: str):
    nb = _release(sol_nb, prefix)
    right = {ex.number for ex in exs[::2]}
    for ex in exs:
        _fill(nb, ex, ex.answers if ex.number in right else _wrong(ex), NBGRADER_STUB)
    return nb, right


# Seven kernel runs in all: the half-right nbgrader student once (on 02) is enough.
@pytest.mark.parametrize("prefix, who", [("01", ["correct", "gamer"]), ("01b", ["correct", "gamer"]),
                                         ("02", ["correct", "gamer", "half"])])
def test_grader_is_not_fooled(prefix, who, tmp_path, capsys):
    path, sol_nb, exs = _solution(prefix)
    gamer, expected_status = _gamer(sol_nb, exs)
    half, right = _half_right(sol_nb, exs, f"nb{prefix}")
    submissions = {"correct": _correct(sol_nb, exs), "gamer": gamer, "half": half}
    files = {}
    for student in who:
        (tmp_path / student).mkdir()
        files[student] = tmp_path / student / path.name
        nbformat.write(submissions[student], files[student])
    report = tmp_path / "grades.csv"
    assert course.main(["grade", "--solutions", str(SOLUTIONS), *map(str, files.values()), "--csv", str(report),
                        "--student-from", "parent"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(report.open()))
    written = [ex for ex in course.exercises(sol_nb) if ex.written]
    assert len(rows) == len(who) * (len(exs) + len(written))
    assert all(r["notebook"] == path.name for r in rows)
    passed = {(r["student"], int(r["exercise"])): r for r in rows if r["passed"] != ""}
    numbers = [ex.number for ex in exs]
    want = {"correct": set(numbers), "gamer": set(), "half": right}
    for student in who:
        assert {n for n in numbers if passed[student, n]["passed"] == "1"} == want[student], out
        assert f"{student} ({files[student]} → {path.stem}): {len(want[student])}/{len(exs)} exercises pass" in out
    for number, status in expected_status.items():
        assert passed["gamer", number]["status"].startswith(status), passed["gamer", number]


# ---------------------------------------------------------------- the pieces, without a kernel
def test_answer_region_is_taken_between_the_given_setup_and_check():
    _, sol_nb, exs = _solution("01")
    ex = next(e for e in _single(exs) if e.indents[0])  # a function-body exercise
    student = _student(sol_nb).cells[ex.cell].source
    submitted = student.replace(ex.indents[0] + ex.placeholder, ex.indents[0] + "return 42  # mine")
    assert course.extract_answer(ex, submitted) == [[ex.indents[0] + "return 42  # mine"]]
    # Deleting the check keeps the answer; the restored cell has the check again, after the guard.
    no_check = "\n".join(ex.head + [ex.indents[0] + "return 42"])
    source, problem = course.restore_exercise(ex, course.extract_answer(ex, no_check))
    assert problem is None and source.endswith("\n".join(ex.tail_stmts))
    assert course._guard_line(ex) in source


TWO_BLOCKS = """# Exercise 1: two parts
def f(x):
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION


checks.check_f(f)
y = f(1)
### BEGIN SOLUTION
z = y * 2
### END SOLUTION
checks.check_z(z)
### BEGIN HIDDEN TESTS
assert z == 4
### END HIDDEN TESTS"""


def test_an_exercise_with_two_answer_blocks_keeps_the_code_between_them():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from loramini import checks"), nbformat.v4.new_code_cell(TWO_BLOCKS)]
    (ex,) = course.exercises(nb)
    assert ex.answers == [["    return x + 1"], ["z = y * 2"]] and ex.indents == ["    ", ""]
    student = course.student_notebook(nb).cells[1].source
    assert student.count("raise Todo(") == 2 and "checks.check_f(f)" in student and "assert z" not in student
    submitted = student.replace('    raise Todo("Exercise 1: two parts")', "    return x - 1", 1) \
                       .replace('raise Todo("Exercise 1: two parts")', "z = 4")
    answers = course.extract_answer(ex, submitted)
    assert answers == [["    return x - 1"], ["z = 4"]]
    source, problem = course.restore_exercise(ex, answers)
    assert problem is None and source.count(course._GUARD_CALL) == 2 and "assert z == 4" in source
    # Deleting the check between the blocks is an altered exercise, not a way around the check.
    assert course.extract_answer(ex, submitted.replace("checks.check_f(f)\n", "")) is None
    assert course.restore_exercise(ex, None)[1].startswith("altered")
    # nbgrader: answer, tests, answer, tests; the submission's cells are joined back by grade id.
    cells = course.nbgrader_notebook(nb, prefix="nb01").cells[1:]
    assert [c.metadata.nbgrader["grade_id"] for c in cells] == ["nb01_ex01", "nb01_ex01_tests", "nb01_ex01_part2",
                                                               "nb01_ex01_part2_tests"]
    assert cells[1].source.split("\n")[1] == "checks.check_f(f)" and cells[2].source.startswith("### BEGIN SOLUTION")
    assert [c.metadata.nbgrader.get("points") for c in cells] == [None, 0.5, None, 0.5]
    joined = course._submitted_exercises(nbformat.v4.new_notebook(cells=cells))["key"][(1, "two parts")][1]
    assert course.extract_answer(ex, joined) == [["    return x + 1"], ["z = y * 2"]]


def test_an_answer_cannot_swallow_the_check():
    _, _, exs = _solution("02")
    ex = _single(exs)[0]
    source, problem = course.restore_exercise(ex, [["x = 1", "_ = '''"]])
    assert problem.startswith("SyntaxError") and "raise Todo(" in source
    source, problem = course.restore_exercise(ex, [["if True:", "    pass"]])
    assert problem is None  # a closed block is fine


def test_a_submission_is_matched_by_titles_not_file_name(tmp_path):
    sols = {p.name: (nb, course.exercises(nb)) for p in course.solution_notebooks(SOLUTIONS, ["01", "01b", "02"])
            for nb in [nbformat.read(p, as_version=4)]}
    _, sol_nb, _ = _solution("02")
    sub = course._submitted_exercises(_student(sol_nb))
    assert course._match_solution(Path("alice_homework.ipynb"), sub, sols, None) == "02_parameter_counting.ipynb"
    empty = course._submitted_exercises(nbformat.v4.new_notebook())
    assert course._match_solution(Path("bob_01.ipynb"), empty, sols, None) == "01_lora_mini_from_scratch.ipynb"
    assert course._match_solution(Path("bob_01b.ipynb"), empty, sols, None) == "01b_decomposition_math.ipynb"
    assert course._match_solution(Path("x.ipynb"), empty, sols, "01") == "01_lora_mini_from_scratch.ipynb"
    assert course._match_solution(Path("x.ipynb"), empty, sols, "01b") == "01b_decomposition_math.ipynb"
    # 01 and 01b both number their exercises from 1: the titles tell them apart.
    _, sol_b, _ = _solution("01b")
    sub_b = course._submitted_exercises(_student(sol_b))
    assert course._match_solution(Path("bob_01.ipynb"), sub_b, sols, None) == "01b_decomposition_math.ipynb"
    with pytest.raises(SystemExit, match="cannot tell which notebook"):
        course._match_solution(Path("carol.ipynb"), empty, sols, None)


@pytest.mark.parametrize("rule, want", [("path", "submitted/alice/02_x/02_x.ipynb"), ("name", "02_x"),
                                        ("parent", "02_x"), ("grandparent", "alice"),
                                        ("submitted/([^/]+)/", "alice"), ("(?P<student>ali..)", "alice")])
def test_student_names(rule, want):
    assert course.student_id(Path("submitted/alice/02_x/02_x.ipynb"), rule) == want


def test_student_name_rule_that_does_not_match_is_one_error_line():
    with pytest.raises(SystemExit, match=r"--student-from 'bob/\(x\)' does not match"):
        course.student_id(Path("submitted/alice/x.ipynb"), "bob/(x)")


def test_graded_notebook_takes_nothing_but_answers_from_the_submission():
    _, sol_nb, exs = _solution("02")
    sub = _student(sol_nb)
    for cell in sub.cells:  # tamper with every non-exercise cell
        if cell.cell_type == "code" and not cell.source.lstrip().startswith("# Exercise"):
            cell.source = "import loramini.checks\nloramini.checks.check_head_count = print"
    nb, graded, preset, plan = course.graded_notebook(sol_nb, sub)
    assert not any("check_head_count = print" in c.source for c in nb.cells)
    assert preset == {} and len(graded) == len(exs) == len(plan)
    assert nb.cells[0].source == course._SETUP
    for ex in exs:
        cell = nb.cells[graded[ex.key][0]].source
        assert re.search(r"raise Todo\(", cell) and course._guard_line(ex) in cell
        # Every check call of the solution is recorded for the judge, none runs as a verdict in the kernel.
        assert "__lm_answers.record(" in cell and not re.search(r"^checks\.check_", cell, re.M)
    steps = [step for entry in plan for step in entry["steps"]]
    assert sum(step["kind"] == "check" for step in steps) == sum(
        len(re.findall(r"^checks\.check_\w+\(", "\n".join(ex.tail_stmts), re.M)) for ex in exs)
