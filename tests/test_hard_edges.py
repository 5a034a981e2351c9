"""Issue 10: the hard edges. Each test reproduces one defect that the probe found (and fails without its fix)."""

import json
import os
import stat

import pytest
import torch
from torch import nn

import loramini
from loramini import LoRAMiniConfig, LoRAMiniLinear
from loramini.io import CONFIG_NAME, WEIGHTS_NAME

from helpers import train_steps


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def trained(model, batch, cfg=None, steps=3):
    loramini.inject(model, cfg or LoRAMiniConfig(r=4, a=16, b=16, alpha=8))
    return train_steps(model, batch, steps)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}, \
        {n: p.requires_grad for n, p in model.named_parameters()}, [type(m) for m in model.modules()]


# ------------------------------------------------------------------ 2. a failed load leaves the model as it was
def test_load_with_edited_config_fails_before_touching_the_model(tiny_model, batch, tmp_path):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    meta = json.loads((folder / CONFIG_NAME).read_text())
    meta["r"] = 2  # the file holds r=4 tensors
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    base = loramini.tiny_roberta(seed=0)
    before = snapshot(base)
    with pytest.raises(ValueError, match=r"shape \(4, 16\).*needs \(2, 16\)"):
        loramini.load_adapter(base, folder)
    assert not list(loramini.loramini_layers(base))
    meta["r"] = 4  # the right adapter now loads into that same base
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    assert torch.equal(logits(loramini.load_adapter(base, folder), batch), logits(tiny_model, batch))
    del before


def test_load_that_fails_mid_way_is_rolled_back(tiny_model, batch, tmp_path, monkeypatch):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    base = loramini.tiny_roberta(seed=0)
    state, flags, types = snapshot(base)
    real_inject = loramini.io.inject

    def inject_then_fail(model, config):
        real_inject(model, config)
        raise RuntimeError("device lost")

    monkeypatch.setattr(loramini.io, "inject", inject_then_fail)
    with pytest.raises(RuntimeError, match="device lost"):
        loramini.load_adapter(base, folder)
    after_state, after_flags, after_types = snapshot(base)
    assert after_types == types and after_flags == flags and not hasattr(base, "loramini_config")
    assert after_state.keys() == state.keys() and all(torch.equal(state[k], after_state[k]) for k in state)


# ------------------------------------------------------------------ 3. merge is all or nothing
@pytest.mark.parametrize("action", ["merge", "merge_and_unload"])
def test_merge_with_one_bad_layer_changes_nothing(tiny_model, batch, action):
    model = trained(tiny_model, batch)
    layers = list(loramini.loramini_layers(model))
    with torch.no_grad():
        layers[-1][1].B_train.fill_(float("inf"))  # the last layer: the others would be merged first
    state, _, types = snapshot(model)
    with pytest.raises(ValueError, match="non-finite"):
        getattr(loramini, action)(model)
    after, _, after_types = snapshot(model)
    assert after_types == types and not any(layer.merged for _, layer in loramini.loramini_layers(model))
    assert all(torch.equal(state[k], after[k]) for k in state)
    with torch.no_grad():
        layers[-1][1].B_train.zero_()
    assert len(list(loramini.loramini_layers(model))) == 4  # a later save_adapter still sees every layer


# ------------------------------------------------------------------ 4. "dense" does not wrap the task head
def test_dense_suffix_leaves_the_head_alone_and_round_trips(tiny_model, batch, tmp_path):
    from peft import PeftModel

    model = trained(tiny_model, batch, LoRAMiniConfig(r=4, a=16, b=16, target_modules=["dense"]))
    names = [n for n, _ in loramini.loramini_layers(model)]
    assert names and not [n for n in names if n.startswith("classifier")]
    folder = loramini.save_adapter(model, tmp_path / "adapter")
    fresh = loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)
    assert torch.equal(logits(fresh, batch), logits(model, batch))
    peft_model = PeftModel.from_pretrained(loramini.tiny_roberta(seed=0), loramini.export_peft(model, tmp_path / "p"))
    assert torch.allclose(logits(peft_model.eval(), batch), logits(model, batch), atol=1e-5)


def test_a_target_that_only_names_the_head_is_refused(tiny_model):
    with pytest.raises(ValueError, match="only matches the task head"):
        loramini.inject(tiny_model, LoRAMiniConfig(r=2, a=8, b=2, target_modules=["out_proj"]))


# ------------------------------------------------------------------ 6. types are validated
@pytest.mark.parametrize("field", ["use_rslora", "save_projection"])
def test_boolean_fields_must_be_bools(field):
    with pytest.raises(TypeError, match=f"{field}='false'"):
        LoRAMiniConfig(**{field: "false"})


def test_hand_edited_boolean_in_adapter_json_is_refused(tiny_model, batch, tmp_path):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    meta = json.loads((folder / CONFIG_NAME).read_text())
    meta["use_rslora"] = "false"
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"adapter_config.json.*use_rslora='false'"):
        loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)


@pytest.mark.parametrize("names", [[""], ["  "]])
def test_empty_module_to_save_is_refused(names):
    with pytest.raises(ValueError, match="whole model"):
        LoRAMiniConfig(modules_to_save=names)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_tensors_in_an_adapter_file_are_refused(tiny_model, batch, tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    tensors = load_file(str(folder / WEIGHTS_NAME))
    key = next(k for k in tensors if k.endswith("B_train"))
    tensors[key] = tensors[key].to(dtype)
    save_file(tensors, str(folder / WEIGHTS_NAME))
    with pytest.raises(ValueError, match="non-float"):
        loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)


@pytest.mark.parametrize("key", ["targets", "r", "modules_to_save"])
def test_missing_key_in_adapter_json_names_file_and_field(tiny_model, batch, tmp_path, key):
    folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
    meta = json.loads((folder / CONFIG_NAME).read_text())
    del meta[key]
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"adapter_config.json.*lacks field.*'{key}'"):
        loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)


# ------------------------------------------------------------------ 8. save_adapter is atomic per folder
def test_interrupted_save_keeps_the_old_adapter_whole(tiny_model, batch, tmp_path, monkeypatch):
    model = trained(tiny_model, batch)
    folder = loramini.save_adapter(model, tmp_path / "adapter")
    old_logits = logits(model, batch)
    train_steps(model, batch, 2)  # new weights
    real = loramini.io.write_json

    def die_writing_config(path, data):
        if str(path).endswith(CONFIG_NAME):
            raise KeyboardInterrupt  # killed after the weights, before the config
        real(path, data)

    monkeypatch.setattr(loramini.io, "write_json", die_writing_config)
    with pytest.raises(KeyboardInterrupt):
        loramini.save_adapter(model, folder)
    monkeypatch.undo()
    loaded = loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)
    assert torch.equal(logits(loaded, batch), old_logits)  # the old adapter, not new weights + old config
    assert sorted(os.listdir(tmp_path)) == ["adapter"]


def test_save_killed_during_the_swap_is_finished_by_the_next_load(tiny_model, batch, tmp_path, monkeypatch):
    model = trained(tiny_model, batch)
    folder = loramini.save_adapter(model, tmp_path / "adapter")
    (folder / "NOTES.txt").write_text("mine")
    train_steps(model, batch, 2)
    real = os.replace

    def die_publishing(src, dst):
        if str(src).endswith(".saving"):
            raise KeyboardInterrupt  # the old folder is already moved aside
        real(src, dst)

    monkeypatch.setattr(loramini.io.os, "replace", die_publishing)
    with pytest.raises(KeyboardInterrupt):
        loramini.save_adapter(model, folder)
    monkeypatch.undo()
    assert not folder.exists()
    loaded = loramini.load_adapter(loramini.tiny_roberta(seed=0), folder)
    assert torch.equal(logits(loaded, batch), logits(model, batch))  # the new adapter, completed
    assert sorted(os.listdir(tmp_path)) == ["adapter"] and (folder / "NOTES.txt").read_text() == "mine"


# ------------------------------------------------------------------ 9. written files follow the umask
def test_written_files_follow_the_umask(tiny_model, batch, tmp_path):
    old = os.umask(0o022)
    try:
        folder = loramini.save_adapter(trained(tiny_model, batch), tmp_path / "adapter")
        loramini.io.write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    for path in (folder / CONFIG_NAME, folder / WEIGHTS_NAME, tmp_path / "x.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_json_writer_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="NaN or Infinity"):
        loramini.io.write_json(tmp_path / "h.json", {"loss": float("nan")})
    assert not (tmp_path / "h.json").exists()


# ------------------------------------------------------------------ 10. reset_parameters, float64
def test_to_empty_then_reset_parameters_gives_a_fresh_adapter():
    with torch.device("meta"):
        layer = LoRAMiniLinear(nn.Linear(24, 20), r=4, a=8, b=6, name="layer", projection_seed=3)
    layer.to_empty(device="cpu")
    with torch.no_grad():
        layer.B_train.fill_(7.0)  # what uninitialised memory may hold
    layer.reset_parameters()
    reference = LoRAMiniLinear(nn.Linear(24, 20), r=4, a=8, b=6, name="layer", projection_seed=3)
    assert torch.equal(layer.B_train, torch.zeros(6, 4)) and torch.equal(layer.delta_weight(), torch.zeros(20, 24))
    assert torch.equal(layer.A_aux, reference.A_aux) and torch.equal(layer.B_aux, reference.B_aux)
    assert layer.A_train.abs().sum() > 0


def test_float64_layer_computes_in_float64_and_passes_gradcheck():
    torch.manual_seed(0)
    layer = LoRAMiniLinear(nn.Linear(7, 5).double(), r=2, a=3, b=4, name="g")
    assert layer.A_train.dtype == torch.float64 and layer.A_aux.dtype == torch.float64
    with torch.no_grad():
        layer.B_train.normal_()
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    fn = loramini.layer.LoRAMiniFunction.apply
    assert torch.autograd.gradcheck(lambda x, a, b: fn(x, a, b, layer.A_aux, layer.B_aux, layer.scale),
                                    (x, layer.A_train, layer.B_train))
    assert layer.delta_weight().dtype == torch.float64


# ------------------------------------------------------------------ one rule, one place
def test_default_alpha_is_two_r_everywhere():
    from loramini.cli import build_parser
    from loramini.train import TrainConfig

    assert LoRAMiniConfig(r=4, a=8, b=8).scale == 2.0 == LoRAMiniConfig(r=8).scale
    assert LoRAMiniLinear(nn.Linear(16, 16), r=4, a=8, b=8).scale == 2.0
    assert TrainConfig(r=4).lora_alpha == 8.0 == TrainConfig(r=4).adapter_config().resolved_alpha
    args = build_parser().parse_args(["finetune", "--r", "4"])
    assert args.alpha is None


def test_train_config_derives_its_adapter_config():
    from loramini.train import TrainConfig

    cfg = TrainConfig(r=2, a=8, b=4, alpha=3.0, dropout=0.1, target_modules="attention", projection_seed=5,
                      aux_init="orthogonal")
    assert cfg.adapter_config() == LoRAMiniConfig(r=2, a=8, b=4, alpha=3.0, dropout=0.1, target_modules="attention",
                                                  projection_seed=5, aux_init="orthogonal")
    with pytest.raises(ValueError, match="r=16 is larger than min"):  # the same rule, the same words
        TrainConfig(r=16, a=8, b=32)


@pytest.mark.parametrize("text,want", [("query,value", ["query", "value"]), ("query", ["query"]),
                                       ("attention", "attention"), (r".*\.(query|key)", r".*\.(query|key)"),
                                       ("attention.output.dense", ["attention.output.dense"])])
def test_one_target_parser(text, want):
    from loramini.cli import parse_targets
    from loramini.inject import parse_target_modules

    assert parse_target_modules(text) == want == parse_targets(text)


def test_head_rule_is_shared_by_inject_and_train():
    import importlib

    inject, train = importlib.import_module("loramini.inject"), importlib.import_module("loramini.train")
    assert train.HEAD_PATTERN is inject.HEAD_PATTERN
    assert inject.is_head_param("base_model.model.classifier.modules_to_save.default.dense.weight")
    assert not inject.is_head_param("roberta.encoder.layer.0.attention.self.query.A_train")


def test_aux_factors_have_one_definition():
    layer = LoRAMiniLinear(nn.Linear(24, 20), r=4, a=8, b=6, name="enc.q", projection_seed=2, aux_init="orthogonal")
    assert torch.equal(loramini.layer.layer_aux("A", 24, 20, 8, 6, "orthogonal", 2, "enc.q"), layer.A_aux)
    assert torch.equal(loramini.layer.layer_aux("B", 24, 20, 8, 6, "orthogonal", 2, "enc.q"), layer.B_aux)


@pytest.mark.parametrize("alpha", [float("inf"), float("nan")])
def test_non_finite_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match="finite"):
        LoRAMiniConfig(alpha=alpha)


# ------------------------------------------------------------------ train.py: 1, 5, 7, 11, 12, 13, corrupt checkpoints
from loramini.train import TrainConfig, TrainingDiverged, train  # noqa: E402

TINY_RUN = dict(epochs=2, max_train_samples=128, progress=False)  # 4 optimizer steps per epoch



def test_divergence_stops_with_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+.*--lr.*--alpha.*labels"):
        train("tiny", "synthetic", TrainConfig(lr=1e30, output_dir=str(tmp_path / "run"), **TINY_RUN))
    assert not list((tmp_path / "run").rglob("*.json")) and not list((tmp_path / "run").rglob("*.safetensors"))


def test_cli_divergence_is_one_line_exit_1_and_no_results(tmp_path, capsys):
    from loramini.cli import main

    code = main(["finetune", "--lr", "1e30", "--epochs", "1", "--max-train-samples", "64", "--no-progress",
                 "--output-dir", str(tmp_path / "ft")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "diverged" in err and "Traceback" not in err
    assert not (tmp_path / "ft" / "results.json").exists()


@pytest.mark.parametrize("flag,value", [("--lr", "inf"), ("--alpha", "inf"), ("--alpha", "nan"), ("--head-lr", "nan")])
def test_non_finite_flags_are_bad_flags(flag, value, capsys):
    from loramini.cli import main

    with pytest.raises(SystemExit) as done:
        main(["finetune", flag, value])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and flag in err


@pytest.mark.parametrize("field", ["lr", "head_lr", "alpha"])
def test_train_config_refuses_non_finite(field):
    with pytest.raises(ValueError, match=f"{field}=inf.*finite"):
        TrainConfig(**{field: float("inf")})


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped at step 6 of 8; its newest checkpoint is step 5: epoch 1, one batch in (mid-epoch)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("interrupted") / "run"

    def stop(step, history):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("tiny", "synthetic", TrainConfig(checkpoint_every=5, output_dir=str(out), **TINY_RUN), step_callback=stop)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-5"]
    return out


def copy_of(run, tmp_path):
    import shutil

    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_resume_past_the_requested_epochs_is_refused(interrupted, tmp_path):
    out = copy_of(interrupted, tmp_path)
    config = TrainConfig(checkpoint_every=5, output_dir=str(out), **dict(TINY_RUN, epochs=1))
    with pytest.raises(ValueError, match=r"step 5.*epochs=2 \(now 1\).*--no-resume"):
        train("tiny", "synthetic", config)
    assert not (out / "history.json").exists()


def test_checkpoint_without_its_rng_file_is_refused(interrupted, tmp_path):
    out = copy_of(interrupted, tmp_path)
    (out / "checkpoints" / "step-5" / "rng-0.safetensors").unlink()
    with pytest.raises(ValueError, match=r"rng-0.safetensors.*--no-resume"):
        train("tiny", "synthetic", TrainConfig(checkpoint_every=5, output_dir=str(out), **TINY_RUN))


@pytest.mark.parametrize("name,damage", [("trainable.safetensors", "truncate"), ("optimizer.pt", "empty"),
                                         ("state.json", "garbage"), ("state.json", "{}"), ("scheduler.json", "empty")])
def test_corrupt_checkpoint_names_the_file_and_the_way_out(interrupted, tmp_path, name, damage):
    out = copy_of(interrupted, tmp_path)
    path = out / "checkpoints" / "step-5" / name
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "garbage": b"{not json", "{}": b"{}"}[damage])
    with pytest.raises(ValueError, match=rf"{name}.*--no-resume") as err:
        train("tiny", "synthetic", TrainConfig(checkpoint_every=5, output_dir=str(out), **TINY_RUN))
    assert "\n" not in str(err.value)


def test_second_run_with_other_mixed_precision_in_one_process():
    first = train("tiny", "synthetic", TrainConfig(mixed_precision="no", **dict(TINY_RUN, epochs=1)))
    second = train("tiny", "synthetic", TrainConfig(mixed_precision="bf16", **dict(TINY_RUN, epochs=1)))
    assert first["config"]["mixed_precision"] == "no" and second["config"]["mixed_precision"] == "bf16"
    assert 0.0 <= second["metric"] <= 1.0


def test_history_is_json_and_still_gives_the_model(tmp_path):
    history = train("tiny", "synthetic", TrainConfig(**dict(TINY_RUN, epochs=1), output_dir=str(tmp_path)))
    text = json.dumps({k: v for k, v in history.items() if k != "trained_model"}, allow_nan=False)
    assert "trained_model" not in json.loads((tmp_path / "history.json").read_text())
    assert isinstance(history["trained_model"], nn.Module)
    for key in ("metric", "main_metric", "params", "adapter_bytes", "wall_time_s"):
        assert key in json.loads(text)


def test_max_length_beyond_the_position_embeddings_is_one_clear_error():
    with pytest.raises(ValueError, match=r"max_length=512.*--max-length 128"):
        train("tiny", "synthetic", TrainConfig(max_length=512, **TINY_RUN))


def test_import_without_resource_module_and_macos_units(monkeypatch):
    import subprocess
    import sys

    code = ("import sys; sys.modules['resource'] = None; import torch, loramini, loramini.train; "
            "print(loramini.train.peak_memory_mb(torch.device('cpu')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr[-500:]

    import resource

    from loramini.train import peak_memory_mb

    monkeypatch.setattr(sys, "platform", "darwin")  # ru_maxrss is in bytes there
    assert peak_memory_mb(torch.device("cpu")) == pytest.approx(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, rel=0.01)


# ------------------------------------------------------------------ data: errors with the file and the value
def write_glue(root, folder, name, text):
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())


def test_nan_score_in_an_stsb_row_is_refused_with_file_and_line(tmp_path):
    from loramini.data import load_glue

    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tmain\tf\t2012\t0\tnone\tnone\ta man\ta woman\t{}\n"
    write_glue(tmp_path, "STS-B", "train.tsv", header + row.format("2.5") + row.format("nan"))
    write_glue(tmp_path, "STS-B", "dev.tsv", header + row.format("1.0"))
    with pytest.raises(ValueError, match=r"STS-B/train.tsv:3: label 'nan' is not a finite number"):
        load_glue("stsb", data_dir=tmp_path)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00binary", b"sentence\tlabel\n\x00\x01\x02\n"])
def test_binary_tsv_is_one_clear_error_naming_the_file(tmp_path, content):
    from loramini.data import load_glue

    write_glue(tmp_path, "SST-2", "train.tsv", content)
    write_glue(tmp_path, "SST-2", "dev.tsv", "sentence\tlabel\nok\t1\n")
    with pytest.raises(ValueError, match=r"SST-2/train.tsv: .*(UTF-8|binary)") as err:
        load_glue("sst2", data_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_header_only_tsv_names_the_file(tmp_path):
    from loramini.data import load_glue

    write_glue(tmp_path, "SST-2", "train.tsv", "sentence\tlabel\n")
    write_glue(tmp_path, "SST-2", "dev.tsv", "sentence\tlabel\nok\t1\n")
    with pytest.raises(ValueError, match=r"SST-2/train.tsv: no data rows"):
        load_glue("sst2", data_dir=tmp_path)


@pytest.mark.parametrize("task,rows,match", [("sst2", "sentence,label\nhi,1\nyo,7\n", r"row 2 has label 7.*0\.\.1"),
                                             ("stsb", "sentence1,sentence2,label\na,b,1.5\nc,d,\n", r"row 2 has label None")])
def test_bad_label_in_a_csv_names_file_row_and_value(tmp_path, task, rows, match):
    from loramini.data import load_local_files

    (tmp_path / "train.csv").write_text(rows)
    (tmp_path / "dev.csv").write_text(rows.split("\n")[0] + "\n" + rows.split("\n")[1] + "\n")
    with pytest.raises(ValueError, match=rf"train.csv: {match}"):
        load_local_files(tmp_path / "train.csv", tmp_path / "dev.csv", task)


# ------------------------------------------------------------------ 14. one hub check, through the proxy settings
@pytest.fixture
def proxy(monkeypatch):
    """A local HTTP proxy that answers every request, and an endpoint only the proxy can reach."""
    import http.server
    import threading

    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "ENDPOINT", "http://hub.invalid")  # DNS cannot resolve it: only a proxy helps
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    close_session()  # the hub client reads the proxy settings when it is created
    yield
    server.shutdown()
    monkeypatch.undo()
    close_session()


def test_hub_check_goes_through_the_proxy(proxy):
    from loramini import data, models

    assert models.hub_unreachable_reason() is None and data._hub_reachable() is None


def test_hub_check_honours_offline_mode(monkeypatch):
    from huggingface_hub import constants

    from loramini import data, models

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE" in models.hub_unreachable_reason() and "HF_HUB_OFFLINE" in data._hub_reachable()


def test_cli_max_length_beyond_the_model_is_one_line(tmp_path, capsys):
    from loramini.cli import main

    code = main(["finetune", "--max-length", "512", "--no-progress", "--output-dir", str(tmp_path / "ft")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--max-length 128" in err and "Traceback" not in err
