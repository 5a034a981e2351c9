"""`TrainConfig`: one run's settings, the adapter's (a `LoRAMiniConfig`, inherited) plus the loop's.

`TrainConfig` *is* a `LoRAMiniConfig` with training fields added, so every adapter field (r, a, b, alpha,
dropout, target_modules, modules_to_save, projection_seed, save_projection, aux_init, use_rslora, and any
added later) is a `TrainConfig` field with the same default and the same validation, written once in
`config.py`. The command line's `finetune` flags are generated from these fields (`loramini.cli`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from .config import LoRAMiniConfig, require_bools, require_finite_positive, require_positive_ints, resolve_alpha

METHODS = ("loramini", "lora", "vera", "tinylora", "full", "head")
PEFT_METHODS = ("lora", "vera", "tinylora")  # built with PEFT's own implementations
# The adapter fields each method reads; the others are not recorded in its history (VeRA has no a, b or alpha).
METHOD_FIELDS = {
    "loramini": tuple(f.name for f in dataclasses.fields(LoRAMiniConfig)),
    "lora": ("r", "alpha", "dropout", "target_modules", "modules_to_save", "use_rslora"),
    "vera": ("r", "dropout", "target_modules", "modules_to_save", "projection_seed", "save_projection"),
    "tinylora": ("r", "dropout", "target_modules", "modules_to_save", "projection_seed", "save_projection"),
    "full": (),
    "head": (),
}
PRECISIONS = ("auto", "no", "fp16", "bf16")  # autocast modes; "auto": bf16 where the GPU has it, fp16 on other GPUs
# Each method's rate (adapters and head; "full": the whole model). lora, full, head: as tuned by
# benchmarks/accuracy_vs_params.py on all-MiniLM-L6-v2 with real SST-2 and STS-B (benchmarks/results/
# accuracy-vs-params.json). loramini: its tuned rate there was 1e-2 (3.3x LoRA's, near sqrt(d_out/b) = 3.5, see
# experiments.first_step_descent_ratio), one grid step below a cliff (3e-2 collapses) that moves down on longer runs
# and pair tasks: at 750 steps on a pair task 1e-2 never leaves the label prior. The default keeps a margin of ~3
# below the tuned rate: 3e-3 reaches 98% (SST-2) and 92% (STS-B) of the tuned result at 188 steps, and learns the pair
# task at 750 steps (benchmarks/results/budget-curves.json); a sweep at 750 steps on SST-2 chose 3e-3 itself
# (rates-4x-sst2.json). lora's 3e-3 gives 100% of its 750-step sweep's result on SST-2 but 70% on STS-B, where one
# seed of three falls back to the label prior and the sweep chose 1e-3 (rates-4x-stsb.json; 1e-3 cost 1.2-1.4 points
# on the 188-step selection rows, so it is not the default yet). VeRA and TinyLoRA: tuned only on synthetic-rank.
DEFAULT_LR = {"loramini": 3e-3, "lora": 3e-3, "vera": 1e-2, "tinylora": 4e-3, "full": 1e-4, "head": 1e-1}
# The offline tiny RoBERTa (hidden 64, pretrained for seconds); vera/tinylora as tuned on synthetic-rank.
TINY_LR = {"loramini": 8e-3, "lora": 2e-3, "vera": 1.2e-2, "tinylora": 4e-3, "full": 1e-3, "head": 4e-3}


def _field(default, help: str, **extra):
    """A dataclass field with its command-line help (and choices) in the metadata."""
    return field(default=default, metadata={"help": help, **extra})


def _lr_help() -> str:
    rates = lambda table: ", ".join(f"{m} {table[m]:g}" for m in METHODS)
    return (f"adapter learning rate (full: the whole model's). Default per method: {rates(DEFAULT_LR)}; with the "
            f"tiny model: {rates(TINY_LR)}")


@dataclass
class TrainConfig(LoRAMiniConfig):
    """Everything a run needs besides the model and the task. `None` means "the method's default".

    The adapter fields are `LoRAMiniConfig`'s (see there); LoRA-Mini uses them all, PEFT's methods the ones in
    `METHOD_FIELDS` (LoRA gets the same target layers, r, alpha, dropout and rsLoRA scaling). `adapter_config()`
    gives the plain `LoRAMiniConfig`. The training fields and their meaning are in each field's "help".
    """

    method: str = _field("loramini", "what to train: LoRA-Mini adapters, PEFT's LoRA / VeRA / TinyLoRA, every "
                                     "weight (full), or the task head only (head)", choices=METHODS)
    lr: Optional[float] = _field(None, _lr_help())
    head_lr: Optional[float] = _field(None, "task head learning rate (default: the same as lr)")
    weight_decay: float = _field(0.0, "AdamW weight decay")
    epochs: int = _field(3, "training epochs")
    batch_size: int = _field(32, "rows per batch and process")
    eval_batch_size: int = _field(64, "rows per evaluation batch")
    grad_accum_steps: int = _field(1, "batches per optimizer step (a step sees batch_size x this x processes rows)")
    warmup_ratio: float = _field(0.06, "linear warm-up over this fraction of the steps, then linear decay to 0")
    max_grad_norm: Optional[float] = _field(1.0, "clip the gradient norm to this ('none': no clipping)")
    max_length: int = _field(128, "truncate inputs to this many tokens")
    max_train_samples: Optional[int] = _field(None, "train on a seeded random subset of this many rows (default: all)")
    seed: int = _field(0, "seed of init, shuffling and dropout")
    mixed_precision: str = _field("auto", "autocast: auto = bf16 on GPUs that have it, fp16 on other GPUs, fp32 on "
                                          "CPU", choices=PRECISIONS)
    checkpoint_every: int = _field(0, "save a resumable checkpoint every N optimizer steps; rerun the same command "
                                      "to resume (0: never)")
    output_dir: Optional[str] = _field(None, "where history.json, the adapter and checkpoints go (None: nowhere)")
    resume: bool = _field(True, "continue from the newest checkpoint in output_dir (--no-resume: start over)")
    progress: bool = _field(True, "show progress bars")
    group_by_length: bool = _field(False, "train on batches of rows of similar length (shuffled windows of 50 "
                                          "batches, as transformers' Trainer does): less padding, faster; changes "
                                          "which rows share a batch")
    pooling: str = _field("cls", "what an encoder's task head reads: the first token (cls, the model's own head) or "
                                 "the masked mean of the tokens (mean, how sentence encoders are read)",
                          choices=("cls", "mean"))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"TrainConfig.method={self.method!r}: choose one of {METHODS}.")
        self._check_adapter_fields()
        require_positive_ints(self, ("epochs", "batch_size", "eval_batch_size", "grad_accum_steps", "max_length"))
        for name in ("lr", "head_lr"):
            require_finite_positive("TrainConfig", name, getattr(self, name), hint=" (or None for the default)")
        require_finite_positive("TrainConfig", "max_grad_norm", self.max_grad_norm, hint=" (or None: no clipping)")
        require_bools(self, ("resume", "progress", "group_by_length"))
        _require_number_in("weight_decay", self.weight_decay, 0.0, math.inf, "0 <= weight_decay")
        _require_number_in("warmup_ratio", self.warmup_ratio, 0.0, 1.0, "0 <= warmup_ratio < 1")
        for name, low in (("seed", 0), ("checkpoint_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TrainConfig.{name}={value!r}: must be an integer >= {low}.")
        if self.max_train_samples is not None:
            require_positive_ints(self, ("max_train_samples",))
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"TrainConfig.pooling={self.pooling!r}: choose 'cls' or 'mean'.")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.mixed_precision={self.mixed_precision!r}: choose one of {PRECISIONS}.")

    def _check_adapter_fields(self) -> None:
        """Validate the adapter fields with `LoRAMiniConfig`'s own rules (one rule, one place).

        a and b are LoRA-Mini's: for the other methods only r's own rules apply, not r <= min(a, b).
        """
        fields = self._adapter_fields()
        if self.method != "loramini":
            fields = dict(fields, a=fields["r"], b=fields["r"])
        try:
            checked = LoRAMiniConfig(**fields)
        except (ValueError, TypeError) as err:  # the same rule and words, under this class's name
            raise type(err)(str(err).replace("LoRAMiniConfig.", "TrainConfig.", 1)) from None
        self.target_modules, self.modules_to_save = checked.target_modules, checked.modules_to_save

    def _adapter_fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(LoRAMiniConfig)}

    def adapter_config(self) -> LoRAMiniConfig:
        """The plain `LoRAMiniConfig` of the adapter fields (what `inject` takes)."""
        return LoRAMiniConfig(**self._adapter_fields())

    def resolved(self, tiny: bool = False) -> "TrainConfig":
        """A copy with lr filled in from the method's default (`tiny`: the tiny model's) and head_lr from lr."""
        lrs = TINY_LR if tiny else DEFAULT_LR
        lr = self.lr if self.lr is not None else lrs[self.method]
        head_lr = self.head_lr if self.head_lr is not None else lr
        return dataclasses.replace(self, lr=lr, head_lr=head_lr)

    @property
    def lora_alpha(self) -> float:
        """The adapter's alpha: `alpha`, or 2·r when None (the package's one default, `config.default_alpha`)."""
        return resolve_alpha(self.alpha, self.r)

    def recorded(self) -> dict:
        """The settings as a dict, without the adapter fields this method ignores (what a history records)."""
        ignored = set(self._adapter_fields()) - set(METHOD_FIELDS[self.method])
        return {k: v for k, v in self.to_dict().items() if k not in ignored}


def _require_number_in(name: str, value, low: float, high: float, rule: str) -> None:
    """One clear ValueError unless `value` is a real number with low <= value < high (NaN never is)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
        raise ValueError(f"TrainConfig.{name}={value!r}: must be a number with {rule}.")


def resolve_precision(requested: str = "auto") -> str:
    """The autocast mode to use: bf16 only where the GPU has it (not a T4), fp16 only on a GPU."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    if requested == "auto":
        return "bf16" if bf16 else "fp16" if cuda else "no"
    if requested == "fp16" and not cuda:
        raise ValueError("mixed_precision='fp16' needs a CUDA GPU; use 'no' (or 'bf16' on a recent CPU).")
    if requested == "bf16" and cuda and not bf16:
        raise ValueError(f"mixed_precision='bf16': this GPU ({torch.cuda.get_device_name()}) has no bf16; use 'fp16'.")
    return requested
