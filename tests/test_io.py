"""save_adapter / load_adapter / export_peft: round trips, file contents, and every documented error."""

import json
import os

import pytest
import torch
from safetensors import safe_open

import loramini
from loramini import LoRAMiniConfig

from helpers import train_steps


def trained(model, batch, cfg=None, steps=3):
    loramini.inject(model, cfg or LoRAMiniConfig(r=4, a=16, b=16, alpha=8))
    return train_steps(model, batch, steps)


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_save_load_identical_logits_and_no_aux_in_file(tiny_model, batch, tmp_path):
    model = trained(tiny_model, batch)
    folder = loramini.save_adapter(model, tmp_path / "adapter")
    assert sorted(os.listdir(folder)) == ["adapter_config.json", "adapter_model.safetensors"]  # no temp files left
    with safe_open(folder / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert not [k for k in keys if "aux" in k]
    assert len([k for k in keys if k.endswith(("A_train", "B_train"))]) == 8
    assert {k for k in keys if k.startswith("classifier.")} == {
        "classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"}
    fresh = loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)
    assert torch.equal(logits(fresh, batch), logits(model, batch))
    assert fresh.loramini_config.r == 4


def test_save_projection_stores_aux(tiny_model, batch, tmp_path):
    model = trained(tiny_model, batch, LoRAMiniConfig(r=4, a=16, b=16, save_projection=True))
    folder = loramini.save_adapter(model, tmp_path / "adapter")
    with safe_open(folder / "adapter_model.safetensors", "pt") as f:
        assert len([k for k in f.keys() if k.endswith(("A_aux", "B_aux"))]) == 8
    fresh = loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)
    assert torch.equal(logits(fresh, batch), logits(model, batch))


def test_file_is_small_for_roberta_base_shapes(tmp_path):
    """query+value, r=8, a=b=32, no head on a roberta-base-shaped model: ≥ 20x under PEFT LoRA's 1,186,472 B."""
    from transformers import RobertaForSequenceClassification

    config = loramini.roberta_config("roberta-base", num_hidden_layers=12, vocab_size=8)  # tiny vocab, same layers
    model = loramini.inject(RobertaForSequenceClassification(config), LoRAMiniConfig(modules_to_save=[]))
    size = os.path.getsize(loramini.save_adapter(model, tmp_path / "a") / "adapter_model.safetensors")
    assert 12_288 * 4 < size < 1_186_472 / 20


def test_missing_folder_and_missing_file(tmp_path, tiny_model, batch):
    with pytest.raises(FileNotFoundError, match="No adapter folder"):
        loramini.load_adapter(loramini.tiny_roberta(), tmp_path / "nowhere")
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        loramini.load_adapter(loramini.tiny_roberta(), folder)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_or_truncated_weights(tmp_path, tiny_model, batch, damage):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    path = folder / "adapter_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00not a safetensors file" * 10)
    base = loramini.tiny_roberta()
    with pytest.raises(ValueError, match="corrupt or truncated"):
        loramini.load_adapter(base, folder)
    assert not list(loramini.loramini_layers(base))  # the model was not touched


def test_corrupt_config(tmp_path, tiny_model, batch):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    (folder / "adapter_config.json").write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        loramini.load_adapter(loramini.tiny_roberta(), folder)


def test_base_with_other_shapes(tmp_path, tiny_model, batch):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    wider = loramini.tiny_roberta(hidden_size=96, intermediate_size=128)
    with pytest.raises(ValueError, match=r"query.*96 -> 96.*64 -> 64"):
        loramini.load_adapter(wider, folder)


def test_base_without_the_targets(tmp_path, tiny_model, batch):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    other = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="no nn.Linear for"):
        loramini.load_adapter(other, folder)


def test_other_num_labels(tmp_path, tiny_model, batch):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    with pytest.raises(ValueError, match="num_labels"):
        loramini.load_adapter(loramini.tiny_roberta(num_labels=3), folder)


def test_fingerprint_mismatch(tmp_path, tiny_model, batch):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    meta = json.loads((folder / "adapter_config.json").read_text())
    meta["projection_seed"] = 1  # as if another RNG had produced other factors
    (folder / "adapter_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="fingerprint"):
        loramini.load_adapter(loramini.tiny_roberta(), folder)


def test_not_a_loramini_adapter(tmp_path, tiny_model, batch):
    folder = loramini.export_peft(trained(tiny_model, batch), tmp_path / "peft")
    with pytest.raises(ValueError, match="not a LoRA-Mini adapter"):
        loramini.load_adapter(loramini.tiny_roberta(), folder)


def test_save_needs_an_injected_model(tmp_path):
    with pytest.raises(ValueError, match="inject"):
        loramini.save_adapter(loramini.tiny_roberta(), tmp_path / "a")


def test_failed_write_leaves_no_file(tmp_path):
    def explode(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(OSError, match="file.json.*disk full"):  # one line naming the file, as torch's ENOSPC
        loramini.io.atomic_write(tmp_path / "file.json", explode)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cfg", [LoRAMiniConfig(r=4, a=16, b=16, alpha=8),
                                 LoRAMiniConfig(r=4, a=16, b=8, alpha=4, use_rslora=True, target_modules="all-linear")])
def test_export_peft_gives_the_same_logits(tmp_path, tiny_model, batch, cfg):
    from peft import PeftModel

    model = trained(tiny_model, batch, cfg)
    folder = loramini.export_peft(model, tmp_path / "peft")
    peft_model = PeftModel.from_pretrained(loramini.tiny_roberta(seed=0), folder).eval()
    assert torch.allclose(logits(peft_model, batch), logits(model, batch), atol=1e-5)
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 4
