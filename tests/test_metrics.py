import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from loramini.metrics import compute_metrics, main_metric
from loramini.tasks import GLUE_TASKS, TaskSpec

# 7 examples: TP = 3, TN = 2, FP = 1, FN = 1.
LABELS = [1, 1, 1, 1, 0, 0, 0]
PREDS = [1, 1, 1, 0, 1, 0, 0]


def test_accuracy_by_hand():
    assert compute_metrics("sst2", [0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 0.75}


def test_logits_take_argmax():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [-1.0, 0.5], [4.0, -4.0]])  # argmax: 0, 1, 1, 0
    assert compute_metrics("rte", logits, [0, 1, 0, 0]) == {"accuracy": 0.75}
    three_way = torch.tensor([[0.1, 0.2, 0.9], [3.0, 0.0, 0.0]])  # MNLI logits as a tensor: 2, 0
    assert compute_metrics("mnli", three_way, torch.tensor([2, 1])) == {"accuracy": 0.5}


def test_f1_and_accuracy_by_hand():
    # precision = 3/4, recall = 3/4 → F1 = 3/4; accuracy = 5/7.
    out = compute_metrics("mrpc", PREDS, LABELS)
    assert out == pytest.approx({"f1": 0.75, "accuracy": 5 / 7})


def test_matthews_by_hand():
    # (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6 − 1) / sqrt(4·4·3·3) = 5/12.
    assert compute_metrics("cola", PREDS, LABELS) == pytest.approx({"matthews_correlation": 5 / 12})


def test_pearson_spearman_by_hand():
    # x = 1..4, y = (1, 2, 3, 5): monotone → Spearman 1; Pearson = 6.5 / sqrt(5 · 8.75).
    out = compute_metrics("stsb", [[1.0], [2.0], [3.0], [4.0]], [1.0, 2.0, 3.0, 5.0])
    pearson = 6.5 / math.sqrt(5 * 8.75)
    assert out == pytest.approx({"pearson": pearson, "spearman": 1.0, "combined": (pearson + 1.0) / 2})
    assert compute_metrics("stsb", [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0])["spearman"] == pytest.approx(-1.0)


def test_constant_regression_predictions_score_zero_not_nan():
    out = compute_metrics("stsb", np.full(5, 2.5), [0.0, 1.0, 2.0, 3.0, 4.0])
    assert out == {"pearson": 0.0, "spearman": 0.0, "combined": 0.0}


def test_random_case_matches_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(200, 2)), rng.integers(0, 2, 200)
    preds = logits.argmax(-1)
    assert compute_metrics("cola", logits, labels)["matthews_correlation"] == pytest.approx(
        matthews_corrcoef(labels, preds))
    assert compute_metrics("qqp", logits, labels) == pytest.approx(
        {"f1": f1_score(labels, preds), "accuracy": accuracy_score(labels, preds)})
    scores, gold = rng.normal(size=200), rng.uniform(0, 5, 200)
    noisy = gold + scores
    out = compute_metrics("stsb", torch.tensor(noisy, dtype=torch.float32).unsqueeze(1), gold)
    assert out["pearson"] == pytest.approx(pearsonr(noisy, gold)[0], abs=1e-5)
    assert out["spearman"] == pytest.approx(spearmanr(noisy, gold)[0], abs=1e-5)
    assert 0.3 < out["pearson"] < 1.0


@pytest.mark.parametrize("name", sorted(GLUE_TASKS))
def test_main_metric_is_a_returned_key(name):
    spec = GLUE_TASKS[name]
    n = 6
    labels = np.linspace(0, 5, n) if spec.is_regression else np.arange(n) % spec.num_labels
    preds = labels[::-1].copy() if spec.is_regression else np.eye(spec.num_labels)[labels]
    assert main_metric(name) in compute_metrics(name, preds, labels)


def test_main_metric_names():
    assert [main_metric(t) for t in ("sst2", "mrpc", "cola", "stsb")] == [
        "accuracy", "f1", "matthews_correlation", "combined"]
    assert main_metric(TaskSpec("synthetic", ("sentence",), 4, "accuracy")) == "accuracy"


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        compute_metrics("sst2", [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="neither logits"):
        compute_metrics("sst2", [0.2, 0.9], [0, 1])  # probabilities are not labels
    with pytest.raises(ValueError, match=r"\(n,\) or \(n, 1\)"):
        compute_metrics("stsb", np.zeros((3, 2)), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="Unknown task 'sst3'"):
        compute_metrics("sst3", [0], [0])
    with pytest.raises(ValueError, match="'bleu'"):
        main_metric(TaskSpec("odd", ("sentence",), 2, "bleu"))
