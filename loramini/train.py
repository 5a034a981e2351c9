"""Fine-tuning, one readable loop on `accelerate`, for every method so comparisons are fair.

`train` is three steps: `prepare` (accelerator, data, model, method, optimizer, schedule, resume state),
`train_epoch` once per epoch (batches, step records, checkpoints, divergence check), and `finish` (final
metrics, adapter, history.json).

    history = loramini.train.train("tiny", "synthetic", TrainConfig(method="loramini"))
    history = train("roberta-base", "sst2", TrainConfig(method="lora", epochs=3, output_dir="out/lora"))
    plot_history(history)

Methods (same data, loop, schedule and evaluation; only what is trained differs):

    "loramini"  LoRA-Mini adapters (`loramini.inject`) + the task head
    "lora"      PEFT's own LoRA (`peft.LoraConfig`, same targets, r and alpha) + the task head
    "vera"      PEFT's VeRA: frozen random A, B shared by all layers, trains d_out + r scales per layer (r: VeRA's rank)
    "tinylora"  PEFT's TinyLoRA: frozen SVD factors of W (rank r) and random r×r bases, trains r² numbers per layer
    "full"      every parameter
    "head"      the task head only (the classifier on a frozen encoder)

Learning rates: one rate per method (the task head uses it too unless `head_lr` is given). LoRA-Mini's first
Adam steps lower the loss only sqrt(b/d_out) times as much as LoRA's at the same rate
(`experiments.first_step_descent_ratio`), so its rate is ~sqrt(d_out/b) ≈ 3.5–5x LoRA's. Regression heads start
at the training labels' mean (`start_at_label_mean`): without that, STS-B's 0–5 offset swamped the signal.

Checkpoints (`checkpoint_every` optimizer steps, into `output_dir/checkpoints/step-N/`): the trainable
tensors and RNG states as safetensors, the optimizer state with `torch.save` (read back with
`weights_only=True`), everything else as JSON; `state.json` is written last, so a folder without it is
incomplete and ignored. Rerunning with the same `output_dir` resumes from the newest complete one and
ends exactly where an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from .counting import count_parameters
from .io import atomic_write, write_json
from .tasks import TaskSpec

METHODS = ("loramini", "lora", "vera", "tinylora", "full", "head")
PEFT_METHODS = ("lora", "vera", "tinylora")  # built with PEFT's own implementations
# Each method's rate (adapters and head; "full": the whole model) as tuned by benchmarks/accuracy_vs_params.py on
# all-MiniLM-L6-v2 with real SST-2 and STS-B (the same optimum on both; benchmarks/results/accuracy-vs-params.json).
# LoRA-Mini's is ~sqrt(d_out/b) times LoRA's (3.5x for d=384, b=32; see experiments.first_step_descent_ratio).
# VeRA and TinyLoRA were tuned only on synthetic-rank (accuracy-vs-params-smoke.json).
DEFAULT_LR = {"loramini": 1e-2, "lora": 3e-3, "vera": 1e-2, "tinylora": 4e-3, "full": 1e-4, "head": 1e-1}
# The offline tiny RoBERTa (hidden 64, pretrained for seconds); vera/tinylora as tuned on synthetic-rank.
TINY_LR = {"loramini": 8e-3, "lora": 2e-3, "vera": 1.2e-2, "tinylora": 4e-3, "full": 1e-3, "head": 4e-3}
from .inject import HEAD_PATTERN  # noqa: E402  the head-name rule lives with the other module-name rules


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite: the run stops, and no result or adapter is written."""


class History(dict):
    """The history dict `train` returns: plain JSON data, plus the trained model as an attribute.

    `history["trained_model"]` (and `history.trained_model`) give the model, but it is not one of the
    dict's items, so `json.dumps(history)` works and history.json holds exactly the same keys.
    """

    trained_model: Optional[nn.Module] = None

    def __missing__(self, key):
        if key == "trained_model" and self.trained_model is not None:
            return self.trained_model
        raise KeyError(key)


@dataclass
class TrainConfig:
    """Everything a run needs besides the model and the task. `None` means "the method's default".

    method:           one of METHODS: "loramini", "lora", "vera", "tinylora", "full" or "head"
    r, a, b, alpha:   adapter shape and scale (alpha=None → 2·r, i.e. scale 2 at every r); a, b LoRA-Mini only.
                      These and dropout, target_modules, projection_seed, aux_init are LoRAMiniConfig's fields:
                      `adapter_config()` builds that config, and it validates them (one rule, one place)
    aux_init:         LoRA-Mini's frozen factors: "gaussian" or "orthogonal" (see `LoRAMiniConfig`)
    target_modules:   layer names / regex / preset, as in `LoRAMiniConfig` (PEFT LoRA gets the same layers)
    lr, head_lr:      adapter (full: model) and task-head learning rates (lr None → DEFAULT_LR, or TINY_LR for the
                      tiny model; head_lr None → the same as lr: one rate per method, which is what gets tuned;
                      the history records the rates used)
    epochs, batch_size, grad_accum_steps: an optimizer step sees batch_size · grad_accum_steps · processes rows
    warmup_ratio:     linear warm-up over this fraction of the steps, then linear decay to 0
    max_grad_norm:    gradient clipping (0 disables it)
    mixed_precision:  "auto" (bf16 where the GPU supports it, else fp16 on a GPU, else fp32), "no", "fp16", "bf16"
    checkpoint_every: save a resumable checkpoint every N optimizer steps (0: never)
    output_dir:       where history.json, the adapter and checkpoints go (None: nowhere, adapter measured in a temp dir)
    resume:           continue from the newest checkpoint in output_dir, if there is one
    """

    method: str = "loramini"
    r: int = 8
    a: int = 32
    b: int = 32
    alpha: Optional[float] = None
    dropout: float = 0.0
    target_modules: Union[list[str], str] = field(default_factory=lambda: ["query", "value"])
    projection_seed: int = 0
    aux_init: str = "gaussian"
    lr: Optional[float] = None
    head_lr: Optional[float] = None
    weight_decay: float = 0.0
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accum_steps: int = 1
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    max_length: int = 128
    max_train_samples: Optional[int] = None
    seed: int = 0
    mixed_precision: str = "auto"
    checkpoint_every: int = 0
    output_dir: Optional[str] = None
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"TrainConfig.method={self.method!r}: choose one of {METHODS}.")
        from .config import require_positive_ints

        require_positive_ints(self, ("epochs", "batch_size", "eval_batch_size", "grad_accum_steps", "max_length",
                                     "r", "a", "b"))
        from .config import require_finite_positive

        for name in ("lr", "head_lr", "alpha"):
            require_finite_positive("TrainConfig", name, getattr(self, name), hint=" (or None for the default)")
        if self.method == "loramini":
            self.adapter_config()  # LoRAMiniConfig validates the adapter fields (r <= min(a, b), ...)
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"TrainConfig.warmup_ratio={self.warmup_ratio!r}: must satisfy 0 <= warmup_ratio < 1.")
        if self.max_train_samples is not None and (not isinstance(self.max_train_samples, int) or self.max_train_samples < 1):
            raise ValueError(f"TrainConfig.max_train_samples={self.max_train_samples!r}: a positive integer or None.")
        from .config import AUX_INITS

        if self.aux_init not in AUX_INITS[:2]:
            raise ValueError(f"TrainConfig.aux_init={self.aux_init!r}: choose 'gaussian' or 'orthogonal'.")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError(f"TrainConfig.mixed_precision={self.mixed_precision!r}: choose auto, no, fp16 or bf16.")
        if self.checkpoint_every < 0:
            raise ValueError(f"TrainConfig.checkpoint_every={self.checkpoint_every!r}: must be >= 0 (0 = never).")

    def resolved(self, tiny: bool = False) -> "TrainConfig":
        """A copy with lr filled in from the method's default (`tiny`: the tiny model's) and head_lr from lr."""
        lrs = TINY_LR if tiny else DEFAULT_LR
        lr = self.lr if self.lr is not None else lrs[self.method]
        head_lr = self.head_lr if self.head_lr is not None else lr
        return dataclasses.replace(self, lr=lr, head_lr=head_lr)

    @property
    def lora_alpha(self) -> float:
        """The adapter's alpha: `alpha`, or 2·r when None (the package's one default, `config.default_alpha`)."""
        from .config import resolve_alpha

        return resolve_alpha(self.alpha, self.r)

    def adapter_config(self) -> "LoRAMiniConfig":  # noqa: F821
        """The `LoRAMiniConfig` these fields describe (the adapter fields are LoRAMiniConfig's, passed on)."""
        from .config import LoRAMiniConfig

        try:
            return LoRAMiniConfig(r=self.r, a=self.a, b=self.b, alpha=self.alpha, dropout=self.dropout,
                                  target_modules=self.target_modules, projection_seed=self.projection_seed,
                                  aux_init=self.aux_init)
        except (ValueError, TypeError) as err:  # the same rule and words, under this class's name
            raise type(err)(str(err).replace("LoRAMiniConfig.", "TrainConfig.", 1)) from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------
# Models, tasks and methods


def resolve_precision(requested: str = "auto") -> str:
    """The autocast mode to use: bf16 only where the GPU has it (not a T4), fp16 only on a GPU."""
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    if requested == "auto":
        return "bf16" if bf16 else "fp16" if cuda else "no"
    if requested == "fp16" and not cuda:
        raise ValueError("mixed_precision='fp16' needs a CUDA GPU; use 'no' (or 'bf16' on a recent CPU).")
    if requested == "bf16" and cuda and not bf16:
        raise ValueError(f"mixed_precision='bf16': this GPU ({torch.cuda.get_device_name()}) has no bf16; use 'fp16'.")
    return requested


def load_task(task, tokenizer=None, data_dir=None, max_train_samples=None, seed=0):
    """(DatasetDict, TaskSpec, tokenizer or None) for a task name, a `SyntheticTask` or (DatasetDict, TaskSpec)."""
    from .synthetic import SyntheticTask, is_synthetic, make_synthetic

    if isinstance(task, str) and is_synthetic(task):
        task = make_synthetic(task, max_train_samples=max_train_samples)
    if isinstance(task, SyntheticTask):
        return task.dataset, task.spec, tokenizer or task.tokenizer
    if isinstance(task, tuple) and len(task) == 2 and isinstance(task[1], TaskSpec):
        return task[0], task[1], tokenizer
    if isinstance(task, (str, TaskSpec)):
        from . import data
        from .tasks import get_task

        spec = task if isinstance(task, TaskSpec) else get_task(task)
        return data.load_glue(spec, data_dir=data_dir, max_train_samples=max_train_samples, seed=seed), spec, tokenizer
    raise TypeError(f"task={task!r}: give a task name ('sst2', 'synthetic', ...), a SyntheticTask, "
                    f"or a (DatasetDict, TaskSpec) pair.")


def build_model(model_or_name, spec: TaskSpec, tokenizer, dataset, seed: int = 0, world=None):
    """(model, tokenizer): "tiny" → the offline tiny RoBERTa; a name/folder → `load_model`; a module as is.

    `world`: the `SyntheticTask` being trained on, if any: "tiny" then means the tiny encoder pretrained
    on its world (`tiny_pretrained`).
    """
    from .models import load_model, tiny_roberta
    from .synthetic import make_tokenizer, tiny_pretrained

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


def start_at_label_mean(model: nn.Module, labels) -> None:
    """Regression: start the task head's output bias at the training labels' mean (its weights stay as drawn).

    Why: STS-B scores lie in 0–5 (mean ≈ 2.7). A head whose output starts near 0 spends its first hundreds of
    steps moving the output's mean, Adam's second-moment estimates remember those large early gradients, and the
    adapters chase the offset instead of the similarity signal: LoRA-Mini's training loss then stalls at the label
    variance (it predicts the mean). Starting at the mean removes the offset for every method alike.
    """
    outputs = [m for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and m.out_features == 1 and HEAD_PATTERN.search("." + n + ".")]
    if outputs and outputs[-1].bias is not None:
        values = torch.as_tensor(list(labels), dtype=torch.float64)
        with torch.no_grad():
            outputs[-1].bias.fill_(float(values.mean()))


def apply_method(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Make only what `config.method` trains require gradients (and add adapters); returns the model."""
    from .inject import default_head, inject

    heads = default_head(model)
    if config.method == "loramini":
        return inject(model, config.adapter_config())
    if config.method in PEFT_METHODS:
        import peft

        from .config import LoRAMiniConfig
        from .inject import find_targets

        # Resolve the targets with LoRA-Mini's own rules, so every method adapts exactly the same layers.
        targets = find_targets(model, LoRAMiniConfig(r=1, a=1, b=1, target_modules=config.target_modules))
        common = dict(target_modules=targets, modules_to_save=heads or None)
        return quietly(lambda: peft.get_peft_model(model, _peft_config(peft, config, common)))
    for name, param in model.named_parameters():
        param.requires_grad_(config.method == "full" or bool(HEAD_PATTERN.search("." + name)))
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"method='head': {type(model).__name__} has no task head named {HEAD_PATTERN.pattern}.")
    return model


def _peft_config(peft, config: TrainConfig, common: dict):
    """The PEFT config of `config.method` (lora, vera or tinylora) on the targets and head in `common`."""
    if config.method == "lora":
        return peft.LoraConfig(r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.dropout, **common)
    if config.method == "vera":  # shared frozen random A, B; trains d_out + r scales per layer
        return peft.VeraConfig(r=config.r, vera_dropout=config.dropout, save_projection=False,
                               projection_prng_key=config.projection_seed, **common)
    # "tinylora": frozen SVD factors (rank r) of W and random r×r bases; trains r² numbers per layer
    return peft.TinyLoraConfig(r=config.r, u=config.r ** 2, tinylora_dropout=config.dropout, save_projection=False,
                               projection_seed=config.projection_seed, **common)


def quietly(build: Callable[[], Any]) -> Any:
    """`build()` without PEFT's UserWarnings (projections regenerated from a seed, as LoRA-Mini's are, by choice)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build()


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Two AdamW groups: the adapters (full: the encoder) at `lr`, the task head at `head_lr`."""
    body, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head if HEAD_PATTERN.search("." + name) else body).append(param)
    config = config.resolved() if config.lr is None or config.head_lr is None else config
    groups = [{"params": body, "lr": config.lr, "name": "adapter"},
              {"params": head, "lr": config.head_lr, "name": "head"}]
    return [g for g in groups if g["params"]]


def save_trained(model: nn.Module, method: str, folder: Path) -> Path:
    """Write what the method trained: LoRA-Mini / PEFT adapter, the whole model, or the head. Returns the folder."""
    from safetensors.torch import save_file

    from .io import save_adapter

    if method == "loramini":
        return save_adapter(model, folder)
    if method in PEFT_METHODS or method == "full":
        model.save_pretrained(folder)
        return folder
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    atomic_write(folder / "head.safetensors", lambda tmp: save_file(tensors, tmp))
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------
# Checkpoints


def _latest_checkpoint(output_dir: Optional[str]) -> Optional[Path]:
    root = Path(output_dir or "") / "checkpoints"
    if not output_dir or not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / "state.json").is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _unreadable(path: Path, err: BaseException) -> ValueError:
    """One line naming the checkpoint file, what is wrong, and the way out."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"Checkpoint file {path} is unreadable or incomplete ({reason}): delete {path.parent} or start "
                      f"over with --no-resume (resume=False).")


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state[f"cuda{i}"] for i in range(torch.cuda.device_count())])


def save_checkpoint(accelerator, model, optimizer, scheduler, output_dir: str, state: dict) -> Path:
    """Write checkpoint `step-N` (atomic files; state.json last) and delete the older ones."""
    from safetensors.torch import save_file

    folder = Path(output_dir) / "checkpoints" / f"step-{state['global_step']}"
    rank = accelerator.process_index
    rng = _rng_state()
    atomic_write(folder / f"rng-{rank}.safetensors", lambda tmp: save_file(rng, tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        trainable = {n: p.detach().cpu().contiguous()
                     for n, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}
        atomic_write(folder / "trainable.safetensors", lambda tmp: save_file(trainable, tmp))
        atomic_write(folder / "optimizer.pt", lambda tmp: torch.save(optimizer.state_dict(), tmp))
        write_json(folder / "scheduler.json", scheduler.state_dict())
        write_json(folder / "state.json", state)
        for old in folder.parent.glob("step-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def load_checkpoint(accelerator, model, optimizer, scheduler, folder: Path, config: TrainConfig) -> dict:
    """Restore model, optimizer, scheduler and RNG from `folder`; returns its state.json."""
    from safetensors.torch import load_file

    def read(name: str, loader):
        try:
            return loader(folder / name)
        except Exception as err:  # truncated, empty, not JSON, a missing file: one line, with the file
            raise _unreadable(folder / name, err) from None

    state = read("state.json", lambda p: json.loads(p.read_text()))
    keys = ("config", "history", "epoch", "batches_in_epoch", "global_step")
    if not isinstance(state, dict) or not all(k in state for k in keys) or not isinstance(state["config"], dict):
        raise _unreadable(folder / "state.json", ValueError(f"expected the keys {list(keys)}"))
    saved = {k: v for k, v in state["config"].items() if k not in ("output_dir", "resume", "progress", "epochs")}
    current = {k: v for k, v in config.to_dict().items() if k in saved}
    if saved != current:
        diff = {k: (saved[k], current[k]) for k in saved if saved[k] != current[k]}
        raise ValueError(f"The checkpoint in {folder} was made with other settings {diff} (saved, now). "
                         f"Use another output_dir, or resume=False to start over.")
    trainable = read("trainable.safetensors", lambda p: load_file(str(p)))
    unwrapped = accelerator.unwrap_model(model)
    params = dict(unwrapped.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in trainable]
    if missing:
        raise ValueError(f"Checkpoint {folder} lacks trainable tensors {missing[:3]}...: it belongs to another model.")
    with torch.no_grad():
        for name, tensor in trainable.items():
            params[name].copy_(tensor)
    read("optimizer.pt", lambda p: optimizer.load_state_dict(torch.load(p, weights_only=True, map_location="cpu")))
    read("scheduler.json", lambda p: scheduler.load_state_dict(json.loads(p.read_text())))
    # Without its RNG state the dropout stream (and the result) would differ from an uninterrupted run.
    state["rng"] = read(f"rng-{accelerator.process_index}.safetensors", lambda p: load_file(str(p)))
    return state


# ---------------------------------------------------------------------------------------------------
# The loop


def evaluate(model, loaders: dict, spec: TaskSpec, accelerator) -> dict[str, dict[str, float]]:
    """{split: metrics} over every eval loader, gathered across processes."""
    from .metrics import compute_metrics

    model.eval()
    results = {}
    for split, loader in loaders.items():
        preds, labels = [], []
        for batch in loader:
            with torch.no_grad():
                logits = model(**batch).logits
            logits, y = accelerator.gather_for_metrics((logits.float(), batch["labels"]))
            preds.append(logits.cpu())
            labels.append(y.cpu())
        results[split] = compute_metrics(spec, torch.cat(preds), torch.cat(labels))
    model.train()
    return results


@dataclass
class Run:
    """Everything `prepare` builds for one run; `train_epoch` advances it and `finish` reports it.

    model, optimizer, train_loader and eval_loaders are already wrapped by `accelerate` (`accelerator.prepare`).
    start_epoch, skip_batches, global_step and rng are where the run starts: all 0 / None for a fresh run, the
    checkpoint's values when resuming (skip_batches: batches of start_epoch already trained; rng: the RNG state to
    restore before the next batch).
    """

    config: TrainConfig
    accelerator: Any
    spec: TaskSpec
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: Any
    eval_loaders: dict
    counts: Any  # count_parameters(model), taken before accelerate wraps it
    history: History
    metric_name: str
    total_updates: int
    start_epoch: int = 0
    skip_batches: int = 0
    global_step: int = 0
    rng: Optional[dict] = None
    started: float = 0.0  # time.perf_counter() at the start, minus the time already spent before a resume
    bar: Any = None


def train(model, task, config: Optional[TrainConfig] = None, *, tokenizer=None, data_dir=None,
          step_callback: Optional[Callable[[int, dict], None]] = None, **overrides) -> dict:
    """Fine-tune `model` on `task` with `config.method`; returns (and writes) the history.

    model:  "tiny" (offline tiny RoBERTa; pretrained on the synthetic world for synthetic tasks), a hub
            name or local folder (`load_model`), or an nn.Module (then pass `tokenizer`).
    task:   "synthetic", "synthetic-pair", "synthetic-regression", "synthetic-rank", a GLUE name ("sst2", ...; `data_dir` = a
            local GLUE folder), a `SyntheticTask`, or a (DatasetDict, TaskSpec) pair.
    overrides: TrainConfig fields, e.g. ``train("tiny", "synthetic", method="lora", epochs=2)``.
    step_callback(step, history): called after every optimizer step (e.g. to stop or log).

    The history dict: method, task, config, steps [{step, epoch, loss, lr}], epochs [{epoch, train_loss,
    eval}], final ({split: metrics}), main_metric, metric, params (count_parameters), adapter_bytes,
    adapter_dir, wall_time_s, peak_memory_mb. With `output_dir` it is also written to history.json.
    `history["trained_model"]` is the trained model (an attribute of the returned `History`, not a JSON item).
    A NaN/Inf loss raises `TrainingDiverged` (a ValueError) and writes no history, result or adapter.

    The three steps, which can also be called one by one (e.g. to look at the model between epochs):

        run = prepare(model, task, config)
        for epoch in range(run.start_epoch, run.config.epochs):
            train_epoch(run, epoch)
        history = finish(run)
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    run = prepare(model, task, config, tokenizer=tokenizer, data_dir=data_dir)
    for epoch in range(run.start_epoch, run.config.epochs):
        train_epoch(run, epoch, step_callback)
    return finish(run)


def prepare(model, task, config: TrainConfig, *, tokenizer=None, data_dir=None) -> Run:
    """Step 1: accelerator, data, model, method, optimizer, scheduler and (if a checkpoint exists) resume state.

    Arguments as in `train`. The order of the calls that draw random numbers (model init, adapter init,
    shuffling) is part of the result: a resumed run is bit-identical only if it is kept.
    """
    import datasets
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from . import data
    from .metrics import main_metric
    from .synthetic import SyntheticTask, is_synthetic, make_synthetic

    config = config.resolved(tiny=isinstance(model, str) and model == "tiny")
    _reset_accelerate_state()  # another train() in this process may have used another mixed_precision
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # on a CPU-only machine this makes torchrun's processes one gloo group
        mixed_precision=resolve_precision(config.mixed_precision),
        gradient_accumulation_steps=config.grad_accum_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed))
    set_seed(config.seed)

    # Data and model.
    if isinstance(task, str) and is_synthetic(task):
        task = make_synthetic(task, max_train_samples=config.max_train_samples)
    dataset, spec, tokenizer = load_task(task, tokenizer, data_dir, config.max_train_samples, config.seed)
    model_name = str(model) if not isinstance(model, nn.Module) else type(model).__name__
    world = task if isinstance(task, SyntheticTask) else None
    built_here = not isinstance(model, nn.Module)
    model, tokenizer = build_model(model, spec, tokenizer, dataset, seed=config.seed, world=world)
    if built_here and spec.is_regression:
        start_at_label_mean(model, dataset["train"]["label"])
    _check_max_length(model, config.max_length)
    set_seed(config.seed)  # adapter init depends on the seed only, not on what loading consumed
    model = apply_method(model, config)
    counts = count_parameters(model)

    # Batches, optimizer and schedule.
    bars = datasets.is_progress_bar_enabled()
    if not (config.progress and accelerator.is_main_process):
        datasets.disable_progress_bars()
    try:
        tokenized = data.tokenize_dataset(dataset, tokenizer, spec, max_length=config.max_length)
    finally:
        if bars:
            datasets.enable_progress_bars()
    train_loader, eval_loaders = data.make_dataloaders(tokenized, data.make_collator(tokenizer), config.batch_size,
                                                       config.seed, eval_batch_size=config.eval_batch_size)
    optimizer = torch.optim.AdamW(param_groups(model, config), weight_decay=config.weight_decay)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    eval_loaders = {s: accelerator.prepare(loader) for s, loader in eval_loaders.items()}
    total_updates = math.ceil(len(train_loader) / config.grad_accum_steps) * config.epochs
    # Not prepared by accelerate (which would step it once per process): one step per optimizer update.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_updates), total_updates)

    history = History({"method": config.method, "task": spec.name, "model": model_name,
                       "config": config.to_dict(), "steps": [], "epochs": [], "wall_time_s": 0.0})
    run = Run(config, accelerator, spec, model, optimizer, scheduler, train_loader, eval_loaders, counts, history,
              main_metric(spec), total_updates)
    checkpoint = _latest_checkpoint(config.output_dir) if config.resume else None
    if checkpoint is not None:
        _resume(run, checkpoint)
    run.started = time.perf_counter() - run.history["wall_time_s"]
    run.bar = tqdm(total=total_updates, initial=run.global_step, desc=f"{config.method} on {spec.name}",
                   disable=not (config.progress and accelerator.is_main_process), dynamic_ncols=True)
    model.train()
    return run


def _resume(run: Run, checkpoint: Path) -> None:
    """Load `checkpoint` into the run's model, optimizer and scheduler, and start where it stopped."""
    config = run.config
    state = load_checkpoint(run.accelerator, run.model, run.optimizer, run.scheduler, checkpoint, config)
    run.history, run.rng = History(state["history"]), state["rng"]
    run.start_epoch, run.skip_batches, run.global_step = state["epoch"], state["batches_in_epoch"], state["global_step"]
    needed = run.start_epoch + (1 if run.skip_batches else 0)
    if needed > config.epochs:  # its weights are past the end of this run: nothing could report them
        raise ValueError(f"The checkpoint {checkpoint} (step {run.global_step}) is already into epoch {needed}, past "
                         f"epochs={config.epochs}: resume with epochs >= {needed} (--epochs), or start over with "
                         f"--no-resume (resume=False).")
    run.accelerator.print(f"Resuming from {checkpoint} (step {run.global_step}).")


def train_epoch(run: Run, epoch: int, step_callback: Optional[Callable[[int, dict], None]] = None) -> None:
    """Step 2: one epoch: train on every batch, record each optimizer step, then evaluate.

    Appends to run.history["steps"] (one entry per optimizer step) and run.history["epochs"] (this epoch's mean
    loss and eval metrics). Writes a checkpoint every `checkpoint_every` steps and at the epoch's end (with
    `output_dir`). A non-finite loss raises `TrainingDiverged` before that step enters the history.
    """
    config, accelerator, model, history = run.config, run.accelerator, run.model, run.history
    run.train_loader.set_epoch(epoch)  # the shuffle order is a function of (seed, epoch): resumable
    # Resuming mid-epoch: skip the batches the checkpoint already trained on (only in the first epoch run).
    batches_done, run.skip_batches = run.skip_batches, 0
    loader = accelerator.skip_first_batches(run.train_loader, batches_done) if batches_done else run.train_loader
    step_losses = []  # the micro-batch losses of the optimizer step being accumulated
    for batch in loader:
        if run.rng is not None:  # resuming: the dropout stream continues where the checkpoint left it
            _set_rng_state(run.rng)
            run.rng = None
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad()
        batches_done += 1
        step_losses.append(loss.detach())
        if not accelerator.sync_gradients:  # still accumulating: no optimizer step was taken
            continue
        run.scheduler.step()
        run.global_step += 1
        step_loss = accelerator.reduce(torch.stack(step_losses).mean(), "mean").item()
        step_losses = []
        if not math.isfinite(step_loss):
            run.bar.close()
            raise TrainingDiverged(
                f"Training diverged at step {run.global_step} (epoch {epoch}): the loss is {step_loss}. Lower the "
                f"learning rate (--lr, now {config.lr:g}) or alpha (--alpha, now {config.lora_alpha:g}), and check "
                f"the labels for NaN/Inf. Nothing was written.")
        history["steps"].append({"step": run.global_step, "epoch": epoch, "loss": step_loss,
                                 "lr": run.scheduler.get_last_lr()[0]})
        run.bar.update(1)
        run.bar.set_postfix(loss=f"{step_loss:.4f}", refresh=False)
        if config.checkpoint_every and run.global_step % config.checkpoint_every == 0 \
                and batches_done < len(run.train_loader):  # epoch ends are checkpointed after evaluation
            _checkpoint(run, epoch, batches_done)
        if step_callback is not None:
            step_callback(run.global_step, history)
    metrics = evaluate(model, run.eval_loaders, run.spec, accelerator)
    train_loss = history_epoch_loss(history, epoch)
    history["epochs"].append({"epoch": epoch, "train_loss": train_loss, "eval": metrics})
    first = next(iter(metrics.values()))
    run.bar.set_postfix(loss=f"{train_loss:.4f}", **{run.metric_name: f"{first[run.metric_name]:.4f}"})
    if config.checkpoint_every:
        _checkpoint(run, epoch + 1, 0)  # "epoch + 1, 0 batches in": the next epoch starts from the top


def _checkpoint(run: Run, epoch: int, batches_in_epoch: int) -> None:
    """Save a resumable checkpoint (with `output_dir`): resuming starts `batches_in_epoch` batches into `epoch`."""
    if not run.config.output_dir:
        return
    run.history["wall_time_s"] = time.perf_counter() - run.started
    save_checkpoint(run.accelerator, run.model, run.optimizer, run.scheduler, run.config.output_dir, {
        "global_step": run.global_step, "epoch": epoch, "batches_in_epoch": batches_in_epoch,
        "history": run.history, "config": run.config.to_dict()})


def finish(run: Run) -> History:
    """Step 3: the final metrics, the adapter (full: the model) and history.json; returns the history.

    The final metrics are the last epoch's evaluation (evaluated now if no epoch ran). Only the main process
    writes; `adapter_bytes` is measured in a temporary folder when there is no `output_dir`.
    """
    config, accelerator, history = run.config, run.accelerator, run.history
    run.bar.close()
    history["wall_time_s"] = time.perf_counter() - run.started
    final = history["epochs"][-1]["eval"] if history["epochs"] else \
        evaluate(run.model, run.eval_loaders, run.spec, accelerator)
    history.update(final=final, main_metric=run.metric_name, metric=next(iter(final.values()))[run.metric_name],
                   params=run.counts.as_dict(), peak_memory_mb=peak_memory_mb(accelerator.device))
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(run.model)
    if accelerator.is_main_process:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(config.output_dir or tmp) / ("model" if config.method == "full" else "adapter")
            save_trained(unwrapped, config.method, folder)
            history["adapter_bytes"] = folder_bytes(folder)
            history["adapter_dir"] = str(folder) if config.output_dir else None
        if config.output_dir:
            write_json(Path(config.output_dir) / "history.json", history)
    accelerator.wait_for_everyone()
    history.trained_model = unwrapped  # history["trained_model"] works; JSON never sees it
    return history


def _reset_accelerate_state() -> None:
    """Forget the previous run's AcceleratorState (mixed precision, ...) but keep the process group, so a
    notebook can call `train` again with other settings without restarting the kernel."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _check_max_length(model: nn.Module, max_length: int) -> None:
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


def history_epoch_loss(history: dict, epoch: int) -> float:
    losses = [s["loss"] for s in history["steps"] if s["epoch"] == epoch]
    return sum(losses) / len(losses) if losses else float("nan")


def peak_memory_mb(device: torch.device) -> Optional[float]:
    """Peak GPU memory allocated by torch, or (CPU) the process's peak resident memory, in MiB.

    None where the platform does not say (Windows has no `resource` module)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource  # POSIX only: imported here so that `import loramini` works on Windows
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # macOS reports bytes, Linux KiB


def plot_history(*histories: Union[dict, str, Path], labels: Optional[list[str]] = None, smooth: int = 10):
    """Training loss per step (moving average over `smooth` steps) and the main metric per epoch.

    Pass one or more histories (dicts from `train`, or history.json paths); returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    loaded = [json.loads(Path(h).read_text()) if isinstance(h, (str, Path)) else h for h in histories]
    labels = labels or [h.get("method", f"run {i}") for i, h in enumerate(loaded)]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    for history, label in zip(loaded, labels):
        losses = torch.tensor([s["loss"] for s in history["steps"]])
        k = max(1, min(smooth, len(losses)))
        smoothed = losses.unfold(0, k, 1).mean(1) if len(losses) >= k else losses
        ax_loss.plot(range(k, k + len(smoothed)), smoothed.numpy(), label=label)
        name = history.get("main_metric", "accuracy")
        split = next(iter(history["epochs"][0]["eval"])) if history["epochs"] else None
        if split:
            ax_metric.plot([e["epoch"] + 1 for e in history["epochs"]],
                           [e["eval"][split][name] for e in history["epochs"]], marker="o", label=label)
            ax_metric.set_ylabel(f"{split} {name}")
    ax_loss.set(xlabel="optimizer step", ylabel="training loss", title="loss")
    ax_metric.set(xlabel="epoch", title="evaluation")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
