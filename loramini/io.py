"""Adapter files: `save_adapter`, `load_adapter`, and `export_peft` (a standard PEFT LoRA adapter).

A LoRA-Mini adapter folder holds:
    adapter_config.json         the LoRAMiniConfig + targets, shapes and an aux fingerprint
    adapter_model.safetensors   A_train / B_train per layer, the saved modules (and the aux factors
                                only with save_projection=True: by default they are regenerated)
Every file is written to a temporary name and renamed, so a crash never leaves half a file, and an
adapter folder is written whole next to the old one and swapped in (`save_adapter`), so a crash never
leaves new weights beside an old config: the next save or load finishes or undoes the swap.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import LoRAMiniConfig
from .files import atomic_write, write_json  # noqa: F401  (generic helpers, re-exported for old imports)
from .inject import inject, loramini_layers, model_task_type, remove_adapters
from .layer import aux_name, fan_in_fan_out, is_adaptable, layer_aux, layer_shape
from .upstream import ignore_peft_deprecation

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "loramini"
PathLike = Union[str, os.PathLike]


# ---------------------------------------------------------------------------------------------------
# Whole-folder writes: build the new folder beside the old one, then swap it in.


def _staging(path: Path) -> Path:
    return path.parent / f".{path.name}.saving"


def _replaced(path: Path) -> Path:
    return path.parent / f".{path.name}.replaced"


def _is_complete(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def _adopt_other_files(old: Path, new: Path) -> None:
    """Move what else the old folder held (a README, the user's notes) into the new one, then drop the old."""
    for entry in old.iterdir():
        if not (new / entry.name).exists():
            os.replace(entry, new / entry.name)
    shutil.rmtree(old)


def finish_interrupted_save(path: PathLike) -> None:
    """Complete (or undo) a `save_adapter` that was killed half-way, so `path` holds one whole adapter.

    The save writes `.NAME.saving/` in full, renames the old `NAME/` to `.NAME.replaced/`, renames the
    new one to `NAME/`, then deletes the old. Whatever step a crash hit, this brings back a consistent state:
    the new adapter if it was complete, else the old one.
    """
    path = Path(path).absolute()
    staged, old = _staging(path), _replaced(path)
    if not path.exists():
        if staged.is_dir() and _is_complete(staged):
            os.replace(staged, path)
        elif old.is_dir():
            os.replace(old, path)
    if path.is_dir() and old.is_dir():
        _adopt_other_files(old, path)
    if path.is_dir() and staged.is_dir():  # killed before the swap began: the old adapter stands
        shutil.rmtree(staged)


def aux_fingerprint(A_aux: torch.Tensor, B_aux: torch.Tensor) -> list[float]:
    """A few numbers that identify a pair of aux factors (compared with a dtype-tolerant tolerance)."""
    out = []
    for t in (A_aux.detach().float().cpu(), B_aux.detach().float().cpu()):
        out += [t.sum().item(), t.norm().item(), t[0, 0].item(), t[-1, -1].item(), t[0, -1].item()]
    return [round(v, 6) for v in out]


def write_adapter_folder(path: PathLike, write: Callable[[Path], None]) -> None:
    """Let `write(folder)` fill a fresh folder with WEIGHTS_NAME + CONFIG_NAME (and anything else), then
    publish it at `path` as one unit (see `finish_interrupted_save`)."""
    target = Path(path).absolute()
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{str(path)!r} is a file, but an adapter is a folder: choose another path.")
    finish_interrupted_save(target)
    staged, old = _staging(target), _replaced(target)
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    try:
        write(staged)
        if not _is_complete(staged):
            raise RuntimeError(f"internal error: {staged} lacks {CONFIG_NAME} or {WEIGHTS_NAME} after writing.")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)  # the one step that publishes the new adapter
    if old.exists():
        _adopt_other_files(old, target)


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
        if config.save_projection:  # under the aux name: a pair shared by several layers (share_aux) once
            tensors[f"{layer.aux_name}.A_aux"] = layer.A_aux.detach().cpu().contiguous()
            tensors[f"{layer.aux_name}.B_aux"] = layer.B_aux.detach().cpu().contiguous()
        targets[name] = [layer.in_features, layer.out_features]
        fingerprints[name] = aux_fingerprint(layer.A_aux, layer.B_aux)
    tensors.update(_head_tensors(model, heads))
    from ._version import __version__

    meta = dict(config.to_dict(), format=FORMAT, loramini_version=__version__, base_model_name_or_path=_base_name(model),
                targets=targets, modules_to_save=heads, aux_fingerprint=fingerprints)
    meta["alpha"] = config.resolved_alpha  # the number in use (alpha=None means 2·r), explicit in the file
    bad = [k for k, t in tensors.items() if not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"Refusing to save an adapter with non-finite values (in {bad[:3]}): training diverged. "
                         f"Retrain with a lower learning rate or alpha.")
    def write(folder: Path) -> None:
        atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
        write_json(folder / CONFIG_NAME, meta)

    write_adapter_folder(path, write)
    return path


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # never unpickled: safetensors only
_REQUIRED_KEYS = ("r", "a", "b", "alpha", "projection_seed", "aux_init", "targets", "modules_to_save")


def _read_adapter(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    try:
        finish_interrupted_save(path)
    except OSError:  # e.g. a read-only folder: load what is there
        pass
    if not path.is_dir():
        raise FileNotFoundError(f"No adapter folder at {str(path)!r}: give the folder that save_adapter wrote.")
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles and not (path / WEIGHTS_NAME).is_file():
        raise ValueError(f"{str(path / pickles[0])!r} is a pickle file, which can run code when it is loaded: loramini "
                         f"reads adapter weights only from safetensors ({WEIGHTS_NAME}), so it was not loaded. Save "
                         f"the adapter with loramini.save_adapter (or convert the file on a machine you trust).")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{str(path / name)!r} is missing: the adapter folder is incomplete. "
                                    f"Save it again with loramini.save_adapter(model, folder).")
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path / CONFIG_NAME)!r} is not valid JSON ({err}): the file is corrupt.") from None
    except RecursionError:
        raise ValueError(f"{str(path / CONFIG_NAME)!r} is nested too deeply to be an adapter config: the file is "
                         f"corrupt or not one save_adapter wrote.") from None
    where = str(path / CONFIG_NAME)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{where!r} is not a LoRA-Mini adapter (format={fmt!r}). "
                         f"For a PEFT LoRA adapter use peft.PeftModel.from_pretrained.")
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{where!r} lacks field(s) {missing}: the file was edited or is incomplete. "
                         f"Save the adapter again with loramini.save_adapter.")
    targets = meta["targets"]
    if not isinstance(targets, dict) or not targets or not all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v)
            for v in targets.values()):
        raise ValueError(f"{where!r}: field 'targets' must map each adapted layer to [d_in, d_out], got {targets!r}.")
    if not isinstance(meta["modules_to_save"], list):
        raise ValueError(f"{where!r}: field 'modules_to_save' must be a list of module names, "
                         f"got {meta['modules_to_save']!r}.")
    try:
        tensors = load_file(str(path / WEIGHTS_NAME))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{str(path / WEIGHTS_NAME)!r} is corrupt or truncated ({err}). Save the adapter again.") from None
    wrong = [f"{k} ({t.dtype})" for k, t in tensors.items() if not t.is_floating_point()]
    if wrong:
        raise ValueError(f"{str(path / WEIGHTS_NAME)!r} holds non-float tensors {wrong[:3]}: an adapter stores "
                         f"floating-point weights only. The file was not written by save_adapter.")
    bad = [k for k, t in tensors.items() if not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{str(path / WEIGHTS_NAME)!r} holds NaN/Inf in {bad[:3]}: the run that saved it diverged. "
                         f"Retrain with a lower learning rate or alpha.")
    return meta, tensors


def load_adapter(base_model: nn.Module, path: PathLike) -> nn.Module:
    """Inject the adapter saved at `path` into `base_model` (in place) and load its weights.

    Everything is checked before the model is touched: files, fields, dtypes, shapes, targets, aux
    fingerprints, the size of each update; and if anything still fails while loading, the model is put back
    exactly as it was. A model that already carries an adapter is refused: unload it or use a fresh base.
    """
    path = Path(path)
    if hasattr(base_model, "loramini_config") or any(True for _ in loramini_layers(base_model)):
        raise ValueError(f"This model already has an adapter; unload it (loramini.merge_and_unload(model) keeps its "
                         f"update, loramini.remove_adapters(model) drops it) or use a fresh base model before "
                         f"loading {str(path)!r}.")
    meta, tensors = _read_adapter(path)
    try:
        config = LoRAMiniConfig.from_dict(meta)
        targets: dict[str, list[int]] = meta["targets"]
        config.target_modules, config.modules_to_save = list(targets), list(meta["modules_to_save"])
        config.__post_init__()  # validate the edited fields too
    except (ValueError, TypeError) as err:
        raise ValueError(f"{str(path / CONFIG_NAME)!r}: {err}") from None
    modules = dict(base_model.named_modules())
    for name, (d_in, d_out) in targets.items():
        _check_layer(path, meta, config, tensors, base_model, modules.get(name), name, d_in, d_out)
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
    # Past every check: change the model, but keep what is needed to put it back if anything still fails.
    flags = {p: p.requires_grad for p in base_model.parameters()}
    head_params = _head_params(base_model, config.modules_to_save)
    head_backup = {k: p.detach().clone() for k, p in head_params.items()}
    try:
        inject(base_model, config)
        with torch.no_grad():
            for name, layer in loramini_layers(base_model):
                for factor in ("A_train", "B_train", "A_aux", "B_aux"):
                    key = f"{layer.aux_name if 'aux' in factor else name}.{factor}"
                    if key in tensors:
                        getattr(layer, factor).copy_(tensors[key])
            for key, param in head_params.items():
                param.copy_(tensors[key])
    except BaseException:
        remove_adapters(base_model, flags)  # the model had no adapter before (checked above): remove them all
        with torch.no_grad():
            for key, param in head_params.items():
                param.copy_(head_backup[key])
        raise
    return base_model


# An update whose norm exceeds sqrt(float32 max) makes the next layer norm's variance (a sum of squares) overflow:
# the logits become inf/NaN. A trained adapter's update is many orders of magnitude below this.
_MAX_UPDATE_NORM = torch.finfo(torch.float32).max ** 0.5


def _check_layer(path: Path, meta: dict, config: LoRAMiniConfig, tensors: dict[str, torch.Tensor],
                 base_model: nn.Module, module, name: str, d_in: int, d_out: int) -> None:
    """One adapted layer of the file against the base model: an nn.Linear of the right shape, tensors of the
    config's shapes, aux factors that match their fingerprint, and an update of finite size."""
    weights = str(path / WEIGHTS_NAME)
    if module is None or not is_adaptable(module):
        raise ValueError(f"The adapter at {str(path)!r} adapts {name!r}, which this base model "
                         f"({type(base_model).__name__}) has no nn.Linear for. Load it on the model it was trained on "
                         f"({meta.get('base_model_name_or_path') or 'see adapter_config.json'}).")
    if layer_shape(module) != (d_in, d_out):
        raise ValueError(f"Layer {name!r} is {' -> '.join(map(str, layer_shape(module)))} in this base model but "
                         f"{d_in} -> {d_out} in the adapter at {str(path)!r}: a different model size.")
    aux_key = aux_name(name, d_in, d_out, config.share_aux)  # shared aux factors are stored once per shape
    expected = {"A_train": (config.r, config.a), "B_train": (config.b, config.r),
                "A_aux": (config.a, d_in), "B_aux": (d_out, config.b)}
    for factor, shape in expected.items():
        key = f"{aux_key if 'aux' in factor else name}.{factor}"
        if key not in tensors:
            if factor in ("A_train", "B_train"):
                raise ValueError(f"{weights!r} lacks tensor {key!r}: the file is incomplete.")
            continue
        if tuple(tensors[key].shape) != shape:
            raise ValueError(f"Tensor {key!r} in {weights!r} has shape {tuple(tensors[key].shape)}, but the "
                             f"config (r={config.r}, a={config.a}, b={config.b}) needs {shape}: the file does "
                             f"not match its config.")
    if (f"{aux_key}.A_aux" in tensors) != (f"{aux_key}.B_aux" in tensors):
        raise ValueError(f"{weights!r} stores only one of the aux factors of {name!r}: the file is incomplete.")
    if f"{aux_key}.A_aux" in tensors:
        a_aux, b_aux = tensors[f"{aux_key}.A_aux"], tensors[f"{aux_key}.B_aux"]
    else:  # regenerate from the seed and check it is what was trained with
        a_aux, b_aux = _regenerated_aux(path, meta, config, module, name, aux_key, d_in, d_out)
    with torch.no_grad():  # ||ΔW|| = scale · ||(B_aux B_train)(A_train A_aux)||, in float64 (no overflow on the way)
        update = (b_aux.double() @ tensors[f"{name}.B_train"].double()) @ \
                 (tensors[f"{name}.A_train"].double() @ a_aux.double())
        norm = config.scale * float(torch.linalg.matrix_norm(update))
    if not norm < _MAX_UPDATE_NORM:
        raise ValueError(f"{str(path / CONFIG_NAME)!r}: alpha={config.resolved_alpha:g} (scale {config.scale:g}) makes "
                         f"the update of {name!r} {norm:.3g} in norm (its base weight's is "
                         f"{float(module.weight.detach().float().norm()):.3g}), so the logits would be inf/NaN. "
                         f"Use the alpha the adapter was trained with.")


def _regenerated_aux(path: Path, meta: dict, config: LoRAMiniConfig, module: nn.Module, name: str, aux_key: str,
                     d_in: int, d_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The aux factors of `name` drawn again from the seed, checked against the fingerprint saved with them."""
    fingerprints = meta.get("aux_fingerprint")
    if not isinstance(fingerprints, dict) or not isinstance(fingerprints.get(name), list):
        raise ValueError(f"{str(path / CONFIG_NAME)!r} lacks field 'aux_fingerprint' for {name!r} (and the "
                         f"file stores no aux factors): save the adapter again.")
    a_aux = layer_aux("A", d_in, d_out, config.a, config.b, config.aux_init, config.projection_seed, aux_key)
    b_aux = layer_aux("B", d_in, d_out, config.a, config.b, config.aux_init, config.projection_seed, aux_key)
    want = fingerprints[name]
    dtype = module.weight.dtype
    got = aux_fingerprint(a_aux.to(dtype), b_aux.to(dtype))
    if len(want) != len(got) or not all(isinstance(v, (int, float)) for v in want) or not torch.allclose(
            torch.tensor(got), torch.tensor(want, dtype=torch.float32), rtol=2e-2, atol=2e-2):
        raise ValueError(f"The aux factors regenerated for {name!r} do not match the adapter's fingerprint "
                         f"(seed {config.projection_seed}): the file's projection_seed or aux_init was edited, or "
                         f"it was saved by another torch RNG or loramini version. Re-save it with "
                         f"save_projection=True to store the factors.")
    return a_aux, b_aux


def _head_params(model: nn.Module, heads: list[str]) -> dict[str, nn.Parameter]:
    return {f"{h}.{n}": p for h in heads for n, p in model.get_submodule(h).named_parameters()}


def export_peft(model: nn.Module, path: PathLike) -> Path:
    """Write the adapter as a standard PEFT LoRA adapter (`peft.PeftModel.from_pretrained` loads it).

    ΔW = scale · (B_aux B_train)(A_train A_aux) is a rank-r LoRA with lora_B = B_aux B_train (d_out × r)
    and lora_A = A_train A_aux (r × d_in); PEFT's lora_alpha = alpha keeps the same scale. GPT-2's Conv1D
    layers export with `fan_in_fan_out=True` (the factors are the same; PEFT transposes when it merges).
    The task type follows the model (`model_task_type`): SEQ_CLS for a classifier with a trained head,
    CAUSAL_LM for a causal LM (loadable by `PeftModel.from_pretrained` and `generate`), else none.

    PEFT writes the files itself: a copy of the base model (the original `nn.Linear` layers, so memory for
    one more model) goes through `peft.get_peft_model`, gets these factors, and `save_pretrained` saves it.
    """
    import copy
    import warnings

    from peft import LoraConfig, get_peft_model

    config, heads = _model_state(model)
    path = Path(path)
    factors = {}
    with torch.no_grad():
        for name, layer in loramini_layers(model):
            factors[name] = (layer.A_train.float() @ layer.A_aux.float(), layer.B_aux.float() @ layer.B_train.float())
    bad = [n for n, (a, b) in factors.items() if not (torch.isfinite(a).all() and torch.isfinite(b).all())]
    if bad:
        raise ValueError(f"Refusing to export an adapter with non-finite values (in {bad[:3]}): training diverged.")
    transposed = {fan_in_fan_out(layer.base) for _, layer in loramini_layers(model)}
    if len(transposed) > 1:
        raise ValueError("export_peft: this adapter wraps both nn.Linear and Conv1D layers, and a PEFT LoRA config has "
                         "one fan_in_fan_out for all: export fails. Adapt layers of one kind (e.g. a preset).")
    task_type = model_task_type(model)
    if task_type == "SEQ_CLS" and not heads:  # PEFT's SEQ_CLS would add the head to modules_to_save
        task_type = None
    lora_config = LoraConfig(
        r=config.r, lora_alpha=config.resolved_alpha, use_rslora=config.use_rslora, lora_dropout=config.dropout,
        target_modules=list(factors), modules_to_save=heads or None, task_type=task_type,
        fan_in_fan_out=transposed == {True},
    )
    plain = remove_adapters(copy.deepcopy(model))  # the base model (trained head included), LoRA-Mini removed
    with warnings.catch_warnings():  # PEFT calls a transformers API that transformers deprecates: not ours to fix
        ignore_peft_deprecation()
        peft_model = get_peft_model(plain, lora_config)
    with torch.no_grad():
        for name, (a_full, b_full) in factors.items():
            module = peft_model.base_model.model.get_submodule(name)
            module.lora_A["default"].weight.copy_(a_full)
            module.lora_B["default"].weight.copy_(b_full)
    write_adapter_folder(path, lambda folder: peft_model.save_pretrained(str(folder)))
    return path
