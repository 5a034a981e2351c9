"""The experiment protocol: what a number in a notebook or the README stands on (DESIGN §6).

    sweep = tune_lr(lambda lr: score(lr), [3e-4, 1e-3, 3e-3])   # widens itself while the best rate is at an edge
    mean, (lo, hi) = confidence_interval([0.81, 0.80, 0.83])     # 95% CI over seeds (Student's t)

`run_protocol` puts the pieces together for one (task, model): for every method it tunes the learning rate on a
*selection* split carved from the training data (the reported validation set is never used to choose), then
trains each requested setting at its method's tuned rate over several seeds and reports the mean with a 95%
confidence interval on the validation set. Every training run is one cached JSON file (see `cached_run`), so an
interrupted protocol resumes where it stopped and a finished one is read back in seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

from .ablation import cached_run, train_cell

Cell = dict[str, Any]


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """(mean, (lo, hi)): the mean of `values` and its Student-t confidence interval.

    With n values the half-width is t_{(1+level)/2, n-1} · s / sqrt(n). Needs n >= 2 (one seed has no spread)
    and 0 < level < 1. This is the package's one t interval: everything else imports it.
    """
    from scipy import stats

    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"confidence_interval(level={level!r}): the confidence level must be a number strictly "
                         f"between 0 and 1, e.g. 0.95.")
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"confidence_interval needs >= 2 values (seeds), got {len(values)}: run more seeds.")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"confidence_interval got non-finite values {values}: a run diverged.")
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return mean, (mean - half, mean + half)


def overlap(ci_a: Sequence[float], ci_b: Sequence[float]) -> bool:
    """True when two confidence intervals overlap: the difference is not resolved by these seeds."""
    return ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1]


def _round_lr(lr: float) -> float:
    return float(f"{lr:.3g}")  # grid points stay short, stable cache keys


@dataclass
class LRSweep:
    """One learning-rate sweep: the grid as finally tried, the score at each rate (-inf: the run diverged), the best
    rate (None when every rate diverged)."""

    grid: list[float]
    scores: list[float]
    best_lr: Optional[float]
    best_at_edge: bool
    extended: int = 0  # how many times the grid grew because its best rate sat at an edge

    @property
    def diverged(self) -> list[float]:
        return [lr for lr, s in zip(self.grid, self.scores) if s == -math.inf]


def check_lr_grid(grid: Sequence[float], where: str = "tune_lr") -> None:
    """One clear ValueError unless every rate is a finite number > 0 (a rate of 0 trains nothing)."""
    for lr in grid:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"{where}: learning rate {lr!r} in the grid {list(grid)} is not a finite number > 0; "
                             f"give positive rates such as [1e-3, 3e-3, 1e-2].")


def _score_or_diverged(score: Callable[[float], float], lr: float) -> float:
    """score(lr), or -inf when the run diverged (a non-finite score, or `TrainingDiverged`)."""
    from .train import TrainingDiverged

    try:
        value = float(score(lr))
    except TrainingDiverged:
        return -math.inf
    return value if math.isfinite(value) else -math.inf  # a diverged run loses


def tune_lr(score: Callable[[float], float], grid: Sequence[float], max_extensions: int = 4) -> LRSweep:
    """Try every rate in `grid` (higher score is better); while the best sits at an edge, add the next rate
    beyond it (same ratio as the grid's first step) and try again, up to `max_extensions` times.

    A diverged run (non-finite score, or `TrainingDiverged`) scores -inf and is never the best; while every rate
    has diverged, the grid grows downward. `best_at_edge` in the result is True when the budget of extensions ran
    out with the optimum still at an edge (or nothing but divergence): then the sweep did not bracket the
    optimum, and whoever reports it must say so.
    """
    check_lr_grid(grid)
    grid = sorted({_round_lr(lr) for lr in grid})
    if len(grid) < 2:
        raise ValueError(f"tune_lr needs a grid of >= 2 distinct rates, got {grid}.")
    ratio = grid[1] / grid[0]
    scores: dict[float, float] = {}
    extended = 0
    while True:
        for lr in grid:
            if lr not in scores:
                scores[lr] = _score_or_diverged(score, lr)
        finite = [lr for lr in grid if scores[lr] > -math.inf]
        best = max(finite, key=lambda lr: scores[lr]) if finite else None
        at_edge = best is None or best in (grid[0], grid[-1])
        downward = best is None or best == grid[0]
        beyond = _round_lr(grid[0] / ratio if downward else grid[-1] * ratio)
        if not at_edge or extended >= max_extensions or not 0 < beyond < math.inf:
            break
        grid = [beyond] + grid if downward else grid + [beyond]
        extended += 1
    return LRSweep(grid, [scores[lr] for lr in grid], best, at_edge, extended)


def _trial_layers(d_in: int, d_out: int, r: int, a: int, b: int, alpha: Optional[float], trials: int, seed: int):
    """`trials` fresh LoRA-Mini layers (d_out × d_in), each with an upstream gradient G = ∂L/∂ΔW ~ N(0, 1) of the
    loss L = <G, ΔW>, drawn from a generator seeded by `seed` (A_train's init uses torch's global one)."""
    from torch import nn

    from .layer import LoRAMiniLinear

    generator = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        layer = LoRAMiniLinear(nn.Linear(d_in, d_out), r=r, a=a, b=b, alpha=alpha, name=f"trial{trial}",
                               projection_seed=seed)
        yield layer, torch.randn(d_out, d_in, generator=generator)


def first_step_descent_ratio(d_in: int, d_out: int, r: int = 8, a: int = 32, b: int = 32, trials: int = 10,
                             seed: int = 0) -> tuple[float, float]:
    """(measured, predicted): how much a first Adam step of LoRA-Mini lowers a loss, relative to LoRA's, same lr.

    Adam's first step moves every trainable number by ±lr (the sign of its gradient), so a step lowers a loss by
    lr · ||gradient||₁ to first order. At init B = 0, so only the B side moves. LoRA's B (d_out × r) gets
    g = scale · G A_effᵀ; LoRA-Mini's B_train (b × r) gets B_auxᵀ g: b·r numbers instead of d_out·r, each of
    spread ||g column|| / sqrt(b) (B_aux ~ N(0, 1/b)). Hence ||B_auxᵀ g||₁ / ||g||₁ ≈ sqrt(b / d_out): to start
    learning as fast as LoRA, LoRA-Mini needs a learning rate sqrt(d_out / b) times LoRA's (3.5x for d=384, b=32;
    4.9x for roberta-base's 768). Measured with autograd on real layers for a random upstream gradient G.
    """
    ratios = []
    for layer, upstream in _trial_layers(d_in, d_out, r, a, b, 2 * r, trials, seed):
        (upstream * layer.delta_weight()).sum().backward()
        a_eff = (layer.A_train @ layer.A_aux).detach()  # LoRA with the same A (r × d_in), B = 0
        b_lora = torch.zeros(d_out, r, requires_grad=True)
        (upstream * (layer.scale * b_lora @ a_eff)).sum().backward()
        ratios.append(float(layer.B_train.grad.abs().sum() / b_lora.grad.abs().sum()))
    return sum(ratios) / len(ratios), math.sqrt(b / d_out)


def first_step_descent(d_in: int, d_out: int, r: int = 8, a: int = 32, b: int = 32, alpha: Optional[float] = None,
                       trials: int = 10, seed: int = 0) -> float:
    """||∂L/∂B_train||₁ of a fresh LoRA-Mini layer (d_out × d_in; alpha None = 2·r) for L = <G, ΔW>, G ~ N(0, 1),
    averaged over `trials` layers: how far a first Adam step (every number moved by ±lr) lowers L, per unit of lr.

    The gradient is scale · B_auxᵀ G A_effᵀ (b × r numbers), so it grows with alpha and, at alpha = 2·r, with r."""
    total = 0.0
    with torch.random.fork_rng(devices=[]):  # A_train's init draws from the global generator: seed it, restore it
        torch.manual_seed(seed)
        for layer, upstream in _trial_layers(d_in, d_out, r, a, b, alpha, trials, seed):
            (upstream * layer.delta_weight()).sum().backward()
            total += float(layer.B_train.grad.abs().sum())
    return total / trials


def first_step_rule_lr(lr: float, shape: dict, reference: dict, d_in: int, d_out: int, trials: int = 10) -> float:
    """The rate at which a layer of `shape` ({"r", "a", "b", "alpha"}; missing keys as in `reference`) takes the
    same first Adam step down the loss as a `reference` layer at `lr`: lr · descent(reference) / descent(shape).

    The derived rule √(d_out / b) extended to r, a, b and alpha; whether later steps follow it is what the
    per-shape sweeps of benchmarks/accuracy_vs_params.py check."""
    keys = ("r", "a", "b", "alpha")
    ref = {k: reference.get(k) for k in keys if reference.get(k) is not None}
    own = {**ref, **{k: shape[k] for k in keys if shape.get(k) is not None}}  # no alpha anywhere: 2·r for each
    return lr * first_step_descent(d_in, d_out, **ref, trials=trials) / first_step_descent(d_in, d_out, **own,
                                                                                            trials=trials)


# ------------------------------------------------------------------------------------------ the protocol
@dataclass
class Protocol:
    """One task and model, the methods to compare, and how hard to try.

    base:       settings shared by every run (any `train_cell` key: task, model, data_dir, epochs,
                max_train_samples, max_length, batch_size, ...)
    methods:    {label: settings of that method at its reference shape}, e.g.
                {"loramini": {"method": "loramini", "r": 8, "a": 32, "b": 32}, "lora": {"method": "lora", "r": 8}}
    lr_grids:   {label: starting grid}; a method without a grid is run at its default rate (then say so)
    variants:   {label: [extra settings, ...]}: more shapes of a method (e.g. other r), run at its tuned rate
    tune_shapes: give every variant its own sweep too, on a half-decade grid around the method's tuned rate
                (`shape_grid`), instead of the reference shape's rate
    seeds:      the distinct seeds every reported setting runs with (>= 3)
    tune_seeds: the distinct seeds the sweep averages over (on the selection split)
    max_extensions: how often a sweep may grow while its best rate sits at an edge (see `tune_lr`)
    """

    base: Cell
    methods: dict[str, Cell]
    lr_grids: dict[str, list[float]] = field(default_factory=dict)
    variants: dict[str, list[Cell]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    tune_seeds: list[int] = field(default_factory=lambda: [0])
    max_extensions: int = 4
    tune_shapes: bool = False


def shape_grid(lr: float) -> list[float]:
    """A half-decade grid around `lr`: lr / sqrt(10), lr, lr * sqrt(10) (`tune_lr` widens it at an edge)."""
    return [_round_lr(lr / math.sqrt(10)), _round_lr(lr), _round_lr(lr * math.sqrt(10))]


def check_seeds(seeds: Sequence[int], name: str = "seeds", minimum: int = 3) -> None:
    """One clear ValueError unless `seeds` holds at least `minimum` distinct integers >= 0.

    Repeated seeds would repeat one run and report a spread of zero: three equal values are one measurement."""
    if not isinstance(seeds, (list, tuple)) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"{name}={seeds!r}: give a list of integer seeds >= 0.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name}={list(seeds)}: the seeds must be distinct (a repeated seed repeats the same run).")
    if len(seeds) < minimum:
        raise ValueError(f"{name}={list(seeds)}: report at least {minimum} seeds (DESIGN §6).")


def _check_protocol(protocol: Protocol, run: Callable[[Cell], dict]) -> None:
    """Every seed list, grid and (for `train_cell`) every run's settings, checked before anything trains."""
    check_seeds(protocol.seeds, "Protocol.seeds")
    check_seeds(protocol.tune_seeds, "Protocol.tune_seeds", minimum=1)
    for label, grid in protocol.lr_grids.items():
        check_lr_grid(grid, f"Protocol.lr_grids[{label!r}]")
    if run is train_cell:
        from .ablation import check_cell

        for label, settings in protocol.methods.items():
            for extra in [{}] + list(protocol.variants.get(label, [])):
                lr = protocol.lr_grids[label][0] if label in protocol.lr_grids else settings.get(
                    "lr", protocol.base.get("lr"))
                check_cell({**protocol.base, **settings, **extra, "lr": lr, "seed": protocol.seeds[0]})


def _diverged(run: dict) -> bool:
    return bool(run.get("diverged")) or run.get("metric") is None


def _cell_record(label: str, setting: Cell, lr: Optional[float], seeds: list[int], runs: list[dict]) -> dict:
    """One reported setting: mean and 95% CI over the seeds, or `diverged` (no mean) if any seed's run diverged."""
    ok = [r for r in runs if not _diverged(r)]
    first = ok[0] if ok else {}
    diverged = len(ok) < len(runs)
    values = [None if _diverged(r) else r["metric"] for r in runs]
    mean, ci = (None, None) if diverged else confidence_interval(values)
    return {"task": setting.get("task"), "model": setting.get("model"), "method": label,
            "r": setting.get("r"), "a": setting.get("a"), "b": setting.get("b"),
            "adapter_params": first.get("adapter_params"), "trainable_params": first.get("trainable_params"),
            "lr": first.get("lr", lr), "default_lr": lr is None, "seeds": list(seeds),
            "metric_name": first.get("main_metric"), "values": values, "diverged": diverged,
            "metric_mean": mean, "ci95": None if ci is None else list(ci)}


def _sweep(label: str, cell: Cell, protocol: Protocol, cache: Path, run: Callable[[Cell], dict], log,
           grid: Optional[list[float]] = None) -> dict:
    """Tune `label`'s rate (from `grid`, default its protocol grid) on the selection split; a rate whose run
    diverges on any tune seed scores -inf."""
    def score(lr):
        runs = [cached_run({**cell, "lr": lr, "seed": s, "eval_split": "selection"}, run, cache)
                for s in protocol.tune_seeds]
        return -math.inf if any(_diverged(r) for r in runs) else sum(r["metric"] for r in runs) / len(runs)

    sweep = tune_lr(score, grid or protocol.lr_grids[label], protocol.max_extensions)
    lr = sweep.best_lr
    shape = {k: cell[k] for k in ("r", "a", "b") if cell.get(k) is not None}
    log(f"{label}{f' {shape}' if grid else ''}: " + (f"best lr {lr:g} on the selection split" if lr is not None else "every rate diverged")
        + f" (grid {sweep.grid}" + (f"; diverged at {sweep.diverged})" if sweep.diverged else ")")
        + ("  ** still at the grid's edge **" if sweep.best_at_edge and lr is not None else ""))
    return {"task": cell.get("task"), "model": cell.get("model"), "method": label, **shape, "grid": sweep.grid,
            "scores": [s if math.isfinite(s) else None for s in sweep.scores], "diverged": sweep.diverged,
            "best_lr": lr, "best_at_edge": sweep.best_at_edge, "selection": "split carved from train",
            "tune_seeds": list(protocol.tune_seeds)}


def run_protocol(protocol: Protocol, cache_dir: Union[str, Path], run: Callable[[Cell], dict] = train_cell,
                 log: Callable[[str], None] = print) -> dict:
    """Tune each method's rate on the selection split, then run every setting over the seeds.

    Returns {"lr_sweeps": [...], "cells": [...]} in the layout of benchmarks/results/accuracy-vs-params.json.
    A run that diverges is cached as diverged (`cached_run`): it loses its sweep (scores None, listed under
    "diverged"), and a reported setting with a diverged seed is marked `diverged` with no mean or interval.
    If every rate of a method diverges, its settings are reported as diverged without being run.
    """
    _check_protocol(protocol, run)
    cache = Path(cache_dir)
    sweeps, shape_sweeps, cells = [], [], []
    for label, settings in protocol.methods.items():
        cell = {**protocol.base, **settings}
        if label in protocol.lr_grids:
            sweeps.append(_sweep(label, cell, protocol, cache, run, log))
            lr = sweeps[-1]["best_lr"]
            if lr is None:  # nothing to report at: every rate diverged
                for extra in [{}] + list(protocol.variants.get(label, [])):
                    cells.append(_cell_record(label, {**cell, **extra}, None, protocol.seeds, [{"diverged": True}]))
                continue
        else:
            lr = cell.get("lr")
        for extra in [{}] + list(protocol.variants.get(label, [])):
            shape_lr = lr
            if extra and protocol.tune_shapes and label in protocol.lr_grids:
                shape_sweeps.append(_sweep(label, {**cell, **extra}, protocol, cache, run, log, shape_grid(lr)))
                shape_lr = shape_sweeps[-1]["best_lr"]
            setting = {**cell, **extra, "lr": shape_lr}
            runs = ([cached_run({**setting, "seed": s}, run, cache) for s in protocol.seeds] if shape_lr is not None
                    else [{"diverged": True}])
            cells.append(_cell_record(label, setting, shape_lr, protocol.seeds, runs))
            found = cells[-1]
            log(f"{label} {extra or ''}: " + ("diverged" if found["diverged"] else
                f"{found['metric_name']} {found['metric_mean']:.4f} [{found['ci95'][0]:.4f}, {found['ci95'][1]:.4f}]"))
    return {"lr_sweeps": sweeps, "cells": cells, **({"shape_sweeps": shape_sweeps} if protocol.tune_shapes else {})}


def plot_accuracy_vs_params(cells: list[dict], references: Optional[dict[str, dict]] = None, ax=None,
                            title: Optional[str] = None, colors: Optional[dict[str, str]] = None):
    """Metric against trainable adapter parameters (log x), mean ± 95% CI per setting.

    Methods with several points (e.g. LoRA over r) are joined by a line in order of parameter count;
    `references` ({label: {"metric_mean", "ci95"}}, e.g. full fine-tuning, a probe) are horizontal lines.
    `colors` ({method or reference label: colour}) keeps one colour per series across several panels.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.4, 4.0), dpi=110)[1]
    cells = [c for c in cells if c.get("metric_mean") is not None]  # a diverged setting has no point to plot
    methods = list(dict.fromkeys(c["method"] for c in cells))
    for method in methods:
        points = sorted((c for c in cells if c["method"] == method), key=lambda c: c["adapter_params"])
        x = [c["adapter_params"] for c in points]
        y = [c["metric_mean"] for c in points]
        err = [[c["metric_mean"] - c["ci95"][0] for c in points], [c["ci95"][1] - c["metric_mean"] for c in points]]
        style = "-o" if method.startswith("lora") and method != "loramini" else "o"
        ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, ms=5, label=method, color=(colors or {}).get(method))
    for i, (label, ref) in enumerate((references or {}).items()):
        color = (colors or {}).get(label, f"C{len(methods) + i}")
        ax.axhline(ref["metric_mean"], ls="--", lw=1, color=color, label=label)
        if ref.get("ci95"):
            ax.axhspan(ref["ci95"][0], ref["ci95"][1], color=color, alpha=0.12)
    ax.set_xscale("log")
    name = cells[0]["metric_name"] if cells else "metric"
    ax.set_xlabel("trainable adapter parameters (log scale)")
    ax.set_ylabel({"pearson_spearman": "Pearson/Spearman (mean)"}.get(name, name))
    ax.set_title(title or "")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return ax


def write_results(path: Union[str, Path], results: dict, command: str, note: str = "") -> Path:
    """Write the results JSON (atomically) with the command that regenerates it."""
    from .io import write_json

    path = Path(path)
    write_json(path, {"command": command, "note": note, **results})
    return path


def read_results(path: Union[str, Path]) -> dict:
    """The results JSON at `path` (ValueError naming the file if it is not readable JSON)."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{str(path)!r} is not a readable results file ({reason}): regenerate it with the command "
                         f"that wrote it.") from None


__all__ = ["first_step_descent_ratio", "confidence_interval", "overlap", "tune_lr", "check_lr_grid", "check_seeds",
           "LRSweep", "Protocol", "run_protocol",
           "plot_accuracy_vs_params", "write_results", "read_results"]
