"""Small helpers shared by several test files."""

import io
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
