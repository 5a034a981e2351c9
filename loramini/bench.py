"""Benchmarks: LoRA-Mini against PEFT LoRA (same r, same targets) and full fine-tuning, in one process.

    python -m loramini bench --quick              # < 2 min on 2 CPU cores
    python -m loramini bench --device cuda        # bf16, roberta-base shape, GPU sizes
    python benchmarks/run.py --quick --threads 1  # the same, from a checkout

Four measurements, every variant on the same inputs:

1. layer: forward + backward time of one adapted `d × d` Linear, next to the extra multiply-adds per
   token of the formula (LoRA-Mini `d_in·a + a·r + r·b + b·d_out`, LoRA `r·(d_in + d_out)`);
2. model: AdamW training-step time and memory on a roberta-base-shaped classifier (random weights);
3. inference: the merged LoRA-Mini model against the base model;
4. adapter bytes on disk: `save_adapter` against PEFT's `save_pretrained`, with and without head and aux.

Timing: warm-up rounds, then rounds in which every variant runs once, in an order that rotates. We report
the median and the interquartile range (IQR), and every ratio as the median of the per-round ratios: paired,
so the slow drifts of a shared machine cancel. Memory: on CUDA the measured `max_memory_allocated` of a step;
everywhere the *accounted* peak = weights + buffers + gradients + optimizer state + the bytes autograd saves
for backward (counted once per storage with `saved_tensors_hooks`: deterministic, and exactly the memory an
adapter adds to activations). Results: `<out>/<machine>.json` and `<out>/<machine>.md`.

`loramini_chain` is the textbook autograd chain (what `LoRAMiniLinear` ran before `LoRAMiniFunction`),
measured next to the layer as the "before" of that change.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import LoRAMiniConfig
from .inject import inject, loramini_layers, merge
from .io import atomic_write, export_peft, save_adapter, write_json
from .layer import LoRAMiniLinear
from .models import roberta_config

TARGETS = {"train_step": 1.05, "peak_memory": 1.0, "adapter_bytes": 1 / 20}  # issue 6


# ----------------------------------------------------------------------------------------------- timing
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_rounds(fns: dict[str, Callable[[], object]], warmup: int, repeats: int,
                sync: Callable[[], None] = lambda: None, min_sample_s: float = 0.0,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each function: `warmup` untimed rounds, then `repeats` timed rounds.

    Every round runs every function once, in a fresh (seeded) random order: no variant always follows the
    same neighbour (e.g. the memory-hungry full fine-tuning step), so what one leaves behind adds noise, not bias.
    A sample of a fast function repeats it until it lasts about `min_sample_s`, and is divided back.
    `clock`: wall time by default; `time.process_time` (CPU seconds of this process) is robust on a
    shared machine, since time spent waiting for a core another process holds is not counted.
    """
    names, shuffler = list(fns), random.Random(0)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    number = {name: 1 for name in names}
    if min_sample_s > 0:
        for name in names:
            sync()
            start = clock()
            fns[name]()
            sync()
            number[name] = max(1, min(100, round(min_sample_s / max(clock() - start, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in shuffler.sample(names, len(names)):
            sync()
            start = clock()
            for _ in range(number[name]):
                fns[name]()
            sync()
            times[name].append((clock() - start) / number[name])
    return times


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class Timing:
    """How to time: warm-up and timed rounds, a device sync (CUDA) and the clock ("wall" or "cpu")."""

    warmup: int = 1
    repeats: int = 5
    sync: Callable[[], None] = lambda: None
    clock: str = "wall"

    def rounds(self, fns: dict[str, Callable[[], object]], min_sample_s: float = 0.0) -> dict[str, list[float]]:
        return time_rounds(fns, self.warmup, self.repeats, self.sync, min_sample_s, CLOCKS[self.clock])


def summarize(seconds: list[float]) -> dict:
    """Median, IQR and min of a list of durations, in milliseconds."""
    q1, q2, q3 = _quartiles([s * 1e3 for s in seconds])
    return {"median_ms": q2, "q1_ms": q1, "q3_ms": q3, "min_ms": min(seconds) * 1e3, "n": len(seconds)}


def paired_ratio(numerator: list[float], denominator: list[float]) -> dict:
    """Median and IQR of the per-round ratios numerator[i] / denominator[i]."""
    q1, q2, q3 = _quartiles([n / d for n, d in zip(numerator, denominator)])
    return {"median": q2, "q1": q1, "q3": q3}


# ----------------------------------------------------------------------------------------------- memory
def _storage_keys(tensors) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors if t.device.type != "meta"}


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (views and tied tensors counted once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def saved_activation_bytes(model: nn.Module, run: Callable[[], object]) -> tuple[int, object]:
    """(bytes autograd saves for backward while `run()` executes, run's result).

    Each storage counts once; the model's own parameters and buffers are not activations and are skipped.
    """
    skip = _storage_keys(list(model.parameters()) + list(model.buffers()))
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if key not in skip:
            saved[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = run()
    return sum(saved.values()), result


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return tensor_bytes([v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)])


# ----------------------------------------------------------------------------------------------- variants
def simple_chain(layer: LoRAMiniLinear, x: torch.Tensor) -> torch.Tensor:
    """The adapter path as four plain matmuls under autograd (`LoRAMiniLinear.chain`, the "before" of
    LoRAMiniFunction), with the layer's dropout."""
    return layer.chain(layer.dropout(x))


def use_simple_chain(model: nn.Module) -> nn.Module:
    """Make every LoRA-Mini layer of `model` run the plain chain (`lean_backward = False`)."""
    for _, layer in loramini_layers(model):
        layer.lean_backward = False
    return model


class _Holder(nn.Module):
    """A one-layer model, so that `peft.get_peft_model` can wrap a single Linear."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        self.layer = layer


def peft_lora_linear(base: nn.Linear, r: int, alpha: float) -> nn.Module:
    """`base` wrapped by PEFT as a LoRA layer (`peft.tuners.lora.Linear`)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_Holder(base), LoraConfig(r=r, lora_alpha=alpha, target_modules=["layer"]))
    return model.base_model.model.layer


def peft_lora_model(model: nn.Module, r: int, alpha: float, targets: list[str], head: bool) -> nn.Module:
    """A PEFT LoRA model; with `head`, PEFT's SEQ_CLS task type also trains and saves the classifier."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), task_type="SEQ_CLS" if head else None)
    return get_peft_model(model, config)


def formula_macs(d_in: int, d_out: int, r: int, a: int, b: int) -> dict:
    """Extra multiply-adds per token of the adapter path, from the closed forms."""
    return {"loramini": d_in * a + a * r + r * b + b * d_out, "lora": r * (d_in + d_out), "base": d_in * d_out}


# ----------------------------------------------------------------------------------------------- 1. layer
def bench_layer(d: int, r: int, a: int, tokens: int, timing: Timing, device: torch.device, dtype: torch.dtype,
                alpha: float = 16.0) -> dict:
    """Forward + backward of one adapted d × d Linear: LoRA-Mini, its simple chain, PEFT LoRA, full FT."""
    torch.manual_seed(0)
    base = nn.Linear(d, d, device=device, dtype=dtype)
    mini = LoRAMiniLinear(copy.deepcopy(base), r=r, a=a, b=a, alpha=alpha, name="bench")
    with torch.no_grad():
        mini.B_train.normal_(0, 0.02)  # as after some training; the timing does not depend on the values
    peft_layer = peft_lora_linear(copy.deepcopy(base), r, alpha)
    full = copy.deepcopy(base).requires_grad_(True)
    x = torch.randn(tokens, d, device=device, dtype=dtype, requires_grad=True)  # lower layers need dx too
    grad_out = torch.randn(tokens, d, device=device, dtype=dtype)

    def fwd_bwd(forward: Callable[[torch.Tensor], torch.Tensor], module: nn.Module) -> Callable[[], None]:
        def run() -> None:
            x.grad = None
            for p in module.parameters():
                p.grad = None
            forward(x).backward(grad_out)
        return run

    variants = {
        "loramini": fwd_bwd(mini, mini),
        "loramini_chain": fwd_bwd(lambda t: mini.base(t) + simple_chain(mini, t), mini),
        "peft_lora": fwd_bwd(peft_layer, peft_layer),
        "full_ft": fwd_bwd(full, full),
    }
    times = timing.rounds(variants, min_sample_s=0.03)
    return {
        "d": d, "r": r, "a": a, "b": a, "tokens": tokens, "macs_per_token": formula_macs(d, d, r, a, a),
        "time": {name: summarize(t) for name, t in times.items()},
        "ratio_vs_peft_lora": {name: paired_ratio(t, times["peft_lora"]) for name, t in times.items()},
    }


# ----------------------------------------------------------------------------------------------- 2. model
def build_base(model_config, device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """A random-weight `RobertaForSequenceClassification` from `model_config`, on device/dtype."""
    from transformers import RobertaForSequenceClassification

    torch.manual_seed(seed)
    return RobertaForSequenceClassification(model_config).to(device=device, dtype=dtype)


def make_batch(model_config, batch: int, seq: int, device: torch.device, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, model_config.vocab_size, (batch, seq), generator=g)
    labels = torch.randint(0, model_config.num_labels, (batch,), generator=g)
    return {"input_ids": input_ids.to(device), "attention_mask": torch.ones_like(input_ids).to(device),
            "labels": labels.to(device)}


def training_variants(base: nn.Module, cfg: LoRAMiniConfig, reference: bool) -> dict[str, nn.Module]:
    """Copies of `base`: LoRA-Mini, PEFT LoRA (same r, alpha, targets, head), full FT, (+ simple chain)."""
    variants = {"loramini": inject(copy.deepcopy(base), cfg)}
    if reference:
        variants["loramini_chain"] = use_simple_chain(inject(copy.deepcopy(base), cfg))
    variants["peft_lora"] = peft_lora_model(copy.deepcopy(base), cfg.r, cfg.alpha, cfg.target_modules, head=True)
    variants["full_ft"] = copy.deepcopy(base).requires_grad_(True)
    return variants


def bench_training(models: dict[str, nn.Module], batch: dict, timing: Timing, device: torch.device,
                   lr: float = 1e-4) -> dict:
    """Training-step time (zero_grad, forward, backward, AdamW step) and memory of each model."""
    optimizers = {n: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=lr) for n, m in models.items()}

    def step(name: str) -> Callable[[], None]:
        def run() -> None:
            optimizers[name].zero_grad(set_to_none=True)
            models[name](**batch).loss.backward()
            optimizers[name].step()
        return run

    for model in models.values():
        model.train()
    times = timing.rounds({n: step(n) for n in models})
    memory = {name: measure_step_memory(model, optimizers[name], batch, device) for name, model in models.items()}
    results = {}
    for name, model in models.items():
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        results[name] = {"time": summarize(times[name]), "ratio_vs_peft_lora": paired_ratio(times[name], times["peft_lora"]),
                         "trainable_params": trainable, "memory": memory[name]}
    for name in models:
        for key in ("accounted_peak_bytes", "saved_activation_bytes", "measured_peak_bytes"):
            value, peft = memory[name].get(key), memory["peft_lora"].get(key)
            if value is not None and peft:
                results[name].setdefault("memory_ratio_vs_peft_lora", {})[key] = value / peft
    return results


def measure_step_memory(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict, device: torch.device) -> dict:
    """One more training step, counted: saved activations, gradients, optimizer state (+ CUDA peak)."""
    resident = tensor_bytes(list(model.parameters()) + list(model.buffers()))
    optimizer.zero_grad(set_to_none=True)
    state = optimizer_state_bytes(optimizer)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    activations, loss = saved_activation_bytes(model, lambda: model(**batch).loss)
    loss.backward()
    grads = tensor_bytes([p.grad for p in model.parameters() if p.grad is not None])
    optimizer.step()
    out = {"weights_and_buffers_bytes": resident, "optimizer_state_bytes": state, "gradient_bytes": grads,
           "saved_activation_bytes": activations,
           "accounted_peak_bytes": resident + state + grads + activations}
    if cuda:
        torch.cuda.synchronize(device)
        # this model's weights and optimizer state + what the step added on top of everything resident
        out["measured_peak_bytes"] = resident + state + torch.cuda.max_memory_allocated(device) - before
    return out


# ----------------------------------------------------------------------------------------------- 3. inference
def bench_inference(base: nn.Module, trained_loramini: nn.Module, peft_model: nn.Module, batch: dict,
                    timing: Timing) -> dict:
    """Forward latency (inference mode): base model, merged LoRA-Mini, unmerged LoRA-Mini, PEFT LoRA."""
    merged = merge(copy.deepcopy(trained_loramini))
    models = {"base": base, "loramini_merged": merged, "loramini_unmerged": trained_loramini, "peft_lora_unmerged": peft_model}
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    for model in models.values():
        model.eval()

    def forward(model: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                model(**inputs)
        return run

    times = timing.rounds({n: forward(m) for n, m in models.items()})
    with torch.inference_mode():
        gap = (merged(**inputs).logits.float() - trained_loramini(**inputs).logits.float()).abs().max().item()
    return {name: {"time": summarize(times[name]), "ratio_vs_base": paired_ratio(times[name], times["base"])}
            for name in models} | {"merged_vs_unmerged_max_abs_logit_diff": gap}


# ----------------------------------------------------------------------------------------------- 4. bytes
def _folder_bytes(path: Path) -> dict:
    weights = (path / "adapter_model.safetensors").stat().st_size
    return {"weights_bytes": weights, "folder_bytes": sum(f.stat().st_size for f in path.iterdir() if f.is_file())}


def bench_adapter_bytes(base: nn.Module, cfg: LoRAMiniConfig) -> dict:
    """Adapter file sizes: LoRA-Mini (head × saved aux), PEFT LoRA (head), and LoRA-Mini exported to PEFT."""
    rows = {}
    base = copy.deepcopy(base).float().cpu()
    with tempfile.TemporaryDirectory() as tmp:
        for head in (False, True):
            for aux in (False, True):
                variant = LoRAMiniConfig(**{**cfg.to_dict(), "modules_to_save": None if head else [],
                                            "save_projection": aux})
                model = inject(copy.deepcopy(base), variant)
                rows[f"loramini{'+head' if head else ''}{'+aux' if aux else ''}"] = (
                    _folder_bytes(save_adapter(model, Path(tmp) / f"mini-{head}-{aux}")) | {"head": head, "aux": aux})
                if not head and not aux:
                    rows["loramini_exported_to_peft"] = _folder_bytes(export_peft(model, Path(tmp) / "export")) | {
                        "head": False, "aux": False}
            peft_model = peft_lora_model(copy.deepcopy(base), cfg.r, cfg.alpha, cfg.target_modules, head=head)
            folder = Path(tmp) / f"peft-{head}"
            peft_model.save_pretrained(folder, save_embedding_layers=False)  # no hub look-up
            rows[f"peft_lora{'+head' if head else ''}"] = _folder_bytes(folder) | {"head": head, "aux": False}
    for name, row in rows.items():
        peft = rows["peft_lora+head" if row["head"] else "peft_lora"]["weights_bytes"]
        row["ratio_vs_peft_lora"] = row["weights_bytes"] / peft
    return rows


# ----------------------------------------------------------------------------------------------- driver
def default_sizes(device: torch.device, quick: bool) -> dict:
    """Sizes that fit the device: CPU sizes keep `--quick` under 2 minutes on 2 cores."""
    if device.type == "cuda":
        return dict(tokens=4096, batch=16 if quick else 32, seq=128, warmup=3 if quick else 5, repeats=10 if quick else 30)
    return dict(tokens=64 if quick else 1024, batch=2 if quick else 8, seq=32 if quick else 128,
                warmup=1 if quick else 2, repeats=5 if quick else 10)


def machine_info(device: torch.device, dtype: torch.dtype) -> dict:
    import peft
    import transformers

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
            "dtype": str(dtype).replace("torch.", ""), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def default_machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        return "cuda-" + "-".join("".join(c if c.isalnum() else " " for c in name).split())
    return f"cpu-{os.cpu_count()}core"


def run(device: str = "cpu", quick: bool = False, dtype: Optional[str] = None, model: str = "roberta-base",  # or "tiny"
        dims=(768, 1024, 4096), ranks=(8, 16), widths=(16, 32, 64), r: int = 8, a: int = 32, alpha: float = 16.0,
        targets=("query", "value"), reference: bool = True, progress: bool = True, clock: str = "wall",
        **sizes) -> dict:
    """Run all four benchmarks and return the results dict (see the module docstring)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch.cuda.is_available() is False: run on a GPU machine or use --device cpu.")
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    if clock not in CLOCKS or (clock == "cpu" and dev.type == "cuda"):
        raise ValueError(f"clock={clock!r}: choose one of {sorted(CLOCKS)} ('wall' on a GPU: CPU time misses GPU work).")
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    size = default_sizes(dev, quick) | {k: v for k, v in sizes.items() if v is not None}
    timing = Timing(size["warmup"], size["repeats"], sync, clock)
    cfg = LoRAMiniConfig(r=r, a=a, b=a, alpha=alpha, target_modules=list(targets))
    started = time.perf_counter()
    results: dict = {"machine": machine_info(dev, torch_dtype), "settings": dict(
        quick=quick, model=model, r=r, a=a, b=a, alpha=alpha, targets=list(targets), clock=clock, **size)}

    seconds, clock = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name], clock = time.perf_counter() - clock, time.perf_counter()

    cases = [(d, rr, w) for d in dims for rr in ranks for w in widths if rr <= w <= d]
    results["layer"] = [bench_layer(d, rr, w, size["tokens"], timing, dev, torch_dtype, alpha)
                        for d, rr, w in tqdm(cases, desc="layer fwd+bwd", disable=not progress)]
    lap("layer")

    bar = tqdm(total=4, desc="model", disable=not progress)
    model_config = roberta_config(model)
    base = build_base(model_config, dev, torch_dtype)
    batch = make_batch(model_config, size["batch"], size["seq"], dev)
    bar.update()
    lap("build")
    models = training_variants(base, cfg, reference)
    results["train"] = bench_training(models, batch, timing, dev)
    models.pop("full_ft")
    models.pop("loramini_chain", None)
    bar.update()
    lap("train")
    results["inference"] = bench_inference(base, models["loramini"], models["peft_lora"], batch, timing)
    bar.update()
    lap("inference")
    results["adapter_bytes"] = bench_adapter_bytes(base, cfg)
    bar.update()
    bar.close()
    lap("adapter_bytes")
    results["section_seconds"] = seconds
    results["summary"] = summary(results)
    results["seconds"] = time.perf_counter() - started
    results.update({k: v["value"] for k, v in results["summary"].items()})  # the headline ratios, top level
    return results


def summary(results: dict) -> dict:
    """The four headline ratios (LoRA-Mini / reference) with their targets."""
    train, inference = results["train"], results["inference"]
    memory_key = "measured_peak_bytes" if "measured_peak_bytes" in train["loramini"]["memory"] else "accounted_peak_bytes"
    step = train["loramini"]["ratio_vs_peft_lora"]
    merged = inference["loramini_merged"]["ratio_vs_base"]
    memory = train["loramini"]["memory_ratio_vs_peft_lora"][memory_key]
    size = results["adapter_bytes"]["loramini"]["ratio_vs_peft_lora"]
    return {
        "train_step_ratio_vs_peft_lora": {"value": step["median"], "iqr": [step["q1"], step["q3"]],
                                          "target": f"<= {TARGETS['train_step']}", "met": step["median"] <= TARGETS["train_step"]},
        "merged_inference_ratio_vs_base": {"value": merged["median"], "iqr": [merged["q1"], merged["q3"]],
                                           "target": "= 1 (within the IQR)", "met": merged["q1"] <= 1.0 or merged["median"] <= 1.0},
        "peak_memory_ratio_vs_peft_lora": {"value": memory, "measure": memory_key, "target": "<= 1", "met": memory <= 1.0},
        "adapter_bytes_ratio_vs_peft_lora": {"value": size, "times_smaller": 1 / size, "target": "<= 1/20 (20x smaller)",
                                             "met": size <= TARGETS["adapter_bytes"]},
    }


# ----------------------------------------------------------------------------------------------- report
def _ms(t: dict) -> str:
    return f"{t['median_ms']:.1f} [{t['q1_ms']:.1f}–{t['q3_ms']:.1f}]"


def _ratio(x: dict) -> str:
    return f"{x['median']:.3f} [{x['q1']:.3f}–{x['q3']:.3f}]"


def _mb(n: Optional[int]) -> str:
    return "–" if n is None else f"{n / 2**20:,.1f}"


def markdown(results: dict) -> str:
    """The results as markdown tables (what the README shows)."""
    m, s = results["machine"], results["settings"]
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    lines = [f"# LoRA-Mini vs PEFT LoRA vs full fine-tuning — `{results.get('machine_name', '')}`", "",
             f"{m['processor']}, {m['cpu_count']} CPU cores, torch threads {m['torch_threads']}{gpu}; device "
             f"{m['device']}, {m['dtype']}; torch {m['torch']}, transformers {m['transformers']}, peft {m['peft']}. "
             f"{'Quick mode. ' if s['quick'] else ''}Adapters: r={s['r']}, a=b={s['a']}, alpha={s['alpha']}, "
             f"targets {'+'.join(s['targets'])}. Warm-up {s['warmup']}, {s['repeats']} timed rounds; "
             f"{s['clock']} time = median [IQR] ms; ratios = median [IQR] of per-round ratios. Total {results['seconds']:.0f} s.", "",
             "## Headline", "", "| metric | LoRA-Mini / reference | target | met |", "|---|---|---|---|"]
    for key, row in results["summary"].items():
        extra = f" ({row['times_smaller']:.1f}x smaller)" if "times_smaller" in row else (
            f" [{row['iqr'][0]:.3f}–{row['iqr'][1]:.3f}]" if "iqr" in row else f" ({row['measure']})")
        lines.append(f"| `{key}` | {row['value']:.4f}{extra} | {row['target']} | {'yes' if row['met'] else '**no**'} |")

    lines += ["", f"## 1. One adapted d × d Linear, forward + backward ({s['tokens']} tokens)", "",
              "Extra multiply-adds per token from the formulas: LoRA-Mini d·a + a·r + r·b + b·d, LoRA r·2d "
              "(base d²). `chain` = the plain autograd chain (before `LoRAMiniFunction`).", "",
              "| d | r | a=b | MACs LoRA-Mini | MACs LoRA | LoRA-Mini ms | chain ms | PEFT LoRA ms | full FT ms "
              "| LoRA-Mini / PEFT | chain / PEFT | full / PEFT |", "|" + "---|" * 12]
    for row in results["layer"]:
        t, q, mac = row["time"], row["ratio_vs_peft_lora"], row["macs_per_token"]
        lines.append(f"| {row['d']} | {row['r']} | {row['a']} | {mac['loramini']:,} | {mac['lora']:,} | "
                     f"{_ms(t['loramini'])} | {_ms(t['loramini_chain'])} | {_ms(t['peft_lora'])} | {_ms(t['full_ft'])} | "
                     f"{_ratio(q['loramini'])} | {_ratio(q['loramini_chain'])} | {_ratio(q['full_ft'])} |")

    lines += ["", f"## 2. Training step, {s['model']}-shaped classifier, batch {s['batch']} × seq {s['seq']}, AdamW", "",
              "Memory in MiB. Accounted peak = weights + buffers + gradients + optimizer state + saved activations.",
              "", "| variant | trainable | step ms | / PEFT LoRA | saved activations | / PEFT | accounted peak | / PEFT "
              "| measured peak (CUDA) |", "|" + "---|" * 9]
    for name, row in results["train"].items():
        mem, ratio = row["memory"], row.get("memory_ratio_vs_peft_lora", {})
        lines.append(f"| {name} | {row['trainable_params']:,} | {_ms(row['time'])} | {_ratio(row['ratio_vs_peft_lora'])} | "
                     f"{_mb(mem['saved_activation_bytes'])} | {ratio.get('saved_activation_bytes', 0):.3f} | "
                     f"{_mb(mem['accounted_peak_bytes'])} | {ratio.get('accounted_peak_bytes', 0):.4f} | "
                     f"{_mb(mem.get('measured_peak_bytes'))} |")

    inf = results["inference"]
    lines += ["", "## 3. Inference (forward, inference mode, same batch)", "", "| variant | ms | / base |", "|---|---|---|"]
    for name, row in inf.items():
        if isinstance(row, dict):
            lines.append(f"| {name} | {_ms(row['time'])} | {_ratio(row['ratio_vs_base'])} |")
    lines += ["", f"Merged vs unmerged LoRA-Mini logits: max |Δ| = {inf['merged_vs_unmerged_max_abs_logit_diff']:.2e}."]

    lines += ["", "## 4. Adapter bytes on disk (adapter_model.safetensors; folder = with the JSON config and README)", "",
              "| adapter | head | aux saved | weights bytes | folder bytes | / PEFT LoRA (same head) |", "|---|---|---|---|---|---|"]
    for name, row in results["adapter_bytes"].items():
        lines.append(f"| {name} | {'yes' if row['head'] else 'no'} | {'yes' if row['aux'] else 'no'} | "
                     f"{row['weights_bytes']:,} | {row['folder_bytes']:,} | {row['ratio_vs_peft_lora']:.4f} |")
    return "\n".join(lines) + "\n"


def write_results(results: dict, out: Path, machine: str) -> tuple[Path, Path]:
    """`<out>/<machine>.json` and `<out>/<machine>.md`, each written atomically."""
    results["machine_name"] = machine
    json_path, md_path = out / f"{machine}.json", out / f"{machine}.md"
    write_json(json_path, results)
    text = markdown(results)
    atomic_write(md_path, lambda tmp: Path(tmp).write_text(text))
    return json_path, md_path


def _device(text: str) -> str:
    """An argparse type: a torch device string ("cpu", "cuda", "cuda:1")."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu or cuda (cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: the benchmark runs on cpu or cuda")
    return text


DTYPES = ("float32", "bfloat16", "float16", "float64")


def _count(minimum: int):
    """An argparse type: an integer >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {minimum}")
        return value

    parse.__name__ = "int"
    return parse


def main(argv: Optional[list[str]] = None) -> int:
    """Command line: `python -m loramini bench [--quick] [--device cuda] ...`; returns the exit status 0.

    A bad flag or value: one line on stderr and exit status 2 (the same parser as `python -m loramini`)."""
    from .cli import OneLineParser

    p = OneLineParser(prog="python -m loramini bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (< 2 min on 2 CPU cores)")
    p.add_argument("--device", type=_device, default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="float32 / bfloat16 / float16 / float64 (default: float32 on CPU, bfloat16 on CUDA)")
    p.add_argument("--threads", type=_count(1), default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall time (default) or cpu = CPU seconds of this process (robust on a shared machine)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for <machine>.json/.md")
    p.add_argument("--machine", default=None, help="results file name (default: e.g. cpu-2core, cuda-nvidia-h200)")
    p.add_argument("--batch", type=_count(1), default=None, help="rows per training batch")
    p.add_argument("--seq", type=_count(1), default=None, help="tokens per row")
    p.add_argument("--tokens", type=_count(1), default=None, help="tokens per call in the layer benchmark")
    p.add_argument("--warmup", type=_count(0), default=None, help="untimed rounds first")
    p.add_argument("--repeats", type=_count(1), default=None, help="timed rounds")
    p.add_argument("--no-reference", action="store_true", help="skip the simple-chain ('before') LoRA-Mini variant")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch.cuda.is_available() is False; run on a GPU machine or use --device cpu")
    from .ablation import output_problem

    problem = output_problem(args.out)
    if problem:  # found now, not after minutes of measuring
        p.error(f"--out: {problem}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = run(device=args.device, quick=args.quick, dtype=args.dtype, reference=not args.no_reference,
                  progress=not args.no_progress, clock=args.clock, batch=args.batch, seq=args.seq, tokens=args.tokens,
                  warmup=args.warmup, repeats=args.repeats)
    json_path, md_path = write_results(results, args.out, args.machine or default_machine_name(device))
    print(markdown(results))
    print(f"Wrote {json_path} and {md_path}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
