"""The same loop under torchrun: 2 CPU processes (gloo) end with identical adapters on both ranks."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from safetensors.torch import save_file
    torch.set_num_threads(1)
    from loramini.train import TrainConfig, train

    history = train("tiny", "synthetic", TrainConfig(epochs=1, max_train_samples=256, batch_size=16, progress=False))
    model = history["trained_model"]
    rank = int(os.environ["RANK"])
    trained = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trained, os.path.join(sys.argv[1], f"rank{rank}.safetensors"))
    with open(os.path.join(sys.argv[1], f"rank{rank}.txt"), "w") as f:  # files: stdout of 2 ranks interleaves
        f.write(f"steps {len(history['steps'])} world {os.environ['WORLD_SIZE']}")
""")


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_two_cpu_processes_end_with_identical_adapters(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for r in (0, 1):  # 256 rows / (16 per batch × 2 processes) = 8 steps on each rank
        assert (tmp_path / f"rank{r}.txt").read_text() == "steps 8 world 2"
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and any(k.endswith("B_train") for k in ranks[0])
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert any(k.endswith("B_train") and ranks[0][k].abs().sum() > 0 for k in ranks[0])  # it did train
