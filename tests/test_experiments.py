"""The experiment protocol: confidence intervals, learning-rate sweeps that bracket their optimum, the selection
split, the probe baselines, and the PEFT relatives through the same loop."""

import json
import math

import pytest
import torch

from loramini.experiments import Protocol, confidence_interval, overlap, run_protocol, tune_lr


def test_confidence_interval_matches_student_t():
    mean, (lo, hi) = confidence_interval([1.0, 2.0, 3.0])
    # s = 1, n = 3, t_{0.975, 2} = 4.3027: half-width 4.3027 / sqrt(3) = 2.4841
    assert mean == pytest.approx(2.0)
    assert (lo, hi) == pytest.approx((2.0 - 2.48414, 2.0 + 2.48414), abs=1e-4)
    assert confidence_interval([0.5, 0.5, 0.5])[1] == (0.5, 0.5)


def test_confidence_interval_refuses_one_seed_and_nan():
    with pytest.raises(ValueError, match="more seeds"):
        confidence_interval([0.7])
    with pytest.raises(ValueError, match="diverged"):
        confidence_interval([0.7, math.nan])


def test_overlap():
    assert overlap([0.1, 0.3], [0.25, 0.5]) and not overlap([0.1, 0.2], [0.3, 0.4])


def test_tune_lr_widens_until_the_optimum_is_inside():
    tried = []

    def score(lr):  # a peak at lr = 0.1, far above the starting grid
        tried.append(lr)
        return -abs(math.log10(lr) - math.log10(0.1))

    sweep = tune_lr(score, [1e-3, 3e-3, 1e-2])
    assert sweep.best_lr == pytest.approx(0.09, rel=0.01)  # the grid point nearest 0.1
    assert not sweep.best_at_edge
    assert sweep.grid[0] < sweep.best_lr < sweep.grid[-1]
    assert sweep.extended >= 2 and len(tried) == len(set(tried)) == len(sweep.grid)


def test_tune_lr_reports_an_edge_when_the_budget_runs_out():
    sweep = tune_lr(lambda lr: lr, [1e-3, 1e-2], max_extensions=2)  # always better higher
    assert sweep.best_at_edge and sweep.best_lr == sweep.grid[-1] and sweep.extended == 2


def test_tune_lr_treats_a_diverged_rate_as_the_worst():
    sweep = tune_lr(lambda lr: math.nan if lr > 5e-3 else -abs(lr - 1e-3), [3e-4, 1e-3, 1e-2])
    assert sweep.best_lr == 1e-3 and sweep.scores[-1] == -math.inf


def test_protocol_tunes_on_selection_and_reports_on_validation(tmp_path):
    calls = []

    def run(params):  # selection peaks at lr=1e-2 for "m"; validation differs by a seed-dependent amount
        calls.append(params)
        peak = -abs(math.log10(params["lr"]) + 2)
        bonus = 0.0 if params.get("eval_split") == "selection" else 0.01 * params["seed"]
        return {"metric": 0.8 + 0.05 * peak + bonus, "main_metric": "accuracy", "adapter_params": 10 * params["r"],
                "trainable_params": 10 * params["r"] + 5, "lr": params["lr"], "wall_time_s": 1.0}

    protocol = Protocol(base={"task": "t", "model": "tiny"}, methods={"m": {"method": "m", "r": 2}},
                        lr_grids={"m": [1e-3, 3e-3]}, variants={"m": [{"r": 4}]}, seeds=[0, 1, 2])
    results = run_protocol(protocol, tmp_path, run=run, log=lambda _: None)
    sweep = results["lr_sweeps"][0]
    assert sweep["best_lr"] == pytest.approx(0.009, rel=0.02) and not sweep["best_at_edge"]
    assert all(c["eval_split"] == "selection" for c in calls if "eval_split" in c)
    reported = [c for c in calls if "eval_split" not in c]
    assert {c["seed"] for c in reported} == {0, 1, 2} and {c["lr"] for c in reported} == {sweep["best_lr"]}
    cells = results["cells"]
    assert [c["r"] for c in cells] == [2, 4] and cells[1]["adapter_params"] == 40
    assert cells[0]["metric_mean"] == pytest.approx(0.8 + 0.05 * -abs(math.log10(0.009) + 2) + 0.01)
    assert cells[0]["ci95"][0] < cells[0]["metric_mean"] < cells[0]["ci95"][1]
    n_calls = len(calls)
    run_protocol(protocol, tmp_path, run=run, log=lambda _: None)  # everything cached: no new runs
    assert len(calls) == n_calls


def test_tune_shapes_gives_each_variant_its_own_rate_and_no_diverged_cell(tmp_path):
    """A larger shape whose stable rates are lower than the reference's (it diverges at the reference's tuned
    rate, as LoRA r=16 did on the tiny model) gets its own half-decade sweep and is reported at a rate that
    trains; without `tune_shapes` the same protocol reports it diverged."""
    def run(params):  # r=2 peaks at 1e-2; r=8 peaks at 1e-3 and diverges above 3e-3
        best = 1e-2 if params["r"] == 2 else 1e-3
        if params["r"] == 8 and params["lr"] > 3e-3:
            return {"metric": None, "diverged": True, "lr": params["lr"]}
        return {"metric": 0.9 - 0.05 * abs(math.log10(params["lr"] / best)), "main_metric": "accuracy",
                "adapter_params": params["r"], "trainable_params": params["r"], "lr": params["lr"], "wall_time_s": 1.0}

    def protocol(tune_shapes):
        return Protocol(base={"task": "t", "model": "tiny"}, methods={"m": {"method": "m", "r": 2}},
                        lr_grids={"m": [3e-3, 1e-2, 3e-2]}, variants={"m": [{"r": 8}]}, seeds=[0, 1, 2],
                        tune_shapes=tune_shapes)

    plain = run_protocol(protocol(False), tmp_path / "plain", run=run, log=lambda _: None)
    assert plain["cells"][1]["diverged"] and "shape_sweeps" not in plain
    tuned = run_protocol(protocol(True), tmp_path / "tuned", run=run, log=lambda _: None)
    (shape,) = tuned["shape_sweeps"]
    assert shape["r"] == 8 and shape["best_lr"] == pytest.approx(1e-3, rel=0.01)
    assert pytest.approx(1e-2) in shape["grid"] and min(shape["grid"]) < shape["best_lr"]  # centred on r=2's rate
    assert shape["diverged"] and not shape["best_at_edge"]  # 1e-2 diverged; the grid widened down past 1e-3
    big = tuned["cells"][1]
    assert not big["diverged"] and big["lr"] == pytest.approx(1e-3, rel=0.01)
    assert big["metric_mean"] == pytest.approx(0.9, abs=1e-3)
    assert tuned["cells"][0]["lr"] == pytest.approx(1e-2)  # the reference shape keeps its own sweep's rate


def test_protocol_refuses_fewer_than_three_seeds(tmp_path):
    with pytest.raises(ValueError, match="at least 3 seeds"):
        run_protocol(Protocol(base={}, methods={}, seeds=[0, 1]), tmp_path)


def test_carve_task_holds_out_the_same_selection_rows_for_every_seed():
    from loramini.ablation import carve_task

    a = carve_task("synthetic", max_train_samples=300, seed=0, eval_split="selection")
    b = carve_task("synthetic", max_train_samples=300, seed=1, eval_split="selection")
    v = carve_task("synthetic", max_train_samples=300, seed=0, eval_split="validation")
    selection = a.dataset["validation"]["sentence"]
    assert selection == b.dataset["validation"]["sentence"] and len(selection) == 400  # 2,000 // 5
    assert not set(selection) & set(a.dataset["train"]["sentence"])
    assert len(a.dataset["train"]) == 300 and a.dataset["train"]["sentence"] != b.dataset["train"]["sentence"]
    assert a.dataset["train"]["sentence"] == v.dataset["train"]["sentence"]  # same training rows, other eval split
    assert not set(selection) & set(v.dataset["validation"]["sentence"])
    with pytest.raises(ValueError, match="eval_split"):
        carve_task("synthetic", eval_split="test")


def test_regression_head_starts_at_the_label_mean():
    from loramini.models import tiny_roberta
    from loramini.train import start_at_label_mean

    model = tiny_roberta(num_labels=1)
    start_at_label_mean(model, [1.0, 2.0, 4.5])
    assert model.classifier.out_proj.bias.item() == pytest.approx(2.5)


def test_linear_probe_reads_a_linear_signal_and_zero_shot_needs_a_pair_regression():
    import numpy as np

    from loramini.probe import linear_probe, zero_shot_cosine
    from loramini.tasks import TaskSpec

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8))
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    spec = TaskSpec("toy", ("sentence",), 2, "accuracy")
    result = linear_probe(x[:300], y[:300], x[300:], y[300:], spec)
    assert result["metric"] > 0.9 and result["params"] == 9
    noise = linear_probe(x[:300], rng.integers(0, 2, 300), x[300:], y[300:], spec)
    assert noise["metric"] < 0.7
    with pytest.raises(ValueError, match="pair regression"):
        zero_shot_cosine(None, None, {}, spec)


@pytest.mark.parametrize("method, per_layer", [("vera", lambda d, r: d + r), ("tinylora", lambda d, r: r * r)])
def test_peft_relatives_train_through_the_same_loop(method, per_layer):
    from loramini.train import train

    torch.manual_seed(0)
    history = train("tiny", "synthetic", method=method, r=4, epochs=1, max_train_samples=64, progress=False)
    layers = 2 * 2  # tiny RoBERTa: 2 layers × (query, value), hidden 64
    assert history["params"]["adapter"] == layers * per_layer(64, 4)
    assert history["params"]["head"] > 0 and 0.0 <= history["metric"] <= 1.0
    json.dumps({k: v for k, v in history.items() if k != "trained_model"})


@pytest.mark.parametrize("d, b", [(384, 32), (768, 32), (384, 96)])
def test_first_step_descent_ratio_follows_sqrt_b_over_d(d, b):
    from loramini.experiments import first_step_descent_ratio

    measured, predicted = first_step_descent_ratio(d, d, r=8, a=32, b=b, trials=4)
    assert predicted == pytest.approx(math.sqrt(b / d))
    assert measured == pytest.approx(predicted, rel=0.1)


def test_first_step_rule_follows_alpha_over_r_and_sqrt_b():
    """The extended rule: at alpha = 2·r (the default) the B_train gradient grows with r, so the first-step rate
    falls as 1/r; at a fixed alpha r cancels (scale alpha/r times r columns); wider b lowers it about as 1/sqrt(b)."""
    from loramini.experiments import first_step_descent, first_step_rule_lr

    ref = {"r": 8, "a": 32, "b": 32}
    assert first_step_rule_lr(1e-2, ref, ref, 128, 128, trials=3) == pytest.approx(1e-2)
    assert first_step_rule_lr(1e-2, {"r": 2}, ref, 128, 128, trials=3) == pytest.approx(4e-2, rel=0.15)
    assert first_step_rule_lr(1e-2, {"r": 16}, ref, 128, 128, trials=3) == pytest.approx(5e-3, rel=0.15)
    fixed = {**ref, "alpha": 16}
    assert first_step_rule_lr(1e-2, {"r": 2}, fixed, 128, 128, trials=3) == pytest.approx(1e-2, rel=0.15)
    assert first_step_rule_lr(1e-2, {"a": 64, "b": 64}, ref, 128, 128, trials=3) == pytest.approx(
        1e-2 / math.sqrt(2), rel=0.15)
    assert first_step_descent(128, 128, r=4, alpha=32, trials=3) == pytest.approx(
        4 * first_step_descent(128, 128, r=4, alpha=8, trials=3), rel=1e-4)  # linear in alpha, same layers


def test_regression_training_starts_at_the_label_variance_not_the_offset():
    """The STS-B collapse's root cause, offline: labels in 0–5 with a head starting at 0 begin at loss mean² + var."""
    import statistics

    from loramini.synthetic import make_synthetic
    from loramini.train import train

    task = make_synthetic("synthetic-regression", max_train_samples=256)
    labels = task.dataset["train"]["label"]
    variance = statistics.pvariance(labels)
    assert statistics.mean(labels) ** 2 > 2 * variance  # the offset dominates a head that starts at 0
    history = train("tiny", task, method="loramini", epochs=1, progress=False)
    assert history["steps"][0]["loss"] < 1.5 * variance

