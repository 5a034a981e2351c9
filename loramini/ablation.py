"""A resumable ablation runner: a grid of settings → one cached JSON file per cell → a table and plots.

    grid = {"r": [1, 2, 4, 8], "ab": [(8, 8), (16, 16), (32, 8)], "targets": ["attention", "dense"]}
    table = run_ablation(grid, run_cell, "runs/ablation")   # rerun: finished cells are read back
    plot_vs_rank(table, "accuracy", hue="targets")            # mean ± std over (a, b) at each r

A cell's file name is a hash of its settings, so adding values to the grid only runs the new cells,
and a run killed half-way resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Callable, Optional, Union

from tqdm.auto import tqdm

from .inject import parse_target_modules
from .io import write_json

Cell = dict[str, Any]


def cell_key(params: Cell) -> str:
    """A short stable id of one cell's settings (same settings → same file)."""
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def grid_cells(grid: dict[str, list], fixed: Optional[Cell] = None) -> list[Cell]:
    """Every combination of the grid's values, each merged over `fixed`."""
    for name, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"grid[{name!r}]={values!r}: give a non-empty list of values to try.")
    names = list(grid)
    return [dict(fixed or {}, **dict(zip(names, combo))) for combo in itertools.product(*(grid[n] for n in names))]


def run_ablation(
    grid: dict[str, list],
    run_cell: Callable[[Cell], dict],
    cache_dir: Union[str, Path],
    fixed: Optional[Cell] = None,
    desc: str = "ablation",
):
    """Run `run_cell(params) -> {metric: value}` on every grid cell not yet cached; return a DataFrame.

    Each row holds the cell's settings, its results and `cached` (True when read back from disk).
    """
    import pandas as pd

    cache_dir = Path(cache_dir)
    cells = grid_cells(grid, fixed)
    rows = []
    bar = tqdm(cells, desc=desc, unit="cell")
    for params in bar:
        bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in params.items() if k in grid))
        cached = cell_path(params, cache_dir).is_file()
        result = cached_run(params, run_cell, cache_dir)
        rows.append({**{k: _plain(v) for k, v in params.items()}, **result, "cached": cached})
    return pd.DataFrame(rows)


def cell_path(params: Cell, cache_dir: Union[str, Path]) -> Path:
    return Path(cache_dir) / f"cell-{cell_key(params)}.json"


def cached_run(params: Cell, run_cell: Callable[[Cell], dict], cache_dir: Union[str, Path]) -> dict:
    """`run_cell(params)`, or its result read back from `cache_dir` when this exact cell ran before."""
    path = cell_path(params, cache_dir)
    if path.is_file():
        return json.loads(path.read_text())["result"]
    result = run_cell(dict(params))
    write_json(path, {"params": params, "result": result})  # atomic: a killed run leaves no half cell
    return result


def _plain(value: Any) -> Any:
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def summarize(table, metric: str, by: list[str]):
    """Mean, std and count of `metric` for each combination of the `by` columns."""
    return table.groupby(by)[metric].agg(["mean", "std", "count"]).reset_index()


def plot_vs(table, x: str, metric: str, hue: Optional[str] = None, ax=None, logx: bool = True,
            title: Optional[str] = None, reference: Optional[float] = None, ylabel: Optional[str] = None,
            reference_label: str = "reference"):
    """Line plot of `metric` (mean ± std over all other settings) against column `x`, one line per `hue`."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 3.6))[1]
    groups = [(None, table)] if hue is None else list(table.groupby(hue))
    for label, part in groups:
        stats = summarize(part, metric, [x]).sort_values(x)
        ax.errorbar(stats[x], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                    label=None if label is None else str(label) if hue == "method" else f"{hue}: {label}")
    if reference is not None:
        ax.axhline(reference, color="grey", ls="--", lw=1, label=reference_label)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title or f"{metric} vs {x}")
    if hue is not None or reference is not None:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


# ---------------------------------------------------------------- the standard cell: one training run
_CELL_KEYS = {"model", "task", "data_dir", "eval_split"}


def train_cell(params: Cell) -> dict:
    """Run one fine-tuning for a grid cell and return its numbers.

    `params` holds `model` (default "tiny"), `task` (default "synthetic"), `data_dir`, and any `TrainConfig`
    field; `ab=(a, b)` sets both widths and `targets` sets `target_modules`.
    """
    from .train import TrainConfig, train

    params = dict(params)
    if "ab" in params:
        params["a"], params["b"] = params.pop("ab")
    if "targets" in params:  # a preset, a regex, or names such as "query,value"
        targets = params.pop("targets")
        params["target_modules"] = parse_target_modules(targets) if isinstance(targets, str) else targets
    run = {k: params.pop(k) for k in list(params) if k in _CELL_KEYS}
    task = run.get("task", "synthetic")
    if "eval_split" in run:  # the protocol's runs: a selection split carved from train (see `carve_task`)
        task = carve_task(task, run.get("data_dir"), params.pop("max_train_samples", None), params.get("seed", 0),
                          run["eval_split"])
    history = train(run.get("model", "tiny"), task, TrainConfig(progress=False, **params),
                    data_dir=run.get("data_dir"))
    counts = history["params"]
    return {"metric": history["metric"], "main_metric": history["main_metric"], "adapter_params": counts["adapter"],
            "trainable_params": counts["trainable"], "adapter_bytes": history["adapter_bytes"],
            "lr": history["config"]["lr"], "head_lr": history["config"]["head_lr"],
            "final_train_loss": history["epochs"][-1]["train_loss"] if history["epochs"] else None,
            "wall_time_s": history["wall_time_s"]}


SELECTION_ROWS = 500  # rows carved out of train to choose learning rates on


def carve_task(task: str, data_dir=None, max_train_samples: Optional[int] = None, seed: int = 0,
               eval_split: str = "validation"):
    """`task` with a selection split carved from its training data, ready for `train`.

    The same `SELECTION_ROWS` rows (at most a fifth of train; fixed seed) are always held out of training, so a
    sweep scored on them ("selection") and the final runs scored on the reported validation set ("validation")
    train on the same pool; `max_train_samples` then draws a `seed`-dependent subset of that pool.
    """
    from datasets import DatasetDict

    from .data import _subsample
    from .synthetic import is_synthetic, make_synthetic
    from .train import load_task

    if eval_split not in ("selection", "validation"):
        raise ValueError(f"eval_split={eval_split!r}: choose 'selection' (for tuning) or 'validation' (to report).")
    world = make_synthetic(task) if is_synthetic(task) else None
    dataset, spec, _ = load_task(world or task, None, data_dir)
    pool = dataset["train"]
    parts = pool.train_test_split(test_size=min(SELECTION_ROWS, len(pool) // 5), seed=1234, shuffle=True)
    train_rows = _subsample(DatasetDict({"train": parts["train"]}), max_train_samples, seed)["train"]
    evaluated = parts["test"] if eval_split == "selection" else dataset[spec.eval_splits[0]]
    carved = DatasetDict({"train": train_rows, spec.eval_splits[0]: evaluated})
    return dataclasses.replace(world, dataset=carved) if world is not None else (carved, spec)


def main(argv=None) -> int:
    """`python -m loramini ablate`: accuracy vs r (averaged over (a, b)) for each target group, cached."""
    from .cli import OneLineParser
    from .config import check_rank
    from .train import METHODS

    parser = OneLineParser(
        prog="python -m loramini ablate",
        description="Rank ablation: fine-tune once per (r, a×b, targets) cell, cache every cell as JSON under "
                    "OUTPUT_DIR (a rerun skips finished cells), then write results.csv and a plot of the metric "
                    "vs r, averaged over the (a, b) combinations.")
    parser.add_argument("--model", default="tiny", help="'tiny' (offline), a hub name or a local folder")
    parser.add_argument("--task", default="synthetic", help="synthetic[-pair|-regression] or a GLUE task")
    parser.add_argument("--data-dir", default=None, help="local GLUE folder (original TSV layout)")
    parser.add_argument("--method", nargs="+", default=["loramini"], choices=METHODS,
                        help="methods to compare (each is a grid value; a, b only matter for loramini)")
    parser.add_argument("--r", type=int, nargs="+", default=[1, 2, 4, 8], help="ranks to try")
    parser.add_argument("--ab", nargs="+", default=["8x8", "16x16"], help="(a, b) widths as AxB")
    parser.add_argument("--targets", nargs="+", default=["attention", "dense"], help="target groups (attention, dense, all-linear) or comma-separated names (query,value)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="adapter learning rate (default: the method's)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds (each is a cell)")
    parser.add_argument("--output-dir", default="outputs/ablation")
    args = parser.parse_args(argv)
    try:
        ab = [tuple(int(v) for v in text.lower().split("x")) for text in args.ab]
        if any(len(pair) != 2 for pair in ab):
            raise ValueError
    except ValueError:
        parser.error(f"--ab {' '.join(args.ab)}: write each pair as AxB, e.g. 16x16")
    for r, (a, b) in itertools.product(args.r, ab if "loramini" in args.method else []):
        try:
            check_rank(r, a, b)
        except ValueError:
            parser.error(f"--r {r} with --ab {a}x{b}: rank(ΔW) <= min(r, a, b) = {min(a, b)}, so a larger r only "
                         f"wastes parameters; lower --r or widen --ab")
    grid = {"method": args.method, "r": args.r, "ab": ab, "targets": args.targets, "seed": args.seed}
    fixed = {"model": args.model, "task": args.task, "data_dir": args.data_dir, "epochs": args.epochs,
             "max_train_samples": args.max_train_samples, "lr": args.lr}
    out = Path(args.output_dir)
    table = run_ablation(grid, train_cell, out / "cells", fixed=fixed, desc="ablate")
    table.to_csv(out / "results.csv", index=False)
    stats = summarize(table, "metric", ["method", "targets", "r"])
    print(stats.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    import matplotlib

    matplotlib.use("Agg")
    metric_name = table["main_metric"].iloc[0]
    hue = "method" if len(args.method) > 1 else "targets"
    ax = plot_vs(table, "r", "metric", hue=hue, ylabel=f"validation {metric_name}",
                 title=f"{args.task}: {metric_name} vs r (mean ± std over (a, b) and seeds)")
    ax.figure.savefig(out / "metric_vs_r.png", dpi=120, bbox_inches="tight")
    print(f"wrote {out / 'results.csv'} and {out / 'metric_vs_r.png'}")
    return 0
