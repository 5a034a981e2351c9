"""Adapter files: `save_adapter`, `load_adapter`, and `export_peft` (a standard PEFT LoRA adapter).

A LoRA-Mini adapter folder holds:
    adapter_config.json         the LoRAMiniConfig + targets, shapes and an aux fingerprint
    adapter_model.safetensors   A_train / B_train per layer, the saved modules (and the aux factors
                                only with save_projection=True: by default they are regenerated)
Every file is written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import LoRAMiniConfig
from .inject import inject, loramini_layers
from .layer import make_aux, stable_seed

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "loramini"
PathLike = Union[str, os.PathLike]


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then rename onto `path`: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: PathLike, data: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")

    atomic_write(path, write)


def aux_fingerprint(A_aux: torch.Tensor, B_aux: torch.Tensor) -> list[float]:
    """A few numbers that identify a pair of aux factors (compared with a dtype-tolerant tolerance)."""
    out = []
    for t in (A_aux.detach().float().cpu(), B_aux.detach().float().cpu()):
        out += [t.sum().item(), t.norm().item(), t[0, 0].item(), t[-1, -1].item(), t[0, -1].item()]
    return [round(v, 6) for v in out]


def _model_state(model: nn.Module) -> tuple[LoRAMiniConfig, list[str]]:
    config = getattr(model, "loramini_config", None)
    if config is None or not any(True for _ in loramini_layers(model)):
        raise ValueError("This model has no LoRA-Mini adapter: call loramini.inject(model, config) first.")
    return config, list(model.loramini_modules_to_save)


def _base_name(model: nn.Module):
    return getattr(getattr(model, "config", None), "_name_or_path", None) or None


def _head_tensors(model: nn.Module, heads: list[str], prefix: str = "") -> dict[str, torch.Tensor]:
    tensors = {}
    for head in heads:
        for pname, param in model.get_submodule(head).named_parameters():
            tensors[f"{prefix}{head}.{pname}"] = param.detach().cpu().contiguous()
    return tensors


def save_adapter(model: nn.Module, path: PathLike) -> Path:
    """Write the adapter of an injected `model` to folder `path`; returns the folder.

    By default only A_train/B_train (and the saved modules) are stored: the aux factors come back from
    the seed on load, checked against the fingerprint kept in the config.
    """
    config, heads = _model_state(model)
    path = Path(path)
    tensors, targets, fingerprints = {}, {}, {}
    for name, layer in loramini_layers(model):
        tensors[f"{name}.A_train"] = layer.A_train.detach().cpu().contiguous()
        tensors[f"{name}.B_train"] = layer.B_train.detach().cpu().contiguous()
        if config.save_projection:
            tensors[f"{name}.A_aux"] = layer.A_aux.detach().cpu().contiguous()
            tensors[f"{name}.B_aux"] = layer.B_aux.detach().cpu().contiguous()
        targets[name] = [layer.in_features, layer.out_features]
        fingerprints[name] = aux_fingerprint(layer.A_aux, layer.B_aux)
    tensors.update(_head_tensors(model, heads))
    from . import __version__

    meta = dict(config.to_dict(), format=FORMAT, loramini_version=__version__, base_model_name_or_path=_base_name(model),
                targets=targets, modules_to_save=heads, aux_fingerprint=fingerprints)
    atomic_write(path / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    write_json(path / CONFIG_NAME, meta)
    return path


def _read_adapter(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    if not path.is_dir():
        raise FileNotFoundError(f"No adapter folder at {str(path)!r}: give the folder that save_adapter wrote.")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{str(path / name)!r} is missing: the adapter folder is incomplete. "
                                    f"Save it again with loramini.save_adapter(model, folder).")
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path / CONFIG_NAME)!r} is not valid JSON ({err}): the file is corrupt.") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(path / CONFIG_NAME)!r} is not a LoRA-Mini adapter (format={meta.get('format')!r}). "
                         f"For a PEFT LoRA adapter use peft.PeftModel.from_pretrained.")
    try:
        tensors = load_file(str(path / WEIGHTS_NAME))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{str(path / WEIGHTS_NAME)!r} is corrupt or truncated ({err}). Save the adapter again.") from None
    return meta, tensors


def load_adapter(base_model: nn.Module, path: PathLike) -> nn.Module:
    """Inject the adapter saved at `path` into `base_model` (in place) and load its weights.

    Everything is checked before the model is touched: files, shapes, targets, aux fingerprints.
    """
    path = Path(path)
    meta, tensors = _read_adapter(path)
    config = LoRAMiniConfig.from_dict(meta)
    targets: dict[str, list[int]] = meta["targets"]
    config.target_modules, config.modules_to_save = list(targets), list(meta["modules_to_save"])
    modules = dict(base_model.named_modules())
    for name, (d_in, d_out) in targets.items():
        module = modules.get(name)
        if not isinstance(module, nn.Linear):
            raise ValueError(f"The adapter at {str(path)!r} adapts {name!r}, which this base model "
                             f"({type(base_model).__name__}) has no nn.Linear for. Load it on the model it was trained on "
                             f"({meta.get('base_model_name_or_path') or 'see adapter_config.json'}).")
        if tuple(module.weight.shape) != (d_out, d_in):
            raise ValueError(f"Layer {name!r} is {module.in_features} -> {module.out_features} in this base model but "
                             f"{d_in} -> {d_out} in the adapter at {str(path)!r}: a different model size.")
        key_aux = f"{name}.A_aux"
        if key_aux not in tensors:  # regenerate from the seed and check it is what was trained with
            a_aux = make_aux(config.a, d_in, d_in, config.aux_init, stable_seed(config.projection_seed, name, "A"))
            b_aux = make_aux(d_out, config.b, config.b, config.aux_init, stable_seed(config.projection_seed, name, "B"))
            want = meta["aux_fingerprint"][name]
            dtype = module.weight.dtype
            got = aux_fingerprint(a_aux.to(dtype), b_aux.to(dtype))
            if not torch.allclose(torch.tensor(got), torch.tensor(want), rtol=2e-2, atol=2e-2):
                raise ValueError(f"The aux factors regenerated for {name!r} do not match the adapter's fingerprint "
                                 f"(seed {config.projection_seed}): it was saved by another torch RNG or loramini "
                                 f"version. Re-save it with save_projection=True to store the factors.")
    for head in config.modules_to_save:
        if head not in modules:
            raise ValueError(f"The adapter at {str(path)!r} saves module {head!r}, which this base model lacks.")
    head_tensors = _head_tensors(base_model, config.modules_to_save)
    for key, value in head_tensors.items():
        if key not in tensors:
            raise ValueError(f"{str(path / WEIGHTS_NAME)!r} lacks tensor {key!r}: the file is incomplete.")
        if tensors[key].shape != value.shape:
            raise ValueError(f"Saved module tensor {key!r} has shape {tuple(tensors[key].shape)}, the base model "
                             f"{tuple(value.shape)}: e.g. a different num_labels. Build the base with the same head.")
    inject(base_model, config)
    with torch.no_grad():
        for name, layer in loramini_layers(base_model):
            for factor in ("A_train", "B_train", "A_aux", "B_aux"):
                key = f"{name}.{factor}"
                if key in tensors:
                    target = getattr(layer, factor)
                    if tensors[key].shape != target.shape:
                        raise ValueError(f"Tensor {key!r} has shape {tuple(tensors[key].shape)}, expected "
                                         f"{tuple(target.shape)}: the file does not match its config.")
                    target.copy_(tensors[key])
                elif factor in ("A_train", "B_train"):
                    raise ValueError(f"{str(path / WEIGHTS_NAME)!r} lacks tensor {key!r}: the file is incomplete.")
        for key, param in _head_params(base_model, config.modules_to_save).items():
            param.copy_(tensors[key])
    return base_model


def _head_params(model: nn.Module, heads: list[str]) -> dict[str, nn.Parameter]:
    return {f"{h}.{n}": p for h in heads for n, p in model.get_submodule(h).named_parameters()}


def export_peft(model: nn.Module, path: PathLike) -> Path:
    """Write the adapter as a standard PEFT LoRA adapter (`peft.PeftModel.from_pretrained` loads it).

    ΔW = scale · (B_aux B_train)(A_train A_aux) is a rank-r LoRA with lora_B = B_aux B_train (d_out × r)
    and lora_A = A_train A_aux (r × d_in); PEFT's lora_alpha = alpha keeps the same scale.
    """
    from peft import LoraConfig

    config, heads = _model_state(model)
    path = Path(path)
    tensors = {}
    for name, layer in loramini_layers(model):
        with torch.no_grad():
            tensors[f"base_model.model.{name}.lora_A.weight"] = (layer.A_train.float() @ layer.A_aux.float()).cpu().contiguous()
            tensors[f"base_model.model.{name}.lora_B.weight"] = (layer.B_aux.float() @ layer.B_train.float()).cpu().contiguous()
    tensors.update(_head_tensors(model, heads, prefix="base_model.model."))
    is_seq_cls = type(model).__name__.endswith("ForSequenceClassification") and bool(heads)
    lora_config = LoraConfig(
        r=config.r, lora_alpha=config.alpha, use_rslora=config.use_rslora, lora_dropout=config.dropout,
        target_modules=[name for name, _ in loramini_layers(model)], modules_to_save=heads or None,
        task_type="SEQ_CLS" if is_seq_cls else None, base_model_name_or_path=_base_name(model),
    )
    data = lora_config.to_dict()
    data = {k: (sorted(v) if isinstance(v, set) else v) for k, v in data.items()}
    data["peft_type"], data["task_type"] = "LORA", ("SEQ_CLS" if is_seq_cls else None)
    atomic_write(path / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    write_json(path / CONFIG_NAME, data)
    return path
