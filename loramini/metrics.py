"""GLUE's official metrics, computed with scikit-learn and scipy.

    accuracy          SST-2, MNLI, QNLI, RTE, WNLI        {"accuracy"}
    f1                MRPC, QQP                           {"f1", "accuracy"}         (F1 of class 1)
    matthews          CoLA                                {"matthews_correlation"}
    pearson_spearman  STS-B                               {"pearson", "spearman", "combined"}  (combined = mean)

`main_metric(task)` names the one number to compare runs by; `evaluate` scores a model on every eval loader
of a run, `peak_memory_mb` says how much memory it took.
"""

from __future__ import annotations

import sys
import warnings
from typing import Optional, Union

import numpy as np

from .tasks import TaskSpec, get_task

TaskLike = Union[str, TaskSpec]

_MAIN = {"accuracy": "accuracy", "f1": "f1", "matthews": "matthews_correlation", "pearson_spearman": "combined"}


def _spec(task: TaskLike) -> TaskSpec:
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if spec.metric not in _MAIN:
        raise ValueError(f"Task {spec.name!r} has metric {spec.metric!r}; choose one of {sorted(_MAIN)}.")
    return spec


def main_metric(task: TaskLike) -> str:
    """The key of `compute_metrics(task, ...)` to compare runs by (higher is better)."""
    return _MAIN[_spec(task).metric]


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        x = x.detach().float().cpu() if x.dtype.is_floating_point else x.detach().cpu()
    return np.asarray(x)


def compute_metrics(task: TaskLike, predictions, labels) -> dict[str, float]:
    """GLUE's official metric(s) for `task` (a name like "cola", or a TaskSpec).

    predictions: classification: logits (n, num_labels), argmax taken, or labels (n,);
                 regression: scores (n,) or (n, 1).
    labels:      (n,) ints (classification) or floats (regression).
    Returns {metric name: float}. A correlation that is undefined (constant predictions) counts as 0.0,
    as scikit-learn does for the Matthews correlation, so runs stay comparable.
    """
    spec = _spec(task)
    preds, labels = _numpy(predictions), _numpy(labels).reshape(-1)
    if spec.is_regression:
        preds = preds.reshape(len(preds), -1)
        if preds.shape[1] != 1:
            raise ValueError(f"compute_metrics({spec.name!r}): regression wants predictions (n,) or (n, 1), "
                             f"got shape {preds.shape}.")
        preds = preds[:, 0]
    elif preds.ndim == 2:
        preds = preds.argmax(-1)
    elif preds.ndim != 1 or not np.array_equal(preds, np.round(preds)):
        raise ValueError(f"compute_metrics({spec.name!r}): predictions of shape {preds.shape} are neither logits "
                         f"(n, {spec.num_labels}) nor integer labels (n,).")
    if len(preds) != len(labels):
        raise ValueError(f"compute_metrics({spec.name!r}): {len(preds)} predictions but {len(labels)} labels.")
    if len(labels) == 0:
        raise ValueError(f"compute_metrics({spec.name!r}): no examples to score.")

    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    if spec.metric == "accuracy":
        return {"accuracy": float(accuracy_score(labels, preds))}
    if spec.metric == "f1":
        return {"f1": float(f1_score(labels, preds, zero_division=0.0)), "accuracy": float(accuracy_score(labels, preds))}
    if spec.metric == "matthews":
        return {"matthews_correlation": float(matthews_corrcoef(labels, preds))}

    from scipy.stats import pearsonr, spearmanr

    with warnings.catch_warnings():  # constant input: scipy warns and returns nan
        warnings.simplefilter("ignore")
        pearson = float(np.nan_to_num(pearsonr(preds, labels)[0])) if len(labels) > 1 else 0.0
        spearman = float(np.nan_to_num(spearmanr(preds, labels)[0])) if len(labels) > 1 else 0.0
    return {"pearson": pearson, "spearman": spearman, "combined": (pearson + spearman) / 2}


def evaluate(model, loaders: dict, spec: TaskSpec, accelerator) -> dict[str, dict[str, float]]:
    """{split: metrics} over every eval loader, gathered across processes."""
    import torch

    if callable(loaders):  # a causal LM: `causal_lm.CausalEval` scores its text splits (in one process)
        return loaders(accelerator.unwrap_model(model))
    model.eval()
    results = {}
    for split, loader in loaders.items():
        preds, labels = [], []
        for batch in loader:
            with torch.no_grad():
                logits = model(**batch).logits
            logits, y = accelerator.gather_for_metrics((logits.float(), batch["labels"]))
            preds.append(logits.cpu())
            labels.append(y.cpu())
        results[split] = compute_metrics(spec, torch.cat(preds), torch.cat(labels))
    model.train()
    return results


def peak_memory_mb(device: "torch.device") -> Optional[float]:
    """Peak GPU memory allocated by torch, or (CPU) the process's peak resident memory, in MiB.

    None where the platform does not say (Windows has no `resource` module)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource  # POSIX only: imported here so that `import loramini` works on Windows
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # macOS reports bytes, Linux KiB
