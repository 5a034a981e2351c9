"""loramini: LoRA-Mini, parameter-efficient fine-tuning with r·(a+b) trainable numbers per layer.

    ΔW = (α/r) · B_aux · B_train · A_train · A_aux     (aux frozen and seeded, inner two trained)
"""

from ._version import __version__  # noqa: F401

from .config import LoRAMiniConfig
from .counting import ParameterCounts, count_parameters, lora_params, loramini_params, predict_adapter_params
from .inject import PRESETS, find_targets, inject, loramini_layers, merge, merge_and_unload, unmerge
from .io import export_peft, load_adapter, save_adapter
from .layer import LoRAMiniLinear
from .models import roberta_config, tiny_roberta

__all__ = [
    "LoRAMiniConfig", "LoRAMiniLinear", "ParameterCounts", "PRESETS", "count_parameters", "export_peft",
    "find_targets", "inject", "load_adapter", "lora_params", "loramini_layers", "loramini_params", "merge",
    "merge_and_unload", "predict_adapter_params", "roberta_config", "save_adapter", "tiny_roberta", "unmerge",
]

# Fine-tuning (loramini.train.train is the loop itself; the module keeps its name, so it is not re-exported).
from .models import load_model  # noqa: E402
from .synthetic import make_synthetic, tiny_pretrained  # noqa: E402
from .train import TrainConfig, TrainingDiverged, plot_history  # noqa: E402

__all__ += ["TrainConfig", "TrainingDiverged", "load_model", "make_synthetic", "plot_history", "tiny_pretrained"]
