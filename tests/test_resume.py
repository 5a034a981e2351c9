"""A run killed with SIGKILL mid-epoch and resumed ends exactly where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from loramini.train import TrainConfig, train

SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from loramini.train import TrainConfig, train

    def kill_at(step, history):
        if step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: like a preempted machine

    config = TrainConfig(epochs=2, max_train_samples=320, checkpoint_every=4, output_dir=sys.argv[1], progress=False,
                         group_by_length=sys.argv[3] == "1")
    train("tiny", "synthetic", config, step_callback=kill_at)
""")
CONFIG = dict(epochs=2, max_train_samples=320, checkpoint_every=4, progress=False)  # 10 steps per epoch


@pytest.mark.parametrize("group_by_length", [False, True])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, group_by_length):
    """With group_by_length too: the resumed epoch must see the same length-grouped batches (a function of the
    seed and the epoch) as the uninterrupted run."""
    torch.set_num_threads(1)
    reference = train("tiny", "synthetic", TrainConfig(output_dir=str(tmp_path / "ref"), group_by_length=group_by_length,
                                                       **CONFIG))
    flag = str(int(group_by_length))

    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # Killed at step 14: epoch 2, 4 batches in; the newest checkpoint is step 12 (2 batches in).
    killed = subprocess.run([sys.executable, str(script), str(out), "14", flag], env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "history.json").exists()
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-12"]

    resumed = subprocess.run([sys.executable, str(script), str(out), "-1", flag], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    history = json.loads((out / "history.json").read_text())

    assert [s["step"] for s in history["steps"]] == list(range(1, 21))
    assert [s["loss"] for s in history["steps"]] == [s["loss"] for s in reference["steps"]]
    assert history["final"] == reference["final"]
    got = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    want = load_file(str(tmp_path / "ref" / "adapter" / "adapter_model.safetensors"))
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    import pytest

    torch.set_num_threads(1)
    config = TrainConfig(epochs=1, max_train_samples=128, checkpoint_every=2, output_dir=str(tmp_path), progress=False)
    train("tiny", "synthetic", config)
    with pytest.raises(ValueError, match="other settings"):
        train("tiny", "synthetic", config, r=4)
