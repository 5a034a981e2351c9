"""Small helpers shared by several test files."""

import torch


def train_steps(model, batch, steps=3, lr=1e-2):
    """A few AdamW steps on whatever `model` has left trainable; returns the model in eval mode."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    return model.eval()
