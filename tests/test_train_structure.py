"""train() is prepare → train_epoch per epoch → finish, and each step does what it says when called by hand."""

import json

import torch

from loramini.train import TrainConfig, finish, prepare, train, train_epoch


def test_steps_called_by_hand_equal_train(tmp_path):
    torch.set_num_threads(1)
    config = TrainConfig(epochs=2, max_train_samples=96, dropout=0.1, checkpoint_every=2, progress=False)
    whole = train("tiny", "synthetic", config, output_dir=str(tmp_path / "whole"))

    run = prepare("tiny", "synthetic", TrainConfig(**{**config.to_dict(), "output_dir": str(tmp_path / "steps")}))
    assert run.start_epoch == 0 and run.global_step == 0
    seen = []
    for epoch in range(run.start_epoch, run.config.epochs):
        train_epoch(run, epoch, step_callback=lambda step, history: seen.append(step))
        assert [e["epoch"] for e in run.history["epochs"]] == list(range(epoch + 1))
    by_steps = finish(run)

    assert seen == [s["step"] for s in by_steps["steps"]] == list(range(1, 7))  # 96 rows / 32, 2 epochs
    assert sorted(by_steps) == sorted(whole)
    for key in ("steps", "epochs", "final", "metric", "params", "adapter_bytes"):
        assert by_steps[key] == whole[key], key
    for (name, a), (_, b) in zip(whole["trained_model"].named_parameters(), by_steps["trained_model"].named_parameters()):
        assert torch.equal(a, b), name
    assert (tmp_path / "steps" / "history.json").is_file()


def test_prepare_builds_a_ready_run_with_the_resolved_rates():
    torch.set_num_threads(1)
    run = prepare("tiny", "synthetic", TrainConfig(method="loramini", head_lr=1e-3, max_train_samples=64,
                                                   progress=False))
    assert run.model.training and run.total_updates == 2 * 3  # 64 rows / 32 per batch, 3 epochs
    rates = {g["name"]: g["lr"] for g in run.optimizer.param_groups}
    assert rates == {"adapter": 8e-3, "head": 1e-3}  # the tiny model's default rate; head_lr as given
    trainable = {n for n, p in run.model.named_parameters() if p.requires_grad}
    assert trainable and all("_train" in n or n.startswith("classifier.") for n in trainable)
    assert run.history["config"]["lr"] == 8e-3 and json.dumps(run.history)  # plain JSON data
    run.bar.close()


def test_an_epoch_moves_only_the_trainable_weights_and_finish_without_epochs_evaluates_now():
    torch.set_num_threads(1)
    run = prepare("tiny", "synthetic", TrainConfig(epochs=1, max_train_samples=64, progress=False))
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    nothing_trained = finish(run)  # no epoch ran: the final metrics are evaluated on the spot
    assert nothing_trained["epochs"] == [] and nothing_trained["steps"] == []
    assert 0.0 <= nothing_trained["metric"] <= 1.0

    run = prepare("tiny", "synthetic", TrainConfig(epochs=1, max_train_samples=64, progress=False))
    train_epoch(run, 0)
    for name, param in run.model.named_parameters():
        assert torch.equal(param, before[name]) != param.requires_grad, name
    run.bar.close()
