"""Hard edges of the loop (issue 20): schedules never mix on resume, nonsense settings are refused, an unusable
output folder is found before training, an exploding loss counts as diverged, results record what was used."""

import json
import math

import pytest
import torch

from loramini.cli import main
from loramini.train import TrainConfig, TrainingDiverged, check_divergence, train

TINY = dict(max_train_samples=64, progress=False)  # 2 optimizer steps per epoch


# ------------------------------------------------------------------ resuming under another schedule
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch run with an end-of-epoch checkpoint."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("finished")
    history = train("tiny", "synthetic", TrainConfig(epochs=1, checkpoint_every=1, output_dir=str(out), **TINY))
    return out, history


def test_resuming_with_more_epochs_is_refused_not_mixed(finished):
    out, history = finished
    before = (out / "history.json").read_text()
    with pytest.raises(ValueError, match=r"epochs=1 \(now 2\).*--epochs 1.*--no-resume") as err:
        train("tiny", "synthetic", TrainConfig(epochs=2, checkpoint_every=1, output_dir=str(out), **TINY))
    assert "\n" not in str(err.value)
    assert (out / "history.json").read_text() == before  # nothing was retrained or rewritten


def test_resuming_with_another_warmup_is_refused(finished):
    out, _ = finished
    with pytest.raises(ValueError, match=r"warmup_ratio=0.06 \(now 0.5\)"):
        train("tiny", "synthetic", TrainConfig(epochs=1, warmup_ratio=0.5, checkpoint_every=1, output_dir=str(out),
                                               **TINY))


def test_no_resume_starts_over_cleanly(finished, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished[0], out)
    history = train("tiny", "synthetic", TrainConfig(epochs=2, checkpoint_every=1, output_dir=str(out), resume=False,
                                                     **TINY))
    assert [s["step"] for s in history["steps"]] == [1, 2, 3, 4]
    assert json.loads((out / "history.json").read_text())["steps"] == history["steps"]


# ------------------------------------------------------------------ TrainConfig refuses nonsense
@pytest.mark.parametrize("bad", [
    dict(resume="false"), dict(progress="no"), dict(max_grad_norm=float("nan")), dict(max_grad_norm=-1.0),
    dict(max_grad_norm=0.0), dict(weight_decay=float("nan")), dict(weight_decay=-0.1), dict(weight_decay=math.inf),
    dict(seed=-1), dict(seed=1.5), dict(seed=True), dict(lr=float("nan")), dict(lr=0.0), dict(warmup_ratio=math.nan),
    dict(method="lora", dropout=float("nan")), dict(method="lora", dropout=1.5), dict(method="vera", dropout=-0.1),
    dict(method="full", dropout=math.nan), dict(method="head", r=0), dict(checkpoint_every=-1),
])
def test_train_config_refuses_nonsense(bad):
    field = next(k for k in bad if k != "method" or len(bad) == 1)
    with pytest.raises((ValueError, TypeError), match=rf"TrainConfig\.{field}="):
        TrainConfig(**bad)


def test_other_methods_are_not_bound_by_loramini_widths():
    assert TrainConfig(method="vera", r=64).r == 64  # r > a = b = 32 is LoRA-Mini's rule only
    assert TrainConfig(max_grad_norm=None).max_grad_norm is None  # None: no clipping


# ------------------------------------------------------------------ output folder checked before any work
@pytest.mark.parametrize("where", ["file", "under_file"])
def test_unusable_output_dir_is_found_before_training(tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    out = blocker if where == "file" else blocker / "run"
    steps = []
    with pytest.raises(ValueError, match="output_dir .*not a folder"):
        train("tiny", "synthetic", TrainConfig(epochs=1, output_dir=str(out), **TINY),
              step_callback=lambda step, history: steps.append(step))
    assert steps == [] and blocker.read_text() == "keep me"


def test_cli_unusable_output_dir_is_a_bad_flag(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as done:
        main(["finetune", "--output-dir", str(blocker), "--no-progress"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "--output-dir" in err and "not a folder" in err


# ------------------------------------------------------------------ divergence: NaN/inf or an exploding loss
def test_divergence_rule():
    steps = [{"loss": 0.7}] * 20
    check_divergence(steps, 3.0)  # one bad batch: the 5-step mean is 1.16, not 10x the start
    check_divergence([{"loss": 0.5}], 8.0)  # 8.25 / 2 = 4.25 is below the floor of 10
    with pytest.raises(TrainingDiverged, match="nan"):
        check_divergence(steps, float("nan"))
    with pytest.raises(TrainingDiverged, match="more than 10x"):
        check_divergence(steps[:4] + [{"loss": 60.0}] * 3, 50.0)
    with pytest.raises(TrainingDiverged, match="more than 10x"):
        check_divergence([{"loss": 0.7}], 1.4e7)


def test_learning_rate_far_too_high_stops_as_diverged(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+.*more than 10x.*--lr"):
        train("tiny", "synthetic", TrainConfig(lr=1e6, epochs=2, output_dir=str(tmp_path / "run"), **TINY))
    assert not list((tmp_path / "run").rglob("*.json"))


def test_cli_learning_rate_far_too_high_exits_1_with_one_line(tmp_path, capsys):
    code = main(["finetune", "--lr", "1e6", "--epochs", "2", "--max-train-samples", "64", "--no-progress",
                 "--output-dir", str(tmp_path / "ft")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "diverged" in err and "Traceback" not in err
    assert not (tmp_path / "ft" / "results.json").exists()


# ------------------------------------------------------------------ results record only what the method used
def test_vera_results_do_not_record_the_settings_it_ignores(tmp_path, capsys):
    out = tmp_path / "vera"
    code = main(["finetune", "--method", "vera", "--a", "1", "--b", "1", "--alpha", "1e30", "--epochs", "1",
                 "--max-train-samples", "64", "--no-progress", "--output-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "results.json").read_text())["config"]
    assert not {"a", "b", "alpha", "aux_init", "use_rslora"} & set(config)
    assert config["method"] == "vera" and config["r"] == 8 and config["projection_seed"] == 0


def test_each_method_records_only_its_fields():
    assert set(TrainConfig(method="lora").recorded()) >= {"r", "alpha", "dropout", "use_rslora"}
    assert not {"a", "b", "aux_init"} & set(TrainConfig(method="lora").recorded())
    assert not {"r", "a", "b", "alpha", "dropout"} & set(TrainConfig(method="full").recorded())
    assert TrainConfig().recorded() == TrainConfig().to_dict()  # LoRA-Mini uses every adapter field


def test_no_progress_means_no_bar_when_saving_a_full_model(tmp_path, capfd):
    train("tiny", "synthetic", TrainConfig(method="full", epochs=1, output_dir=str(tmp_path), **TINY))
    captured = capfd.readouterr()
    assert (tmp_path / "model").is_dir() and "Writing model shards" not in captured.err + captured.out
