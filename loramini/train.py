"""Fine-tuning, one readable loop on `accelerate`, for every method so comparisons are fair.

`train` is three steps: `prepare` (accelerator, data, model, method, optimizer, schedule, resume state),
`train_epoch` once per epoch (batches, step records, checkpoints, divergence check), and `finish` (final
metrics, adapter, history.json).

    history = loramini.train.train("tiny", "synthetic", TrainConfig(method="loramini"))
    history = train("roberta-base", "sst2", TrainConfig(method="lora", epochs=3, output_dir="out/lora"))
    plot_history(history)

Beside the loop: the settings (`train_config`: a `LoRAMiniConfig` plus the training fields, and the default
rates), what each method trains (`methods`), models and tasks (`models.build_model`, `tasks.load_task`) and
resumable checkpoints (`checkpoint`: rerun with the same output_dir to resume, bit-identically).

Learning rates: one per method (the head's too unless `head_lr` is given): `DEFAULT_LR`, or `TINY_LR` on the
tiny model. LoRA-Mini's first Adam steps lower the loss only sqrt(b/d_out) times as much as LoRA's at the same
rate (`experiments.first_step_descent_ratio`), so its rate tuned at 188 steps is 3.3x LoRA's; the default keeps a
margin below that optimum's cliff (see `train_config.DEFAULT_LR`). Regression heads start at the
labels' mean (`models.start_at_label_mean`): without that, STS-B's 0–5 offset swamped the signal.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import nn

from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from .counting import ParameterCounts, count_parameters
from .files import check_writable_dir, folder_bytes, write_json
from .inject import HEAD_PATTERN  # noqa: F401  (re-exported: the head-name rule lives with the other name rules)
from .metrics import evaluate, peak_memory_mb
from .methods import apply_method, param_groups, save_trained
from .models import build_model, check_max_length, start_at_label_mean
from .monitor import STUCK_AFTER_STEPS, TrainingDiverged, check_divergence, task_prior_loss, warn_if_stuck
from .plots import plot_history  # noqa: F401  (re-exported)
from .pooling import use_mean_pooling
from .tasks import TaskSpec, as_task, load_task
from .train_config import DEFAULT_LR, METHODS, PEFT_METHODS, PRECISIONS, TINY_LR, TrainConfig, resolve_precision

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

__all__ = ["DEFAULT_LR", "METHODS", "PEFT_METHODS", "PRECISIONS", "TINY_LR", "Run", "TrainConfig",
           "TrainingDiverged", "build_model", "evaluate", "finish", "load_task", "plot_history", "prepare",
           "resolve_precision", "start_at_label_mean", "train", "train_epoch"]


@dataclass
class Run:
    """Everything `prepare` builds for one run; `train_epoch` advances it and `finish` reports it.

    model, optimizer, train_loader and eval_loaders are already wrapped by `accelerate` (`accelerator.prepare`).
    history is plain JSON data (see `train`). start_epoch, skip_batches, global_step and rng are where the run
    starts: 0 / None for a fresh run, the checkpoint's values when resuming (skip_batches: batches of start_epoch
    already trained; rng: the RNG state to restore before the next batch).
    """

    config: TrainConfig
    accelerator: Accelerator
    spec: TaskSpec
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_loader: DataLoader
    eval_loaders: dict[str, DataLoader]
    counts: ParameterCounts  # count_parameters(model), taken before accelerate wraps it
    history: dict
    metric_name: str
    total_updates: int
    start_epoch: int = 0
    skip_batches: int = 0
    global_step: int = 0
    rng: Optional[dict[str, torch.Tensor]] = None
    started: float = 0.0  # time.perf_counter() at the start, minus the time already spent before a resume
    bar: Optional[tqdm] = None


def train(model, task, config: Optional[TrainConfig] = None, *, tokenizer=None, data_dir=None,
          step_callback: Optional[Callable[[int, dict], None]] = None, **overrides) -> dict:
    """Fine-tune `model` on `task` with `config.method`; returns (and writes) the history.

    model:  "tiny" (offline tiny RoBERTa; pretrained on the synthetic world for synthetic tasks), a hub
            name or local folder (`load_model`), or an nn.Module (then pass `tokenizer`).
    task:   "synthetic", "synthetic-pair", "synthetic-regression", "synthetic-rank", a GLUE name ("sst2", ...;
            `data_dir` = a local GLUE folder), a `SyntheticTask`, or a (DatasetDict, TaskSpec) pair.
    overrides: TrainConfig fields, e.g. ``train("tiny", "synthetic", method="lora", epochs=2)``.
    step_callback(step, history): called after every optimizer step (e.g. to stop or log).

    The history dict: method, task, model, config (the settings the method used), steps [{step, epoch, loss,
    lr}], epochs [{epoch, train_loss, eval}], final ({split: metrics}), main_metric, metric, params
    (count_parameters), adapter_bytes, adapter_dir, wall_time_s, peak_memory_mb, and trained_model (the model
    itself: the one item that is not JSON, left out of history.json, written with `output_dir`).
    A diverging loss raises `TrainingDiverged` (a ValueError) and writes no history, result or adapter.

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
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from . import causal_lm
    from .metrics import main_metric

    if config.output_dir:  # an unusable folder found now, not after the training it would lose
        check_writable_dir(config.output_dir, "output_dir")
    config = config.resolved(tiny=isinstance(model, str) and model == "tiny")
    accelerator = _accelerator(config)
    set_seed(config.seed)
    model, tokenizer, dataset, spec, model_name = _model_and_data(model, task, config, tokenizer, data_dir)
    set_seed(config.seed)  # adapter init depends on the seed only, not on what loading consumed
    model = apply_method(model, config)
    counts = count_parameters(model)
    causal = causal_lm.is_causal_lm(model)
    train_loader, eval_loaders = _loaders(dataset, tokenizer, spec, config, accelerator, causal)
    optimizer = torch.optim.AdamW(param_groups(model, config), weight_decay=config.weight_decay)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if isinstance(eval_loaders, dict):  # a causal LM's CausalEval scores text, not batches
        eval_loaders = {split: accelerator.prepare(loader) for split, loader in eval_loaders.items()}
    total_updates = math.ceil(len(train_loader) / config.grad_accum_steps) * config.epochs
    # Not prepared by accelerate (which would step it once per process): one step per optimizer update.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_updates), total_updates)
    history = {"method": config.method, "task": spec.name, "model": model_name, "config": config.recorded(),
               "steps": [], "epochs": [], "wall_time_s": 0.0, "optimizer_steps": total_updates,
               "label_prior_loss": None if causal else task_prior_loss(dataset, spec), "warnings": []}
    run = Run(config, accelerator, spec, model, optimizer, scheduler, train_loader, eval_loaders, counts, history,
              getattr(eval_loaders, "metric_name", None) or main_metric(spec), total_updates)
    checkpoint = latest_checkpoint(config.output_dir) if config.resume else None
    if checkpoint is not None:
        _resume(run, checkpoint)
    run.started = time.perf_counter() - run.history["wall_time_s"]
    run.bar = tqdm(total=total_updates, initial=run.global_step, desc=f"{config.method} on {spec.name}",
                   disable=not (config.progress and accelerator.is_main_process), dynamic_ncols=True)
    model.train()
    return run


def _accelerator(config: TrainConfig) -> Accelerator:
    """A fresh `Accelerator` for this run's precision, accumulation and seeded shuffling."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DataLoaderConfiguration

    # Forget a previous run's state (its mixed precision, ...) but keep the process group: a notebook can call
    # train() again with other settings without restarting the kernel.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # on a CPU-only machine this makes torchrun's processes one gloo group
        mixed_precision=resolve_precision(config.mixed_precision),
        gradient_accumulation_steps=config.grad_accum_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed))


def _model_and_data(model, task, config: TrainConfig, tokenizer, data_dir):
    """(model, tokenizer, dataset, spec, model name): the task's data and the model to train on it."""
    from .causal_lm import is_causal_lm
    from .synthetic import SyntheticTask

    task = as_task(task, config.max_train_samples)
    dataset, spec, tokenizer = load_task(task, tokenizer, data_dir, config.max_train_samples, config.seed)
    name = type(model).__name__ if isinstance(model, nn.Module) else str(model)
    world = task if isinstance(task, SyntheticTask) else None
    built_here = not isinstance(model, nn.Module)
    model, tokenizer = build_model(model, spec, tokenizer, dataset, seed=config.seed, world=world)
    if config.pooling == "mean":
        use_mean_pooling(model)
    if built_here and spec.is_regression and not is_causal_lm(model):
        start_at_label_mean(model, dataset["train"]["label"])
    check_max_length(model, config.max_length)
    return model, tokenizer, dataset, spec, name


def _loaders(dataset, tokenizer, spec: TaskSpec, config: TrainConfig, accelerator: Accelerator, causal: bool = False):
    """(train loader, {split: eval loader}), tokenized quietly unless this process shows progress.

    causal: a causal LM learns the task as text (`causal_lm.causal_batches`: completion-only labels), and its
    "eval loaders" are a `causal_lm.CausalEval` (completion loss, label-word accuracy, exact match)."""
    import datasets

    from . import data
    from .causal_lm import causal_batches

    bars = datasets.is_progress_bar_enabled()
    if not (config.progress and accelerator.is_main_process):
        datasets.disable_progress_bars()
    try:
        if causal:
            return causal_batches(dataset, spec.name, tokenizer, config)
        tokenized = data.tokenize_dataset(dataset, tokenizer, spec, max_length=config.max_length)
    finally:
        if bars:
            datasets.enable_progress_bars()
    return data.make_dataloaders(tokenized, data.make_collator(tokenizer), config.batch_size, config.seed,
                                 eval_batch_size=config.eval_batch_size, group_by_length=config.group_by_length)


def _resume(run: Run, checkpoint: Path) -> None:
    """Load `checkpoint` into the run's model, optimizer and scheduler, and start where it stopped."""
    state = load_checkpoint(run.accelerator, run.model, run.optimizer, run.scheduler, checkpoint, run.config)
    run.history, run.rng = state["history"], state["rng"]
    run.start_epoch, run.skip_batches, run.global_step = state["epoch"], state["batches_in_epoch"], state["global_step"]
    run.accelerator.print(f"Resuming from {checkpoint} (step {run.global_step}).")


def train_epoch(run: Run, epoch: int, step_callback: Optional[Callable[[int, dict], None]] = None) -> None:
    """Step 2: one epoch: train on every batch, record each optimizer step, then evaluate.

    Appends to run.history["steps"] (one entry per optimizer step) and run.history["epochs"] (this epoch's mean
    loss and eval metrics). Writes a checkpoint every `checkpoint_every` steps and at the epoch's end (with
    `output_dir`). A diverging loss raises `TrainingDiverged` before that step enters the history.
    """
    config, accelerator, model = run.config, run.accelerator, run.model
    run.train_loader.set_epoch(epoch)  # the shuffle order is a function of (seed, epoch): resumable
    # Resuming mid-epoch: skip the batches the checkpoint already trained on (only in the first epoch run).
    batches_done, run.skip_batches = run.skip_batches, 0
    loader = accelerator.skip_first_batches(run.train_loader, batches_done) if batches_done else run.train_loader
    step_losses = []  # the micro-batch losses of the optimizer step being accumulated
    for batch in loader:
        if run.rng is not None:  # resuming: the dropout stream continues where the checkpoint left it
            set_rng_state(run.rng)
            run.rng = None
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad()
        batches_done += 1
        step_losses.append(loss.detach())
        if not accelerator.sync_gradients:  # still accumulating: no optimizer step was taken
            continue
        _record_step(run, epoch, accelerator.reduce(torch.stack(step_losses).mean(), "mean").item())
        step_losses = []
        if config.checkpoint_every and run.global_step % config.checkpoint_every == 0 \
                and batches_done < len(run.train_loader):  # epoch ends are checkpointed after evaluation
            _checkpoint(run, epoch, batches_done)
        if step_callback is not None:
            step_callback(run.global_step, run.history)
    _end_epoch(run, epoch)


def _record_step(run: Run, epoch: int, loss: float) -> None:
    """Count the optimizer step just taken, check its loss (`check_divergence`) and add it to the history."""
    run.scheduler.step()
    run.global_step += 1
    try:
        check_divergence(run.history["steps"], loss)
    except TrainingDiverged as err:
        run.bar.close()
        raise TrainingDiverged(f"Training diverged at step {run.global_step} (epoch {epoch}): {err} Lower the "
                               f"learning rate (--lr, now {run.config.lr:g}) or alpha (--alpha, now "
                               f"{run.config.lora_alpha:g}), and check the labels for NaN/Inf. Nothing was "
                               f"written.") from None
    run.history["steps"].append({"step": run.global_step, "epoch": epoch, "loss": loss,
                                 "lr": run.scheduler.get_last_lr()[0]})
    run.bar.update(1)
    run.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    if run.global_step == STUCK_AFTER_STEPS:
        warn_if_stuck(run.history, run.global_step, run.config.lr)


def _end_epoch(run: Run, epoch: int) -> None:
    """Evaluate, record the epoch, and checkpoint "epoch + 1, 0 batches in" (the next epoch from the top)."""
    metrics = evaluate(run.model, run.eval_loaders, run.spec, run.accelerator)
    train_loss = history_epoch_loss(run.history, epoch)
    run.history["epochs"].append({"epoch": epoch, "train_loss": train_loss, "eval": metrics})
    first = next(iter(metrics.values()))
    run.bar.set_postfix(loss=f"{train_loss:.4f}", **{run.metric_name: f"{first[run.metric_name]:.4f}"})
    if run.config.checkpoint_every:
        _checkpoint(run, epoch + 1, 0)


def _checkpoint(run: Run, epoch: int, batches_in_epoch: int) -> None:
    """Save a resumable checkpoint (with `output_dir`): resuming starts `batches_in_epoch` batches into `epoch`."""
    if not run.config.output_dir:
        return
    run.history["wall_time_s"] = time.perf_counter() - run.started
    save_checkpoint(run.accelerator, run.model, run.optimizer, run.scheduler, run.config.output_dir, {
        "global_step": run.global_step, "epoch": epoch, "batches_in_epoch": batches_in_epoch,
        "history": run.history, "config": run.config.to_dict()})


def finish(run: Run) -> dict:
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
            save_trained(unwrapped, config.method, folder, progress=config.progress)
            history["adapter_bytes"] = folder_bytes(folder)
            history["adapter_dir"] = str(folder) if config.output_dir else None
        if config.output_dir:
            write_json(Path(config.output_dir) / "history.json", history)
    accelerator.wait_for_everyone()
    history["trained_model"] = unwrapped  # after history.json: the one item that is not JSON
    return history


def history_epoch_loss(history: dict, epoch: int) -> float:
    """The mean loss of `epoch`'s optimizer steps (NaN if it had none)."""
    losses = [s["loss"] for s in history["steps"] if s["epoch"] == epoch]
    return sum(losses) / len(losses) if losses else float("nan")
