"""loramini: LoRA-Mini, parameter-efficient fine-tuning with r·(a+b) trainable numbers per layer.

    ΔW = (α/r) · B_aux · B_train · A_train · A_aux     (aux frozen and seeded, inner two trained)
"""

from ._version import __version__  # noqa: F401

from .config import LoRAMiniConfig
from .counting import ParameterCounts, count_parameters, lora_params, loramini_params, predict_adapter_params
from .inject import PRESETS, find_targets, inject, loramini_layers, merge, merge_and_unload, unmerge
from .io import export_peft, load_adapter, save_adapter
from .layer import LoRAMiniLinear

__all__ = [
    "LoRAMiniConfig", "LoRAMiniLinear", "ParameterCounts", "PRESETS", "count_parameters", "export_peft",
    "find_targets", "inject", "load_adapter", "lora_params", "loramini_layers", "loramini_params", "merge",
    "merge_and_unload", "predict_adapter_params", "save_adapter", "unmerge",
]

# Models and fine-tuning, loaded on first use so that `import loramini` needs only torch, safetensors and numpy
# (`pip install loramini[train]` adds transformers, datasets, accelerate and peft). loramini.train.train is
# the loop itself: the module keeps its name, so the function is not re-exported here.
_LAZY = {"TrainConfig": "train_config", "TrainingDiverged": "train", "plot_history": "plots",
         "load_model": "models", "roberta_config": "models", "tiny_roberta": "models",
         "make_synthetic": "synthetic", "tiny_pretrained": "synthetic"}
__all__ += sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'loramini' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
