"""Plots of training runs (needs matplotlib: `pip install loramini[lab]`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch


def plot_history(*histories: Union[dict, str, Path], labels: Optional[list[str]] = None, smooth: int = 10):
    """Training loss per step (moving average over `smooth` steps) and the main metric per epoch.

    Pass one or more histories (dicts from `train`, or history.json paths); returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    loaded = [json.loads(Path(h).read_text()) if isinstance(h, (str, Path)) else h for h in histories]
    labels = labels or [h.get("method", f"run {i}") for i, h in enumerate(loaded)]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    for history, label in zip(loaded, labels):
        losses = torch.tensor([s["loss"] for s in history["steps"]])
        k = max(1, min(smooth, len(losses)))
        smoothed = losses.unfold(0, k, 1).mean(1) if len(losses) >= k else losses
        ax_loss.plot(range(k, k + len(smoothed)), smoothed.numpy(), label=label)
        name = history.get("main_metric", "accuracy")
        split = next(iter(history["epochs"][0]["eval"])) if history["epochs"] else None
        if split:
            ax_metric.plot([e["epoch"] + 1 for e in history["epochs"]],
                           [e["eval"][split][name] for e in history["epochs"]], marker="o", label=label)
            ax_metric.set_ylabel(f"{split} {name}")
    ax_loss.set(xlabel="optimizer step", ylabel="training loss", title="loss")
    ax_metric.set(xlabel="epoch", title="evaluation")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
