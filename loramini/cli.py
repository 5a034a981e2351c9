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
import dataclasses
import math
import re
import sys
import typing
from pathlib import Path
from typing import Callable, Optional

SUBCOMMANDS = ("demo", "finetune", "ablate", "bench")
DEMO_METHODS = ("loramini", "lora", "full")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exits with status 2.

    Every subcommand's parser (finetune, demo, bench, ablate) should be one of these."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_targets(text: str):
    """'query,value' → ["query", "value"]; a preset ('attention', 'dense', 'all-linear') or regex stays a string.

    The rule itself is `loramini.inject.parse_target_modules` (shared with the ablation runner)."""
    from .inject import parse_target_modules

    try:
        return parse_target_modules(text)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _number(kind, positive: bool = False):
    """An argparse type: an int or a finite float ('inf' and 'nan' are not settings); 'none' → None.

    `positive`: also refuse values <= 0 (and 'none'), for flags that TrainConfig does not check itself."""
    def parse(text: str):
        if text.lower() == "none" and not positive:
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    parse.__name__ = kind.__name__
    return parse


def _positive(kind):
    """An argparse type: an int or a finite float > 0 (ablate's and the benchmarks' sizes and rates)."""
    return _number(kind, positive=True)


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (seeds)."""
    value = _number(int, positive=False)(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 0")
    return value


def _names(text: str) -> Optional[list[str]]:
    """'classifier,pooler' → ["classifier", "pooler"]; '' → [] (none); 'none' → None (the method's default)."""
    return None if text.lower() == "none" else [t.strip() for t in text.split(",") if t.strip()]


def field_docs(cls) -> dict[str, str]:
    """{field: help} from the "Args:" section of a dataclass's docstring (LoRAMiniConfig documents its fields there)."""
    docs, name = {}, None
    for line in (cls.__doc__ or "").split("Args:", 1)[-1].splitlines():
        entry = re.match(r"\s{8}(\w+): (.*)", line)
        if entry:
            name, docs[entry.group(1)] = entry.group(1), entry.group(2)
        elif name and line.strip():
            docs[name] += " " + line.strip()
    return {k: v.replace("``", "").rstrip(".") for k, v in docs.items()}


def _flag_kwargs(f: dataclasses.Field, hint, docs: dict) -> dict:
    """argparse keyword arguments for one TrainConfig field: its type, default, choices and help."""
    text = f.metadata.get("help") or docs.get(f.name) or f.name.replace("_", " ")
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    shown = ",".join(default) if isinstance(default, list) else default
    text = text if "default" in text else f"{text} (default: {shown})"
    kwargs = {"default": default, "help": text.replace("%", "%%")}
    if hint is bool:
        return dict(kwargs, action=argparse.BooleanOptionalAction)
    if "choices" in f.metadata:
        return dict(kwargs, choices=f.metadata["choices"])
    if hint == typing.Union[list[str], str]:  # target_modules: names, a preset or a regex
        return dict(kwargs, type=parse_targets, help="layers to adapt: comma-separated names ('query,value'), a "
                    f"preset ('attention', 'dense', 'all-linear') or a regex (default: {shown}: the attention's q and v, "
                    "on Llama q_proj,v_proj, on GPT-2 c_attn)")
    if hint == Optional[list[str]]:  # modules_to_save: names, none, or the default
        return dict(kwargs, type=_names, help=f"{text.split('.')[0]}: comma-separated names, '' for none "
                    "(default: the model's task head)")
    kind = next((k for k in (int, float) if hint is k or hint == Optional[k]), str)
    return dict(kwargs, type=_number(kind) if kind is not str else str)


def add_config_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ("output_dir",)) -> None:
    """One flag per `TrainConfig` field (every adapter field included): --name-with-dashes, with the field's
    type, default and help. The dataclasses are the one source; `config_from_args` reads the flags back."""
    from .config import LoRAMiniConfig
    from .train_config import TrainConfig

    hints, docs = typing.get_type_hints(TrainConfig), field_docs(LoRAMiniConfig)
    fields = sorted(dataclasses.fields(TrainConfig), key=lambda f: f.name != "method")  # --method first
    for f in fields:
        if f.name not in skip:
            p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **_flag_kwargs(f, hints[f.name], docs))


def config_from_args(args: argparse.Namespace, fail: Callable[[str], None]):
    """The `TrainConfig` the flags describe; a value it refuses goes to `fail` (a parser's `error`: exit 2), as
    one line naming the flag."""
    from .train_config import TrainConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    try:
        return TrainConfig(**values)
    except (ValueError, TypeError) as err:
        fail(re.sub(r"TrainConfig\.(\w+)=", lambda m: "--" + m.group(1).replace("_", "-") + " ",
                            str(err)))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m loramini", description=(
        "LoRA-Mini fine-tuning. Without a subcommand: the offline demo (tiny model, synthetic task, "
        "LoRA-Mini vs LoRA vs full fine-tuning, one table; about a minute on 2 CPU cores)."))
    sub = parser.add_subparsers(dest="command", parser_class=OneLineParser, metavar="{demo,finetune,ablate,bench}")

    demo = sub.add_parser("demo", help="the offline demo (the default)", description="The offline demo: tiny RoBERTa "
                          "on the synthetic task with LoRA-Mini, PEFT LoRA and full fine-tuning; prints one table.")
    demo.add_argument("--task", default="synthetic", choices=("synthetic", "synthetic-pair", "synthetic-regression", "synthetic-rank"),
                      help="synthetic task (default: synthetic)")
    demo.add_argument("--epochs", type=_number(int, positive=True), default=3, help="epochs per method (default: 3)")
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
    add_config_flags(ft)
    ft.set_defaults(fail=ft.error)  # a value TrainConfig refuses is reported like any bad flag
    ft.add_argument("--output-dir", default=None, help="where results, history, adapter and checkpoints go "
                                                       "(default: outputs/<task>-<method>)")

    sub.add_parser("ablate", help="rank/width ablations (see `ablate --help`)", add_help=False)
    sub.add_parser("bench", help="speed/memory/size benchmarks (see `bench --help`)", add_help=False)
    return parser


def _finetune_config(args):
    """The run's TrainConfig, with the output folder checked: a bad value exits 2 before anything is trained."""
    from .files import check_writable_dir

    args.output_dir = args.output_dir or f"outputs/{args.task}-{args.method}"
    try:
        check_writable_dir(args.output_dir)
    except ValueError as err:
        args.fail(str(err))
    return config_from_args(args, args.fail)


def results_of(history: dict) -> dict:
    """The summary written to results.json: metrics, parameter counts, adapter size, time, memory."""
    keys = ("task", "model", "method", "main_metric", "metric", "final", "params", "adapter_bytes", "adapter_dir",
            "wall_time_s", "peak_memory_mb", "config")
    return {k: history.get(k) for k in keys}


def finetune(args, config) -> dict:
    """Train as the flags say (`config`, output_dir already set), write results.json and print one line."""
    from .files import write_json
    from .train import train

    history = train(args.model, args.task, config, data_dir=args.data_dir)
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

    from .files import write_json
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
    return int(mod.main(argv) or 0)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of `python -m loramini` and the `loramini` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("ablate", "bench"):  # their own parsers own their flags
        command, rest = argv[0], argv[1:]
    else:
        args = build_parser().parse_args(argv)
        command = args.command or "demo"
        if command == "finetune":  # every flag checked before any work starts
            config = _finetune_config(args)
    try:
        if command in ("ablate", "bench"):
            return _dispatch({"ablate": "ablation", "bench": "bench"}[command], rest)
        if command == "finetune":
            finetune(args, config)
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
