"""Synthetic tasks: shapes, labels, the planted rank-k teacher, the local tokenizer, the pretrained tiny base."""

import numpy as np
import pytest
import torch

from loramini import tiny_roberta
from loramini.synthetic import SYNTHETIC_TASKS, make_synthetic, make_teacher, make_tokenizer, tiny_pretrained


@pytest.mark.parametrize("name", sorted(SYNTHETIC_TASKS))
def test_columns_follow_glue_and_labels_are_balanced(name):
    task = make_synthetic(name, n_train=400, n_eval=100)
    spec = task.spec
    assert spec.name == name
    assert set(task.dataset) == {"train", "validation"}
    assert task.dataset["train"].column_names == [*spec.text_fields, "label"]
    labels = np.array(task.dataset["train"]["label"])
    if spec.is_regression:
        assert labels.dtype == np.float32 or labels.dtype == np.float64
        assert 0.0 <= labels.min() and labels.max() <= 5.0 and labels.std() > 0.5
    else:
        assert set(labels.tolist()) == {0, 1}
        assert 0.45 <= labels.mean() <= 0.55  # thresholded at the median


def test_same_seed_same_data_other_seed_other_data():
    a = make_synthetic("synthetic-pair", n_train=50, n_eval=10)
    b = make_synthetic("synthetic-pair", n_train=50, n_eval=10)
    c = make_synthetic("synthetic-pair", n_train=50, n_eval=10, seed=1)
    assert a.dataset["train"]["sentence1"] == b.dataset["train"]["sentence1"]
    assert a.dataset["train"]["label"] == b.dataset["train"]["label"]
    assert a.dataset["train"]["sentence1"] != c.dataset["train"]["sentence1"]


@pytest.mark.parametrize("k", [1, 3, 8])
def test_teacher_update_has_planted_rank_and_reads_new_directions(k):
    teacher = make_teacher(seed=0, rank=k)
    update = teacher.U @ teacher.V.T  # (m, d)
    assert np.linalg.matrix_rank(update) == k
    assert np.allclose(teacher.W0 @ teacher.V, 0, atol=1e-10)  # the base map is blind to what the update reads
    with pytest.raises(ValueError, match="rank"):
        make_teacher(rank=9)


def test_tokenizer_is_roberta_shaped():
    tok = make_tokenizer(["kamo tivu rane", "rane bado"])
    assert [tok.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 4]
    ids = tok("kamo rane", "bado")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 3  # <s> A </s> </s> B </s>
    assert tok("zzz")["input_ids"][1] == tok.unk_token_id
    assert tok.decode(tok("kamo rane")["input_ids"], skip_special_tokens=True) == "kamo rane"


def test_tiny_pretrained_knows_the_base_features_but_has_a_fresh_head():
    task = make_synthetic(n_train=10, n_eval=10)
    a = tiny_pretrained(task, num_labels=3, seed=0)
    b = tiny_pretrained(task, num_labels=1, seed=1)
    assert a.config.vocab_size == len(task.tokenizer)
    assert a.classifier.out_proj.out_features == 3 and b.classifier.out_proj.out_features == 1
    for (name, pa), pb in zip(a.roberta.named_parameters(), b.roberta.parameters()):
        assert torch.equal(pa, pb), name  # one shared pretrained encoder
    random = tiny_roberta(num_labels=3, seed=0, vocab_size=len(task.tokenizer))
    assert not torch.equal(a.roberta.embeddings.word_embeddings.weight, random.roberta.embeddings.word_embeddings.weight)
    batch = task.tokenizer(list(task.dataset["train"]["sentence"][:4]), padding=True, return_tensors="pt")
    assert a.eval()(**batch).logits.shape == (4, 3)


def test_rank_matters_on_the_synthetic_rank_task():
    """The "abs" world needs all k=4 planted directions: r=4 beats r=1 at the default settings."""
    from loramini.train import TrainConfig, train

    task = make_synthetic("synthetic-rank")
    assert task.teacher.readout == "abs" and task.teacher.rank == 4
    accuracy = {r: train("tiny", task, TrainConfig(r=r, seed=0, progress=False))["metric"] for r in (1, 4)}
    assert accuracy[4] >= accuracy[1] + 0.02, accuracy  # measured: 0.698 → 0.740 (3 seeds: 0.681 → 0.726)
