"""Small helpers shared by several test files."""

import io
import os
from contextlib import redirect_stdout

import pytest
import torch

from loramini.checks import CheckFailed


def passes(fn, *args, **kwargs):
    """`fn(*args)` is a check that passes: returns None and prints its ✓ line."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert fn(*args, **kwargs) is None
    assert out.getvalue().startswith("✓ "), out.getvalue()


def fails_with(match, fn, *args, **kwargs):
    """`fn(*args)` is a check that fails with a message matching `match` ("": any message); returns it."""
    with pytest.raises(CheckFailed, match=match or None) as info:
        fn(*args, **kwargs)
    return str(info.value)


def train_steps(model, batch, steps=3, lr=1e-2):
    """A few AdamW steps on whatever `model` has left trainable; returns the model in eval mode."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    return model.eval()


def interrupt_swallowing_loop(token: str) -> str:
    """Cell source that starts `setsid` children (one named by `token`), then loops swallowing every interrupt."""
    return f'''import subprocess, time
subprocess.Popen(["setsid", "sleep", "300"])
subprocess.Popen(["setsid", "python3", "-c", "import time; time.sleep(300)", "{token}"])
while True:
    try:
        time.sleep(0.2)
    except BaseException:
        pass'''


def processes_named(token: str) -> list:
    """Pids of the live processes whose command line holds `token`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found
