"""The training loop on the offline synthetic tasks: every method learns, defaults hold, the history is honest."""

import json

import pytest
import torch

from loramini.train import TrainConfig, plot_history, resolve_precision, train

FAST = dict(progress=False, max_train_samples=640)



@pytest.fixture(scope="module")
def loramini_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train("tiny", "synthetic", TrainConfig(method="loramini", epochs=3, output_dir=str(out), **FAST)), out


def test_loramini_learns_the_synthetic_task(loramini_run):
    history, _ = loramini_run
    losses = [s["loss"] for s in history["steps"]]
    assert len(losses) == 3 * 20  # 640 rows / 32 per batch, 3 epochs
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    assert history["metric"] > 0.7  # chance is 0.5; the frozen base alone gets ~0.58
    assert [e["epoch"] for e in history["epochs"]] == [0, 1, 2]


def test_history_records_what_was_trained(loramini_run):
    history, out = loramini_run
    written = json.loads((out / "history.json").read_text())
    assert written["metric"] == history["metric"] and written["steps"] == history["steps"]
    assert history["config"]["lr"] == 8e-3 and history["config"]["head_lr"] == 8e-3  # the tiny defaults, recorded
    # 4 adapted layers (query, value × 2 layers) × r·(a+b) = 4 · 8 · 64
    assert history["params"]["adapter"] == 4 * 8 * (32 + 32)
    assert history["params"]["head"] > 0 and history["params"]["base"] > 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert history["adapter_bytes"] == sum(f.stat().st_size for f in (out / "adapter").iterdir())
    assert history["wall_time_s"] > 0 and history["peak_memory_mb"] > 0
    assert history["steps"][0]["lr"] < history["steps"][2]["lr"]  # warm-up, then decay to 0
    assert history["steps"][-1]["lr"] == 0.0


@pytest.mark.parametrize("task,threshold", [("synthetic-pair", 0.7), ("synthetic-regression", 0.5)])
def test_loramini_defaults_hold_on_pairs_and_regression(task, threshold):
    history = train("tiny", task, TrainConfig(method="loramini", epochs=3, progress=False, max_train_samples=1000))
    assert history["metric"] > threshold, history["epochs"]


def test_lora_baseline_is_real_peft_with_more_parameters_and_bytes(loramini_run):
    from peft import PeftModel

    history = train("tiny", "synthetic", TrainConfig(method="lora", epochs=3, **FAST))
    assert isinstance(history["trained_model"], PeftModel)
    assert history["params"]["adapter"] == 4 * 8 * (64 + 64)  # r·(d_in + d_out) per layer
    assert history["metric"] > 0.7
    assert history["adapter_bytes"] > loramini_run[0]["adapter_bytes"]


@pytest.mark.parametrize("method", ["full", "head"])
def test_full_and_head_train_what_they_say(method):
    history = train("tiny", "synthetic", TrainConfig(method=method, epochs=1, **FAST))
    model = history["trained_model"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if method == "full":
        assert trainable == {n for n, _ in model.named_parameters()}
    else:
        assert trainable and all(n.startswith("classifier.") for n in trainable)
    assert history["params"]["adapter"] == 0


def test_same_seed_same_run_other_seed_other_run():
    run = lambda seed: train("tiny", "synthetic", TrainConfig(epochs=1, seed=seed, progress=False, max_train_samples=192))
    a, b, c = run(0), run(0), run(1)
    assert [s["loss"] for s in a["steps"]] == [s["loss"] for s in b["steps"]]
    assert a["final"] == b["final"]
    assert [s["loss"] for s in a["steps"]] != [s["loss"] for s in c["steps"]]


def test_grad_accumulation_halves_the_optimizer_steps():
    history = train("tiny", "synthetic", TrainConfig(epochs=1, batch_size=16, grad_accum_steps=2, progress=False,
                                                     max_train_samples=320))
    assert len(history["steps"]) == 10


def test_precision_is_only_used_where_supported():
    if not torch.cuda.is_available():
        assert resolve_precision("auto") == "no"
        with pytest.raises(ValueError, match="fp16"):
            resolve_precision("fp16")
    elif not torch.cuda.is_bf16_supported():  # e.g. a T4
        assert resolve_precision("auto") == "fp16"
        with pytest.raises(ValueError, match="bf16"):
            resolve_precision("bf16")


@pytest.mark.parametrize("bad,match", [(dict(method="qlora"), "method"), (dict(epochs=0), "epochs"),
                                       (dict(lr=-1.0), "lr"), (dict(mixed_precision="fp8"), "mixed_precision")])
def test_bad_config_is_one_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_plot_history_draws_loss_and_metric(loramini_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    history, out = loramini_run
    fig = plot_history(history, out / "history.json", labels=["run", "file"])
    loss_ax, metric_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(metric_ax.lines) == 2
    assert list(metric_ax.lines[0].get_xdata()) == [1, 2, 3]


def test_unknown_model_folder_is_a_clear_error(tmp_path):
    from loramini.models import load_model

    with pytest.raises(ValueError, match="config.json"):
        load_model(str(tmp_path), num_labels=2)
