"""`LoRAMiniConfig`: every hyper-parameter of a LoRA-Mini adapter, validated when built.

The config is plain data (a dataclass) so that it round-trips through JSON and can be stored next to
the adapter weights (`adapter_config.json`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Optional, Union

AUX_INITS = ("gaussian", "orthogonal", "identity")


# ---------------------------------------------------------------------------------------------------
# The rules every part of the package shares (layer, inject, io, train, cli): each written once, here.


def default_alpha(r: int) -> float:
    """The default scale numerator: alpha = 2·r, i.e. scale = alpha/r = 2 at every rank."""
    return 2.0 * r


def resolve_alpha(alpha: Optional[float], r: int) -> float:
    """`alpha`, or the default 2·r when it is None."""
    return default_alpha(r) if alpha is None else float(alpha)


def adapter_scale(alpha: Optional[float], r: int, use_rslora: bool = False) -> float:
    """The factor in front of ΔW: alpha / r, or alpha / sqrt(r) with rank-stabilised scaling (rsLoRA)."""
    return resolve_alpha(alpha, r) / (math.sqrt(r) if use_rslora else r)


def check_rank(r: int, a: int, b: int, where: str = "LoRAMiniConfig") -> None:
    """rank(ΔW) <= min(r, a, b): an r above min(a, b) only wastes parameters, so refuse it."""
    if r > min(a, b):
        raise ValueError(
            f"{where}.r={r} is larger than min(a, b)={min(a, b)}: rank(ΔW) <= min(r, a, b), so the extra rank "
            f"only wastes parameters. Use r <= {min(a, b)} or raise a/b."
        )


def require_positive_ints(config, names) -> None:
    """Raise one clear ValueError if any field in `names` of dataclass `config` is not an integer >= 1."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(config).__name__}.{name}={value!r}: must be an integer >= 1.")


def require_finite_positive(owner: str, name: str, value, allow_none: bool = True, hint: str = "") -> None:
    """Raise one clear ValueError unless `value` is a finite number > 0 (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not value > 0:
        raise ValueError(f"{owner}.{name}={value!r}: must be a finite number > 0{hint}.")


def require_bools(config, names) -> None:
    """Raise one clear TypeError if a flag is not True/False (a JSON "false" string would count as True)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, bool):
            raise TypeError(f"{type(config).__name__}.{name}={value!r}: must be true or false (a bool, not "
                            f"{type(value).__name__}).")


@dataclass
class LoRAMiniConfig:
    """Hyper-parameters of LoRA-Mini: ``ΔW = scale · B_aux · B_train · A_train · A_aux``.

    Args:
        r: inner rank, shared by ``A_train`` (r × a) and ``B_train`` (b × r).
        a: width of the frozen input projection ``A_aux`` (a × d_in).
        b: width of the frozen output projection ``B_aux`` (d_out × b).
        alpha: scale numerator; ``scale = alpha / r`` (or ``alpha / sqrt(r)`` with ``use_rslora``).
            ``None`` (the default) means ``2 * r``, so the scale is 2 at every rank (16 at r = 8).
        dropout: dropout on the adapter's input (0 disables it).
        target_modules: module-name suffixes (``["query", "value"]``; on a decoder these two mean its own
            q and v: Llama's ``q_proj``/``v_proj``, GPT-2's fused ``c_attn``), one regex matched against the
            full module name, or a preset: ``"attention"``, ``"mlp"`` (alias ``"dense"``), ``"all-linear"``,
            each meaning the same for BERT/RoBERTa, GPT-2 and Llama-style models (``loramini.inject.PRESETS``).
        modules_to_save: modules trained in full and saved with the adapter. ``None`` = the model's
            task head (``classifier`` / ``score``) when it has one; ``[]`` = none.
        projection_seed: seed of the frozen aux factors (with each module's name).
        save_projection: also store the aux factors in the adapter file (otherwise regenerated).
        aux_init: ``"gaussian"`` (default), ``"orthogonal"``, or ``"identity"`` (needs a = d_in and
            b = d_out: LoRA-Mini then *is* LoRA; for teaching).
        use_rslora: rank-stabilised scaling ``alpha / sqrt(r)``.
        share_aux: one aux pair per layer shape (d_in, d_out), shared by all layers of that shape and
            seeded from the shape (as VeRA shares its projections): far less aux memory on a deep model.
    """

    r: int = 8
    a: int = 32
    b: int = 32
    alpha: Optional[float] = None
    dropout: float = 0.0
    target_modules: Union[list[str], str] = field(default_factory=lambda: ["query", "value"])
    modules_to_save: Optional[list[str]] = None
    projection_seed: int = 0
    save_projection: bool = False
    aux_init: str = "gaussian"
    use_rslora: bool = False
    share_aux: bool = False

    def __post_init__(self) -> None:
        require_positive_ints(self, ("r", "a", "b"))
        check_rank(self.r, self.a, self.b)
        require_finite_positive("LoRAMiniConfig", "alpha", self.alpha, hint=" (or None for 2 * r)")
        require_bools(self, ("save_projection", "use_rslora", "share_aux"))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRAMiniConfig.dropout={self.dropout!r}: must satisfy 0 <= dropout < 1.")
        if not isinstance(self.aux_init, str) or self.aux_init not in AUX_INITS:
            raise ValueError(f"LoRAMiniConfig.aux_init={self.aux_init!r}: choose one of {AUX_INITS}.")
        if isinstance(self.target_modules, (list, tuple)):
            if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
                raise ValueError(
                    f"LoRAMiniConfig.target_modules={self.target_modules!r}: give non-empty module names, "
                    f"a regex string, or a preset ('attention', 'mlp', 'all-linear')."
                )
            self.target_modules = list(self.target_modules)
        elif not isinstance(self.target_modules, str) or not self.target_modules:
            raise TypeError(
                f"LoRAMiniConfig.target_modules={self.target_modules!r}: expected a list of names, a regex "
                f"string or a preset name."
            )
        if self.modules_to_save is not None:
            if not isinstance(self.modules_to_save, (list, tuple)) or not all(
                    isinstance(m, str) for m in self.modules_to_save):
                raise TypeError(
                    f"LoRAMiniConfig.modules_to_save={self.modules_to_save!r}: expected a list of module "
                    f"names such as ['classifier'], [] for none, or None for the task head."
                )
            if not all(m.strip() for m in self.modules_to_save):  # "" names the whole model: train everything
                raise ValueError(
                    f"LoRAMiniConfig.modules_to_save={self.modules_to_save!r}: an empty name would select the "
                    f"whole model. Give module names such as ['classifier'], or [] for none."
                )
            self.modules_to_save = list(self.modules_to_save)
        if isinstance(self.projection_seed, bool) or not isinstance(self.projection_seed, int):
            raise TypeError(f"LoRAMiniConfig.projection_seed={self.projection_seed!r}: expected an integer.")
        if not 0 <= self.projection_seed < 2 ** 63:  # torch's seed range
            raise ValueError(f"LoRAMiniConfig.projection_seed={self.projection_seed!r} is out of range: use an "
                             f"integer in 0 .. 2**63 - 1.")

    @property
    def resolved_alpha(self) -> float:
        """The alpha in use: ``alpha``, or ``2 * r`` when it is None."""
        return resolve_alpha(self.alpha, self.r)

    @property
    def scale(self) -> float:
        """The factor in front of ΔW: ``alpha / r`` (``alpha / sqrt(r)`` with rsLoRA)."""
        return adapter_scale(self.alpha, self.r, self.use_rslora)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict) -> "LoRAMiniConfig":
        """Build from a dict, ignoring extra keys (e.g. those `save_adapter` adds to the JSON file)."""
        if not isinstance(data, dict):
            raise TypeError(f"LoRAMiniConfig.from_dict expects a dict (a JSON object), got {type(data).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> "LoRAMiniConfig":
        return cls.from_dict(json.loads(text))
