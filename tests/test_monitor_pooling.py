"""The label-prior loss, the stuck-at-the-prior warning, and mean pooling for encoder heads."""

import math

import pytest
import torch

from loramini.monitor import label_prior_loss, stuck_message
from loramini.pooling import masked_mean, use_mean_pooling


def test_label_prior_loss_is_entropy_or_variance():
    assert label_prior_loss([0, 1, 1, 1], 2) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert label_prior_loss([1.0, 2.0, 3.0], 1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        label_prior_loss([], 2)


def test_stuck_message_only_at_the_prior():
    prior = 0.631
    stuck = [0.62] * 60  # the LoRA-Mini at 1e-2: 0.610-0.624 against a prior of 0.631
    learning = [0.55] * 60  # LoRA at 3e-3 after two epochs: 0.578
    msg = stuck_message(stuck, prior, step=200, lr=1e-2)
    assert msg is not None and "label prior 0.631" in msg and "Lower the learning rate" in msg and "\n" not in msg
    assert stuck_message(learning, prior, step=200, lr=3e-3) is None
    # only the recent window counts: a run that was at the prior and has left it is fine
    assert stuck_message(stuck + learning, prior, step=200, lr=3e-3) is None


def _tiny(kind):
    from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

    common = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                  num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(**common)).eval()
    return RobertaForSequenceClassification(RobertaConfig(**common, pad_token_id=1)).eval()


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_mean_pooling_feeds_the_head_the_masked_mean(kind):
    model = _tiny(kind)
    ids = torch.tensor([[5, 6, 7, 8], [5, 9, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        use_mean_pooling(model)
        after = model(input_ids=ids, attention_mask=mask).logits
        mean = masked_mean(hidden, mask)  # (2, H): what the head must now read instead of token 0
        if kind == "bert":
            expected = model.classifier(model.bert.pooler.activation(model.bert.pooler.dense(mean)))
        else:
            expected = model.classifier(mean.unsqueeze(1))
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(before, after)  # it changed what the head reads
    # padding does not leak into the mean: the padded row equals the same row unpadded
    with torch.no_grad():
        short = model(input_ids=ids[1:, :2], attention_mask=mask[1:, :2]).logits
    torch.testing.assert_close(after[1:], short, rtol=1e-5, atol=1e-6)


def test_mean_pooling_refuses_a_model_without_an_encoder():
    with pytest.raises(TypeError, match="pooling='cls'"):
        use_mean_pooling(torch.nn.Linear(2, 2))


def _run(monkeypatch, **overrides):
    import loramini.train as train_module
    from loramini.train import TrainConfig, train

    monkeypatch.setattr(train_module, "STUCK_AFTER_STEPS", 30)
    config = TrainConfig(method="loramini", epochs=2, batch_size=16, max_train_samples=320, progress=False,
                         max_length=32, **overrides)
    return train("tiny", "synthetic", config)


def test_a_run_stuck_at_the_prior_is_warned_and_recorded(monkeypatch):
    with pytest.warns(UserWarning, match="still at the label prior"):
        history = _run(monkeypatch, lr=1e-9)  # nothing moves: the loss stays where the head starts
    assert history["optimizer_steps"] == 40 and len(history["steps"]) == 40
    assert history["label_prior_loss"] == pytest.approx(math.log(2), abs=0.05)
    assert len(history["warnings"]) == 1 and "Lower the learning rate" in history["warnings"][0]


def test_a_learning_run_is_not_warned(monkeypatch):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        history = _run(monkeypatch)  # the tiny model's default rate learns the synthetic task
    assert history["warnings"] == []
    assert history["steps"][-1]["loss"] < 0.95 * history["label_prior_loss"]


def test_eval_loaders_go_shortest_first_and_keep_every_row():
    from datasets import Dataset, DatasetDict

    from loramini.data import make_dataloaders

    rows = {"input_ids": [[1] * n for n in (5, 2, 9, 2, 7)], "labels": [0, 1, 2, 3, 4]}
    tokenized = DatasetDict(train=Dataset.from_dict(rows), validation=Dataset.from_dict(rows))
    collate = lambda batch: [r["labels"] for r in batch]
    _, evals = make_dataloaders(tokenized, collate, batch_size=2, seed=0)
    order = [label for batch in evals["validation"] for label in batch]
    assert order == [1, 3, 0, 4, 2]  # lengths 2, 2 (file order kept), 5, 7, 9
