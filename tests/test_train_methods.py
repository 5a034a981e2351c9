"""Every adapter field set in TrainConfig reaches the method that uses it (methods.apply_method)."""

import pytest

import loramini
from loramini.methods import apply_method, param_groups
from loramini.train import TrainConfig


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_loramini_gets_modules_to_save_and_use_rslora():
    model = apply_method(loramini.tiny_roberta(seed=0), TrainConfig(modules_to_save=[], use_rslora=True, r=4))
    names = trainable(model)
    assert names and not any(n.startswith("classifier.") for n in names)  # [] = no head trained
    _, layer = next(iter(loramini.loramini_layers(model)))
    assert layer.scale == pytest.approx(8 / 4 ** 0.5)  # alpha 2r over sqrt(r)


def test_lora_gets_use_rslora_dropout_and_the_head():
    model = apply_method(loramini.tiny_roberta(seed=0), TrainConfig(method="lora", use_rslora=True, dropout=0.1))
    config = model.peft_config["default"]
    assert config.use_rslora and config.lora_dropout == 0.1 and config.r == 8 and config.lora_alpha == 16
    assert any("classifier" in n for n in trainable(model))


def test_vera_gets_modules_to_save_and_save_projection():
    model = apply_method(loramini.tiny_roberta(seed=0),
                         TrainConfig(method="vera", r=16, modules_to_save=[], save_projection=True))
    config = model.peft_config["default"]
    assert config.save_projection and config.r == 16 and not config.modules_to_save
    assert not any("classifier" in n for n in trainable(model))


def test_param_groups_split_adapter_and_head_rates():
    model = apply_method(loramini.tiny_roberta(seed=0), TrainConfig())
    groups = {g["name"]: g for g in param_groups(model, TrainConfig(lr=1e-2, head_lr=1e-3))}
    assert groups["adapter"]["lr"] == 1e-2 and groups["head"]["lr"] == 1e-3
    assert all(p.requires_grad for g in groups.values() for p in g["params"])
