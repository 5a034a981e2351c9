#!/usr/bin/env python
"""Where a real-model run's time goes, on this machine → benchmarks/results/profile-run.{json,md}.

    python benchmarks/profile_run.py --model PATH/all-MiniLM-L6-v2 --data-dir PATH/glue [--steps 20]

Builds a run exactly as `loramini.train.prepare` does (SST-2, 1,500 rows, batch 16, max length 64, LoRA-Mini at
the shipped settings), then times its parts in CPU seconds of this process: preparing (model, data,
tokenization), training steps split into forward / backward / optimizer (at 1 and 2 torch threads), and one
evaluation pass over dev; then the training steps again with length-grouped batches (`group_by_length`). It
also counts the padding in the training batches and compares the step's arithmetic
(N = the numbers in the linear layers; forward 2·N FLOP per token, backward to the inputs 2·N more) with what a
plain matrix product reaches on the same threads: a step near that rate cannot get much faster without doing
less arithmetic, which changes results (shorter sequences, fewer layers, lower precision).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def cpu() -> float:
    return time.process_time()


def matmul_gflops(threads: int, n: int = 1024, repeats: int = 20) -> float:
    """What torch reaches on a plain n × n float32 matrix product at `threads` threads (GFLOP/s, best of 3)."""
    torch.set_num_threads(threads)
    x, y = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            x @ y
        best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def time_steps(run, steps: int, threads: int) -> dict:
    """Median wall seconds of forward / backward / optimizer over `steps` training batches at `threads` threads."""
    torch.set_num_threads(threads)
    parts = {"forward": [], "backward": [], "optimizer": []}
    tokens, padded = 0, 0
    loader = iter(run.train_loader)
    for i in range(steps + 2):  # the first two warm the allocator up and are not counted
        batch = next(loader)
        t0 = time.perf_counter()
        loss = run.model(**batch).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        run.optimizer.step()
        run.optimizer.zero_grad()
        t3 = time.perf_counter()
        if i >= 2:
            for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[key].append(value)
            tokens += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
    medians = {k: statistics.median(v) for k, v in parts.items()}
    return {**medians, "step": sum(medians.values()), "real_tokens_per_step": tokens / steps,
            "padded_tokens_per_step": padded / steps, "padding_fraction": 1 - tokens / padded}


def main(argv=None) -> int:
    from loramini.metrics import evaluate
    from loramini.train import TrainConfig, prepare

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)

    start = cpu()
    config = TrainConfig(method="loramini", max_train_samples=1500, epochs=2, batch_size=16, max_length=64,
                         progress=False)
    run = prepare(args.model, "sst2", config, data_dir=args.data_dir)
    prepare_s = cpu() - start
    # the numbers that multiply every token: nn.Linear weights (embeddings are looked up, not multiplied)
    frozen = sum(m.weight.numel() for m in run.model.modules() if isinstance(m, torch.nn.Linear))
    steps = {threads: time_steps(run, args.steps, threads) for threads in (1, 2)}
    # The same run with length-grouped batches (--group-by-length): same rows and steps, less padding.
    grouped_run = prepare(args.model, "sst2", dataclasses.replace(config, group_by_length=True), data_dir=args.data_dir)
    grouped = {threads: time_steps(grouped_run, args.steps, threads) for threads in (1, 2)}
    peak = {threads: matmul_gflops(threads) for threads in (1, 2)}
    torch.set_num_threads(2)
    run.model.eval()
    start, wall = cpu(), time.perf_counter()
    evaluate(run.model, run.eval_loaders, run.spec, run.accelerator)
    eval_cpu, eval_wall = cpu() - start, time.perf_counter() - wall
    rows = sum(len(loader.dataset) for loader in run.eval_loaders.values())
    for threads, s in [*steps.items(), *grouped.items()]:  # FLOP = 2 x multiply-adds: forward 2N per token,
        s["gflop_per_step"] = 4 * frozen * s["padded_tokens_per_step"] / 1e9  # backward to the inputs 2N more
        s["gflops_reached"] = s["gflop_per_step"] / s["step"]
        s["share_of_matmul_peak"] = s["gflops_reached"] / peak[threads]
    updates = run.total_updates
    result = {"model": Path(args.model).name, "linear_weights": frozen, "prepare_cpu_s": prepare_s,
              "steps": {str(k): v for k, v in steps.items()},
              "steps_group_by_length": {str(k): v for k, v in grouped.items()},
              "matmul_gflops": {str(k): v for k, v in peak.items()},
              "eval_rows": rows, "eval_cpu_s": eval_cpu, "eval_wall_s": eval_wall,
              "run_estimate_wall_s": {"train": updates * steps[2]["step"], "eval (2 epochs)": 2 * eval_wall,
                                      "prepare": prepare_s},
              "command": "python benchmarks/profile_run.py --model <MiniLM folder> --data-dir <GLUE folder> "
                         f"--steps {args.steps}"}
    from loramini.files import write_report

    lines = [f"# Where a 1x SST-2 run's time goes ({result['model']}, {frozen:,} numbers in linear layers, this machine)", "",
             "| batches | threads | forward s | backward s | optimizer s | step s | padding | GFLOP/s | of matmul peak |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows_by_kind = [("shuffled", t, v) for t, v in steps.items()] + [("length-grouped", t, v) for t, v in grouped.items()]
    for kind, threads, s in rows_by_kind:
        lines.append(f"| {kind} | {threads} | {s['forward']:.3f} | {s['backward']:.3f} | {s['optimizer']:.4f} "
                     f"| {s['step']:.3f} "
                     f"| {s['padding_fraction']:.0%} | {s['gflops_reached']:.0f} | {s['share_of_matmul_peak']:.0%} |")
    est = result["run_estimate_wall_s"]
    lines += ["", f"Preparing (model, data, tokenization): {prepare_s:.1f} CPU-s. Evaluation of {rows} dev rows: "
              f"{eval_wall:.1f} s. A 1x run ({updates} steps, 2 evaluations) at 2 threads: about "
              f"{est['train']:.0f} s training + {est['eval (2 epochs)']:.0f} s evaluation + {prepare_s:.0f} s preparing.",
              f"Length-grouped batches (`--group-by-length`): {grouped[1]['step']:.3f} s per step at 1 thread, "
              f"{steps[1]['step'] / grouped[1]['step']:.1f}x faster than shuffled batches; at 2 threads "
              f"{steps[2]['step'] / grouped[2]['step']:.1f}x.",
              "", f"Command: `{result['command']}`"]
    write_report(RESULTS / "profile-run", result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
