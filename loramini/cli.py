"""Command line: `python -m loramini [demo | finetune | ablate | bench] ...`.

    python -m loramini                      # the offline demo: tiny model, synthetic task, 3 methods, one table
    python -m loramini finetune --model roberta-base --task sst2 --method loramini
    python -m loramini finetune --model ./my-bert --task sst2 --data-dir ./glue --method lora
    python -m loramini finetune --model tiny --task synthetic-regression

A bad flag or value exits with status 2 and one line on stderr; a failure while running (a missing
folder, an unreachable hub, ...) with status 1 and one line. No tracebacks.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Optional

SUBCOMMANDS = ("demo", "finetune", "ablate", "bench")
DEMO_METHODS = ("loramini", "lora", "full")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exits with status 2.

    Every subcommand's parser (finetune, demo, bench, ablate) should be one of these."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


_Parser = OneLineParser  # the old private name


def _positive(kind):
    """An argparse type: an int, or a finite float, > 0 ('inf' and 'nan' are not learning rates)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def parse_targets(text: str):
    """'query,value' → ["query", "value"]; a preset ('attention', 'dense', 'all-linear') or regex stays a string.

    The rule itself is `loramini.inject.parse_target_modules` (shared with the ablation runner)."""
    from .inject import parse_target_modules

    try:
        return parse_target_modules(text)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    from .train import DEFAULT_LR, METHODS, TINY_LR

    p.add_argument("--method", choices=METHODS, default="loramini",
                   help="what to train: LoRA-Mini adapters, PEFT LoRA adapters, every weight, or the task head only "
                        "(default: loramini)")
    p.add_argument("--r", type=_positive(int), default=8, help="adapter rank r (default: 8)")
    p.add_argument("--a", type=_positive(int), default=32, help="LoRA-Mini: width of the frozen input projection A_aux (default: 32)")
    p.add_argument("--b", type=_positive(int), default=32, help="LoRA-Mini: width of the frozen output projection B_aux (default: 32)")
    p.add_argument("--alpha", type=_positive(float), default=None, help="adapter scale numerator, scale = alpha/r (default: 2*r)")
    p.add_argument("--target-modules", type=parse_targets, default=["query", "value"],
                   help="layers to adapt: comma-separated names ('query,value'), a preset ('attention', 'dense', "
                        "'all-linear') or a regex (default: query,value)")
    lrs = ", ".join(f"{m} {DEFAULT_LR[m]:g}" for m in METHODS)
    tiny = ", ".join(f"{m} {TINY_LR[m]:g}" for m in METHODS)
    p.add_argument("--lr", type=_positive(float), default=None,
                   help=f"adapter learning rate (full: the whole model's). Default per method: {lrs}; with --model tiny: "
                        f"{tiny}. LoRA-Mini needs ~4x LoRA's")
    p.add_argument("--head-lr", type=_positive(float), default=None, help="task head learning rate (default: the same as --lr)")
    p.add_argument("--epochs", type=_positive(int), default=3, help="training epochs (default: 3)")
    p.add_argument("--batch-size", type=_positive(int), default=32, help="rows per batch and process (default: 32)")
    p.add_argument("--grad-accum-steps", type=_positive(int), default=1, help="batches per optimizer step (default: 1)")
    p.add_argument("--max-length", type=_positive(int), default=128, help="truncate inputs to this many tokens (default: 128)")
    p.add_argument("--max-train-samples", type=_positive(int), default=None,
                   help="train on a seeded random subset of this many rows (default: all)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of init, shuffling and dropout (default: 0)")
    p.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto",
                   help="autocast: auto = bf16 on GPUs that have it, fp16 on other GPUs, fp32 on CPU (default: auto)")
    p.add_argument("--checkpoint-every", type=_non_negative_int, default=0,
                   help="save a resumable checkpoint every N optimizer steps; rerun the same command to resume (default: 0 = never)")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --output-dir and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m loramini", description=(
        "LoRA-Mini fine-tuning. Without a subcommand: the offline demo (tiny model, synthetic task, "
        "LoRA-Mini vs LoRA vs full fine-tuning, one table; about a minute on 2 CPU cores)."))
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="{demo,finetune,ablate,bench}")

    demo = sub.add_parser("demo", help="the offline demo (the default)", description="The offline demo: tiny RoBERTa "
                          "on the synthetic task with LoRA-Mini, PEFT LoRA and full fine-tuning; prints one table.")
    demo.add_argument("--task", default="synthetic", choices=("synthetic", "synthetic-pair", "synthetic-regression", "synthetic-rank"),
                      help="synthetic task (default: synthetic)")
    demo.add_argument("--epochs", type=_positive(int), default=3, help="epochs per method (default: 3)")
    demo.add_argument("--output-dir", default="outputs/demo", help="where the adapters and results go (default: outputs/demo)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")

    ft = sub.add_parser("finetune", help="fine-tune one model on one task", description=(
        "Fine-tune a model on a task and write OUTPUT_DIR/results.json (validation metrics, trainable parameters, "
        "adapter bytes), OUTPUT_DIR/history.json and the adapter."))
    ft.add_argument("--model", default="tiny", help="'tiny' (offline tiny RoBERTa), a hub name ('roberta-base') or a "
                                                   "local model folder with config.json (default: tiny)")
    ft.add_argument("--task", default="synthetic", help="a GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli) "
                                                       "or synthetic, synthetic-pair, synthetic-regression, synthetic-rank (default: synthetic)")
    ft.add_argument("--data-dir", default=None, help="local GLUE folder in the original TSV layout (<dir>/SST-2/train.tsv); "
                                                     "default: the Hugging Face hub")
    _add_run_flags(ft)
    ft.add_argument("--output-dir", default=None, help="where results go (default: outputs/<task>-<method>)")

    sub.add_parser("ablate", help="rank/width ablations (see `ablate --help`)", add_help=False)
    sub.add_parser("bench", help="speed/memory/size benchmarks (see `bench --help`)", add_help=False)
    return parser


def _train_config(args):
    from .train import TrainConfig

    return TrainConfig(
        method=args.method, r=args.r, a=args.a, b=args.b, alpha=args.alpha, target_modules=args.target_modules,
        lr=args.lr, head_lr=args.head_lr, epochs=args.epochs, batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum_steps, max_length=args.max_length, max_train_samples=args.max_train_samples,
        seed=args.seed, mixed_precision=args.mixed_precision, checkpoint_every=args.checkpoint_every,
        output_dir=args.output_dir, resume=not args.no_resume, progress=not args.no_progress)


def results_of(history: dict) -> dict:
    """The summary written to results.json: metrics, parameter counts, adapter size, time, memory."""
    keys = ("task", "model", "method", "main_metric", "metric", "final", "params", "adapter_bytes", "adapter_dir",
            "wall_time_s", "peak_memory_mb", "config")
    return {k: history.get(k) for k in keys}


def finetune(args) -> dict:
    from .io import write_json
    from .train import train

    args.output_dir = args.output_dir or f"outputs/{args.task}-{args.method}"
    history = train(args.model, args.task, _train_config(args), data_dir=args.data_dir)
    results = results_of(history)
    write_json(Path(args.output_dir) / "results.json", results)
    print(f"{history['method']} on {history['task']}: {history['main_metric']} = {history['metric']:.4f}, "
          f"trainable {history['params']['trainable']:,} (adapter {history['params']['adapter']:,}), "
          f"adapter {history['adapter_bytes']:,} bytes, {history['wall_time_s']:.1f} s -> {args.output_dir}/results.json")
    return results


def demo(task: str = "synthetic", epochs: int = 3, output_dir: str = "outputs/demo", progress: bool = True) -> list[dict]:
    """Tiny RoBERTa on a synthetic task with LoRA-Mini, PEFT LoRA and full fine-tuning; prints one table.

    The LoRA-Mini adapter is saved in `output_dir`/loramini/adapter. Returns one results dict per method.
    """
    import torch

    from .io import write_json
    from .synthetic import make_synthetic
    from .train import TrainConfig, train

    torch.set_num_threads(1)  # the tiny model is faster on one thread, and so are busy shared machines
    task_obj = make_synthetic(task)
    print(f"Offline demo: tiny RoBERTa (encoder pretrained on the synthetic world) on {task!r} "
          f"({len(task_obj.dataset['train'])} train / {len(task_obj.dataset['validation'])} validation rows, "
          f"planted rank {task_obj.teacher.rank}).")
    rows = []
    for method in DEMO_METHODS:
        config = TrainConfig(method=method, epochs=epochs, output_dir=f"{output_dir}/{method}", resume=False,
                             progress=progress)
        history = train("tiny", task_obj, config)
        rows.append(results_of(history))
    write_json(Path(output_dir) / "results.json", {"rows": rows})
    print()
    print(format_table(rows))
    print(f"\nLoRA-Mini adapter saved in {rows[0]['adapter_dir']} (load it with loramini.load_adapter).")
    return rows


def format_table(rows: list[dict]) -> str:
    """One aligned text table: method, trainable / adapter parameters, bytes on disk, metric, time."""
    metric = rows[0]["main_metric"]
    header = ("method", "trainable params", "adapter params", "bytes on disk", metric, "time (s)")
    lines = [(r["method"], f"{r['params']['trainable']:,}", f"{r['params']['adapter']:,}", f"{r['adapter_bytes']:,}",
              f"{r['metric']:.4f}", f"{r['wall_time_s']:.1f}") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _dispatch(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(f"loramini.{module}")
    except ImportError as err:
        raise ValueError(f"this subcommand needs loramini.{module}, which is not available ({err}).") from None
    if not hasattr(mod, "main"):
        raise ValueError(f"loramini.{module} has no main(argv): this subcommand is not ready yet.")
    return int(mod.main(argv) or 0)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of `python -m loramini` and the `loramini` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("ablate", "bench"):  # their own parsers own their flags
        command, rest = argv[0], argv[1:]
    else:
        args = build_parser().parse_args(argv)
        command = args.command or "demo"
    try:
        if command in ("ablate", "bench"):
            return _dispatch({"ablate": "ablation", "bench": "bench"}[command], rest)
        if command == "finetune":
            finetune(args)
        elif args.command is None:
            demo()
        else:
            demo(args.task, args.epochs, args.output_dir, progress=not args.no_progress)
        return 0
    except (ValueError, TypeError, OSError, ConnectionError, KeyError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"python -m loramini {command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"python -m loramini {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
