"""The instructor guide's nbgrader walk-through, run as written (docs/teaching.md, "Grading with nbgrader"):
export → generate_assignment → a submission under submitted/<student>/<assignment>/ → autograde →
generate_feedback → export, on notebook 02 (the fastest). A blank answer must score 0, a correct one full points,
a monkeypatching one 0, and nbgrader must put the hidden tests back (and show them in the feedback)."""

from __future__ import annotations

import csv
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from loramini import course

pytest.importorskip("nbgrader", reason="nbgrader is in the dev extra: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "02_parameter_counting"
CONFIG = 'c = get_config()\nc.CourseDirectory.course_id = "loramini"\n'  # the guide's nbgrader_config.py


def _nbgrader(course_dir: Path, *args: str) -> str:
    env = dict(os.environ, LORAMINI_SMOKE="1", LORAMINI_GRADING="1")
    # nbgrader runs `alembic` (its database migrations) from PATH: the environment's bin folder must be on it.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_nbgrader_walkthrough_scores_blank_zero_and_correct_full(tmp_path):
    course_dir = tmp_path / "course"
    course_dir.mkdir()
    (course_dir / "nbgrader_config.py").write_text(CONFIG)
    assert course.main(["nbgrader", "--source", str(ROOT / "notebooks"), "--dest", str(course_dir / "source"),
                        "--notebooks", "02"]) == 0
    _nbgrader(course_dir, "generate_assignment", ASSIGNMENT)
    released = course_dir / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(released, as_version=4)
    text = released.read_text()
    assert "### BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "NBVAL_" not in text
    assert f"notebooks/exercises/{ASSIGNMENT}.ipynb" in nb.cells[0].source

    # One student answers the first exercise right (the solution's answer), games the second (monkeypatched
    # checks and an answer equal to everything, which would pass the visible check and a hidden `==` test)
    # and leaves the rest blank.
    solution = nbformat.read(ROOT / "notebooks" / f"{ASSIGNMENT}.ipynb", as_version=4)
    exs = [ex for ex in course.exercises(solution) if not ex.written]
    first, gamed = [ex for ex in exs if len(ex.answers) == 1][:2]

    def answer(ex, lines):
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"nb02_ex{ex.number:02d}")
        stub = "\n".join(ex.indents[0] + line for line in ["# YOUR CODE HERE", "raise NotImplementedError()"])
        assert stub in cell.source
        cell.source = cell.source.replace(stub, "\n".join(ex.indents[0] + line for line in lines))

    answer(first, [line[len(first.indents[0]):] for line in first.answers[0]])
    anything = 'type("AnyEq", (), {"__eq__": lambda s, o: True, "__hash__": lambda s: 0})()'
    names = re.findall(r"`(\w+)", course._you_write(gamed))
    answer(gamed, ["import loramini.checks as _lc",
                   "for _n in [n for n in dir(_lc) if n.startswith('check_')]:",
                   "    setattr(_lc, _n, lambda *a, **k: print('✓'))"]
           + ([f"return {anything}"] if gamed.indents[0] else [f"{name} = {anything}" for name in names]))
    submitted = course_dir / "submitted" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    submitted.parent.mkdir(parents=True)
    nbformat.write(nb, submitted)

    log = _nbgrader(course_dir, "autograde", ASSIGNMENT, "--ExecutePreprocessor.timeout=600")
    hidden = [ex for ex in exs if ex.hidden_lines and len(ex.answers) == 1]
    if hidden:  # the "checksum has changed" warning the guide explains: nbgrader restoring the hidden tests
        assert f"Attribute 'checksum' for cell nb02_ex{hidden[0].number:02d}_tests has changed" in log
    _nbgrader(course_dir, "generate_feedback", ASSIGNMENT)
    _nbgrader(course_dir, "export")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        graded = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "alice")
        scores = {g.name: (g.score, g.max_score) for g in graded.grades}
    assert scores[f"nb02_ex{first.number:02d}_tests"] == (1.0, 1.0)
    assert scores[f"nb02_ex{gamed.number:02d}_tests"] == (0.0, 1.0)  # the tests cell re-imported the checks
    blank = {name: s for name, s in scores.items() if name != f"nb02_ex{first.number:02d}_tests"}
    assert len(blank) == len(exs) - 1 and all(score == (0.0, 1.0) for score in blank.values()), scores

    feedback = (course_dir / "feedback" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", feedback))  # the code as shown, without highlighting spans
    if hidden:  # feedback shows the hidden tests: the guide warns about it
        assert hidden[0].hidden_lines[0].strip() in text
    rows = list(csv.DictReader((course_dir / "grades.csv").open()))
    assert [(r["student_id"], float(r["score"]), float(r["max_score"])) for r in rows] == [("alice", 1.0, len(exs))]
