"""LoRA-Mini on LLM shapes: frozen-aux memory (with and without `share_aux`), trainable numbers and adapter bytes
against PEFT LoRA, and (optionally) a training step against PEFT LoRA on the SmolLM2-135M shape.

    python benchmarks/decoders.py              # counts on the meta device (seconds) + SmolLM2 files and step (minutes)
    python benchmarks/decoders.py --no-step    # without the training-step timing
    python benchmarks/decoders.py --shapes llama-2-7b --no-files --no-step   # meta device only, no memory needed

Shapes are Llama configs built from their numbers (no download): SmolLM2-135M and Llama-2-7B. Counts come from
`loramini.count_parameters` on models built on the meta device (no memory), PEFT LoRA's from
`peft.get_peft_model` on the same meta model. Bytes from counts: aux buffers follow the base dtype (bf16: 2 bytes,
fp32: 4); adapter files store trainable numbers in fp32 (4 bytes; LoRA-Mini keeps fp32 masters, PEFT LoRA
keeps fp32 adapter weights by default), safetensors header not included. On the SmolLM2 shape the files are
also written for real (random weights, fp32) and the aux buffers' memory measured (distinct storages).

Step (`--step`): AdamW training step of a random-weight SmolLM2-shaped `LlamaForCausalLM` on random tokens
(labels = input_ids), CPU, float32, time and accounted peak memory as ratios to PEFT LoRA on the same
targets and rank, with `loramini.bench`'s paired rounds. One run: a ratio, not a claim across machines.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package next to this folder

from loramini import LoRAMiniConfig, count_parameters, export_peft, inject, save_adapter  # noqa: E402
from loramini.bench import Timing, bench_training, machine_info, tensor_bytes  # noqa: E402
from loramini.files import write_report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = {
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True),
    "llama-2-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32),
}
QV = ["q_proj", "v_proj"]
MB = 2 ** 20


def loramini_variants(r: int, a: int, b: int) -> dict[str, LoRAMiniConfig]:
    return {
        "loramini_all_linear": LoRAMiniConfig(r=r, a=a, b=b, target_modules="all-linear"),
        "loramini_all_linear_shared_aux": LoRAMiniConfig(r=r, a=a, b=b, target_modules="all-linear", share_aux=True),
        "loramini_qv": LoRAMiniConfig(r=r, a=a, b=b, target_modules=QV),
    }


def peft_variants(r: int) -> dict[str, dict]:
    return {"peft_lora_qv": dict(r=r, lora_alpha=2 * r, target_modules=QV),
            "peft_lora_all_linear": dict(r=r, lora_alpha=2 * r, target_modules="all-linear")}


def build(shape: str, device: str = "meta", seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        return LlamaForCausalLM(LlamaConfig(**SHAPES[shape])).eval()


def peft_model(base, settings: dict):
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():  # PEFT calls a transformers API that transformers deprecates: not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        return get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **settings))


def count_rows(shape: str, r: int, a: int, b: int) -> dict:
    """Per variant, on the meta device: trainable numbers, frozen aux numbers and bytes, adapter bytes."""
    rows = {}
    for name, cfg in loramini_variants(r, a, b).items():
        counts = count_parameters(inject(build(shape), cfg))
        rows[name] = {"trainable": counts.adapter, "frozen_aux": counts.frozen_aux, "base": counts.base,
                      "aux_mb_bf16": counts.frozen_aux * 2 / MB, "aux_mb_fp32": counts.frozen_aux * 4 / MB,
                      "aux_share_of_base": counts.frozen_aux / counts.base, "adapter_mb_fp32": counts.adapter * 4 / MB}
    for name, settings in peft_variants(r).items():
        counts = count_parameters(peft_model(build(shape), settings))
        rows[name] = {"trainable": counts.adapter, "frozen_aux": 0, "base": counts.base, "aux_mb_bf16": 0.0,
                      "aux_mb_fp32": 0.0, "aux_share_of_base": 0.0, "adapter_mb_fp32": counts.adapter * 4 / MB}
    for row in rows.values():
        row["trainable_ratio_vs_peft_lora_qv"] = row["trainable"] / rows["peft_lora_qv"]["trainable"]
    return rows


def file_rows(shape: str, r: int, a: int, b: int) -> dict:
    """Real (random-weight, fp32, CPU) model: measured aux-buffer memory and adapter file bytes."""
    base = build(shape, device="cpu")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in loramini_variants(r, a, b).items():
            model = inject(copy.deepcopy(base), cfg)
            aux = [m for m in model.modules() if type(m).__name__ == "AuxFactors"]
            folder = save_adapter(model, Path(tmp) / name)
            rows[name] = {"aux_buffer_bytes_measured": tensor_bytes([t for m in aux for t in m.buffers()]),
                          "aux_pairs": len({id(m) for m in aux}),
                          "adapter_file_bytes": (folder / "adapter_model.safetensors").stat().st_size}
            if name == "loramini_all_linear":
                exported = export_peft(model, Path(tmp) / "export")
                rows["loramini_all_linear_exported_to_peft"] = {
                    "adapter_file_bytes": (exported / "adapter_model.safetensors").stat().st_size}
            del model
        for name, settings in peft_variants(r).items():
            model = peft_model(copy.deepcopy(base), settings)
            model.save_pretrained(Path(tmp) / name, save_embedding_layers=False)
            rows[name] = {"adapter_file_bytes": (Path(tmp) / name / "adapter_model.safetensors").stat().st_size}
    for row in rows.values():
        row["bytes_ratio_vs_peft_lora_qv"] = row["adapter_file_bytes"] / rows["peft_lora_qv"]["adapter_file_bytes"]
    return rows


def step_rows(shape: str, r: int, a: int, b: int, batch: int, seq: int, repeats: int) -> dict:
    """Training-step time and accounted peak memory, LoRA-Mini (all-linear, shared aux or not) vs PEFT LoRA."""
    base = build(shape, device="cpu")
    variants = loramini_variants(r, a, b)
    models = {"loramini_all_linear": inject(copy.deepcopy(base), variants["loramini_all_linear"]),
              "loramini_all_linear_shared_aux": inject(copy.deepcopy(base), variants["loramini_all_linear_shared_aux"]),
              "peft_lora": peft_model(copy.deepcopy(base), peft_variants(r)["peft_lora_all_linear"])}
    del base
    ids = torch.randint(0, SHAPES[shape]["vocab_size"], (batch, seq), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    return bench_training(models, inputs, Timing(warmup=1, repeats=repeats, clock="cpu"), torch.device("cpu"))


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [f"# LoRA-Mini on LLM shapes (r={s['r']}, a={s['a']}, b={s['b']}; LoRA r={s['r']})", "",
             f"torch {results['machine']['torch']}, transformers {results['machine']['transformers']}, "
             f"peft {results['machine']['peft']}. Counts on the meta device; bytes from counts (aux in bf16 or fp32, "
             f"adapters in fp32, no file header). Total {results['seconds']:.0f} s.", ""]
    for shape, rows in results["counts"].items():
        lines += [f"## {shape}: trainable numbers, frozen aux, adapter bytes", "",
                  "| variant | trainable | × PEFT LoRA q,v | frozen aux | aux MB (bf16) | aux MB (fp32) | aux / base | "
                  "adapter MB (fp32) |", "|---|---|---|---|---|---|---|---|"]
        for name, row in rows.items():
            lines.append(f"| {name} | {row['trainable']:,} | {row['trainable_ratio_vs_peft_lora_qv']:.3f} | "
                         f"{row['frozen_aux']:,} | {row['aux_mb_bf16']:.2f} | {row['aux_mb_fp32']:.2f} | "
                         f"{100 * row['aux_share_of_base']:.2f}% | {row['adapter_mb_fp32']:.3f} |")
        lines.append("")
    for shape, rows in results.get("files", {}).items():
        lines += [f"## {shape}: measured (random weights, fp32, CPU)", "",
                  "| variant | aux buffers, measured bytes | aux pairs | adapter file bytes | × PEFT LoRA q,v |",
                  "|---|---|---|---|---|"]
        for name, row in rows.items():
            aux = f"{row['aux_buffer_bytes_measured']:,}" if "aux_buffer_bytes_measured" in row else "-"
            lines.append(f"| {name} | {aux} | {row.get('aux_pairs', '-')} | {row['adapter_file_bytes']:,} | "
                         f"{row['bytes_ratio_vs_peft_lora_qv']:.4f} |")
        lines.append("")
    if "step" in results:
        st = results["step"]
        lines += [f"## {st['shape']}: AdamW training step, CPU float32, batch {st['batch']} × {st['seq']} tokens, "
                  f"{st['repeats']} timed rounds (CPU seconds, 1 thread)", "",
                  f"`peft_lora` = PEFT LoRA on the same layers (all-linear) at r={s['r']}: the reference of every "
                  f"ratio. Accounted peak = weights + buffers + gradients + AdamW state + saved activations.", "",
                  "| variant | trainable | step ms (median [IQR]) | step / PEFT LoRA | accounted peak MB | peak / PEFT LoRA |",
                  "|---|---|---|---|---|---|"]
        for name, row in st["rows"].items():
            t, q = row["time"], row["ratio_vs_peft_lora"]
            mem = row["memory"]["accounted_peak_bytes"]
            ratio = row.get("memory_ratio_vs_peft_lora", {}).get("accounted_peak_bytes", float("nan"))
            lines.append(f"| {name} | {row['trainable_params']:,} | {t['median_ms']:.0f} [{t['q1_ms']:.0f}–{t['q3_ms']:.0f}] | "
                         f"{q['median']:.3f} [{q['q1']:.3f}–{q['q3']:.3f}] | {mem / MB:.0f} | {ratio:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES, reverse=True))
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--a", type=int, default=32)
    p.add_argument("--b", type=int, default=32)
    p.add_argument("--no-files", action="store_true", help="skip the real SmolLM2-shaped files and measured memory")
    p.add_argument("--no-step", action="store_true", help="skip the training-step timing")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "decoders")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    results = {"machine": machine_info(torch.device("cpu"), torch.float32),
               "settings": {"r": args.r, "a": args.a, "b": args.b, "shapes": {s: SHAPES[s] for s in args.shapes}},
               "counts": {s: count_rows(s, args.r, args.a, args.b) for s in args.shapes}}
    if not args.no_files:
        results["files"] = {"smollm2-135m": file_rows("smollm2-135m", args.r, args.a, args.b)}
    if not args.no_step:
        results["step"] = {"shape": "smollm2-135m", "batch": args.batch, "seq": args.seq, "repeats": args.repeats,
                           "rows": step_rows("smollm2-135m", args.r, args.a, args.b, args.batch, args.seq, args.repeats)}
    results["seconds"] = time.perf_counter() - started
    text = markdown(results)
    write_report(args.out, results, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
