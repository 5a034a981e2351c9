"""Model configs and builders that work offline.

`roberta_config("roberta-base")` gives the exact shapes of the published checkpoints without a
download (for counting on the meta device); `tiny_roberta()` builds a small random RoBERTa from a config
for tests, CI and smoke-mode notebooks; `load_model()` is the real `from_pretrained` path used on Colab.
"""

from __future__ import annotations

import torch

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
