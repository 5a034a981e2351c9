"""Baselines that train no encoder weight: a linear probe on frozen features, and zero-shot cosine similarity.

    feats = frozen_features(model, tokenizer, dataset, spec)              # {"mean": (N, H), "cls": (N, H)} per split
    linear_probe(feats, labels, spec)                                      # scikit-learn, regularisation by CV
    zero_shot_cosine(model, tokenizer, dataset["validation"], spec)        # pair tasks: cos(mean(s1), mean(s2))

A fine-tuning method earns its keep only where it beats these: the probe shows what the frozen encoder already
knows (its features, read out linearly), and for a sentence-embedding model on a similarity task the cosine of its
mean-pooled embeddings is a strong answer that needs no training at all.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .tasks import TaskSpec


@torch.no_grad()
def _encode(model, tokenizer, first: list[str], second: Optional[list[str]], max_length: int, batch_size: int):
    """Yield (last hidden states (B, T, H), attention mask (B, T)) for batches of texts (or text pairs)."""
    encoder = getattr(model, "base_model", model)  # BertModel / RobertaModel under a *ForSequenceClassification
    encoder.eval()
    for start in range(0, len(first), batch_size):
        texts = first[start:start + batch_size]
        pairs = second[start:start + batch_size] if second is not None else None
        batch = tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        batch = {k: v.to(next(encoder.parameters()).device) for k, v in batch.items()}
        hidden = encoder(**batch).last_hidden_state.float()
        yield hidden, batch["attention_mask"].unsqueeze(-1).float()


def _pool(hidden: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean over real tokens (B, H) and the first token's state ([CLS] / <s>) (B, H)."""
    return {"mean": (hidden * mask).sum(1) / mask.sum(1).clamp(min=1), "cls": hidden[:, 0]}


def frozen_features(model, tokenizer, rows, spec: TaskSpec, max_length: int = 128,
                    batch_size: int = 64) -> dict[str, np.ndarray]:
    """{"mean": (N, H), "cls": (N, H)}: the frozen encoder's pooled last layer for each row (pairs encoded together)."""
    fields = spec.text_fields
    first = list(rows[fields[0]])
    second = list(rows[fields[1]]) if spec.is_pair else None
    out: dict[str, list] = {"mean": [], "cls": []}
    for hidden, mask in _encode(model, tokenizer, first, second, max_length, batch_size):
        for name, value in _pool(hidden, mask).items():
            out[name].append(value.cpu())
    return {name: torch.cat(parts).numpy() for name, parts in out.items()}


def linear_probe(train_x: np.ndarray, train_y, eval_x: np.ndarray, eval_y, spec: TaskSpec, seed: int = 0) -> dict:
    """Fit a linear read-out of frozen features on train, score it on eval with the task's official metric.

    Classification: standardised features → `LogisticRegressionCV` (C chosen by 5-fold CV on train only);
    regression: `RidgeCV` (alpha by efficient leave-one-out on train). Returns {"metric", "main_metric", "params"}.
    """
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .metrics import compute_metrics, main_metric

    if spec.is_regression:
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        model.fit(train_x, np.asarray(train_y, dtype=float))
        logits = torch.tensor(model.predict(eval_x), dtype=torch.float32).unsqueeze(-1)
    else:
        model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 2, 7), cv=5, max_iter=2000,
                                                                     random_state=seed))
        model.fit(train_x, np.asarray(train_y))
        logits = torch.tensor(model.decision_function(eval_x), dtype=torch.float32)
        if logits.ndim == 1:  # binary: one score → two logits
            logits = torch.stack([-logits / 2, logits / 2], dim=-1)
    metrics = compute_metrics(spec, logits, torch.tensor(np.asarray(eval_y)))
    n_params = train_x.shape[1] * (1 if spec.is_regression or spec.num_labels == 2 else spec.num_labels) + 1
    name = main_metric(spec)
    return {"metric": metrics[name], "main_metric": name, "params": n_params}


def zero_shot_cosine(model, tokenizer, rows, spec: TaskSpec, max_length: int = 128, batch_size: int = 64) -> dict:
    """Pair regression without training: cos(mean-pooled s1, mean-pooled s2) against the labels (Pearson/Spearman).

    Each sentence is encoded on its own, as a sentence-embedding model is used. Returns {"metric", "main_metric"}.
    """
    from .metrics import compute_metrics, main_metric

    if not (spec.is_pair and spec.is_regression):
        raise ValueError(f"zero_shot_cosine scores sentence-pair regression (like STS-B); {spec.name!r} is not one.")
    embeddings = []
    for field in spec.text_fields:
        parts = [_pool(h, m)["mean"] for h, m in _encode(model, tokenizer, list(rows[field]), None, max_length,
                                                           batch_size)]
        embeddings.append(torch.nn.functional.normalize(torch.cat(parts), dim=-1))
    cosine = (embeddings[0] * embeddings[1]).sum(-1, keepdim=True)
    metrics = compute_metrics(spec, cosine, torch.tensor(np.asarray(rows["label"], dtype=np.float32)))
    name = main_metric(spec)
    return {"metric": metrics[name], "main_metric": name}
