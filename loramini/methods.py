"""What each fine-tuning method trains: adapters (ours or PEFT's), every weight, or the task head.

    "loramini"  LoRA-Mini adapters (`loramini.inject`) + the task head
    "lora"      PEFT's own LoRA (`peft.LoraConfig`, same targets, r and alpha) + the task head
    "vera"      PEFT's VeRA: frozen random A, B shared by all layers, trains d_out + r scales per layer (r: VeRA's rank)
    "tinylora"  PEFT's TinyLoRA: frozen SVD factors of W (rank r) and random r×r bases, trains r² numbers per layer
    "full"      every parameter
    "head"      the task head only (the classifier on a frozen encoder)

`apply_method` sets up what is trained, `param_groups` gives AdamW its two rates, `save_trained` writes the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from .config import LoRAMiniConfig
from .files import atomic_write
from .inject import HEAD_PATTERN, is_head_param
from .train_config import METHODS, PEFT_METHODS, TrainConfig
from .upstream import ignore_peft_deprecation

__all__ = ["METHODS", "PEFT_METHODS", "apply_method", "param_groups", "save_trained"]


def apply_method(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Make only what `config.method` trains require gradients (and add adapters); returns the model."""
    from .inject import default_head, find_targets, inject, model_task_type

    if config.method == "loramini":
        return inject(model, config.adapter_config())
    if config.method in PEFT_METHODS:
        import peft

        # Resolve the targets with LoRA-Mini's own rules, so every method adapts exactly the same layers
        # (a, b and r play no part in which layers match: r=a=b=1 only makes the config valid for any r).
        heads = default_head(model) if config.modules_to_save is None else config.modules_to_save
        targets = find_targets(model, LoRAMiniConfig(r=1, a=1, b=1, target_modules=config.target_modules), heads)
        settings = quietly(lambda: peft_config(config, targets, heads or None))
        if model_task_type(model) == "CAUSAL_LM":  # PeftModelForCausalLM: generate() and a CAUSAL_LM adapter
            settings.task_type = "CAUSAL_LM"
        return quietly(lambda: peft.get_peft_model(model, settings))
    for name, param in model.named_parameters():
        param.requires_grad_(config.method == "full" or is_head_param(name))
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"method='head': {type(model).__name__} has no task head named {HEAD_PATTERN.pattern}.")
    return model


def peft_config(config: TrainConfig, targets: list[str], modules_to_save):
    """The PEFT config of `config.method` (lora, vera or tinylora) on the `targets` layers."""
    import peft

    common = dict(target_modules=targets, modules_to_save=modules_to_save)
    if config.method == "lora":
        return peft.LoraConfig(r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.dropout,
                               use_rslora=config.use_rslora, **common)
    # VeRA and TinyLoRA regenerate their frozen projections from the seed unless save_projection.
    if config.method == "vera":  # shared frozen random A, B; trains d_out + r scales per layer
        return peft.VeraConfig(r=config.r, vera_dropout=config.dropout, save_projection=config.save_projection,
                               projection_prng_key=config.projection_seed, **common)
    # "tinylora": frozen SVD factors (rank r) of W and random r×r bases; trains r² numbers per layer
    return peft.TinyLoraConfig(r=config.r, u=config.r ** 2, tinylora_dropout=config.dropout,
                               save_projection=config.save_projection, projection_seed=config.projection_seed, **common)


def quietly(build: Callable[[], Any]) -> Any:
    """`build()` without PEFT's UserWarnings (projections regenerated from a seed, as LoRA-Mini's are, by choice)
    and without the FutureWarning PEFT's own `PeftModel.__init__` triggers by reading transformers' deprecated
    `is_gradient_checkpointing` property (peft 0.21 with transformers 5.x: nothing a caller can change)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ignore_peft_deprecation()
        return build()


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Two AdamW groups: the adapters (full: the encoder) at `lr`, the task head at `head_lr`."""
    body, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head if is_head_param(name) else body).append(param)
    config = config.resolved() if config.lr is None or config.head_lr is None else config
    groups = [{"params": body, "lr": config.lr, "name": "adapter"},
              {"params": head, "lr": config.head_lr, "name": "head"}]
    return [g for g in groups if g["params"]]


def save_trained(model: nn.Module, method: str, folder: Path, progress: bool = True) -> Path:
    """Write what the method trained: LoRA-Mini / PEFT adapter, the whole model, or the head. Returns the folder.

    `progress=False`: without transformers' "Writing model shards" bar (a run asked for no progress bars)."""
    from safetensors.torch import save_file

    from .io import save_adapter

    if method == "loramini":
        return save_adapter(model, folder)
    if method in PEFT_METHODS or method == "full":
        from transformers.utils import logging

        bars = logging.is_progress_bar_enabled()
        if not progress:
            logging.disable_progress_bar()
        try:
            model.save_pretrained(folder)
        finally:
            if bars:
                logging.enable_progress_bar()
        return folder
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    atomic_write(folder / "head.safetensors", lambda tmp: save_file(tensors, tmp))
    return folder
