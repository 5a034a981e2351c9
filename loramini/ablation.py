"""A resumable ablation runner: a grid of settings → one cached JSON file per cell → a table and plots.

    grid = {"r": [1, 2, 4, 8], "ab": [(8, 8), (16, 16), (32, 8)], "targets": ["attention", "dense"]}
    table = run_ablation(grid, run_cell, "runs/ablation")   # rerun: finished cells are read back
    plot_vs_rank(table, "accuracy", hue="targets")            # mean ± std over (a, b) at each r

A cell's file name is a hash of its settings, so adding values to the grid only runs the new cells,
and a run killed half-way resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Callable, Optional, Union

from tqdm.auto import tqdm

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
        path = cache_dir / f"cell-{cell_key(params)}.json"
        cached = path.is_file()
        if cached:
            result = json.loads(path.read_text())["result"]
        else:
            bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in params.items() if k in grid))
            result = run_cell(dict(params))
            write_json(path, {"params": params, "result": result})  # atomic: a killed run leaves no half cell
        rows.append({**{k: _plain(v) for k, v in params.items()}, **result, "cached": cached})
    return pd.DataFrame(rows)


def _plain(value: Any) -> Any:
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def summarize(table, metric: str, by: list[str]):
    """Mean, std and count of `metric` for each combination of the `by` columns."""
    return table.groupby(by)[metric].agg(["mean", "std", "count"]).reset_index()


def plot_vs(table, x: str, metric: str, hue: Optional[str] = None, ax=None, logx: bool = True,
            title: Optional[str] = None, reference: Optional[float] = None):
    """Line plot of `metric` (mean ± std over all other settings) against column `x`, one line per `hue`."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 3.6))[1]
    groups = [(None, table)] if hue is None else list(table.groupby(hue))
    for label, part in groups:
        stats = summarize(part, metric, [x]).sort_values(x)
        ax.errorbar(stats[x], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                    label=None if label is None else f"{hue}={label}")
    if reference is not None:
        ax.axhline(reference, color="grey", ls="--", lw=1, label="reference")
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} vs {x}")
    if hue is not None or reference is not None:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
