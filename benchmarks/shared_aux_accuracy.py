"""Accuracy with and without `share_aux` (one aux pair per layer shape), offline: tiny RoBERTa, "synthetic-rank",
LoRA-Mini on all linear layers, same seeds, mean and 95% CI over seeds → one JSON + markdown file.

    python benchmarks/shared_aux_accuracy.py                 # 3 seeds, ~ minutes on one CPU thread
    python benchmarks/shared_aux_accuracy.py --seeds 0 1 2 3 4

Each seed sets both the training seed and `projection_seed` (so the aux factors differ between seeds too). Both
variants train at the same (default) learning rate: a check that sharing does not cost accuracy here, not a
tuned comparison. On the tiny model every adapted layer is 64 -> 64, 64 -> 256 or 256 -> 64, so sharing
leaves 3 aux pairs for the whole model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package next to this folder

from loramini.experiments import confidence_interval  # noqa: E402
from loramini.files import write_report  # noqa: E402
from loramini.train import TrainConfig, train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def run(seeds: list[int], task: str, targets: str) -> dict:
    rows: dict[str, list[dict]] = {"own_aux": [], "shared_aux": []}
    for seed in seeds:
        for name in rows:
            config = TrainConfig(share_aux=name == "shared_aux", target_modules=targets, seed=seed,
                                     projection_seed=seed, progress=False)
            history = train("tiny", task, config)
            rows[name].append({"seed": seed, "metric": history["main_metric"], "value": history["metric"],
                               "frozen_aux": history["params"]["frozen_aux"], "trainable": history["params"]["trainable"]})
    summary = {}
    for name, runs in rows.items():
        mean, (lo, hi) = confidence_interval([r["value"] for r in runs])
        summary[name] = {"mean": mean, "ci95": [lo, hi], "frozen_aux": runs[0]["frozen_aux"],
                         "trainable": runs[0]["trainable"], "metric": runs[0]["metric"]}
    diffs = [s["value"] - o["value"] for s, o in zip(rows["shared_aux"], rows["own_aux"])]
    mean, (lo, hi) = confidence_interval(diffs)
    summary["shared_minus_own"] = {"mean": mean, "ci95": [lo, hi]}
    return {"task": task, "model": "tiny", "target_modules": targets, "seeds": seeds, "runs": rows, "summary": summary}


def markdown(results: dict) -> str:
    s = results["summary"]
    lines = [f"# share_aux: {results['task']}, tiny RoBERTa, LoRA-Mini on {results['target_modules']}, "
             f"seeds {results['seeds']} (mean, 95% CI)", "",
             f"| variant | {s['own_aux']['metric']} | trainable | frozen aux numbers |", "|---|---|---|---|"]
    for name in ("own_aux", "shared_aux"):
        row = s[name]
        lines.append(f"| {name} | {row['mean']:.4f} [{row['ci95'][0]:.4f}, {row['ci95'][1]:.4f}] | {row['trainable']:,} | "
                     f"{row['frozen_aux']:,} |")
    d = s["shared_minus_own"]
    lines += ["", f"Paired difference shared − own (same seeds): {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, "
              f"{d['ci95'][1]:+.4f}]. Total {results['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--task", default="synthetic-rank")
    p.add_argument("--targets", default="all-linear")
    p.add_argument("--out", type=Path, default=RESULTS / "shared-aux-accuracy")
    args = p.parse_args(argv)
    if len(args.seeds) < 2:
        p.error("--seeds: give at least 2 seeds (a 95% CI needs them)")
    started = time.perf_counter()
    results = run(args.seeds, args.task, args.targets)
    results["seconds"] = time.perf_counter() - started
    text = markdown(results)
    write_report(args.out, results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
