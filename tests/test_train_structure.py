"""train() reads as three named steps, and calling the steps by hand gives exactly what train() gives."""

import inspect

import torch

from loramini import train as train_module
from loramini.train import TrainConfig, finish, prepare, train, train_epoch


def test_train_is_a_short_sequence_of_the_three_steps():
    source = inspect.getsource(train)
    body = source.split('"""')[2]  # the code after the docstring
    code = [line for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(code) <= 30, code
    for step in ("prepare(", "train_epoch(", "finish("):
        assert step in body, step
    for step in (prepare, train_epoch, finish):
        assert step.__doc__ and step.__doc__.startswith("Step "), step.__name__


def test_steps_called_by_hand_equal_train(tmp_path):
    torch.set_num_threads(1)
    config = TrainConfig(epochs=2, max_train_samples=96, dropout=0.1, checkpoint_every=2, progress=False)
    whole = train("tiny", "synthetic", config, output_dir=str(tmp_path / "whole"))

    run = prepare("tiny", "synthetic", TrainConfig(**{**config.to_dict(), "output_dir": str(tmp_path / "steps")}))
    assert isinstance(run, train_module.Run) and run.start_epoch == 0 and run.global_step == 0
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
