"""A resumable ablation runner: a grid of settings → one cached JSON file per cell → a table and plots.

    grid = {"r": [1, 2, 4, 8], "ab": [(8, 8), (16, 16), (32, 8)], "targets": ["attention", "dense"]}
    table = run_ablation(grid, run_cell, "runs/ablation")   # rerun: finished cells are read back
    plot_vs_rank(table, "accuracy", hue="targets")            # mean ± std over (a, b) at each r

A cell's file name is a hash of its settings, so adding values to the grid only runs the new cells,
and a run killed half-way resumes where it stopped. A cached result is used only while the run function's
declared version (`RUN_VERSION` for `train_cell`) and the model's files (`model_identity`) are the same as when
it was written; otherwise the cell runs again and its file is replaced.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import warnings
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
        seen = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(seen)) != len(seen):  # e.g. seeds 0 0 0: one run three times, a spread of zero
            raise ValueError(f"grid[{name!r}]={list(values)!r}: a value appears twice; give distinct values.")
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
        result, cached = _cached_run(params, run_cell, cache_dir)
        rows.append({**{k: _plain(v) for k, v in params.items()}, **result, "cached": cached})
    return pd.DataFrame(rows)


def cell_path(params: Cell, cache_dir: Union[str, Path]) -> Path:
    return Path(cache_dir) / f"cell-{cell_key(params)}.json"


# The version of `train_cell`'s results. The rule: bump it in any change after which the same settings give
# different numbers (training, evaluation, data order, metrics, defaults); a refactor that leaves every number
# the same keeps it. The run cache holds a result only for the version that produced it (a file written before
# versions existed counts as version 1), so a bump reruns every cell, and a refactor reruns none.
RUN_VERSION = 1

# The files that define a model folder's results: its config, weights and tokenizer (not READMEs or pickles).
MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer*", "vocab*", "merges.txt",
               "special_tokens_map.json", "*.model")


def model_identity(model) -> Optional[str]:
    """What a run's result depends on in `model`, for cache keys: "tiny" (defined by the code); for a folder, its
    absolute path and a hash of its config, weights and tokenizer files; for a hub name, the name (and the hash
    of its cached snapshot when there is one). A path that names no folder is a ValueError."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    name = str(model)
    if name == "tiny":
        return "tiny"
    path = Path(name).expanduser()
    if path.is_dir():
        return f"{path.resolve()}#{_folder_hash(path.resolve())}"
    if path.exists() or path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name:
        raise ValueError(f"model {name!r}: no such folder (a model folder holds config.json and the weights). Give "
                         f"'tiny', a model folder, or a hub name such as 'roberta-base'.")
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid repo id, no cache: the name is all there is
        found = None
    return f"{name}#{_folder_hash(Path(found).parent)}" if isinstance(found, str) else name


def _folder_hash(folder: Path) -> str:
    files = sorted({p for pattern in MODEL_FILES for p in folder.glob(pattern) if p.is_file()})
    return _hash_files(str(folder), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=32)
def _hash_files(folder: str, stamps: tuple) -> str:
    """SHA-256 of the files' names and contents; memoized on (name, size, mtime) so a big model is read once."""
    digest = hashlib.sha256()
    for name, _, _ in stamps:
        digest.update(name.encode() + b"\0")
        with open(Path(folder) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _read_cell(path: Path) -> Optional[dict]:
    """The stored cell at `path`, or None (with a warning naming the file) when it is unreadable."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        if not isinstance(stored, dict) or not isinstance(stored.get("result"), dict):
            raise ValueError("no 'result' object")
        return stored
    except (ValueError, UnicodeDecodeError, RecursionError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        warnings.warn(f"{path}: unreadable cached run ({reason}); running it again and overwriting the file.")
        return None


def _run_or_diverged(run_cell: Callable[[Cell], dict], params: Cell) -> dict:
    """`run_cell(params)`; a run that diverges (`TrainingDiverged`, or a non-finite metric) gives
    {"metric": None, "diverged": True, "error": why}, which is cached like any result."""
    from .train import TrainingDiverged

    try:
        result = run_cell(dict(params))
    except TrainingDiverged as err:
        return {"metric": None, "diverged": True, "error": str(err).splitlines()[0]}
    metric = result.get("metric") if isinstance(result, dict) else None
    if isinstance(metric, float) and not math.isfinite(metric):
        return {"metric": None, "diverged": True, "error": f"the run's metric is {metric}"}
    return result


def _cached_run(params: Cell, run_cell: Callable[[Cell], dict], cache_dir: Union[str, Path]) -> tuple[dict, bool]:
    path = cell_path(params, cache_dir)
    version = getattr(run_cell, "run_version", 1)
    identity = model_identity(params.get("model"))
    stored = _read_cell(path)
    if stored is not None and stored.get("run_version", 1) == version \
            and stored.get("model_identity", identity) == identity:
        return stored["result"], True
    result = _run_or_diverged(run_cell, params)
    write_json(path, {"params": params, "run_version": version, "model_identity": identity, "result": result})
    return result, False  # written atomically: a killed run leaves no half cell


def cached_run(params: Cell, run_cell: Callable[[Cell], dict], cache_dir: Union[str, Path]) -> dict:
    """`run_cell(params)`, or its result read back from `cache_dir` when this exact cell ran before.

    "This exact cell": the same settings (the file name), the same `run_cell.run_version` (default 1; see
    `RUN_VERSION`) and, when `params["model"]` names a model, the same `model_identity`. Otherwise (or when the
    file is unreadable: a warning names it) the cell runs again and replaces the file. A run that diverges is
    cached as {"metric": None, "diverged": True, "error": ...}, so a rerun does not train it again.
    """
    return _cached_run(params, run_cell, cache_dir)[0]


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


def _cell_parts(params: Cell):
    """(run settings, rows for `carve_task`, TrainConfig) of one cell: the TrainConfig validates its fields."""
    from .train import TrainConfig

    params = dict(params)
    if "ab" in params:
        params["a"], params["b"] = params.pop("ab")
    if "targets" in params:  # a preset, a regex, or names such as "query,value"
        targets = params.pop("targets")
        params["target_modules"] = parse_target_modules(targets) if isinstance(targets, str) else targets
    run = {k: params.pop(k) for k in list(params) if k in _CELL_KEYS}
    # the protocol's runs carve a selection split from train (see `carve_task`), which takes the row budget
    carved_rows = params.pop("max_train_samples", None) if "eval_split" in run else None
    return run, carved_rows, TrainConfig(progress=False, **params)


def check_task(task) -> None:
    """ValueError unless `task` names a synthetic or GLUE task (other task objects are checked by `train`)."""
    from .synthetic import is_synthetic
    from .tasks import get_task

    if isinstance(task, str) and not is_synthetic(task):
        get_task(task)


def check_cell(params: Cell) -> None:
    """Everything about one cell that can be checked without training it (ValueError / TypeError): its
    TrainConfig fields, its task name, its model (an existing folder, 'tiny' or a hub name) and eval split."""
    run, _, _ = _cell_parts(params)
    check_task(run.get("task", "synthetic"))
    model_identity(run.get("model", "tiny"))
    if run.get("eval_split", "validation") not in ("selection", "validation"):
        raise ValueError(f"eval_split={run['eval_split']!r}: choose 'selection' (for tuning) or 'validation'.")


def train_cell(params: Cell) -> dict:
    """Run one fine-tuning for a grid cell and return its numbers.

    `params` holds `model` (default "tiny"), `task` (default "synthetic"), `data_dir`, and any `TrainConfig`
    field; `ab=(a, b)` sets both widths and `targets` sets `target_modules`.
    """
    from .train import train

    run, carved_rows, config = _cell_parts(params)
    task = run.get("task", "synthetic")
    if "eval_split" in run:  # the protocol's runs: a selection split carved from train (see `carve_task`)
        task = carve_task(task, run.get("data_dir"), carved_rows, config.seed, run["eval_split"])
    history = train(run.get("model", "tiny"), task, config, data_dir=run.get("data_dir"))
    counts = history["params"]
    return {"metric": history["metric"], "main_metric": history["main_metric"], "adapter_params": counts["adapter"],
            "trainable_params": counts["trainable"], "adapter_bytes": history["adapter_bytes"],
            "lr": history["config"]["lr"], "head_lr": history["config"]["head_lr"],
            "final_train_loss": history["epochs"][-1]["train_loss"] if history["epochs"] else None,
            "wall_time_s": history["wall_time_s"]}


train_cell.run_version = RUN_VERSION  # what `cached_run` checks a cached result against


def output_problem(path: Union[str, Path], folder: bool = True) -> Optional[str]:
    """Why `path` cannot take the output (a folder, or a file when folder=False), or None when it can: one rule
    for the runners (ablate, the benchmarks), checked before any work starts."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        return f"{str(path)!r} is {'a file' if folder else 'a folder'}; give {'a folder' if folder else 'a file'} path"
    parent = path if path.is_dir() else path.parent  # where the new files go (a file is replaced by a rename)
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{str(parent)!r} is a file, so {str(path)!r} cannot be created; choose another path"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{str(parent)!r} is not writable; choose another path"
    return None


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
    """`python -m loramini ablate`: accuracy vs r (averaged over (a, b)) for each target group, cached.

    Every flag and every cell's settings are checked before the first cell trains (exit 2, one line)."""
    from .cli import OneLineParser, _number
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
    parser.add_argument("--r", type=_number(int, positive=True), nargs="+", default=[1, 2, 4, 8], help="ranks to try")
    parser.add_argument("--ab", nargs="+", default=["8x8", "16x16"], help="(a, b) widths as AxB")
    parser.add_argument("--targets", nargs="+", default=["attention", "dense"], help="target groups (attention, dense, all-linear) or comma-separated names (query,value)")
    parser.add_argument("--epochs", type=_number(int, positive=True), default=2)
    parser.add_argument("--max-train-samples", type=_number(int, positive=True), default=None)
    parser.add_argument("--lr", type=_number(float, positive=True), default=None, help="adapter learning rate (default: the method's)")
    parser.add_argument("--seed", type=_number(int), nargs="+", default=[0], help="seeds (each is a cell)")
    parser.add_argument("--output-dir", default="outputs/ablation")
    args = parser.parse_args(argv)
    try:
        from .experiments import check_seeds

        check_seeds(args.seed, "--seed", minimum=1)
    except ValueError as err:
        parser.error(f"--seed {' '.join(map(str, args.seed))}: {str(err).split(': ', 1)[1]}")
    grid = {"method": args.method, "r": args.r, "ab": _widths(parser, args), "targets": args.targets,
            "seed": args.seed}
    fixed = {"model": args.model, "task": args.task, "data_dir": args.data_dir, "epochs": args.epochs,
             "max_train_samples": args.max_train_samples, "lr": args.lr}
    _check_cells(parser, grid, fixed)
    out = Path(args.output_dir)
    problem = output_problem(out)
    if problem:
        parser.error(f"--output-dir: {problem}")
    table = run_ablation(grid, train_cell, out / "cells", fixed=fixed, desc="ablate")
    table.to_csv(out / "results.csv", index=False)
    stats = summarize(table, "metric", ["method", "targets", "r"])
    print(stats.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    import matplotlib

    matplotlib.use("Agg")
    names = table["main_metric"].dropna() if "main_metric" in table else []
    metric_name = names.iloc[0] if len(names) else "metric"  # every cell may have diverged
    hue = "method" if len(args.method) > 1 else "targets"
    ax = plot_vs(table, "r", "metric", hue=hue, ylabel=f"validation {metric_name}",
                 title=f"{args.task}: {metric_name} vs r (mean ± std over (a, b) and seeds)")
    ax.figure.savefig(out / "metric_vs_r.png", dpi=120, bbox_inches="tight")
    print(f"wrote {out / 'results.csv'} and {out / 'metric_vs_r.png'}")
    return 0


def _widths(parser, args) -> list[tuple[int, int]]:
    """--ab as (a, b) pairs, each wide enough for every --r (LoRA-Mini only)."""
    from .config import check_rank

    try:
        ab = [tuple(int(v) for v in text.lower().split("x")) for text in args.ab]
        if any(len(pair) != 2 or min(pair) < 1 for pair in ab):
            raise ValueError
    except ValueError:
        parser.error(f"--ab {' '.join(args.ab)}: write each pair as AxB with A, B >= 1, e.g. 16x16")
    for r, (a, b) in itertools.product(args.r, ab if "loramini" in args.method else []):
        try:
            check_rank(r, a, b)
        except ValueError:
            parser.error(f"--r {r} with --ab {a}x{b}: rank(ΔW) <= min(r, a, b) = {min(a, b)}, so a larger r only "
                         f"wastes parameters; lower --r or widen --ab")
    return ab


def _check_cells(parser, grid: dict[str, list], fixed: Cell) -> None:
    """Every cell's settings, checked before the first one trains: a bad one is a usage error (exit 2)."""
    flags = {"method": "--method", "r": "--r", "ab": "--ab", "targets": "--targets", "seed": "--seed"}
    try:
        cells = grid_cells(grid, fixed)
    except ValueError as err:  # a repeated value: name the flag
        name = next((n for n in grid if f"grid[{n!r}]" in str(err)), "")
        parser.error(f"{flags.get(name, name)} {' '.join(map(str, grid.get(name, [])))}: a value appears twice; "
                     f"give distinct values")
    for params in cells:
        try:
            check_cell(params)
        except (ValueError, TypeError) as err:
            where = ", ".join(f"{k}={_plain(params[k])}" for k in grid)
            parser.error(f"cell ({where}): {str(err).splitlines()[0]}")
