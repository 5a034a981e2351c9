"""Accuracy against trainable adapter parameters, by the experiment protocol (DESIGN §6) → one JSON file.

    # the committed real-model results (CPU, resumable: rerun the same command to continue)
    python benchmarks/accuracy_vs_params.py --model PATH/all-MiniLM-L6-v2 --data-dir PATH/glue --task sst2 stsb
    # the offline smoke version notebook 04 runs (tiny RoBERTa, synthetic-rank; ~minutes on 2 CPU cores)
    python benchmarks/accuracy_vs_params.py --model tiny --task synthetic-rank --out benchmarks/results/accuracy-vs-params-smoke.json

For each task: every method's learning rate is tuned on a selection split carved from the training data (a log
grid that widens while the best rate sits at an edge; `--tune-seeds` seeds), then every setting runs at its
method's tuned rate over `--seeds` seeds and is reported on the validation set as mean and 95% CI. The frozen
encoder's linear probe (scikit-learn, mean-pooled and [CLS] features, same training rows and seeds) and, for pair
regression, the zero-shot cosine of its sentence embeddings are added as references. Each training run is cached
as one JSON file under `--cache`, so an interrupted run resumes, and the JSON is rewritten after every task.
A cached number is reused only for the same settings, the same model files (`model_identity`: not the label) and
the same declared code version (`RUN_VERSION` for training runs, `PROBE_VERSION` for the references; bump one
when a change gives other numbers for the same settings). A run that diverges is cached and reported as
diverged, never selected. Every flag is checked before any work: a bad one is one line and exit status 2, a
failure while running one line and exit status 1.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from loramini.experiments import Protocol, confidence_interval, run_protocol, write_results

RESULTS = Path(__file__).resolve().parent / "results"

# Starting grids (the protocol widens them when the best rate sits at an edge).
LR_GRIDS = {"loramini": [1e-3, 3e-3, 1e-2], "lora": [3e-4, 1e-3, 3e-3], "vera": [3e-3, 1e-2, 3e-2],
            "tinylora": [3e-3, 1e-2, 3e-2], "head": [1e-3, 1e-2, 1e-1], "full": [3e-5, 1e-4, 3e-4]}
TINY_GRIDS = {m: [lr * 4 for lr in grid] for m, grid in LR_GRIDS.items()}


def methods(hidden: int, figure: bool, shapes: str = "grid") -> tuple[dict, dict]:
    """The methods at their reference shape (r=8, a=b=32), parameter-matched relatives, and the figure's variants.

    shapes "grid": every r x (a, b) of the figure; "axes": one axis at a time around the reference (LoRA-Mini
    r = 4, 16 and a = b = 16, 64; LoRA r = 1, 2, 16), the cheaper set for a real model on a CPU.
    VeRA trains d_out + r numbers per layer: r = 8·(32+32) − d_out matches LoRA-Mini's 512 per layer.
    TinyLoRA trains r² numbers per layer (its SVD rank r): r = 22 gives 484, the closest to 512.
    """
    vera_r = max(1, 8 * 64 - hidden)
    reference = {
        "loramini": {"method": "loramini", "r": 8, "a": 32, "b": 32},
        "lora": {"method": "lora", "r": 8},
        "vera": {"method": "vera", "r": vera_r},
        "tinylora": {"method": "tinylora", "r": min(22, hidden // 2)},
        "head": {"method": "head"},
        "full": {"method": "full"},
    }
    variants = {}
    if figure and shapes == "axes":
        variants = {
            "lora": [{"r": r} for r in (1, 2, 16)],
            "loramini": [{"r": r, "a": 32, "b": 32} for r in (4, 16)]
                        + [{"r": 8, "a": ab, "b": ab} for ab in (16, 64) if ab <= hidden],
        }
    elif figure:
        variants = {
            "lora": [{"r": r} for r in (1, 2, 4, 16)],
            "loramini": [{"r": r, "a": ab, "b": ab} for r in (1, 2, 4, 8) for ab in (16, 32, 64)
                         if (r, ab) != (8, 32) and ab <= hidden],
        }
    return reference, variants


def add_first_step_rule(results: dict, reference: dict, hidden: int) -> None:
    """Beside each LoRA-Mini shape's tuned rate, the rate `first_step_rule_lr` derives from the reference shape's
    tuned rate (query/value layers are hidden x hidden), and tuned / rule."""
    from loramini.experiments import first_step_rule_lr

    tuned = {(s["task"], s["method"]): s["best_lr"] for s in results.get("lr_sweeps", [])}
    for sweep in results.get("shape_sweeps", []):
        base_lr = tuned.get((sweep["task"], sweep["method"]))
        if sweep["method"] != "loramini" or base_lr is None or sweep["best_lr"] is None:
            continue
        rule = first_step_rule_lr(base_lr, sweep, reference["loramini"], hidden, hidden)
        sweep.update(rule_lr=float(f"{rule:.3g}"), tuned_over_rule=round(sweep["best_lr"] / rule, 3))


def probe_references(model_name: str, task: str, data_dir, max_train_samples, max_length: int, seeds) -> dict:
    """Linear probes (mean-pooled and [CLS]) over the seeds' training subsets, and zero-shot cosine for pairs."""
    from loramini.ablation import carve_task
    from loramini.probe import frozen_features, linear_probe, zero_shot_cosine
    from loramini.train import build_model

    refs: dict[str, dict] = {}
    values: dict[str, list] = {"probe (mean-pooled)": [], "probe ([CLS])": []}
    model = tokenizer = None
    for seed in seeds:
        carved = carve_task(task, data_dir, max_train_samples, seed, "validation")
        world = carved if hasattr(carved, "spec") else None  # a SyntheticTask, or a (DatasetDict, TaskSpec) pair
        dataset, spec = (world.dataset, world.spec) if world else carved
        if model is None:
            model, tokenizer = build_model(model_name, spec, getattr(world, "tokenizer", None), dataset, seed=0,
                                           world=world)
        evaluated = dataset[spec.eval_splits[0]]
        train_f = frozen_features(model, tokenizer, dataset["train"], spec, max_length)
        eval_f = frozen_features(model, tokenizer, evaluated, spec, max_length)
        for pool, label in (("mean", "probe (mean-pooled)"), ("cls", "probe ([CLS])")):
            values[label].append(linear_probe(train_f[pool], dataset["train"]["label"], eval_f[pool],
                                              evaluated["label"], spec, seed=seed)["metric"])
    for label, vals in values.items():
        mean, ci = confidence_interval(vals)
        refs[label] = {"metric_mean": mean, "ci95": list(ci), "values": vals, "seeds": list(seeds)}
    if spec.is_pair and spec.is_regression:
        value = zero_shot_cosine(model, tokenizer, evaluated, spec, max_length)["metric"]
        refs["zero-shot cosine"] = {"metric_mean": value, "ci95": None, "values": [value], "seeds": []}
    return refs


PROBE_VERSION = 1  # bump when probe_references gives other numbers for the same settings (as RUN_VERSION)


def cached_references(args, task: str, cache: Path) -> dict:
    """`probe_references` for this task, budget and model, computed once and kept beside the training runs.

    The file is keyed by the model's identity (its folder and a hash of its files, `model_identity`), not by
    `--model-label`: another model under the same label computes its own references."""
    import json

    from loramini.ablation import cell_key, model_identity
    from loramini.io import write_json

    key = {"task": task, "max_train_samples": args.max_train_samples, "max_length": args.max_length,
           "seeds": args.seeds, "model": model_identity(args.model), "data_dir": args.data_dir,
           "probe_version": PROBE_VERSION}
    path = cache / f"references-{cell_key(key)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            print(f"{path}: unreadable cached references ({str(err).splitlines()[0]}); computing them again.",
                  file=sys.stderr)
    refs = probe_references(args.model, task, args.data_dir, args.max_train_samples, args.max_length, args.seeds)
    write_json(path, refs)
    return refs


def run_seconds(cache) -> float:
    """Total wall time of every training run cached under `cache` (what regenerating its results costs)."""
    import json

    total = 0.0
    for f in Path(cache).rglob("cell-*.json"):
        try:
            total += json.loads(f.read_text())["result"].get("wall_time_s") or 0
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError):
            continue  # an unreadable cell is rerun (and warned about) by the protocol
    return total


def command_line(argv) -> str:
    """The command as run, with this machine's model and data folders replaced by the notebooks' variables."""
    args = list(argv if argv is not None else sys.argv[1:])
    for flag, variable in (("--model", "$LORAMINI_MODEL"), ("--data-dir", "$LORAMINI_GLUE_DIR")):
        if flag in args and Path(args[args.index(flag) + 1]).is_absolute():
            args[args.index(flag) + 1] = variable
    return "python benchmarks/accuracy_vs_params.py " + " ".join(a if a.startswith("$") else shlex.quote(a) for a in args)


def build_parser():
    """The command line; `--help` lists it. Bad values are one line and exit status 2."""
    from loramini.cli import OneLineParser, _number

    parser = OneLineParser(prog="python benchmarks/accuracy_vs_params.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (offline) or a model folder / hub name")
    parser.add_argument("--task", nargs="+", default=["synthetic-rank"], help="tasks (GLUE names or synthetic-*)")
    parser.add_argument("--model-label", default=None, help="name of the model in the results (default: folder name)")
    parser.add_argument("--data-dir", default=None, help="local GLUE folder (GLUE's TSV layout)")
    parser.add_argument("--max-train-samples", type=_number(int, positive=True), default=2000)
    parser.add_argument("--epochs", type=_number(int, positive=True), default=2)
    parser.add_argument("--max-length", type=_number(int, positive=True), default=64)
    parser.add_argument("--batch-size", type=_number(int, positive=True), default=16)
    parser.add_argument("--seeds", type=_number(int), nargs="+", default=[0, 1, 2],
                        help="at least 3 distinct seeds per reported setting")
    parser.add_argument("--tune-seeds", type=_number(int), nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", choices=list(LR_GRIDS),
                        default=["loramini", "lora", "head", "full", "vera", "tinylora"])
    parser.add_argument("--no-figure", action="store_true", help="reference shapes only, no r / (a, b) variants")
    parser.add_argument("--tune-shapes", action="store_true",
                        help="tune every r / (a, b) variant's own rate (half-decade grid around its method's)")
    parser.add_argument("--shapes", choices=["grid", "axes"], default="grid",
                        help="the variants: the whole r x (a, b) grid, or one axis at a time around r=8, a=b=32")
    parser.add_argument("--group-by-length", action="store_true",
                        help="batches of rows of similar length (TrainConfig.group_by_length): less padding")
    parser.add_argument("--with-shipped-rate", action="store_true",
                        help="also run each method's reference shape at the package's default rate, if not its tuned one")
    parser.add_argument("--references-only", action="store_true", help="only the probe and zero-shot references")
    parser.add_argument("--cache", default="outputs/accuracy-vs-params", help="one JSON file per training run")
    parser.add_argument("--out", default=str(RESULTS / "accuracy-vs-params.json"))
    return parser


def check_args(parser, args) -> None:
    """Every flag checked before any work starts: a bad one is one line and exit status 2."""
    from loramini.ablation import check_task, model_identity, output_problem
    from loramini.experiments import check_seeds

    for flag, seeds, minimum in (("--seeds", args.seeds, 3), ("--tune-seeds", args.tune_seeds, 1)):
        try:
            check_seeds(seeds, flag, minimum)
        except ValueError as err:
            parser.error(f"{flag} {' '.join(map(str, seeds))}: {str(err).split(': ', 1)[1]}")
    for task in args.task:
        try:
            check_task(task)
        except ValueError as err:
            parser.error(f"--task {task}: {err}")
    try:
        model_identity(args.model)
    except ValueError as err:
        parser.error(f"--model: {err}")
    for flag, path, folder in (("--out", args.out, False), ("--cache", args.cache, True)):
        problem = output_problem(path, folder)
        if problem:
            parser.error(f"{flag}: {problem}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        return run(args, argv)
    except (ValueError, TypeError, OSError, ConnectionError, KeyError) as err:  # one line, as the package's CLI
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


def shipped_rate_cells(found: dict, reference: dict, protocol, shipped: dict, cache: Path, run=None) -> list:
    """Each method's reference shape at the package's default rate, over the same seeds, where the sweep tuned
    another rate (a run at the same settings is read from the cache): how much the default gives up."""
    from dataclasses import replace

    tuned = {s["method"]: s["best_lr"] for s in found["lr_sweeps"]}
    cells = []
    for label, settings in reference.items():
        if tuned.get(label) is None or tuned[label] == shipped[label]:
            continue
        at_default = replace(protocol, methods={label: {**settings, "lr": shipped[label]}}, lr_grids={}, variants={},
                             tune_shapes=False)
        for cell in run_protocol(at_default, cache, **({"run": run} if run else {}))["cells"]:
            cells.append({**cell, "at": "shipped rate"})
    return cells


def run(args, argv) -> int:
    tiny = args.model == "tiny"
    hidden = 64 if tiny else 384 if "minilm" in args.model.lower() else 768
    model_label = args.model_label or ("tiny" if tiny else Path(args.model).name or args.model)
    out = Path(args.out)
    from loramini.train_config import DEFAULT_LR, TINY_LR

    shipped = TINY_LR if tiny else DEFAULT_LR
    results = {"cells": [], "lr_sweeps": [], "references": [], **({"shape_sweeps": []} if args.tune_shapes else {})}
    for task in args.task:
        reference, variants = methods(hidden, figure=not args.no_figure, shapes=args.shapes)
        reference = {m: s for m, s in reference.items() if m in args.methods}
        base = {"model": args.model, "task": task, "data_dir": args.data_dir, "epochs": args.epochs,
                "max_train_samples": args.max_train_samples, "max_length": args.max_length,
                "batch_size": args.batch_size, **({"group_by_length": True} if args.group_by_length else {})}
        grids = TINY_GRIDS if tiny else LR_GRIDS
        protocol = Protocol(base=base, methods=reference, lr_grids={m: grids[m] for m in reference},
                            variants=variants, seeds=args.seeds, tune_seeds=args.tune_seeds,
                            tune_shapes=args.tune_shapes)
        if args.references_only:
            cached_references(args, task, Path(args.cache) / f"{model_label}-{task}")
            continue
        found = run_protocol(protocol, Path(args.cache) / f"{model_label}-{task}")
        if args.with_shipped_rate:
            found["cells"] += shipped_rate_cells(found, reference, protocol, shipped,
                                                 Path(args.cache) / f"{model_label}-{task}")
        add_first_step_rule(found, reference, hidden)
        for cell in found["cells"]:  # the shipped default beside the rate each cell ran at
            cell.update(model=model_label, shipped_lr=shipped.get(cell["method"]))
        for key in ("lr_sweeps", "shape_sweeps"):
            for sweep in found.get(key, []):
                sweep["model"] = model_label
            results[key] = results.get(key, []) + found.get(key, [])
        results["cells"] += found["cells"]
        refs = cached_references(args, task, Path(args.cache) / f"{model_label}-{task}")
        results["references"] += [{"task": task, "model": model_label, "label": k, **v} for k, v in refs.items()]
        note = (f"budget: {args.max_train_samples} training rows per seed, {args.epochs} epochs, max length "
                f"{args.max_length}, batch {args.batch_size}; learning rates tuned on held-out training rows (selection split) with "
                f"seeds {args.tune_seeds}; reported on the validation split over seeds {args.seeds}. Sum of the "
                f"training runs' wall times: {sum(run_seconds(Path(args.cache) / f'{model_label}-{t}') for t in args.task):.0f} s.")
        write_results(out, results, command_line(argv), note)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
