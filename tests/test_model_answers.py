"""Every model answer true to the outputs it refers to (#18): the numbers a written model answer quotes are
recomputed from the committed notebook and the results it read, so that a re-run that moves a number makes
this test fail until the answer is rewritten."""

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from loramini import course
from loramini.ablation import cell_path
from loramini.experiments import confidence_interval, overlap

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")  # a decimal quoted in prose: 0.712, 0.012, 2.8
WORDS = {"no": 0, "none": 0, "one": 1, "two": 2, "three": 3, "all three": 3}


def outputs(nb) -> str:
    """Everything the code cells of a notebook printed (text only)."""
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text.append(out.get("text", "") if out.get("output_type") == "stream"
                        else out.get("data", {}).get("text/plain", ""))
    return "\n".join(text)


def written(nb):
    """(exercise, model answer text) for each written exercise of a solution notebook."""
    for ex in course.exercises(nb):
        if ex.written:
            source = nb.cells[ex.cell].source
            yield ex, source[source.index("### BEGIN SOLUTION"):source.index("### END SOLUTION")]


def cell_output(nb, title: str) -> str:
    """The printed output of the code cell whose source holds `title`."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and title in c.source)
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_a_model_answer_quotes_was_printed(path):
    """A written model answer quotes only numbers that the notebook's committed outputs print."""
    nb = nbformat.read(path, as_version=4)
    printed = set(NUMBER.findall(outputs(nb)))
    for ex, answer in written(nb):
        quoted = set(NUMBER.findall(re.sub(r"\$[^$]*\$", "", answer)))  # numbers in formulas are derived, not read
        assert quoted <= printed, f"{path.name} {ex.label}: the model answer quotes {sorted(quoted - printed)}, " \
                                  f"which no output of the notebook prints: rewrite it from the outputs"


# ---------------------------------------------------------------- 04, Exercise 4: recomputed from the cache
NB04 = ROOT / "notebooks" / "04_rank_ablations.ipynb"


@pytest.fixture(scope="module")
def ablation():
    """The committed 04 notebook, its Exercise 4 answer, and the Exercise 3 grid recomputed from the cache."""
    nb = nbformat.read(NB04, as_version=4)
    answer = next(a for _, a in written(nb))
    fixed_line = next(line for line in cell_output(nb, "FIXED = {").splitlines() if line.startswith("fixed settings:"))
    fixed = ast.literal_eval(fixed_line.split(":", 1)[1].strip())
    cache = ROOT / "notebooks" / "results" / "accuracy-vs-params" / "tiny-synthetic-rank"
    source = next(c.source for c in nb.cells if c.cell_type == "code" and "# Exercise 3:" in c.source)
    ranks = ast.literal_eval(re.search(r"for r in (\([^)]*\))", source).group(1))
    widths = ast.literal_eval(re.search(r"for w in (\([^)]*\))", source).group(1))
    seeds = ast.literal_eval(re.search(r"for seed in (\([^)]*\))", source).group(1))
    grid = {}
    for r in ranks:
        for w in widths:
            runs = []
            for seed in seeds:
                path = cell_path({**fixed, "r": r, "a": w, "b": w, "seed": seed}, cache)
                assert path.is_file(), f"{path.name} (r={r}, a=b={w}, seed {seed}) is not in the committed cache"
                runs.append(json.loads(path.read_text())["result"])
            mean, ci = confidence_interval([run["metric"] for run in runs])
            grid[r, w] = {"mean": mean, "ci": ci, "params": runs[0]["adapter_params"],
                          "text": f"{mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"}
    smoke = json.loads((ROOT / "benchmarks" / "results" / "accuracy-vs-params-smoke.json").read_text())
    head = next(c for c in smoke["cells"] if c["method"] == "head" and c["task"] == "synthetic-rank")
    return {"nb": nb, "answer": " ".join(answer.split()), "fixed": fixed, "grid": grid, "ranks": ranks,
            "widths": widths, "head": head["metric_mean"]}


def test_the_committed_ablation_table_is_the_cache(ablation):
    printed = cell_output(ablation["nb"], "# Exercise 3:")
    for cell in ablation["grid"].values():
        assert cell["text"] in printed, f"{cell['text']} (recomputed from the cache) is not in Exercise 3's output"


def test_the_model_answer_quotes_the_tuned_rate_and_the_means(ablation):
    answer, grid = ablation["answer"], ablation["grid"]
    assert f"tuned learning rate ({ablation['fixed']['lr']:g})" in answer
    for w in ablation["widths"]:
        means = ", ".join(f"{grid[r, w]['mean']:.3f}" for r in ablation["ranks"])
        assert f"$a=b={w}$ the means are {means}" in answer or f"$a=b={w}$ {means}" in answer, (w, means)
    for interval in re.findall(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", answer):
        assert interval in {c["text"] for c in grid.values()}, interval
    for params, score in re.findall(r"trains (\d+) numbers and scores (\d\.\d{3})", answer) + \
            re.findall(r"trains (\d+) and scores (\d\.\d{3})", answer):
        assert any(c["params"] == int(params) and f"{c['mean']:.3f}" == score for c in grid.values()), (params, score)
    assert f"head alone ({ablation['head']:.3f}" in answer


def test_the_model_answer_counts_the_resolved_differences_right(ablation):
    answer, grid, ranks, widths = ablation["answer"], ablation["grid"], ablation["ranks"], ablation["widths"]
    narrow, wide = min(widths), max(widths)
    resolved = [r for r in ranks if not overlap(grid[r, narrow]["ci"], grid[r, wide]["ci"])]
    said = re.search(r"\b(no|none|one|two|three|all three) of the (\w+) width differences are resolved", answer)
    assert said, "the answer no longer says how many width differences are resolved; update this test with it"
    assert WORDS[said.group(1)] == len(resolved) and WORDS[said.group(2)] == len(ranks), (said.group(0), resolved)
    for r in ranks:  # each rank the answer names as resolved (or not) is so
        if f"at $r={r}$ (" in answer:
            named_resolved = answer.index(f"at $r={r}$ (") < answer.index("not at")
            assert named_resolved == (r in resolved), r
    rank_resolved = [(w, r1, r2) for w in widths for r1 in ranks for r2 in ranks
                     if r1 < r2 and not overlap(grid[r1, w]["ci"], grid[r2, w]["ci"])]
    if "Along $r$ nothing is resolved" in answer:
        assert not rank_resolved, rank_resolved
    below_head = all(grid[r, narrow]["mean"] < ablation["head"] for r in ranks)
    assert ("all stay below the head alone" in answer) == below_head


# ---------------------------------------------------------------- the grader's word count of a written answer
def test_written_answer_word_count_leaves_the_question_out():
    nb = nbformat.read(NB04, as_version=4)
    ex = next(e for e in course.exercises(nb) if e.written)
    solution = nb.cells[ex.cell].source
    question = course.strip_markdown_solution(solution)
    mine = "I varied r and width."
    assert course._answer_words(solution, question.replace("YOUR ANSWER HERE", mine)) == 5
    assert course._answer_words(solution, mine) == 5
    assert course._answer_words(solution, question) == 0
