"""Mean pooling for an encoder's task head: read the masked mean of the last hidden states instead of [CLS].

Sentence encoders such as all-MiniLM-L6-v2 were trained to be read by their mean-pooled token states (that is what
their zero-shot cosine uses); a sequence-classification head reads the first token, which such a model never trained.
`use_mean_pooling(model)` makes the head read the mean without changing any weight or name: a forward hook on the
encoder replaces the first token's final state by the masked mean of all tokens' final states, so BERT's pooler and
RoBERTa's classification head, which both start from token 0, start from the mean. Parameters, adapters, saving and
export are unchanged; the hooks are not saved, so call it again on a reloaded model (`TrainConfig.pooling` records it).
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("cls", "mean")


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over real tokens: hidden (B, T, H), mask (B, T) of 0/1 or None (all real) → (B, H)."""
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def use_mean_pooling(model: nn.Module) -> nn.Module:
    """Make the task head of an encoder classifier (BERT, RoBERTa and kin) read mean-pooled states. In place.

    Raises TypeError for a model without an `.encoder` inside its base model (decoders pool their last token).
    """
    backbone = getattr(model, "base_model", model)
    encoder = getattr(backbone, "encoder", None)
    if encoder is None or backbone is model:
        raise TypeError(f"pooling='mean' needs an encoder classifier (BERT, RoBERTa, ...); {type(model).__name__} "
                        "has no base_model.encoder. Use pooling='cls'.")
    if getattr(model, "_loramini_mean_pooling", False):
        return model
    state: dict[str, torch.Tensor | None] = {"mask": None}

    def remember_mask(module, args, kwargs):
        state["mask"] = kwargs.get("attention_mask")

    def pool_into_first_token(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state  # (B, T, H)
        mean = masked_mean(hidden, state["mask"]).unsqueeze(1)  # (B, 1, H)
        pooled = torch.cat([mean, hidden[:, 1:]], dim=1)
        if isinstance(output, tuple):
            return (pooled, *output[1:])
        output.last_hidden_state = pooled
        return output

    backbone.register_forward_pre_hook(remember_mask, with_kwargs=True)
    encoder.register_forward_hook(pool_into_first_token)
    model._loramini_mean_pooling = True
    return model
