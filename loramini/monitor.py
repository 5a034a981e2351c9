"""Is training learning anything? The loss a model gets by predicting the label distribution alone.

A classifier that outputs the training labels' frequencies for every input scores the labels' entropy as its
cross-entropy; a regressor that outputs the labels' mean scores their variance as its squared error. That is the
*label prior* loss: a run whose training loss sits there after a few hundred steps has learned nothing about
the inputs. With LoRA-Mini this is the mark of a learning rate past the cliff (the adapters' updates are
too large for Adam to settle, and the head falls back to the prior): lower the rate.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Optional

STUCK_AFTER_STEPS = 200  # checked once, at this optimizer step: late enough for every method to have moved
STUCK_WINDOW = 50  # mean training loss over the last this many steps
STUCK_RATIO = 0.95  # "at the prior": within 5% of it


def label_prior_loss(labels: Iterable, num_labels: int) -> float:
    """Cross-entropy of predicting the label frequencies (classification), or the label variance (regression)."""
    values = list(labels)
    if not values:
        raise ValueError("label_prior_loss needs at least one label.")
    if num_labels == 1:
        mean = sum(float(v) for v in values) / len(values)
        return sum((float(v) - mean) ** 2 for v in values) / len(values)
    counts = Counter(int(v) for v in values)
    return -sum(c / len(values) * math.log(c / len(values)) for c in counts.values())


def stuck_message(losses: list[float], prior: float, step: int, lr: float,
                  window: int = STUCK_WINDOW, ratio: float = STUCK_RATIO) -> Optional[str]:
    """A one-line warning if the mean of the last `window` training losses is still ≥ ratio × prior, else None."""
    recent = losses[-window:]
    if not recent or prior <= 0:
        return None
    mean = sum(recent) / len(recent)
    if mean < ratio * prior:
        return None
    return (f"training loss {mean:.3f} is still at the label prior {prior:.3f} after {step} steps: the model predicts "
            f"the label distribution and ignores the inputs. Lower the learning rate (lr={lr:g}; try {lr / 3:.2g}).")
