"""The instructor guide's nbgrader walk-through, run as written (docs/teaching.md, "Grading with nbgrader"):
export → generate_assignment → submissions under submitted/<student>/<assignment>/ → the hardened autograde
(`python -m loramini.course nbgrader-autograde`) → generate_feedback → export, on notebook 02 (the fastest).
nbgrader must put the hidden tests back (and show them in the feedback). One autograde run, four students:

| student | what it does | expected |
|---|---|---|
| alice | Exercise 1 right (the model answer); the next one gamed (checks monkeypatched, an answer equal to everything); the rest blank | 1/7 |
| custom_exc | `get_ipython().set_custom_exc((BaseException,), ...)` as the first answer, nothing else | 0/7 |
| reader | walks up from its working folder to nbgrader's source/<assignment>/<assignment>.ipynb and, after every cell, runs the solution's answer cells (an IPython post_run_cell hook) | 0/7, source not found |
| gamer | `fresh_checks` and `_Guard.restore` made no-ops, every check patched to print ✓, every answer an object equal to everything | 0/7 |

Each trick is stopped by a defence of its own, and the test looks at each: the kernel's error reply (custom_exc:
nbgrader's own run already fails every tests cell), the sandbox (reader: the notebook nbgrader ran prints that
nothing was found, and its run fails every tests cell) and the package grader's verdict (gamer: nbgrader's own run passes tests cells, the verdict
fails them)."""

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


def _autograde(course_dir: Path) -> str:
    """The guide's hardened autograde: nbgrader's, with the kernel in the sandbox and the package grader's verdict."""
    env = dict(os.environ, LORAMINI_SMOKE="1")
    done = subprocess.run([sys.executable, "-m", "loramini.course", "nbgrader-autograde", ASSIGNMENT,
                           "--solutions", str(ROOT / "notebooks"), "--timeout", "600"],
                          cwd=course_dir, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader-autograde failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


CUSTOM_EXC = "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"
# The marker is split so that the reader's own notebook does not match it.
READER = f'''import glob, json, os
_sources = []
for _up in ["..", "../..", "../../..", "../../../.."]:
    for _path in glob.glob(os.path.join(_up, "*", "{ASSIGNMENT}", "{ASSIGNMENT}.ipynb")):
        try:
            _cells = ["".join(c["source"]) for c in json.load(open(_path))["cells"]]
        except (OSError, ValueError, KeyError):
            continue
        _sources += [c for c in _cells if "### BEGIN " + "SOLUTION" in c]
print("READER FOUND", len(_sources), "SOLUTION CELLS")
def _fill(*_args, **_kwargs):
    for _source in _sources:
        try:
            exec(_source, get_ipython().user_ns)
        except BaseException:
            pass
get_ipython().events.register("post_run_cell", _fill)'''
ANYTHING = 'type("AnyEq", (), {"__eq__": lambda s, o: True, "__ne__": lambda s, o: False, "__hash__": lambda s: 0})()'
UNGUARD = ["import loramini.course, loramini.course.guard, loramini.checks as _lc",
           "loramini.course.guard._Guard.restore = lambda self, *a, **k: None",
           "loramini.course.guard.fresh_checks = lambda *a, **k: None",
           "loramini.course.fresh_checks = lambda *a, **k: None",
           "for _n in [n for n in dir(_lc) if n.startswith('check_')]:",
           "    setattr(_lc, _n, lambda *a, **k: print('✓'))"]


def _anything(ex) -> list:
    """An answer equal to everything: returned by the function, or bound to each name the exercise asks for."""
    names = re.findall(r"`(\w+)", course._you_write(ex))
    return [f"return {ANYTHING}"] if ex.indents[0] else [f"{name} = {ANYTHING}" for name in names]


def test_nbgrader_walkthrough_scores_each_submission(tmp_path):
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

    # alice answers the first exercise right (the solution's answer), games the second (monkeypatched checks and
    # an answer equal to everything, which would pass the visible check and a hidden `==` test) and leaves the
    # rest blank; the three others try a trick each (the table above).
    solution = nbformat.read(ROOT / "notebooks" / f"{ASSIGNMENT}.ipynb", as_version=4)
    exs = [ex for ex in course.exercises(solution) if not ex.written]
    first, gamed = [ex for ex in exs if len(ex.answers) == 1][:2]
    assert not first.indents[0], "the tricks are written as the first exercise's top-level answer"

    def answer(copy, ex, lines):
        cell = next(c for c in copy.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"nb02_ex{ex.number:02d}")
        stub = "\n".join(ex.indents[0] + line for line in ["# YOUR CODE HERE", "raise NotImplementedError()"])
        assert stub in cell.source
        cell.source = cell.source.replace(stub, "\n".join(ex.indents[0] + line for line in lines))

    def submit(student, answers):
        copy = nbformat.read(released, as_version=4)
        for ex, lines in answers:
            answer(copy, ex, lines)
        path = course_dir / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(copy, path)

    monkeypatch = ["import loramini.checks as _lc", "for _n in [n for n in dir(_lc) if n.startswith('check_')]:",
                   "    setattr(_lc, _n, lambda *a, **k: print('✓'))"]
    submit("alice", [(first, [line[len(first.indents[0]):] for line in first.answers[0]]),
                     (gamed, monkeypatch + _anything(gamed))])
    submit("custom_exc", [(first, [CUSTOM_EXC])])
    submit("reader", [(first, READER.split("\n"))])
    submit("gamer", [(first, UNGUARD + _anything(first))] + [(ex, _anything(ex)) for ex in exs if ex is not first])

    log = _autograde(course_dir)
    hidden = [ex for ex in exs if ex.hidden_lines and len(ex.answers) == 1]
    if hidden:  # the "checksum has changed" warning the guide explains: nbgrader restoring the hidden tests
        assert f"Attribute 'checksum' for cell nb02_ex{hidden[0].number:02d}_tests has changed" in log
    _nbgrader(course_dir, "generate_feedback", ASSIGNMENT)
    _nbgrader(course_dir, "export")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        scores = {who: {g.name: (g.score, g.max_score)
                        for g in gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, who).grades}
                  for who in ("alice", "custom_exc", "reader", "gamer")}
    tests = {f"nb02_ex{ex.number:02d}_tests" for ex in exs}
    assert all(set(s) == tests and all(m == 1.0 for _, m in s.values()) for s in scores.values()), scores
    alice = scores["alice"]
    assert alice[f"nb02_ex{first.number:02d}_tests"] == (1.0, 1.0)
    assert alice[f"nb02_ex{gamed.number:02d}_tests"] == (0.0, 1.0)  # the tests cell re-imported the checks
    assert sum(score for score, _ in alice.values()) == 1.0, alice
    for who in ("custom_exc", "reader", "gamer"):
        assert sum(score for score, _ in scores[who].values()) == 0.0, (who, scores[who])

    def executed(who):  # the notebook nbgrader ran: each tests cell's outputs, nbgrader's own run first
        nb = nbformat.read(course_dir / "autograded" / who / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
        return {c.metadata["nbgrader"]["grade_id"]: c.outputs for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") in tests}, nb

    def own_run_failed(outputs):  # an error from the kernel itself, not the one the package grader's verdict adds
        return any(o.output_type == "error" and o.ename != "PackageGraderFail" for o in outputs)

    # custom_exc: nbgrader reads the kernel's error reply, so its own run fails every tests cell.
    outputs, _ = executed("custom_exc")
    assert all(own_run_failed(o) for o in outputs.values()), outputs
    assert "package grader, custom_exc: not run (nbgrader's run passes no tests cell)" in log
    # reader: in the sandbox the source notebook is out of reach (the package grader's kernel never ran it).
    _, nb = executed("reader")
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "READER FOUND 0 SOLUTION CELLS" in printed, printed[-2000:]
    assert "package grader, reader: not run (nbgrader's run passes no tests cell)" in log
    # gamer: its patching holds in the kernel (nbgrader's own run passes tests cells); the verdict fails them all.
    outputs, _ = executed("gamer")
    assert any(not own_run_failed(o) for o in outputs.values()), outputs
    assert all(o and o[0].get("ename") == "PackageGraderFail" for o in outputs.values()), outputs
    assert "package grader, gamer: 0/7 exercises pass" in log and "package grader, alice: 1/7 exercises pass" in log

    feedback = (course_dir / "feedback" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", feedback))  # the code as shown, without highlighting spans
    if hidden:  # feedback shows the hidden tests: the guide warns about it
        assert hidden[0].hidden_lines[0].strip() in text
    rows = list(csv.DictReader((course_dir / "grades.csv").open()))
    assert sorted((r["student_id"], float(r["score"]), float(r["max_score"])) for r in rows) == \
        [("alice", 1.0, len(exs)), ("custom_exc", 0.0, len(exs)), ("gamer", 0.0, len(exs)), ("reader", 0.0, len(exs))]


def test_nbgrader_autograde_refuses_what_it_cannot_hide(tmp_path, capsys):
    """No solution notebook for the assignment, or a course folder that holds the Python environment (a kernel
    could not be kept out of it): one line naming the folder, exit 1, before nbgrader starts."""
    assert course.main(["nbgrader-autograde", ASSIGNMENT, "--solutions", str(tmp_path)]) == 1
    assert f"no solution notebook {ASSIGNMENT}.ipynb in {tmp_path}" in capsys.readouterr().err
    cwd = os.getcwd()
    try:
        os.chdir(sys.prefix)  # the environment's own folder as the course folder
        assert course.main(["nbgrader-autograde", ASSIGNMENT, "--solutions", str(ROOT / "notebooks")]) == 1
    finally:
        os.chdir(cwd)
    assert f"{Path(sys.prefix).resolve()} holds the Python environment" in capsys.readouterr().err
