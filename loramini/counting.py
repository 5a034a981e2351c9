"""Exact parameter counts: counted on a live model, and predicted from closed forms.

    counts = loramini.count_parameters(model)
    counts.adapter, counts.head, counts.frozen_aux, counts.base, counts.trainable, counts.total
    print(counts)   # PEFT-style one-line summary
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from .config import LoRAMiniConfig
from .inject import find_targets, resolve_modules_to_save
from .layer import LoRAMiniLinear, layer_shape


def lora_params(d_in: int, d_out: int, r: int) -> int:
    """Trainable numbers of one LoRA adapter: A (r × d_in) + B (d_out × r) = r·(d_in + d_out)."""
    return r * (d_in + d_out)


def loramini_params(a: int, b: int, r: int) -> int:
    """Trainable numbers of one LoRA-Mini adapter: A_train (r × a) + B_train (b × r) = r·(a + b)."""
    return r * (a + b)


@dataclass(frozen=True)
class ParameterCounts:
    """Counts of a model's numbers, split by role.

    adapter:    trainable adapter numbers (LoRA-Mini A_train/B_train, or PEFT `lora_` weights)
    head:       other trainable numbers (modules_to_save, e.g. the classifier)
    frozen_aux: LoRA-Mini's frozen aux buffers (regenerated from the seed; not parameters; a pair shared
                by several layers, `share_aux`, counts once)
    base:       frozen parameters of the base model
    trainable:  adapter + head
    total:      every parameter (base + trainable); aux buffers are not parameters
    """

    adapter: int
    head: int
    frozen_aux: int
    base: int

    @property
    def trainable(self) -> int:
        return self.adapter + self.head

    @property
    def total(self) -> int:
        return self.base + self.trainable

    def __str__(self) -> str:
        pct = 100.0 * self.trainable / self.total if self.total else 0.0
        return (f"trainable params: {self.trainable:,} (adapter {self.adapter:,} + head {self.head:,}) "
                f"|| all params: {self.total:,} || trainable%: {pct:.4f} || frozen aux: {self.frozen_aux:,}")

    def as_dict(self) -> dict:
        return {"adapter": self.adapter, "head": self.head, "frozen_aux": self.frozen_aux, "base": self.base,
                "trainable": self.trainable, "total": self.total}


def _is_adapter_param(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf in ("A_train", "B_train") or any(f"{kind}_" in name for kind in (".lora", ".vera_lambda", ".tinylora"))


def count_parameters(model: nn.Module) -> ParameterCounts:
    """Count `model`'s numbers by role. Works for LoRA-Mini, PEFT LoRA and plain models (meta too)."""
    adapter = head = base = 0
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if id(param) in seen:  # tied weights count once
            continue
        seen.add(id(param))
        if not param.requires_grad:
            base += param.numel()
        elif _is_adapter_param(name):
            adapter += param.numel()
        else:
            head += param.numel()
    pairs = {id(m.aux): m.aux for m in model.modules() if isinstance(m, LoRAMiniLinear)}  # shared: once
    aux = sum(p.A_aux.numel() + p.B_aux.numel() for p in pairs.values())
    return ParameterCounts(adapter=adapter, head=head, frozen_aux=aux, base=base)


def predict_adapter_params(
    model_or_config: Union[nn.Module, "transformers.PretrainedConfig"],  # noqa: F821
    config: LoRAMiniConfig,
    method: str = "loramini",
) -> int:
    """Predict the adapter's trainable count from shapes alone, with the closed forms.

    `model_or_config` may be a model or a Hugging Face config; a config is instantiated on the meta
    device (no memory, no download). `method`: "loramini" → Σ r·(a+b); "lora" → Σ r·(d_in+d_out).
    """
    if method not in ("loramini", "lora"):
        raise ValueError(f"method={method!r}: choose 'loramini' or 'lora'.")
    model = model_or_config
    if isinstance(model, nn.Module) and any(isinstance(m, LoRAMiniLinear) for m in model.modules()):
        if not hasattr(model, "config"):
            raise ValueError("predict_adapter_params needs the model before inject (or its Hugging Face config): "
                             "this one already has LoRA-Mini layers.")
        model = model.config  # already injected: predict from its config's shapes instead
    if not isinstance(model, nn.Module):
        from transformers import AutoModelForSequenceClassification

        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(model)
    modules = dict(model.named_modules())
    total = 0
    for name in find_targets(model, config, resolve_modules_to_save(model, config)):
        d_in, d_out = layer_shape(modules[name])
        total += loramini_params(config.a, config.b, config.r) if method == "loramini" else lora_params(d_in, d_out, config.r)
    return total
