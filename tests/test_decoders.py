"""LoRA-Mini on decoders: tiny GPT-2 (Conv1D layers) and tiny Llama (bias-free nn.Linear), built from a config.

inject → a few steps → save → load → equal logits; merge; merge_and_unload; export_peft → PeftModel with equal
logits and identical greedy generations; presets per family; sequence-classification decoders; shared aux.
"""

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import (GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          LlamaForSequenceClassification)
from transformers.pytorch_utils import Conv1D

import loramini
from loramini import LoRAMiniConfig, LoRAMiniLinear
from loramini.layer import dense_weight, fan_in_fan_out, layer_shape

VOCAB = 96


def tiny_gpt2(cls=GPT2LMHeadModel, **kw):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2, **kw)
    return cls(config).eval()


def tiny_llama(cls=LlamaForCausalLM, dtype=None, **kw):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, **kw)
    model = cls(config).eval()
    return model.to(dtype) if dtype is not None else model


FAMILIES = {"gpt2": tiny_gpt2, "llama": tiny_llama}
PER_BLOCK = {  # (attention, mlp) module names inside block i
    "gpt2": (["transformer.h.{i}.attn.c_attn", "transformer.h.{i}.attn.c_proj"],
             ["transformer.h.{i}.mlp.c_fc", "transformer.h.{i}.mlp.c_proj"]),
    "llama": ([f"model.layers.{{i}}.self_attn.{m}" for m in ("q_proj", "k_proj", "v_proj", "o_proj")],
              [f"model.layers.{{i}}.mlp.{m}" for m in ("gate_proj", "up_proj", "down_proj")]),
}


def tokens(seed=0, shape=(3, 10)):
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def train_lm(model, steps=4, lr=2e-2):
    """A few AdamW steps of causal-LM training on random tokens (labels = input_ids)."""
    ids = tokens(1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    return model.eval()


def logits(model, ids=None):
    with torch.no_grad():
        return model(input_ids=tokens() if ids is None else ids).logits


def greedy(model):
    prompt = tokens(2, (2, 5))
    with torch.no_grad():
        return model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                              do_sample=False, pad_token_id=0)


def adapted(model):
    return [name for name, _ in loramini.loramini_layers(model)]


# --- the Conv1D layer -----------------------------------------------------------------------------------------


def test_conv1d_forward_merge_match_a_dense_reference_with_the_transposed_weight():
    torch.manual_seed(0)
    conv = Conv1D(20, 24)  # nf = d_out = 20, nx = d_in = 24: weight stored (24, 20)
    nn.init.normal_(conv.bias)
    w0 = conv.weight.detach().clone()
    layer = LoRAMiniLinear(conv, r=4, a=8, b=6, name="c_attn")
    assert fan_in_fan_out(conv) and not fan_in_fan_out(nn.Linear(3, 2))
    assert layer_shape(conv) == (24, 20) and (layer.in_features, layer.out_features) == (24, 20)
    assert layer.A_aux.shape == (8, 24) and layer.B_aux.shape == (20, 6)
    with torch.no_grad():
        layer.B_train.normal_()
    x = torch.randn(2, 5, 24)
    dense = F.linear(x, w0.t(), conv.bias) + F.linear(x, layer.delta_weight())  # nn.Linear's layout: W is (20, 24)
    out = layer(x)
    torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-5)
    layer.merge()  # writes through the transposed view into Conv1D's (24, 20) weight
    assert conv.weight.shape == (24, 20)
    torch.testing.assert_close(conv.weight, w0 + layer.delta_weight().t(), rtol=0, atol=1e-6)
    torch.testing.assert_close(layer(x), out, rtol=1e-5, atol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(conv.weight, w0, rtol=0, atol=1e-6)
    assert dense_weight(conv).data_ptr() == conv.weight.data_ptr()  # a view, not a copy


def test_conv1d_too_small_names_the_layer():
    with pytest.raises(ValueError, match=r"'tiny' \(4 -> 20\).*a <= d_in"):
        LoRAMiniLinear(Conv1D(20, 4), r=2, a=8, b=6, name="tiny")


def test_export_refuses_a_mix_of_linear_and_conv1d(tmp_path):
    model = loramini.inject(nn.Sequential(Conv1D(16, 8), nn.Linear(16, 8)),
                            LoRAMiniConfig(r=2, a=4, b=4, target_modules=["0", "1"]))
    with pytest.raises(ValueError, match="both nn.Linear and Conv1D.*fan_in_fan_out"):
        loramini.export_peft(model, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


# --- presets ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("preset", ["attention", "mlp", "dense", "all-linear"])
def test_presets_mean_the_same_in_every_family(family, preset):
    model = loramini.inject(FAMILIES[family](), LoRAMiniConfig(r=2, a=8, b=8, target_modules=preset))
    attention, mlp = PER_BLOCK[family]
    per_block = {"attention": attention, "mlp": mlp, "dense": mlp, "all-linear": attention + mlp}[preset]
    assert adapted(model) == [n.format(i=i) for i in range(2) for n in per_block]
    assert "lm_head" not in " ".join(adapted(model))


@pytest.mark.parametrize("family, per_block", [("llama", ["self_attn.q_proj", "self_attn.v_proj"]),
                                               ("gpt2", ["attn.c_attn"])])
def test_the_default_query_value_means_the_same_projections_in_every_family(family, per_block):
    """The default target_modules (BERT's names) finds Llama's q_proj / v_proj and GPT-2's fused c_attn."""
    assert LoRAMiniConfig().target_modules == ["query", "value"]
    model = loramini.inject(FAMILIES[family](), LoRAMiniConfig(r=2, a=8, b=8))
    prefix = {"llama": "model.layers", "gpt2": "transformer.h"}[family]
    assert adapted(model) == [f"{prefix}.{i}.{name}" for i in range(2) for name in per_block]
    # A family's own name is taken as it is, and never widened: "q_proj" alone adapts q only.
    if family == "llama":
        only_q = loramini.inject(tiny_llama(), LoRAMiniConfig(r=2, a=8, b=8, target_modules=["q_proj"]))
        assert adapted(only_q) == [f"model.layers.{i}.self_attn.q_proj" for i in range(2)]


def test_query_on_a_model_without_attention_still_names_the_layers():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"entry 'query' matches no module of Sequential. Linear layers available: 0, 2"):
        loramini.inject(model, LoRAMiniConfig(r=2, a=4, b=2))
    assert not adapted(model)


def test_a_preset_that_selects_nothing_says_so():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"'attention' selects no layer of Sequential \(0 of its 2 linear layers"):
        loramini.inject(model, LoRAMiniConfig(r=2, a=4, b=2, target_modules="attention"))
    assert not adapted(model)


# --- train, save, load, merge, export --------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_decoder_round_trips(family, tmp_path):
    build = FAMILIES[family]
    model = loramini.inject(build(), LoRAMiniConfig(r=4, a=16, b=16, target_modules="all-linear"))
    assert loramini.count_parameters(model).head == 0  # a causal LM has no task head; lm_head stays frozen
    base_logits = logits(build())
    train_lm(model)
    trained, generated = logits(model), greedy(model)
    assert not torch.allclose(trained, base_logits, atol=1e-3)  # training moved the model

    fresh = loramini.load_adapter(build(), loramini.save_adapter(model, tmp_path / "adapter"))
    assert torch.equal(logits(fresh), trained)

    loramini.merge(model)
    torch.testing.assert_close(logits(model), trained, rtol=0, atol=1e-5)
    loramini.unmerge(model)
    torch.testing.assert_close(logits(model), trained, rtol=0, atol=1e-5)

    peft_dir = loramini.export_peft(model, tmp_path / "peft")
    peft_config = json.loads((peft_dir / "adapter_config.json").read_text())
    assert peft_config["task_type"] == "CAUSAL_LM"
    assert peft_config["fan_in_fan_out"] is (family == "gpt2")
    from peft import PeftModel

    served = PeftModel.from_pretrained(build(), str(peft_dir)).eval()
    torch.testing.assert_close(logits(served), trained, rtol=0, atol=1e-5)
    assert torch.equal(greedy(served), generated)

    plain = loramini.merge_and_unload(model)
    assert not adapted(plain)
    assert type(plain.get_submodule(PER_BLOCK[family][0][0].format(i=0))) is (Conv1D if family == "gpt2" else nn.Linear)
    torch.testing.assert_close(logits(plain), trained, rtol=0, atol=1e-5)
    assert torch.equal(greedy(plain), generated)


@pytest.mark.parametrize("cls", [GPT2ForSequenceClassification, LlamaForSequenceClassification])
def test_sequence_classification_decoder_trains_score_as_the_head(cls, tmp_path):
    build = (lambda: tiny_gpt2(cls, num_labels=3, pad_token_id=0)) if cls is GPT2ForSequenceClassification else (
        lambda: tiny_llama(cls, num_labels=3, pad_token_id=0))
    model = loramini.inject(build(), LoRAMiniConfig(r=4, a=16, b=16, target_modules="all-linear"))
    assert model.loramini_modules_to_save == ["score"]
    assert "score" not in " ".join(adapted(model)) and type(model.score) is nn.Linear and model.score.bias is None
    assert {n for n, p in model.named_parameters() if p.requires_grad and "score" in n} == {"score.weight"}
    ids, labels = tokens(3, (4, 7)), torch.tensor([0, 1, 2, 1])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
    model.eval()
    fresh = loramini.load_adapter(build(), loramini.save_adapter(model, tmp_path / "adapter"))
    assert torch.equal(logits(fresh, ids), logits(model, ids))
    peft_dir = loramini.export_peft(model, tmp_path / "peft")
    assert json.loads((peft_dir / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    from peft import PeftModel

    served = PeftModel.from_pretrained(build(), str(peft_dir)).eval()
    torch.testing.assert_close(logits(served, ids), logits(model, ids), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bf16_decoder_trains_with_fp32_factors_and_merges(family):
    model = FAMILIES[family]().to(torch.bfloat16)
    loramini.inject(model, LoRAMiniConfig(r=4, a=16, b=16, target_modules="all-linear"))
    layer = next(layer for _, layer in loramini.loramini_layers(model))
    assert layer.A_aux.dtype == torch.bfloat16 and layer.A_train.dtype == torch.float32
    assert (layer.base.bias is None) is (family == "llama")  # Llama's projections are bias-free
    train_lm(model, steps=2)
    assert layer.B_train.abs().sum() > 0 and layer.B_train.dtype == torch.float32
    out = logits(model)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    loramini.merge(model)  # in bf16, through the transposed view for GPT-2's Conv1D
    assert layer.base.weight.dtype == torch.bfloat16
    tol = 4 * torch.finfo(torch.bfloat16).eps * out.abs().max().item()
    torch.testing.assert_close(logits(model).float(), out.float(), rtol=0, atol=tol)


# --- shared aux ------------------------------------------------------------------------------------------------


def test_shared_aux_one_pair_per_shape_counted_once_and_kept_by_to():
    shared = loramini.inject(tiny_llama(), LoRAMiniConfig(r=4, a=16, b=16, target_modules="all-linear", share_aux=True))
    own = loramini.inject(tiny_llama(), LoRAMiniConfig(r=4, a=16, b=16, target_modules="all-linear"))
    layers = dict(loramini.loramini_layers(shared))
    q0, q1 = layers["model.layers.0.self_attn.q_proj"], layers["model.layers.1.self_attn.q_proj"]
    o0, k0 = layers["model.layers.0.self_attn.o_proj"], layers["model.layers.0.self_attn.k_proj"]
    assert q0.aux is q1.aux is o0.aux  # 32 -> 32 (q and o): one pair
    assert k0.aux is not q0.aux and k0.aux_name == "shared_aux.32x16"  # 32 -> 16 (k, v): another
    # Distinct shapes: 32->32 (q, o), 32->16 (k, v), 32->48 (gate, up), 48->32 (down).
    per_shape = {(32, 32): 16 * 32 + 32 * 16, (32, 16): 16 * 32 + 16 * 16, (32, 48): 16 * 32 + 48 * 16,
                 (48, 32): 16 * 48 + 32 * 16}
    assert loramini.count_parameters(shared).frozen_aux == sum(per_shape.values())
    per_block = {(32, 32): 2, (32, 16): 2, (32, 48): 2, (48, 32): 1}  # q o | k v | gate up | down
    assert loramini.count_parameters(own).frozen_aux == 2 * sum(n * per_shape[s] for s, n in per_block.items())
    assert loramini.count_parameters(shared).adapter == loramini.count_parameters(own).adapter
    shared.to(torch.float64)  # the shared submodule is moved once: still one tensor
    assert q0.A_aux.dtype == torch.float64 and q0.A_aux is q1.A_aux
    assert not torch.equal(q0.A_aux.float(), dict(loramini.loramini_layers(own))[q0.name].A_aux)  # seeded by shape


@pytest.mark.parametrize("save_projection", [False, True])
def test_shared_aux_save_load(save_projection, tmp_path):
    config = LoRAMiniConfig(r=4, a=16, b=16, target_modules="all-linear", share_aux=True,
                            save_projection=save_projection)
    model = train_lm(loramini.inject(tiny_gpt2(), config))
    folder = loramini.save_adapter(model, tmp_path / "adapter")
    meta = json.loads((folder / "adapter_config.json").read_text())
    assert meta["share_aux"] is True and len(meta["aux_fingerprint"]) == 8
    from safetensors import safe_open

    with safe_open(folder / "adapter_model.safetensors", "pt") as f:
        aux_keys = sorted(k for k in f.keys() if "aux" in k)
    # GPT-2 shapes: c_attn 32->96, attn.c_proj 32->32, c_fc 32->128, mlp.c_proj 128->32: four pairs, stored once.
    assert aux_keys == ([f"shared_aux.{s}.{f}" for s in ("128x32", "32x128", "32x32", "32x96") for f in ("A_aux", "B_aux")]
                        if save_projection else [])
    fresh = loramini.load_adapter(tiny_gpt2(), folder)
    assert torch.equal(logits(fresh), logits(model))
    layers = [layer for _, layer in loramini.loramini_layers(fresh)]
    assert layers[0].aux is layers[4].aux  # c_attn of blocks 0 and 1 share again after loading


def test_decoder_memory_benchmark_counts_match_the_closed_forms(monkeypatch):
    """benchmarks/decoders.py on a tiny Llama shape (meta device): counts equal r·(a+b) and r·(d_in+d_out) sums."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "decoders.py"
    spec = importlib.util.spec_from_file_location("decoders_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setitem(bench.SHAPES, "tiny", dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    rows = bench.count_rows("tiny", r=2, a=8, b=8)
    assert rows["loramini_all_linear"]["trainable"] == 2 * 7 * 2 * (8 + 8)
    assert rows["loramini_qv"]["trainable"] == 2 * 2 * 2 * (8 + 8)
    assert rows["peft_lora_qv"]["trainable"] == 2 * (2 * (32 + 32) + 2 * (32 + 16))
    # aux per shape: A (8 × d_in) + B (d_out × 8); shared: once per distinct (d_in, d_out)
    aux = {(32, 32): 8 * 32 + 32 * 8, (32, 16): 8 * 32 + 16 * 8, (32, 48): 8 * 32 + 48 * 8, (48, 32): 8 * 48 + 32 * 8}
    assert rows["loramini_all_linear_shared_aux"]["frozen_aux"] == sum(aux.values())
    assert rows["loramini_all_linear"]["frozen_aux"] == 2 * (2 * aux[32, 32] + 2 * aux[32, 16] + 2 * aux[32, 48] + aux[48, 32])
    assert rows["loramini_all_linear"]["aux_mb_bf16"] * 2 ** 20 == 2 * rows["loramini_all_linear"]["frozen_aux"]
