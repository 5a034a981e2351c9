"""inject / merge / unmerge / merge_and_unload on a tiny RoBERTa."""

import pytest
import torch
from torch import nn

import loramini
from loramini import LoRAMiniConfig, LoRAMiniLinear

from helpers import train_steps


def adapted(model):
    return [name for name, _ in loramini.loramini_layers(model)]


def test_inject_wraps_targets_and_keeps_outputs(tiny_model, batch):
    with torch.no_grad():
        before = tiny_model(input_ids=batch["input_ids"]).logits
    model = loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16))
    assert model is tiny_model
    assert adapted(model) == [f"roberta.encoder.layer.{i}.attention.self.{m}" for i in range(2) for m in ("query", "value")]
    with torch.no_grad():
        assert torch.equal(model(input_ids=batch["input_ids"]).logits, before)


def test_only_adapters_and_head_train(tiny_model):
    model = loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("A_train", "B_train")) or n.startswith("classifier.") for n in trainable)
    assert {n for n in trainable if n.startswith("classifier.")} == {
        "classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"}


def test_no_head_when_asked(tiny_model):
    model = loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16, modules_to_save=[]))
    assert all(n.endswith(("A_train", "B_train")) for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("preset,per_layer", [
    ("attention", ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]),
    ("dense", ["intermediate.dense", "output.dense"]),
    ("mlp", ["intermediate.dense", "output.dense"]),
    ("all-linear", ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                    "intermediate.dense", "output.dense"]),
])
def test_presets(tiny_model, preset, per_layer):
    model = loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16, target_modules=preset))
    expected = [f"roberta.encoder.layer.{i}.{m}" for i in range(2) for m in per_layer]
    assert adapted(model) == expected  # the head (classifier.dense) is never a target


def test_regex_targets(tiny_model):
    model = loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16, target_modules=r".*layer\.1\..*\.key"))
    assert adapted(model) == ["roberta.encoder.layer.1.attention.self.key"]


def test_unknown_name_lists_available_linears(tiny_model):
    with pytest.raises(ValueError, match=r"'qkv' matches no module.*attention\.self\.query"):
        loramini.inject(tiny_model, LoRAMiniConfig(target_modules=["qkv"]))
    assert not adapted(tiny_model)


def test_non_linear_target_is_a_type_error(tiny_model):
    with pytest.raises(TypeError, match=r"LayerNorm.*Linear layers available"):
        loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16, target_modules=["attention.output.LayerNorm"]))


def test_projection_wider_than_layer_names_the_layer(tiny_model):
    with pytest.raises(ValueError, match=r"roberta\.encoder\.layer\.0\.attention\.self\.query.*a <= d_in"):
        loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=128, b=16))
    assert not adapted(tiny_model)
    assert any(p.requires_grad for n, p in tiny_model.named_parameters() if "embeddings" in n)  # untouched


def test_inject_twice_is_refused(tiny_model):
    loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16))
    with pytest.raises(ValueError, match="inject it once"):
        loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16))


def test_missing_module_to_save(tiny_model):
    with pytest.raises(ValueError, match="'pooler'"):
        loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16, modules_to_save=["pooler"]))


def test_works_on_a_plain_torch_model():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    loramini.inject(model, LoRAMiniConfig(r=2, a=8, b=4, target_modules=["0", "2"]))
    assert isinstance(model[0], LoRAMiniLinear) and isinstance(model[2], LoRAMiniLinear)
    assert model(torch.randn(3, 16)).shape == (3, 4)


def test_merge_unmerge_and_unload(tiny_model, batch):
    loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=16))
    train_steps(tiny_model, batch)
    tiny_model.eval()
    ids = batch["input_ids"]
    with torch.no_grad():
        adapted_logits = tiny_model(input_ids=ids).logits
        loramini.merge(tiny_model)
        assert torch.allclose(tiny_model(input_ids=ids).logits, adapted_logits, atol=1e-5)
        loramini.unmerge(tiny_model)
        assert torch.allclose(tiny_model(input_ids=ids).logits, adapted_logits, atol=1e-5)
        plain = loramini.merge_and_unload(tiny_model)
        assert not adapted(plain)
        assert type(plain.roberta.encoder.layer[0].attention.self.query) is nn.Linear
        assert torch.allclose(plain(input_ids=ids).logits, adapted_logits, atol=1e-5)


def test_merge_without_adapters_is_an_error(tiny_model):
    with pytest.raises(ValueError, match="inject"):
        loramini.merge(tiny_model)
