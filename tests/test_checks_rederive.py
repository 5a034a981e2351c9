"""Checks that a typed answer cannot pass (#18): notebook 04's run tables are re-derived by training rows again,
and notebook 03's size exercises are functions tried on models other than the notebook's, so a number printed
by the notebook (or a real roberta-base run on Colab) neither stands in for nor fails the answer."""

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
from helpers import fails_with, passes

import loramini
from loramini import checks
from loramini import results as shipped_results
from loramini.ablation import cached_run, train_cell
from loramini.course import answers, judge

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "notebooks" / "results" / "accuracy-vs-params" / "tiny-synthetic-rank"



# ---------------------------------------------------------------- 04: the run tables come from training
@pytest.fixture(scope="module")
def protocol():
    """Notebook 04's FIXED and TUNED, built as its cells build them."""
    smoke = shipped_results.load("accuracy-vs-params-smoke")
    tuned = {s["method"]: s["best_lr"] for s in smoke["lr_sweeps"] if s["task"] == "synthetic-rank"}
    fixed = {"model": "tiny", "task": "synthetic-rank", "data_dir": None, "epochs": 2, "max_train_samples": 2000,
             "max_length": 64, "batch_size": 16, "method": "loramini", "lr": tuned["loramini"]}
    return fixed, tuned


@pytest.fixture(scope="module")
def real_table(protocol):
    """The real answer's kind of table: three ranks at a = b = 32, read back from the committed cache."""
    fixed, _ = protocol
    rows = []
    for r in (1, 2, 4):
        result = cached_run({**fixed, "r": r, "a": 32, "b": 32, "seed": 0}, train_cell, CACHE)
        rows.append({"r": r, "a": 32, "seed": 0, "metric": result["metric"],
                     "final_train_loss": result["final_train_loss"], "adapter_params": result["adapter_params"]})
    return pd.DataFrame(rows)


def typed(table):
    """The same table with plausible numbers typed in: nothing trained."""
    return table.assign(metric=[0.70, 0.72, 0.73], final_train_loss=[0.60, 0.59, 0.58])


def test_the_real_ablation_table_passes_and_a_typed_one_fails(protocol, real_table):
    fixed, _ = protocol
    passes(checks.check_ablation_table, real_table, "metric", fixed=fixed, reruns=3)
    fails_with("does not match a re-run", checks.check_ablation_table, typed(real_table), "metric", fixed=fixed)
    # Without the re-run the old check passed the typed table: the re-run is what catches it.
    passes(checks.check_ablation_table, typed(real_table), "metric")


def test_one_edited_row_is_caught_when_it_is_re_run(protocol, real_table):
    fixed, _ = protocol
    edited = real_table.copy()
    edited.loc[1, "metric"] += 0.05  # a real run, its accuracy nudged up
    fails_with("r=2, a=32, b=32, seed=0 does not match", checks.check_ablation_table, edited, "metric",
               fixed=fixed, reruns=3)


def test_a_table_without_the_runs_loss_or_off_the_tiny_model_is_refused(protocol, real_table):
    fixed, _ = protocol
    fails_with("final_train_loss", checks.check_ablation_table, real_table.drop(columns="final_train_loss"),
               "metric", fixed=fixed)
    fails_with("tiny model only", checks.check_ablation_table, real_table, "metric",
               fixed={**fixed, "model": "roberta-base"})


def test_the_equal_cost_table_is_re_derived_too(protocol, monkeypatch):
    import random

    fixed, tuned = protocol
    rows = []
    for seed in (0, 1, 2):
        lora = cached_run({**fixed, "method": "lora", "lr": tuned["lora"], "r": 1, "seed": seed}, train_cell, CACHE)
        mini = cached_run({**fixed, "r": 4, "a": 16, "b": 16, "seed": seed}, train_cell, CACHE)
        keep = ("adapter_params", "metric", "final_train_loss")
        rows += [{"method": "lora", "r": 1, "seed": seed, **{k: lora[k] for k in keep}},
                 {"method": "loramini", "r": 4, "a": 16, "b": 16, "seed": seed, **{k: mini[k] for k in keep}}]
    real = pd.DataFrame(rows)
    fake = real.assign(metric=[0.70, 0.71] * 3, final_train_loss=0.6)
    # the check draws its rows at random; here the first two, one of each method
    monkeypatch.setattr(random.SystemRandom, "sample", lambda self, population, k: list(population)[:k])
    passes(checks.check_equal_cost_comparison, real, "metric", fixed=fixed, lrs=tuned, reruns=2)
    fails_with("method=lora, r=1, seed=0 does not match a re-run", checks.check_equal_cost_comparison, fake,
               "metric", fixed=fixed, lrs=tuned)
    fails_with("method=loramini, r=4, a=16, b=16, seed=0 does not match", checks.check_equal_cost_comparison,
               real.assign(metric=[real.metric[0], 0.5] + list(real.metric[2:])), "metric", fixed=fixed, lrs=tuned)


def _judged(tmp_path, monkeypatch, check: str, source: str, values: dict):
    """Record a check call as the graded kernel does, then let the judge decide on the record alone."""
    monkeypatch.setenv("LORAMINI_ANSWERS", str(tmp_path))
    answers.record("ex", check, lambda: ([values[n] for n in values if n.startswith("_arg")],
                                         {k: v for k, v in values.items() if not k.startswith("_arg")}))
    names = judge._namespace()
    step = {"kind": "check", "id": "ex", "source": source}
    checks.grading_mode(True)
    try:
        return judge.verdict({"key": "ex", "steps": [step]}, tmp_path, names)
    finally:
        checks.grading_mode(False)


def test_the_judge_re_runs_the_table_it_was_given(protocol, real_table, tmp_path, monkeypatch):
    fixed, _ = protocol
    source = 'checks.check_ablation_table(my_table, "metric", fixed=FIXED)'
    got = _judged(tmp_path / "real", monkeypatch, "check_ablation_table", source,
                  {"_arg0": real_table, "_arg1": "metric", "fixed": fixed})
    assert got == {"passed": True, "status": "passed"}
    got = _judged(tmp_path / "typed", monkeypatch, "check_ablation_table", source,
                  {"_arg0": typed(real_table), "_arg1": "metric", "fixed": fixed})
    assert got["passed"] is False and "does not match a re-run" in got["status"]
    assert not re.search(r"\d", got["status"])  # grading mode: no values in the status line


# ---------------------------------------------------------------- 03: the size exercises, for any model
def right_counts(config, r, a, b):
    matrices = 2 * config.num_hidden_layers
    return matrices * r * 2 * config.hidden_size, matrices * r * (a + b)


def right_bytes(model):
    counts = loramini.count_parameters(model)
    return 4 * (counts.adapter + counts.head)


TINY_NUMBERS = (16_384, 2_048)  # notebook 03's tiny model (2 layers of width 64, r=8, a=b=32): LoRA, LoRA-Mini


def test_adapter_prediction_right_and_typical_mistakes():
    passes(checks.check_adapter_prediction, right_counts)
    fails_with("same answer for models of different sizes", checks.check_adapter_prediction,
               lambda c, r, a, b: TINY_NUMBERS)
    # one target left out (query only): the hint names the missing layer, not "one block" (#18)
    msg = fails_with("1 adapted layer per block, but 2 are adapted", checks.check_adapter_prediction,
                     lambda c, r, a, b: (c.num_hidden_layers * r * 2 * c.hidden_size, c.num_hidden_layers * r * (a + b)))
    assert "one block" not in msg
    fails_with("That is one block", checks.check_adapter_prediction,
               lambda c, r, a, b: (2 * r * 2 * c.hidden_size, 2 * r * (a + b)))
    fails_with("use its arguments, not the notebook's", checks.check_adapter_prediction,
               lambda c, r, a, b: right_counts(c, 8, 32, 32))
    fails_with("swapped", checks.check_adapter_prediction, lambda c, r, a, b: right_counts(c, r, a, b)[::-1])
    fails_with("LoRA's count", checks.check_adapter_prediction, lambda c, r, a, b: (right_counts(c, r, a, b)[1],) * 2)
    fails_with("counting helpers are switched off", checks.check_adapter_prediction, lambda c, r, a, b: (
        0, loramini.predict_adapter_params(c, loramini.LoRAMiniConfig(r=r, a=a, b=b, target_modules=["query", "value"]))))


def test_file_bytes_right_is_the_real_file_and_typical_mistakes(tmp_path):
    import struct

    passes(checks.check_file_bytes, right_bytes)
    model = checks._injected_case(*checks._SIZE_CASES[0])
    raw = (loramini.save_adapter(model, tmp_path / "a") / "adapter_model.safetensors").read_bytes()
    assert right_bytes(model) == len(raw) - 8 - struct.unpack("<Q", raw[:8])[0]  # the check's reference is the file
    fails_with("left out the classifier head", checks.check_file_bytes,
               lambda m: 4 * loramini.count_parameters(m).adapter)
    fails_with("bits, not bytes", checks.check_file_bytes, lambda m: 32 * loramini.count_parameters(m).trainable)
    fails_with("same answer", checks.check_file_bytes, lambda m: 4 * (2048 + 4290))


NB03 = (ROOT / "notebooks" / "03_finetune_roberta.py").read_text()


def exercise_cell(title: str) -> str:
    """The source of notebook 03's exercise cell (solution and hidden tests included), from its jupytext file."""
    cell = next(c for c in NB03.split("\n# %%") if f"# Exercise {title}" in c)
    return "\n".join(line for line in cell.splitlines()[1:] if not line.startswith("# NBVAL"))


@pytest.fixture(scope="module")
def bigger_session():
    """A session that ran a bigger model than the tiny one (a RoBERTa of 4 layers, width 128, standing in for
    roberta-base on Colab): the names the exercise cells of 03 read, with that model."""
    from transformers import RobertaForSequenceClassification

    base = RobertaForSequenceClassification(loramini.roberta_config(
        "tiny", hidden_size=128, num_hidden_layers=4, intermediate_size=256)).eval()
    trained = loramini.inject(RobertaForSequenceClassification(base.config),
                              loramini.LoRAMiniConfig(r=8, a=32, b=32, target_modules=["query", "value"]))
    return {"base": base, "histories": {"loramini": {"trained_model": trained}}, "R": 8, "A": 32, "B": 32,
            "TARGETS": ["query", "value"], "loramini": loramini, "checks": checks}


@pytest.mark.parametrize("title", ["1: predict an adapter's size", "3: the size of the adapter file"])
def test_03_exercises_accept_the_model_the_student_ran(title, bigger_session):
    """The solution's cell (check and hidden tests) passes in a session on the bigger model, and the tiny
    model's numbers fail there: the checks no longer assume the tiny model the grader runs."""
    source = exercise_cell(title)
    with redirect_stdout(io.StringIO()):
        exec(compile(source, title, "exec"), dict(bigger_session))
    typed_in = {"1: predict an adapter's size": "return 16_384, 2_048   # the tiny model's numbers",
                "3: the size of the adapter file": "return 4 * (2_048 + 4_290)   # the tiny model's file"}[title]
    answer = re.search(r"### BEGIN SOLUTION\n(.*?)\n\s*### END SOLUTION", source, re.S)
    indent = re.match(r"\s*", answer.group(1)).group(0)
    wrong = source.replace(answer.group(1), indent + typed_in)
    with pytest.raises(AssertionError), redirect_stdout(io.StringIO()):  # CheckFailed, or a hidden test
        exec(compile(wrong, title, "exec"), dict(bigger_session))


def test_no_03_size_answer_is_a_number_typed_in():
    for title in ("1: predict an adapter's size", "3: the size of the adapter file"):
        source = exercise_cell(title)
        assert re.search(r"^def my_\w+\(", source, re.M), f"03 Exercise {title}: the answer is a function again"


# ---------------------------------------------------------------- both, through the package grader
GRADED_SETUP = '''import pandas as pd
import loramini
from loramini import checks
from loramini.ablation import train_cell
FIXED = {"model": "tiny", "task": "synthetic-rank", "data_dir": None, "epochs": 1, "max_train_samples": 160,
         "max_length": 32, "batch_size": 16, "method": "loramini", "lr": 0.012}'''
GRADED_EXERCISES = ['''# Exercise 1: predict an adapter's size from the model's config
def my_adapter_counts(config, r, a, b):
    ### BEGIN SOLUTION
    matrices = 2 * config.num_hidden_layers
    return matrices * r * 2 * config.hidden_size, matrices * r * (a + b)
    ### END SOLUTION


checks.check_adapter_prediction(my_adapter_counts)''', '''# Exercise 2: a small ablation
### BEGIN SOLUTION
rows = []
for r in (1, 2, 4):
    result = train_cell({**FIXED, "r": r, "a": 8, "b": 8, "seed": 0})
    rows.append({"r": r, "a": 8, "seed": 0, "metric": result["metric"],
                 "final_train_loss": result["final_train_loss"]})
my_table = pd.DataFrame(rows)
### END SOLUTION
checks.check_ablation_table(my_table, "metric", fixed=FIXED)''']
TYPED = {1: "    return 16_384, 2_048   # the numbers notebook 03 prints for its tiny model",
         2: 'my_table = pd.DataFrame({"r": [1, 2, 4], "a": 8, "seed": 0, "metric": [0.62, 0.64, 0.65], '
            '"final_train_loss": [0.66, 0.65, 0.64]})'}


def test_the_grader_fails_typed_answers_and_passes_computed_ones(tmp_path):
    """End to end (kernel, recording, judge in a fresh interpreter): the computed answers get 2/2, the typed
    ones (the tiny model's printed counts, a results table with nothing trained) 0/2."""
    import csv

    import nbformat

    from loramini import course

    sol = nbformat.v4.new_notebook()
    sol.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    sol.cells = [nbformat.v4.new_markdown_cell("# 04 tiny\n\nTwo exercises."), nbformat.v4.new_code_cell(GRADED_SETUP)]
    sol.cells += [nbformat.v4.new_code_cell(source) for source in GRADED_EXERCISES]
    (tmp_path / "solutions").mkdir()
    nbformat.write(sol, tmp_path / "solutions" / "04_tiny.ipynb")
    paths = []
    for who, typed_in in (("computed", {}), ("typed", TYPED)):
        nb = course.student_notebook(sol, tmp_path / "solutions", tmp_path / "solutions" / "exercises")
        for ex in course.exercises(sol):
            code = typed_in.get(ex.number, "\n".join(ex.answers[0]))
            nb.cells[ex.cell].source = nb.cells[ex.cell].source.replace(ex.indents[0] + ex.placeholder, code)
        (tmp_path / who).mkdir()
        paths.append(tmp_path / who / "04_tiny.ipynb")
        nbformat.write(nb, paths[-1])
    with redirect_stdout(io.StringIO()):
        course.main(["grade", "--solutions", str(tmp_path / "solutions"), *map(str, paths), "--csv",
                     str(tmp_path / "grades.csv"), "--student-from", "parent", "--timeout", "600"])
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    passed = {(row["student"], row["exercise"]): row["passed"] for row in rows}
    assert passed == {("computed", "1"): "1", ("computed", "2"): "1", ("typed", "1"): "0", ("typed", "2"): "0"}, rows
    status = {row["exercise"]: row["status"] for row in rows if row["student"] == "typed"}
    assert "same answer for models of different sizes" in status["1"], status
    assert "does not match a re-run" in status["2"], status


def test_fresh_checks_undoes_patches_to_what_the_re_run_trains_with():
    """Under nbgrader the checks run in the student's kernel: a submission that replaced `train_cell` (or the loop
    under it) could make 04's re-run return its typed numbers. `fresh_checks` must put every loramini module's
    functions back, the modules imported after its first call included."""
    import subprocess
    import sys

    code = '''
import loramini.course
ns = {}                                   # the notebook's globals()
loramini.course.fresh_checks(ns)          # the first tests cell: the guard takes its snapshot
import loramini.ablation, loramini.methods, loramini.metrics, loramini.train
originals = (loramini.ablation.train_cell, loramini.train.train, loramini.methods.apply_method,
             loramini.metrics.evaluate)
fake = lambda *a, **k: {"metric": 0.99}
loramini.ablation.train_cell = loramini.train.train = loramini.methods.apply_method = fake
loramini.metrics.evaluate = fake
loramini.course.fresh_checks(ns)          # the next tests cell
now = (loramini.ablation.train_cell, loramini.train.train, loramini.methods.apply_method, loramini.metrics.evaluate)
print("RESTORED" if all(a is b for a, b in zip(originals, now)) else f"PATCHED {now}")
'''
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "RESTORED"
