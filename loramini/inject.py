"""Put LoRA-Mini into any model: find the target linear layers, wrap them, freeze the rest.

Linear layers are `nn.Linear` and transformers' `Conv1D` (GPT-2); see `loramini.layer.fan_in_fan_out`.

    model = loramini.inject(model, LoRAMiniConfig(target_modules=["query", "value"]))
    loramini.merge(model); loramini.unmerge(model)
    model = loramini.merge_and_unload(model)   # plain nn.Linear layers again
"""

from __future__ import annotations

import re
from typing import Iterator, Optional, Union

from torch import nn

from .config import LoRAMiniConfig
from .layer import AuxFactors, LoRAMiniLinear, aux_name, check_fits, is_adaptable, layer_shape

# Presets: regexes on the full module name that mean the same thing in every family: "attention" (the
# attention projections), "mlp" (the feed-forward ones), "all-linear" (every linear layer outside the task
# head and lm_head: attention + mlp in these families). GPT-2 fuses q, k and v in one `c_attn` (d -> 3d):
# it is adapted whole, with one ΔW for the three, so "q and v only" is not expressible there; use
# ["c_attn"] (or "attention") for GPT-2's q, k, v.
_ATTENTION = (r".*\.(query|key|value|attention\.output\.dense"  # BERT / RoBERTa
              r"|attn\.c_attn|attn\.c_proj"  # GPT-2
              r"|q_proj|k_proj|v_proj|o_proj|out_proj)")  # Llama / Mistral (out_proj: BART / OPT)
_MLP = (r".*\.((?<!attention\.)output\.dense|intermediate\.dense"  # BERT / RoBERTa
        r"|mlp\.c_fc|mlp\.c_proj"  # GPT-2
        r"|gate_proj|up_proj|down_proj|fc1|fc2)")  # Llama / Mistral (fc1, fc2: BART / OPT)
PRESETS = {
    "attention": _ATTENTION,
    "mlp": _MLP,
    "dense": _MLP,  # the older name of "mlp"
    "all-linear": None,
}
# BERT's names for the attention's query, key and value, as the decoder families call them (Llama/Mistral: q_proj,
# k_proj, v_proj; GPT-2: its fused c_attn). A name that matches nothing is looked up here, so the default
# ["query", "value"] means the same projections on every family (GPT-2: c_attn whole, k included).
FAMILY_NAMES = {"query": ("q_proj", "c_attn"), "key": ("k_proj", "c_attn"), "value": ("v_proj", "c_attn")}
# The head-name rule, in one place. Task heads: what `modules_to_save=None` trains and what the "head"
# training method trains. `lm_head` is never adapted either, but it is not trained by default (it is
# usually tied to the input embeddings).
TASK_HEADS = ("classifier", "score", "qa_outputs")
HEAD_NAMES = TASK_HEADS + ("lm_head",)
# A parameter/module name inside a task head (search it in "." + name): train.py's param groups use it.
HEAD_PATTERN = re.compile(r"(^|\.)(" + "|".join(TASK_HEADS) + r")\.")


def is_head_param(name: str) -> bool:
    """True for a parameter of the task head, e.g. "classifier.dense.weight" or, under PEFT,
    "base_model.model.classifier.modules_to_save.default.out_proj.bias"."""
    return bool(HEAD_PATTERN.search("." + name))


def default_head(model: nn.Module) -> list[str]:
    """The task head that `modules_to_save=None` trains: `classifier` / `score` / ... when present."""
    return [name for name in TASK_HEADS if isinstance(getattr(model, name, None), nn.Module)]


def model_task_type(model: nn.Module) -> Optional[str]:
    """What the model is trained for, in PEFT's words: "SEQ_CLS" for a `...ForSequenceClassification`,
    "CAUSAL_LM" for a causal language model (`...ForCausalLM`, GPT-2's `...LMHeadModel`), else None."""
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "CAUSAL_LM"
    return None


def parse_target_modules(text: str) -> Union[list[str], str]:
    """One rule for target strings typed by a user (CLI flags, ablation grids).

    A preset ('attention', 'mlp' or its alias 'dense', 'all-linear') stays a string; plain names
    ('query,value', 'query', 'attention.output.dense') become a list of module-name suffixes; anything
    else is a regex string matched against the full module name.
    """
    if not isinstance(text, str):
        raise TypeError(f"target modules {text!r}: expected a string such as 'query,value'.")
    text = text.strip()
    if text in PRESETS:
        return text
    if re.fullmatch(r"[\w.,\s]*", text):
        names = [t.strip() for t in text.split(",") if t.strip()]
        if not names:
            raise ValueError(f"target modules {text!r}: give module names like 'query,value', a preset "
                             f"{sorted(PRESETS)} or a regex.")
        return names
    try:
        re.compile(text)
    except re.error as err:
        raise ValueError(f"target modules {text!r}: not a preset {sorted(PRESETS)}, not plain names, and not a "
                         f"valid regex ({err}).") from None
    return text


def resolve_modules_to_save(model: nn.Module, config: LoRAMiniConfig) -> list[str]:
    names = default_head(model) if config.modules_to_save is None else list(config.modules_to_save)
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        top = [n for n, _ in model.named_children()]
        raise ValueError(
            f"modules_to_save={names!r}: no module named {missing!r} in {type(model).__name__}. "
            f"Top-level modules: {top}. Use one of them, or [] to train no head."
        )
    return names


def _in_head(name: str, heads: list[str]) -> bool:
    return any(name == h or name.startswith(h + ".") for h in heads + list(HEAD_NAMES))


def _describe_linear_names(model: nn.Module) -> str:
    """A short list of the distinct linear layers' names (layer indices folded), for error messages."""
    names = sorted({re.sub(r"\.\d+\.", ".N.", n) for n, m in model.named_modules() if is_adaptable(m)})
    return ", ".join(names) if names else "(none: this model has no nn.Linear or Conv1D layers)"


def find_targets(model: nn.Module, config: LoRAMiniConfig, heads: Optional[list[str]] = None) -> list[str]:
    """Full names of the modules that `config.target_modules` selects, checked to be linear (`is_adaptable`).

    A listed name matches a module whose name is it or ends in "." + it; "query", "key" and "value" that match
    nothing fall back to the family's own name (`FAMILY_NAMES`)."""
    heads = resolve_modules_to_save(model, config) if heads is None else heads
    modules = dict(model.named_modules())
    spec = config.target_modules
    if isinstance(spec, list):
        selected = []
        ends_with = lambda suffix: [n for n in modules if n == suffix or n.endswith("." + suffix)]
        for suffix in spec:
            hits = next((h for name in (suffix, *FAMILY_NAMES.get(suffix, ())) if (h := ends_with(name))), [])
            if not hits:
                raise ValueError(
                    f"target_modules entry {suffix!r} matches no module of {type(model).__name__}. "
                    f"Linear layers available: {_describe_linear_names(model)}."
                )
            # The task head is trained in full and saved as it is (modules_to_save): never wrap its layers,
            # or save/load/export disagree on its tensor names. "dense" must not catch classifier.dense.
            outside = [n for n in hits if not _in_head(n, heads)]
            if not outside:
                raise ValueError(
                    f"target_modules entry {suffix!r} only matches the task head ({hits}), which is trained in "
                    f"full, not adapted. Pick encoder layers: {_describe_linear_names(model)}."
                )
            selected += outside
    elif spec == "all-linear":
        selected = [n for n, m in modules.items() if is_adaptable(m) and not _in_head(n, heads)]
    else:
        pattern = PRESETS.get(spec, spec)
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"target_modules={spec!r} is neither a preset {list(PRESETS)} nor a valid regex: {err}.")
        selected = [n for n in modules if regex.fullmatch(n) and not _in_head(n, heads)]
    selected = sorted(set(selected), key=list(modules).index)
    if not selected:
        count = sum(1 for m in modules.values() if is_adaptable(m))
        raise ValueError(
            f"target_modules={spec!r} selects no layer of {type(model).__name__} (0 of its {count} linear layers; "
            f"the task head and lm_head are never adapted). Linear layers available: {_describe_linear_names(model)}."
        )
    wrong = [f"{n} ({type(modules[n]).__name__})" for n in selected if not is_adaptable(modules[n])]
    if wrong:
        raise TypeError(
            f"LoRA-Mini adapts nn.Linear (and transformers' Conv1D) layers only; target_modules={spec!r} "
            f"selects {wrong}. "
            f"Linear layers available: {_describe_linear_names(model)}."
        )
    return selected


def loramini_layers(model: nn.Module) -> Iterator[tuple[str, LoRAMiniLinear]]:
    """(name, layer) for every LoRA-Mini layer in `model`."""
    for name, module in model.named_modules():
        if isinstance(module, LoRAMiniLinear):
            yield name, module


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def inject(model: nn.Module, config: LoRAMiniConfig) -> nn.Module:
    """Wrap the target layers of `model` in `LoRAMiniLinear`, in place, and return `model`.

    Afterwards only the adapters' A_train/B_train and the `modules_to_save` (default: the task head)
    require gradients; every other parameter is frozen.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"inject expects a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(config, LoRAMiniConfig):
        raise TypeError(f"inject expects a LoRAMiniConfig, got {type(config).__name__}.")
    if any(True for _ in loramini_layers(model)):
        raise ValueError(
            "This model already has LoRA-Mini layers: inject it once. To start over, call "
            "loramini.merge_and_unload(model) (keeps the update) or rebuild the base model."
        )
    heads = resolve_modules_to_save(model, config)
    targets = find_targets(model, config, heads)
    # Validate every target before changing anything, so a bad config leaves the model untouched.
    modules = dict(model.named_modules())
    for name in targets:
        check_fits(name, *layer_shape(modules[name]), config.a, config.b, config.aux_init)
    for param in model.parameters():
        param.requires_grad_(False)
    shared: dict[str, AuxFactors] = {}  # with share_aux: one pair per layer shape
    for name in targets:
        layer = LoRAMiniLinear(
            modules[name], r=config.r, a=config.a, b=config.b, alpha=config.alpha, dropout=config.dropout,
            name=name, projection_seed=config.projection_seed, aux_init=config.aux_init,
            use_rslora=config.use_rslora, share_aux=config.share_aux,
            aux=shared.get(aux_name(name, *layer_shape(modules[name]), config.share_aux)),
        )
        shared.setdefault(layer.aux_name, layer.aux)
        _set_submodule(model, name, layer)
    for head in heads:
        for param in model.get_submodule(head).parameters():
            param.requires_grad_(True)
    model.loramini_config = config  # remembered for save_adapter / export_peft
    model.loramini_modules_to_save = heads
    return model


def _require_layers(model: nn.Module, action: str) -> list[LoRAMiniLinear]:
    layers = [layer for _, layer in loramini_layers(model)]
    if not layers:
        raise ValueError(f"{action}: this model has no LoRA-Mini layers. Call loramini.inject(model, config) first.")
    return layers


def _check_mergeable(layers: list[LoRAMiniLinear]) -> None:
    """Compute every merged weight once, before changing any: one non-finite layer leaves all unmerged."""
    for layer in layers:
        if not layer.merged:
            layer.merged_weight()  # raises ValueError naming the layer; the result is dropped


def merge(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight (W ← W + ΔW); forward then costs what the base costs.

    All or nothing: if one layer would get non-finite weights, nothing is merged (ValueError)."""
    layers = _require_layers(model, "merge")
    _check_mergeable(layers)
    for layer in layers:
        layer.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Undo `merge` (W ← W − ΔW), so that training can go on."""
    for layer in _require_layers(model, "unmerge"):
        layer.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge every adapter and put the plain base layers (`nn.Linear` / `Conv1D`) back; returns `model`.

    All or nothing: if one layer would get non-finite weights, the model is left as it was (ValueError)."""
    named = list(loramini_layers(model))
    _check_mergeable([layer for _, layer in named])
    for name, layer in named:
        layer.merge()
        _set_submodule(model, name, layer.base)
    for attr in ("loramini_config", "loramini_modules_to_save"):
        if hasattr(model, attr):
            delattr(model, attr)
    return model


def remove_adapters(model: nn.Module, requires_grad: Optional[dict[nn.Parameter, bool]] = None) -> nn.Module:
    """Undo `inject` without merging: the original `nn.Linear` objects go back (unmerged first).

    `requires_grad`: the parameters' flags from before `inject`, to restore them too. `load_adapter`
    uses this to leave a model exactly as it was when loading fails half-way.
    """
    for name, layer in list(loramini_layers(model)):
        layer.unmerge()
        _set_submodule(model, name, layer.base)
    for attr in ("loramini_config", "loramini_modules_to_save"):
        if hasattr(model, attr):
            delattr(model, attr)
    for param, flag in (requires_grad or {}).items():
        param.requires_grad_(flag)
    return model
