"""Model configs and builders that work offline.

`roberta_config("roberta-base")` gives the exact shapes of the published checkpoints without a
download (for counting on the meta device); `tiny_roberta()` builds a small random RoBERTa from a config
for tests, CI and smoke-mode notebooks; `load_model()` is the real `from_pretrained` path used on Colab;
`build_model()` picks one of these for `train`.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from .inject import is_head_param
from .tasks import TaskSpec

# Shapes of the published checkpoints (their config.json), so counting needs no network.
_ROBERTA_SHAPES = {
    "roberta-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "roberta-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
}


def roberta_config(name: str = "roberta-base", num_labels: int = 2, **overrides):
    """A `RobertaConfig` with the shapes of `name` ("roberta-base", "roberta-large" or "tiny")."""
    from transformers import RobertaConfig

    if name not in _ROBERTA_SHAPES:
        raise ValueError(f"roberta_config({name!r}): choose one of {sorted(_ROBERTA_SHAPES)}.")
    is_tiny = name == "tiny"
    settings = dict(
        vocab_size=1000 if is_tiny else 50265,
        max_position_embeddings=130 if is_tiny else 514,
        type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        num_labels=num_labels, **_ROBERTA_SHAPES[name],
    )
    settings.update(overrides)
    config = RobertaConfig(**settings)
    if not is_tiny:
        config._name_or_path = name
    return config


def tiny_roberta(num_labels: int = 2, seed: int = 0, **overrides):
    """A small random `RobertaForSequenceClassification` (≈ 0.2 M parameters), built offline."""
    from transformers import RobertaForSequenceClassification

    torch.manual_seed(seed)
    model = RobertaForSequenceClassification(roberta_config("tiny", num_labels=num_labels, **overrides))
    return model.eval()


def load_model(name_or_path, num_labels: int = 2, **kwargs):
    """`AutoModelForSequenceClassification.from_pretrained(name_or_path, num_labels=...)`, with one clear error.

    `name_or_path`: a hub name ("roberta-base", needs the network or the HF cache) or a local folder
    holding config.json and the weights. A fresh task head of `num_labels` outputs is added if needed.
    """
    import os

    from transformers import AutoModelForSequenceClassification

    local = os.path.isdir(name_or_path)
    if local:
        _refuse_pickled_weights(name_or_path)
    kwargs.setdefault("use_safetensors", True)  # weights from safetensors only: a pickle can run code when loaded
    try:  # a folder, or a hub name already in the cache: no network
        return AutoModelForSequenceClassification.from_pretrained(
            name_or_path, num_labels=num_labels, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        if local:
            raise ValueError(f"Could not load a model from folder {str(name_or_path)!r}: {err}. The folder needs "
                             f"config.json and the weights (model.safetensors or pytorch_model.bin).") from None
    if hub_unreachable_reason() is not None:
        raise ConnectionError(
            f"Model {str(name_or_path)!r} is not a local folder, not in the Hugging Face cache, and the hub is "
            f"unreachable. Offline options: pass a local model folder (with config.json), or use the offline "
            f"tiny model ('tiny' / loramini.tiny_roberta()).")
    return AutoModelForSequenceClassification.from_pretrained(name_or_path, num_labels=num_labels, **kwargs)


def _refuse_pickled_weights(folder) -> None:
    """ValueError when a model folder's only weights are pickles (pytorch_model.bin, ...): never unpickled here."""
    from pathlib import Path

    files = [p for p in Path(folder).iterdir() if p.is_file()]
    if not any(p.name.endswith(".safetensors") for p in files):
        pickles = sorted(p.name for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
        if pickles:
            raise ValueError(f"{str(Path(folder) / pickles[0])!r} is a pickle file, which can run code when it is "
                             f"loaded: loramini loads model weights only from safetensors, so it was not loaded. "
                             f"Convert it on a machine you trust (model.save_pretrained(folder) writes "
                             f"model.safetensors).")


def hub_unreachable_reason(timeout: float = 3.0) -> Optional[str]:
    """None if the Hugging Face hub answers, else why not: the one reachability check of the package.

    Offline mode (`HF_HUB_OFFLINE=1`, as huggingface_hub reads it) means unreachable without a probe.
    Otherwise one HTTP HEAD on the hub's endpoint through huggingface_hub's own HTTP client, so proxy
    settings (HTTPS_PROXY, ...) and HF_ENDPOINT apply as they do for downloads; any answer, even an error
    status, means reachable. One probe instead of the hub client's retries with back-off (~25 s offline).
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = constants.ENDPOINT
    try:
        get_session().head(endpoint, timeout=timeout, follow_redirects=False)
        return None
    except Exception as err:  # connection refused, DNS, proxy, TLS, timeout: all mean "not reachable now"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"{endpoint.split('://', 1)[-1].rstrip('/')} unreachable: {reason}"


def build_model(model_or_name, spec: TaskSpec, tokenizer, dataset, seed: int = 0, world=None):
    """(model, tokenizer): "tiny" → the offline tiny RoBERTa; a name/folder → `load_model`; a module as is.

    `world`: the `SyntheticTask` being trained on, if any: "tiny" then means the tiny encoder pretrained
    on its world (`tiny_pretrained`).
    """
    from .causal_lm import ensure_pad_token, is_causal_lm, load_causal_model
    from .synthetic import make_tokenizer, tiny_pretrained

    if is_causal_lm(model_or_name) and not (isinstance(model_or_name, nn.Module) and tokenizer is None):
        # A decoder trained as a causal LM on the task as text (loramini.causal_lm), with a pad token set.
        model, loaded = (model_or_name, None) if isinstance(model_or_name, nn.Module) else load_causal_model(model_or_name)
        return model, ensure_pad_token(tokenizer or loaded, model)
    if isinstance(model_or_name, nn.Module):
        if tokenizer is None:
            raise ValueError("train(model, ...) with a model object needs tokenizer=... (or a synthetic task).")
        return model_or_name, tokenizer
    if not isinstance(model_or_name, (str, os.PathLike)):
        raise TypeError(f"model={model_or_name!r}: give 'tiny', a model name/folder, or an nn.Module.")
    if str(model_or_name) == "tiny":
        if world is not None:  # the tiny encoder pretrained on the synthetic world
            return tiny_pretrained(world, spec.num_labels, seed=seed), tokenizer
        if tokenizer is None:  # a real task on a random tiny model: a word-level tokenizer from its train text
            texts = [t for f in spec.text_fields for t in dataset["train"][f]]
            tokenizer = make_tokenizer(texts, vocab_size=8000)
        return tiny_roberta(num_labels=spec.num_labels, seed=seed, vocab_size=len(tokenizer)), tokenizer
    model = load_model(model_or_name, num_labels=spec.num_labels)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_or_name)
    return model, tokenizer


def check_max_length(model: nn.Module, max_length: int) -> None:
    """Refuse a max_length the model's position embeddings cannot hold (else: an index error mid-training)."""
    cfg = getattr(model, "config", None)
    positions = getattr(cfg, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return
    # RoBERTa numbers positions from padding_idx + 1, so pad_token_id + 1 of them are never used.
    limit = positions - (cfg.pad_token_id + 1 if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "camembert")
                         and isinstance(getattr(cfg, "pad_token_id", None), int) else 0)
    if max_length > limit:
        raise ValueError(f"max_length={max_length} is more than this model's {limit} positions "
                         f"(max_position_embeddings={positions}): use --max-length {limit} or less.")


def start_at_label_mean(model: nn.Module, labels) -> None:
    """Regression: start the task head's output bias at the training labels' mean (its weights stay as drawn).

    Why: STS-B scores lie in 0–5 (mean ≈ 2.7). A head whose output starts near 0 spends its first hundreds of
    steps moving the output's mean, Adam's second-moment estimates remember those large early gradients, and the
    adapters chase the offset instead of the similarity signal: LoRA-Mini's training loss then stalls at the label
    variance (it predicts the mean). Starting at the mean removes the offset for every method alike.
    """
    outputs = [m for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and m.out_features == 1 and is_head_param(n + ".")]
    if outputs and outputs[-1].bias is not None:
        values = torch.as_tensor(list(labels), dtype=torch.float64)
        with torch.no_grad():
            outputs[-1].bias.fill_(float(values.mean()))
