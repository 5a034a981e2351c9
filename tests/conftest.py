import pytest
import torch

import loramini

# The tests use tiny models: one thread is faster than two for them, and immune to a busy machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one thread again, whatever an earlier test set."""
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_model():
    """A fresh tiny random RoBERTa classifier (2 layers, hidden 64)."""
    return loramini.tiny_roberta(num_labels=2, seed=0)


@pytest.fixture
def batch():
    """Token ids (4 × 12) and labels (4,), fixed by a seed."""
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 1000, (4, 12), generator=g)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": torch.tensor([0, 1, 1, 0])}

