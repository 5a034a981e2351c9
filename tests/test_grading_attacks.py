"""Crafted submissions against the package grader (issue 18's table), on a tiny course notebook of four
exercises: a number, a function returning a tensor, a training step (a function that changes a model) and a
merge (a function returning a model). One `grade` run grades the submissions below in this order with a
generous limit, a second one grades the looper and then a blank copy with a short one:

| submission | what it tries | expected |
|---|---|---|
| correct | right answers; the training step returns the loss *tensor* | 4/4 |
| custom_exc | `get_ipython().set_custom_exc((BaseException,), ...)` and nothing else | 0/4 |
| gamer | int/float subclasses equal to everything, a Tensor subclass overriding allclose/eq, `fresh_checks` and `_Guard.restore` made no-ops, every check patched to print ✓, torch.allclose → True | 0/4 |
| snoop | reads the solution notebook and the other submissions by relative and absolute paths, and an instructor's environment variable | 0/4, nothing found |
| mallory | right answers, but writes torch/__init__.py, sitecustomize.py into its folder and files next to it | 4/4 |
| after | right answers, graded after mallory | 4/4 |
| looper (2nd run) | starts `setsid` sleepers, then loops swallowing every interrupt | 0/4, "timed out after N s", sleepers dead |
| blank (2nd run) | the student copy as handed out, graded after the looper | 0/4, "not answered" |

The numbers-typed-from-outputs and the roberta-base-on-Colab rows are about the exercises' content (which answers
are typed numbers, which model a check assumes): see docs/teaching.md.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import uuid
from pathlib import Path

import nbformat
import pytest

from loramini import course
from loramini.course import sandbox

from helpers import interrupt_swallowing_loop, processes_named

SECRET = "instructor-secret-" + uuid.uuid4().hex[:8]
TOKEN = "lm-orphan-" + uuid.uuid4().hex[:8]
TIMEOUT = 600  # nothing but the looper comes near it, even on a loaded machine
LOOP_TIMEOUT = 45

SETUP = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\nimport loramini\nfrom loramini import checks"
EXERCISES = ['''# Exercise 1: count LoRA's numbers
### BEGIN SOLUTION
lora_ffn = 8 * (768 + 3072)
### END SOLUTION
checks.check_lora_count(lora_ffn, d_in=768, d_out=3072, r=8)
### BEGIN HIDDEN TESTS
assert lora_ffn == 30_720
### END HIDDEN TESTS''', '''# Exercise 2: build ΔW
def my_delta_weight(layer):
    ### BEGIN SOLUTION
    return layer.scale * layer.B_aux @ layer.B_train @ layer.A_train @ layer.A_aux
    ### END SOLUTION


checks.check_delta_weight(my_delta_weight)''', '''# Exercise 3: one training step
def my_step(model, optimizer, x, y):
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


checks.check_train_step(my_step)
### BEGIN HIDDEN TESTS
_model = nn.Linear(3, 1)
_opt = torch.optim.SGD(_model.parameters(), lr=0.1)
_before = _model.weight.detach().clone()
assert float(my_step(_model, _opt, torch.randn(4, 3), torch.randn(4, 1))) > 0
assert not torch.equal(_model.weight, _before)
### END HIDDEN TESTS''', '''# Exercise 4: merge and unload
def my_merge_and_unload(model):
    ### BEGIN SOLUTION
    for name, module in list(model.named_modules()):
        if isinstance(module, loramini.LoRAMiniLinear):
            parent, _, child = name.rpartition(".")
            new = nn.Linear(module.in_features, module.out_features)
            with torch.no_grad():
                new.weight.copy_(module.base.weight + module.scale * module.B_aux @ module.B_train
                                 @ module.A_train @ module.A_aux)
                new.bias.copy_(module.base.bias)
            setattr(model.get_submodule(parent), child, new)
    return model
    ### END SOLUTION


checks.check_merge_and_unload(my_merge_and_unload)''']

CUSTOM_EXC = "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"
GAMER = {1: '''import loramini.course, loramini.course.guard, loramini.checks as _lc
loramini.course.guard._Guard.restore = lambda self, *a, **k: None
loramini.course.guard.fresh_checks = lambda *a, **k: None
for _n in dir(_lc):
    if _n.startswith("check_"):
        setattr(_lc, _n, lambda *a, **k: print("✓ patched"))
torch.allclose = lambda *a, **k: True
class _AnyInt(int):
    __eq__ = lambda s, o: True
    __hash__ = lambda s: 0
lora_ffn = _AnyInt(1)''',
         2: '''    class _AnyTensor(torch.Tensor):
        def allclose(self, *a, **k): return True
        def __eq__(self, o): return True
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None): return True
    return torch.zeros(1).as_subclass(_AnyTensor)''',
         3: '''    class _AnyFloat(float):
        __eq__ = lambda s, o: True
        __hash__ = lambda s: 0
    return _AnyFloat(0.0)''',
         4: "    return None"}
SNOOP = '''import glob, os
_found = []
for _start in ["..", "../..", "../../..", "/tmp", os.path.expanduser("~/..")]:
    for _root, _dirs, _files in os.walk(_start):
        if _root.count(os.sep) - _start.count(os.sep) > 6 or _root.startswith(("/proc", "/sys", "/usr")):
            _dirs[:] = []
            continue
        for _f in _files:
            if _f.endswith(".ipynb") or _f.endswith(".csv"):
                try:
                    if "lora_ffn = 8" in open(os.path.join(_root, _f)).read():
                        _found.append(os.path.join(_root, _f))
                except OSError:
                    pass
for _p in glob.glob("/proc/*/cwd/**/*.ipynb", recursive=True)[:1000]:
    try:
        if "lora_ffn = 8" in open(_p).read():
            _found.append(_p)
    except OSError:
        pass
_secret = os.environ.get("LORAMINI_TEST_SECRET")
print("FOUND", _found, "SECRET", _secret)
lora_ffn = _secret'''
LOOPER = interrupt_swallowing_loop(TOKEN)
MALLORY = '''import os
os.makedirs("torch", exist_ok=True)
open("torch/__init__.py", "w").write("raise ImportError('sabotaged by mallory')")
open("sitecustomize.py", "w").write("raise ImportError('sabotaged by mallory')")
for _start in ["..", "../..", "/tmp"]:
    for _root, _dirs, _files in os.walk(_start):
        if _root.count(os.sep) - _start.count(os.sep) > 5:
            _dirs[:] = []
        if any(f.endswith(".ipynb") for f in _files) or _root == _start:
            try:
                open(os.path.join(_root, "mallory_was_here.txt"), "w").write("x")
            except OSError:
                pass
lora_ffn = 8 * (768 + 3072)'''


def _solution() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 tiny\n\nFour exercises."), nbformat.v4.new_code_cell(SETUP)]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in EXERCISES]
    return nb


def _submission(sol, folder: Path, answers: dict) -> nbformat.NotebookNode:
    """The student copy with `answers` {exercise number: code} in place of the placeholders ("right": the model
    answer; missing: left blank)."""
    nb = course.student_notebook(sol, folder, folder / "exercises")
    for ex in course.exercises(sol):
        code = answers.get(ex.number)
        if code is None:
            continue
        code = "\n".join(ex.answers[0]) if code == "right" else code
        cell = nb.cells[ex.cell]
        cell.source = cell.source.replace(ex.indents[0] + ex.placeholder, code)
    return nb


RIGHT = {n: "right" for n in (1, 2, 3, 4)}
LOSS_TENSOR = ("    optimizer.zero_grad()\n    loss = F.mse_loss(model(x), y)\n    loss.backward()\n"
               "    optimizer.step()\n    return loss")  # the 0-d tensor, not loss.item()
SUBMISSIONS = {
    "correct": {**RIGHT, 3: LOSS_TENSOR},
    "custom_exc": {1: CUSTOM_EXC},
    "gamer": GAMER,
    "snoop": {1: SNOOP},
    "mallory": {**RIGHT, 1: MALLORY},
    "after": RIGHT,
}
SECOND_RUN = {"looper": {1: LOOPER}, "blank": {}}


def _sleepers() -> list:
    return processes_named(TOKEN)


def _grade(root: Path, sol, batch: dict, timeout: int, csv_name: str) -> tuple:
    paths = []
    for who, answers in batch.items():
        (root / "submitted" / who).mkdir(parents=True)
        paths.append(root / "submitted" / who / "01_tiny.ipynb")
        nbformat.write(_submission(sol, root / "solutions", answers), paths[-1])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = course.main(["grade", "--solutions", str(root / "solutions"), *map(str, paths), "--csv",
                            str(root / csv_name), "--student-from", "parent", "--timeout", str(timeout)])
    return code, out.getvalue(), list(csv.DictReader((root / csv_name).open()))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    sol = _solution()
    nbformat.write(sol, root / "solutions" / "01_tiny.ipynb")
    scratches = set(Path("/tmp").glob("loramini-grade-*"))
    os.environ["LORAMINI_TEST_SECRET"] = SECRET
    try:
        code, out, rows = _grade(root, sol, SUBMISSIONS, TIMEOUT, "grades.csv")
        code2, out2, rows2 = _grade(root, sol, SECOND_RUN, LOOP_TIMEOUT, "grades2.csv")
    finally:
        os.environ.pop("LORAMINI_TEST_SECRET", None)
    rows += rows2
    return {"code": (code, code2), "root": root, "rows": rows, "out": out + out2,
            "scratches": scratches,
            "by": {who: {int(r["exercise"]): r for r in rows if r["student"] == who}
                   for who in list(SUBMISSIONS) + list(SECOND_RUN)}}


def _score(graded, who) -> int:
    return sum(int(r["passed"]) for r in graded["by"][who].values())


def test_the_right_answers_score_full_even_with_the_loss_as_a_tensor(graded):
    assert graded["code"] == (0, 0)
    assert _score(graded, "correct") == 4, graded["by"]["correct"]


def test_hiding_errors_with_set_custom_exc_scores_zero(graded):
    assert _score(graded, "custom_exc") == 0, graded["by"]["custom_exc"]


def test_objects_equal_to_everything_and_patched_checks_score_zero(graded):
    rows = graded["by"]["gamer"]
    assert _score(graded, "gamer") == 0, rows
    assert "subclass of int" in rows[1]["status"]  # refused by type, with what to give instead
    # Exercise 3's function returns a float subclass; with every kernel-side check patched to print ✓, nothing
    # even drove it: either way the judge fails it.
    assert rows[3]["status"] != "passed"


def test_a_submission_cannot_read_solutions_other_submissions_or_the_environment(graded):
    assert _score(graded, "snoop") == 0
    executed = (graded["root"] / "grades.executed" / "snoop__01_tiny.ipynb").read_text()  # kept for inspection
    assert "SECRET None" in executed, "the instructor's environment variable reached the kernel"
    if sandbox.isolation():
        assert "FOUND []" in executed, "the snoop found the solutions or another submission"
    else:
        pytest.skip("no user namespaces here: files stay readable by absolute path (documented)")


def test_nothing_a_student_printed_reaches_the_report(graded):
    everything = graded["out"] + (graded["root"] / "grades.csv").read_text()
    assert SECRET not in everything and "sabotaged" not in everything and "patched" not in everything
    assert all("\n" not in r["status"] for r in graded["rows"])


def test_an_interrupt_swallowing_loop_stops_at_the_limit_and_its_children_die(graded):
    rows = graded["by"]["looper"]
    assert _score(graded, "looper") == 0
    assert rows[1]["status"] == f"timed out after {LOOP_TIMEOUT} s"
    assert _sleepers() == [], "a setsid child outlived its submission"
    # The next submission was graded (a blank copy: every exercise "not answered").
    assert {r["status"] for r in graded["by"]["blank"].values()} == {"not answered"}


def test_what_a_submission_writes_does_not_reach_the_next(graded):
    assert _score(graded, "mallory") == 4
    assert _score(graded, "after") == 4, graded["by"]["after"]
    assert set(Path("/tmp").glob("loramini-grade-*")) <= graded["scratches"], "a scratch folder was left behind"
    if not sandbox.isolation():
        pytest.skip("no user namespaces here: the file system outside the scratch stays writable (documented)")
    root = graded["root"]
    left = [p for name in ("mallory_was_here.txt", "sitecustomize.py", "torch") for p in root.rglob(name)]
    assert left == [] and not Path("/tmp/mallory_was_here.txt").exists(), f"written outside its folder: {left}"
    assert sorted(p.name for p in (root / "solutions").iterdir()) == ["01_tiny.ipynb"]


def test_timeout_must_be_positive(capsys):
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit) as stop:
            course.main(["grade", "x.ipynb", "--timeout", bad])
        assert stop.value.code == 2
    assert "must be a number above 0" in capsys.readouterr().err


# ---------------------------------------------------------------- the pieces, without a kernel
class _AnyInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_answers_are_refused_unless_of_a_plain_type():
    import numpy as np
    import torch

    from loramini.course import answers

    writer = answers.Writer()
    for value, base in [(_AnyInt(3), "int"), (type("F", (float,), {})(1.0), "float"),
                        (type("S", (str,), {})("x"), "str"), (torch.zeros(2).as_subclass(type("T", (torch.Tensor,), {})),
                                                              "Tensor")]:
        with pytest.raises(answers.Refused, match=f"subclass of {base}"):
            writer.encode(value)
    with pytest.raises(answers.Refused, match="cannot read"):
        writer.encode(object())
    plain = {"n": 3, "x": 0.5, "ok": True, "shape": (3, 4), ("a", 1): [None, "s"], "t": torch.arange(3.0),
             "np": np.float64(2.5), "dtype": torch.bfloat16}
    back = answers.Reader(writer.tensors).decode(writer.encode(plain))
    assert back.keys() == plain.keys() and type(back["shape"]) is tuple and type(back["np"]) is np.float64
    assert torch.equal(back["t"], plain["t"]) and type(back["t"]) is torch.Tensor and back["dtype"] is torch.bfloat16


def test_a_recorded_model_comes_back_with_its_structure_and_values():
    import torch

    from loramini import checks
    from loramini.course import answers

    model = checks._toy_adapted()
    writer = answers.Writer()
    back = answers.Reader(writer.tensors).decode(writer.encode(model))
    x = torch.randn(3, 16)
    assert [type(m) for m in back.modules()] == [type(m) for m in model.modules()]
    assert torch.equal(checks._toy_forward(back, x), checks._toy_forward(model, x))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, p in back.named_parameters() if not p.requires_grad}


def test_reader_trusts_nothing_and_its_messages_are_its_own():
    from loramini.course import answers

    reader = answers.Reader({})
    for node in [{"t": "int", "v": "5"}, {"t": "pickle", "v": "gASV"}, {"t": "tensor", "k": "missing"},
                 {"t": "list", "v": {"a": 1}}, "not a node"]:
        with pytest.raises(answers.Refused):
            reader.decode(node)
    with pytest.raises(answers.Refused) as refused:
        reader.decode({"t": "refused", "base": "SECRET-from-the-student"})
    assert "SECRET" not in str(refused.value)


def test_the_judge_never_runs_the_students_function(tmp_path, monkeypatch):
    """A function that patches the checks while it runs fools the kernel-side check that records it, not the
    judge, which replays the recording in a fresh process."""
    import torch

    import loramini.checks
    from loramini.course import answers, grader

    scratch = sandbox.Scratch.create([])
    monkeypatch.setenv("LORAMINI_ANSWERS", str(scratch.answers))
    calls = []

    def cheat(layer):
        calls.append(1)
        monkeypatch.setattr(loramini.checks, "_close", lambda *a: True)  # patched where the recording runs
        return torch.zeros(layer.out_features, layer.in_features)

    def right(layer):
        return layer.scale * layer.B_aux @ layer.B_train @ layer.A_train @ layer.A_aux

    try:
        answers.record("e1c0", "check_delta_weight", lambda: ((cheat,), {}))
        answers.record("e2c0", "check_delta_weight", lambda: ((right,), {}))
        answers.record("e3c0", "check_lora_count", lambda: ((_AnyInt(1),), {"d_in": 768, "d_out": 3072, "r": 8}))
        answers.record("e4c0", "check_lora_count", lambda: ((30_720,), {"d_in": 1, "d_out": 1, "r": 1}))
        plan = [{"key": f"{n}|x", "steps": [{"kind": "check", "id": f"e{n}c0", "source": source}]} for n, source in
                [(1, "checks.check_delta_weight(f)"), (2, "checks.check_delta_weight(f)"),
                 (3, "checks.check_lora_count(a, d_in=768, d_out=3072, r=8)"),
                 (4, "checks.check_lora_count(a, d_in=768, d_out=3072, r=8)")]]
        verdicts = grader.run_judge(plan, scratch)
    finally:
        scratch.remove()
    assert calls, "the kernel-side check drives the student's function"
    assert verdicts["1|x"]["passed"] is False and verdicts["2|x"] == {"passed": True, "status": "passed"}
    assert verdicts["3|x"]["passed"] is False and "subclass of int" in verdicts["3|x"]["status"]
    # Literal arguments are the solution's own: a kernel that passes d_in=1 does not change the question.
    assert verdicts["4|x"] == {"passed": True, "status": "passed"}


def test_memory_and_file_size_limits_hold_in_the_kernels_process(tmp_path):
    import subprocess
    import sys

    limits = sandbox.Limits(memory=1 << 30, file_size=1 << 20)
    big_memory = subprocess.run([sys.executable, "-c", "x = bytearray(2 << 30)"], capture_output=True, text=True,
                                preexec_fn=sandbox.preexec(limits), timeout=120)
    assert big_memory.returncode != 0 and "MemoryError" in big_memory.stderr
    big_file = subprocess.run([sys.executable, "-c", f"open({str(tmp_path / 'f')!r}, 'wb').write(bytes(2 << 20))"],
                              capture_output=True, preexec_fn=sandbox.preexec(limits), timeout=120)
    assert big_file.returncode != 0 and (tmp_path / "f").stat().st_size <= 1 << 20


def test_the_kernel_environment_is_minimal(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["", ".", "/abs/path"]))
    scratch = sandbox.Scratch.create([])
    try:
        env = scratch.env()
    finally:
        scratch.remove()
    assert "AWS_SECRET_ACCESS_KEY" not in env and env["PYTHONPATH"] == "/abs/path"
    assert env["HOME"] == str(scratch.work) and env["PYTHONSAFEPATH"] == "1" and env[sandbox.MARKER]
