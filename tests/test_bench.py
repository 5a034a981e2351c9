"""The benchmark's code paths on tiny sizes: result keys, finite ratios, exact adapter bytes.

No timed assertions: timings depend on the machine; only their presence and finiteness are checked.
"""

import copy
import json
import math
import struct

import pytest
import torch
from torch import nn

import loramini
from loramini import bench


def test_layer_function_matches_the_simple_chain_and_float64():
    """LoRAMiniFunction (the layer's forward/backward) = the plain autograd chain, to fp32 rounding."""
    torch.manual_seed(0)
    layer = loramini.LoRAMiniLinear(nn.Linear(48, 40), r=4, a=16, b=8, name="q")
    with torch.no_grad():
        layer.B_train.normal_(0, 0.05)
    x, g = torch.randn(3, 11, 48), torch.randn(3, 11, 40) / 33

    def run(module, forward, dtype):
        module = copy.deepcopy(module).to(dtype)
        xx = x.to(dtype).detach().clone().requires_grad_(True)
        forward(module, xx).backward(g.to(dtype))
        return [forward(module, xx).detach(), xx.grad, module.A_train.grad, module.B_train.grad]

    new = run(layer, lambda m, t: m(t), torch.float32)
    old = run(layer, lambda m, t: m.base(t) + bench.simple_chain(m, t), torch.float32)
    ref = run(layer, lambda m, t: m.base(t) + bench.simple_chain(m, t), torch.float64)
    for got, want, exact in zip(new, old, ref):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-5)
        assert torch.allclose(got.double(), exact, atol=1e-6, rtol=1e-5)


def test_layer_function_frozen_input_and_bf16():
    layer = loramini.LoRAMiniLinear(nn.Linear(32, 24).to(torch.bfloat16), r=2, a=8, b=8)
    with torch.no_grad():
        layer.B_train.normal_()
    x = torch.randn(5, 32, dtype=torch.bfloat16)  # no grad wanted for x: only the factors get one
    layer(x).float().sum().backward()
    assert layer.A_train.grad.dtype == layer.B_train.grad.dtype == torch.float32
    assert torch.isfinite(layer.A_train.grad).all() and layer.B_train.grad.abs().sum() > 0


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    res = bench.run(model="tiny", dims=(32,), ranks=(2,), widths=(4,), r=2, a=8, tokens=8, batch=2, seq=8,
                    warmup=0, repeats=2, progress=False)
    out = tmp_path_factory.mktemp("bench")
    json_path, md_path = bench.write_results(res, out, "test-machine")
    return res, json_path, md_path


def test_headline_keys_finite(results):
    res, json_path, md_path = results
    for key in ("adapter_bytes_ratio_vs_peft_lora", "train_step_ratio_vs_peft_lora",
                "merged_inference_ratio_vs_base", "peak_memory_ratio_vs_peft_lora"):
        assert _finite(res[key]) and res[key] > 0, key
        assert res["summary"][key]["value"] == res[key] and isinstance(res["summary"][key]["met"], bool)
    assert json.loads(json_path.read_text())["machine_name"] == "test-machine"
    text = md_path.read_text()
    assert "## Headline" in text and "adapter_bytes_ratio_vs_peft_lora" in text


def test_layer_rows(results):
    (row,) = results[0]["layer"]
    assert row["macs_per_token"] == {"loramini": 32 * 4 + 4 * 2 + 2 * 4 + 4 * 32, "lora": 2 * 64, "base": 32 * 32}
    assert set(row["time"]) == {"loramini", "loramini_chain", "peft_lora", "full_ft"}
    for name in row["time"]:
        assert _finite(row["time"][name]["median_ms"]) and _finite(row["ratio_vs_peft_lora"][name]["median"])
    assert row["ratio_vs_peft_lora"]["peft_lora"]["median"] == 1.0


def test_training_and_inference_rows(results):
    train, inference = results[0]["train"], results[0]["inference"]
    assert set(train) == {"loramini", "loramini_chain", "peft_lora", "full_ft"}
    for row in train.values():
        assert _finite(row["ratio_vs_peft_lora"]["median"])
        assert row["memory"]["saved_activation_bytes"] > 0
        assert all(_finite(v) for v in row["memory_ratio_vs_peft_lora"].values())
    # fewer trainable numbers than PEFT LoRA, and no more saved activations than PEFT LoRA
    assert train["loramini"]["trainable_params"] < train["peft_lora"]["trainable_params"] < train["full_ft"]["trainable_params"]
    assert train["loramini"]["memory"]["saved_activation_bytes"] <= train["peft_lora"]["memory"]["saved_activation_bytes"]
    for name in ("base", "loramini_merged", "loramini_unmerged", "peft_lora_unmerged"):
        assert _finite(inference[name]["ratio_vs_base"]["median"])
    assert inference["merged_vs_unmerged_max_abs_logit_diff"] < 1e-4


def _payload_bytes(path):
    """Bytes of tensor data in a safetensors file: its size minus the 8-byte length and the JSON header."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    return path.stat().st_size - 8 - header_len


def test_adapter_bytes_exact(results, tmp_path):
    rows = results[0]["adapter_bytes"]
    mini, peft = rows["loramini"], rows["peft_lora"]
    assert results[0]["adapter_bytes_ratio_vs_peft_lora"] == mini["weights_bytes"] / peft["weights_bytes"]
    assert rows["loramini_exported_to_peft"]["weights_bytes"] == peft["weights_bytes"]  # same tensors, same names
    # the file sizes are those of the adapters themselves: rebuild LoRA-Mini's and check its payload exactly
    cfg = loramini.LoRAMiniConfig(r=2, a=8, b=8, modules_to_save=[])
    model = loramini.inject(loramini.tiny_roberta(), cfg)
    folder = loramini.save_adapter(model, tmp_path / "a")
    assert (folder / "adapter_model.safetensors").stat().st_size == mini["weights_bytes"]
    n_layers = loramini.roberta_config("tiny").num_hidden_layers * 2  # query + value
    assert _payload_bytes(folder / "adapter_model.safetensors") == n_layers * 2 * (8 + 8) * 4
    assert rows["loramini+aux"]["weights_bytes"] > mini["weights_bytes"]
    assert rows["loramini+head"]["weights_bytes"] > mini["weights_bytes"]


def test_unknown_clock_is_a_value_error():
    with pytest.raises(ValueError, match="clock"):
        bench.run(device="cuda" if torch.cuda.is_available() else "cpu", clock="sundial", progress=False)


@pytest.mark.parametrize("argv,needle", [(["--device", "xyz"], "--device"), (["--dtype", "float99"], "--dtype"),
                                         (["--threads", "-3"], "--threads"), (["--batch", "0"], "--batch"),
                                         (["--repeats", "two"], "--repeats")])
def test_bad_bench_flags_are_one_line_and_exit_2(argv, needle, capsys):
    from loramini.cli import main

    with pytest.raises(SystemExit) as done:
        main(["bench", *argv])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and needle in err and "Traceback" not in err
