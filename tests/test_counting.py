"""count_parameters, the closed forms, and predictions from shapes on the meta device."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import loramini
from loramini import LoRAMiniConfig


def meta_model(name):
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(loramini.roberta_config(name))


def test_closed_forms():
    assert loramini.lora_params(768, 768, 8) == 12288
    assert loramini.loramini_params(32, 32, 8) == 512
    assert loramini.lora_params(768, 3072, 16) == 16 * 3840


def test_count_fields_on_tiny_model(tiny_model):
    total_before = sum(p.numel() for p in tiny_model.parameters())
    head = sum(p.numel() for p in tiny_model.classifier.parameters())
    loramini.inject(tiny_model, LoRAMiniConfig(r=4, a=16, b=8))
    counts = loramini.count_parameters(tiny_model)
    layers = 4  # query and value in 2 layers
    assert counts.adapter == layers * 4 * (16 + 8)
    assert counts.head == head
    assert counts.frozen_aux == layers * (16 * 64 + 64 * 8)
    assert counts.base == total_before - head
    assert counts.trainable == counts.adapter + counts.head
    assert counts.total == total_before + counts.adapter
    assert f"{counts.trainable:,}" in str(counts) and "trainable%" in str(counts)
    assert counts.adapter == loramini.predict_adapter_params(loramini.roberta_config("tiny"), LoRAMiniConfig(r=4, a=16, b=8))


@pytest.mark.parametrize("name", ["roberta-base", "roberta-large"])
@pytest.mark.parametrize("targets", [["query", "value"], "attention", "dense", "all-linear"])
def test_prediction_equals_count_on_meta(name, targets):
    cfg = LoRAMiniConfig(r=8, a=32, b=32, target_modules=targets)
    predicted = loramini.predict_adapter_params(loramini.roberta_config(name), cfg)
    model = loramini.inject(meta_model(name), cfg)
    counts = loramini.count_parameters(model)
    assert counts.adapter == predicted
    assert all(p.device.type == "meta" for p in model.parameters())  # nothing was allocated


def test_roberta_base_published_numbers():
    config = loramini.roberta_config("roberta-base")
    cfg = LoRAMiniConfig(r=8, a=32, b=32, target_modules=["query", "value"])
    lora = loramini.predict_adapter_params(config, cfg, method="lora")
    mini = loramini.predict_adapter_params(config, cfg)
    assert lora == 294_912 and mini == 12_288 and lora // mini == 24
    model = loramini.inject(meta_model("roberta-base"), cfg)
    counts = loramini.count_parameters(model)
    assert counts.head == 592_130  # the classification head, the second convention
    assert counts.base == 124_647_170 - 592_130  # roberta-base with its classification head: 124,647,170
    assert counts.total == counts.base + 12_288 + 592_130


def test_roberta_large_lora_count():
    config = loramini.roberta_config("roberta-large")
    cfg = LoRAMiniConfig(r=8, a=32, b=32)
    assert loramini.predict_adapter_params(config, cfg, method="lora") == 24 * 2 * 8 * 2048  # 786,432
    assert loramini.predict_adapter_params(config, cfg) == 24 * 2 * 8 * 64


def test_counts_a_peft_lora_model(tiny_model):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model, LoraConfig(r=4, target_modules=["query", "value"], task_type="SEQ_CLS"))
    counts = loramini.count_parameters(model)
    assert counts.adapter == 4 * loramini.lora_params(64, 64, 4)


def test_predict_rejects_unknown_method():
    with pytest.raises(ValueError, match="method='dora'"):
        loramini.predict_adapter_params(loramini.roberta_config("tiny"), LoRAMiniConfig(r=4, a=16, b=16), "dora")


def test_predict_on_an_already_injected_model(tiny_model):
    cfg = LoRAMiniConfig(r=4, a=16, b=8)
    loramini.inject(tiny_model, cfg)
    assert loramini.predict_adapter_params(tiny_model, cfg) == loramini.count_parameters(tiny_model).adapter
