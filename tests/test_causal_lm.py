"""Causal-LM data and evaluation (loramini.causal_lm) on tiny Llama and GPT-2 models built from a config.

The tokenizer is the word-level one trained locally (`loramini.synthetic.make_tokenizer`): one token per
whitespace-separated word, so the expected token counts below are counted by hand, independently of the code.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from loramini import causal_lm as C
from loramini.synthetic import make_tokenizer

ROWS = [
    {"prompt": "Review: a gem of a film\nSentiment:", "completion": " positive", "label": 1},
    {"prompt": "Review: dull\nSentiment:", "completion": " negative", "label": 0},
    {"prompt": "Review: long and dull and slow\nSentiment:", "completion": " negative", "label": 0},
]
WORDS = (" negative", " positive")


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer([r["prompt"] + r["completion"] for r in ROWS] + ["slow gem film"])


@pytest.fixture(scope="module")
def tok_no_pad():
    """The same tokenizer without a pad token, as GPT-2's and Llama's come."""
    t = make_tokenizer([r["prompt"] + r["completion"] for r in ROWS])
    t.pad_token = None
    assert t.pad_token_id is None
    return t


@pytest.fixture(params=["llama", "gpt2"])
def model(request, tok):
    return C.tiny_causal_lm(tok, request.param, seed=0)


def _n_words(text):
    return len(text.split())


def test_mask_is_minus_100_exactly_on_bos_prompt_and_padding(tok):
    rows = [C.encode_pair(tok, r["prompt"], r["completion"], 64) for r in ROWS]
    batch = C.CompletionCollator(tok, "right")(rows)
    longest = max(2 + _n_words(r["prompt"]) + 1 for r in ROWS)
    assert batch["labels"].shape == (3, longest)
    for i, r in enumerate(ROWS):
        n_prompt = 1 + _n_words(r["prompt"])  # bos + one token per word
        n = n_prompt + 2                       # + the label word + eos
        expected = torch.full((longest,), -100)
        expected[n_prompt] = tok.convert_tokens_to_ids(r["completion"].strip())
        expected[n_prompt + 1] = tok.eos_token_id
        assert batch["labels"][i].tolist() == expected.tolist()
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (longest - n)
        assert (batch["input_ids"][i, n:] == tok.pad_token_id).all()


def test_pad_equal_to_eos_still_trains_on_the_completions_eos(tok_no_pad):
    C.ensure_pad_token(tok_no_pad)
    assert tok_no_pad.pad_token_id == tok_no_pad.eos_token_id
    rows = [C.encode_pair(tok_no_pad, r["prompt"], r["completion"], 64) for r in ROWS[:2]]
    batch = C.CompletionCollator(tok_no_pad)(rows)
    short = 1  # the second row is shorter: its eos label is followed by pad ids that are eos too
    n = 1 + _n_words(ROWS[short]["prompt"]) + 2
    assert batch["labels"][short, n - 1] == tok_no_pad.eos_token_id
    assert (batch["labels"][short, n:] == -100).all() and (batch["input_ids"][short, n:] == tok_no_pad.eos_token_id).all()


def test_ensure_pad_token_tells_the_model(tok_no_pad):
    model = C.tiny_causal_lm(tok_no_pad, "llama")
    model.config.pad_token_id = None
    C.ensure_pad_token(tok_no_pad, model)
    assert model.config.pad_token_id == tok_no_pad.eos_token_id


def test_truncation_keeps_the_completion_and_the_prompts_end(tok):
    row = C.encode_pair(tok, ROWS[2]["prompt"], ROWS[2]["completion"], max_length=4)
    assert len(row["input_ids"]) == 4
    assert row["labels"] == [-100, -100, tok.convert_tokens_to_ids("negative"), tok.eos_token_id]
    assert row["input_ids"][:2] == tok.convert_tokens_to_ids(["slow", "Sentiment:"])


def test_collator_loss_equals_manual_cross_entropy_over_completion_tokens(tok, model):
    rows = [C.encode_pair(tok, r["prompt"], r["completion"], 64) for r in ROWS]
    batch = C.CompletionCollator(tok)(rows)
    with torch.no_grad():
        loss = model(**batch).loss
        manual = []
        for r in ROWS:  # each row alone, unpadded; the completion tokens sit at the end
            ids = torch.tensor([C.encode_pair(tok, r["prompt"], r["completion"], 64)["input_ids"]])
            logits = model(input_ids=ids).logits[0]
            manual += [F.cross_entropy(logits[t - 1:t], ids[0, t:t + 1]) for t in (ids.shape[1] - 2, ids.shape[1] - 1)]
    torch.testing.assert_close(loss, torch.stack(manual).mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_left_padded_generation_equals_unpadded_one_by_one(tok, family):
    # Larger init weights than the default 0.02: a lively random model, whose three continuations differ and run on.
    model = C.tiny_causal_lm(tok, family, seed=2, initializer_range=0.3)
    prompts = [r["prompt"] for r in ROWS]
    batched = C.generate(model, tok, prompts, max_new_tokens=6, batch_size=3)
    alone = [C.generate(model, tok, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert batched == alone
    assert len(set(alone)) == 3 and all(len(g.split()) >= 2 for g in alone)


def test_label_word_accuracy_equals_hand_computation(tok, model):
    rows = ROWS[:2]
    hand = torch.zeros(2, 2)
    with torch.no_grad():
        for i, r in enumerate(rows):
            for j, word in enumerate(WORDS):
                ids = tok.convert_tokens_to_ids(["<s>", *r["prompt"].split(), word.strip(), "</s>"])
                logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
                hand[i, j] = logp[-3, ids[-2]] + logp[-2, ids[-1]]  # the word and eos, each from the position before
    scores, counts = C.label_word_scores(model, tok, [r["prompt"] for r in rows], WORDS, batch_size=2)
    torch.testing.assert_close(scores, hand, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == [[2, 2], [2, 2]]
    result = C.evaluate(model, tok, rows, label_words=WORDS, batch_size=2)
    labels = torch.tensor([r["label"] for r in rows])
    assert result["accuracy"] == (hand.argmax(1) == labels).float().mean().item()
    true = hand[torch.arange(2), labels]
    assert result["completion_loss"] == pytest.approx(float(-true.sum() / 4), rel=1e-5)


def test_evaluate_without_label_words_gives_the_models_own_loss(tok, model):
    rows = [C.encode_pair(tok, r["prompt"], r["completion"], 64) for r in ROWS]
    with torch.no_grad():
        loss = model(**C.CompletionCollator(tok)(rows)).loss
    result = C.evaluate(model, tok, ROWS, batch_size=2)
    assert "accuracy" not in result
    assert result["completion_loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert 0.0 <= result["exact_match"] <= 1.0


def test_exact_match_ignores_surrounding_whitespace_only():
    assert C.exact_match([" positive", "negative ", "positive!"], ["positive", " negative", " positive"]) == 2 / 3


def test_templates_render_sst2_and_binarise_stsb():
    sst2 = C.template_for("sst2").render({"sentence": "a gem", "label": 1})
    assert sst2 == {"prompt": "Review: a gem\nSentiment:", "completion": " positive", "label": 1}
    stsb = C.template_for("STS-B")
    assert stsb.render({"sentence1": "x", "sentence2": "y", "label": 3.0})["completion"] == " yes"
    assert stsb.render({"sentence1": "x", "sentence2": "y", "label": 2.9})["completion"] == " no"
    with pytest.raises(ValueError, match="No causal-LM text template for task 'cola'"):
        C.template_for("cola")


def test_as_text_reads_sst2_through_the_glue_loader(tmp_path):
    from loramini.data import load_glue

    folder = tmp_path / "SST-2"
    folder.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text("sentence\tlabel\na gem \t1\ndull \t0\n")
    text = C.as_text(load_glue("sst2", data_dir=tmp_path), "sst2")
    assert sorted(text["validation"].column_names) == ["completion", "label", "prompt"]
    assert text["train"][0] == {"prompt": "Review: a gem \nSentiment:", "completion": " positive", "label": 1}


def test_stsb_as_text_has_integer_labels_that_evaluate_can_index(tmp_path, tok):
    """STS-B's label column holds float scores; rendered as text it must hold the label word's index (int), or
    `evaluate` cannot pick each row's right word (it raised "Expected dtype int32/int64 for index")."""
    from loramini.data import load_glue

    folder = tmp_path / "STS-B"
    folder.mkdir()
    rows = "genre\tfile\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    rows += "".join(f"g\tf\t2012\t{i}\ts\ts\ta cat {i}\ta dog {i}\t{s}\n" for i, s in enumerate((4.2, 1.0, 3.0)))
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text(rows)
    text = C.as_text(load_glue("stsb", data_dir=tmp_path), "stsb")
    assert text["validation"]["label"] == [1, 0, 1] and text["validation"].features["label"].dtype == "int64"
    scores = C.evaluate(C.tiny_causal_lm(tok, "llama"), tok, text["validation"], (" no", " yes"), max_new_tokens=1)
    assert 0.0 <= scores["accuracy"] <= 1.0 and scores["completion_loss"] > 0


def test_is_causal_lm_from_module_and_folder(tok, tmp_path):
    import loramini

    llama = C.tiny_causal_lm(tok, "llama")
    assert C.is_causal_lm(llama) and C.is_causal_lm(C.tiny_causal_lm(tok, "gpt2"))
    assert not C.is_causal_lm(loramini.tiny_roberta()) and not C.is_causal_lm("tiny")
    llama.save_pretrained(tmp_path)  # config.json lists its architectures
    assert C.is_causal_lm(tmp_path)


# ---------------------------------------------------------------------------------------------------
# Your own files: good ones load, bad ones get one line naming file, row and field


def test_read_pairs_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"prompt": "Q: 2+2?\\nA:", "completion": " 4", "id": 7}\n\n{"prompt": "Q: 1+1?\\nA:", "completion": " 2"}\n')
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('prompt,completion\n"Q: 2+2?\nA:", 4\n')
    assert C.read_pairs(jsonl) == [{"prompt": "Q: 2+2?\nA:", "completion": " 4"},
                                   {"prompt": "Q: 1+1?\nA:", "completion": " 2"}]
    assert C.read_pairs(csv_file) == [{"prompt": "Q: 2+2?\nA:", "completion": " 4"}]
    dsdict = C.load_pair_files(jsonl, csv_file)
    assert dsdict["validation"].num_rows == 1 and dsdict["train"].column_names == ["prompt", "completion"]


@pytest.mark.parametrize("content, where", [
    ('{"prompt": "a", "completion": " b"}\n{"prompt": "a"}\n', "row 2, field 'completion': missing"),
    ('{"prompt": "a", "completion": " b"}\n\n{"prompt": 3, "completion": " b"}\n', "row 3, field 'prompt': 3 (int)"),
    ('{"prompt": "a", "completion": "  "}\n', "row 1, field 'completion': '  '"),
    ('{"prompt": "a", "completion": " b"}\n{"prompt": "a",\n', "row 2: not valid JSON"),
    ('["a", " b"]\n', "row 1: a list, not an object"),
])
def test_bad_jsonl_names_file_row_and_field(tmp_path, content, where):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        C.read_pairs(path)
    message = str(err.value)
    assert message.startswith(f"{path}, {where}") and "\n" not in message


@pytest.mark.parametrize("content, where", [
    ("prompt,answer\na,b\n", "row 0 (header), field 'completion': missing"),
    ("prompt,completion\na, b\nc\n", "row 2, field 'completion': missing"),
])
def test_bad_csv_names_file_row_and_field(tmp_path, content, where):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="^" + str(path).replace(".", r"\.") + ", " + where.replace("(", r"\(").replace(")", r"\)")):
        C.read_pairs(path)


def test_missing_or_wrong_kind_of_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        C.read_pairs(tmp_path / "none.jsonl")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ValueError, match=r"unsupported file type '\.txt'"):
        C.read_pairs(tmp_path / "d.txt")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no rows"):
        C.read_pairs(tmp_path / "empty.jsonl")


# ---------------------------------------------------------------------------------------------------
# Through the real loop and CLI: a causal LM is trained on the task as text


def _toy_sst2(folder, seed=0, n_train=96, n_dev=16):
    """SST-2 TSV files whose label is the majority of a few cue words (learnable in a few steps)."""
    import random

    rng = random.Random(seed)
    good, bad = ["good", "great", "fun", "moving"], ["bad", "dull", "awful", "slow"]
    (folder / "SST-2").mkdir(parents=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        lines = ["sentence\tlabel"]
        for _ in range(n):
            label = rng.randint(0, 1)
            lines.append(" ".join(rng.choices(good if label else bad, k=3)) + f" film\t{label}")
        (folder / "SST-2" / name).write_text("\n".join(lines) + "\n")
    texts = [f"Review: {w} film\nSentiment: positive negative" for w in good + bad]
    return make_tokenizer(texts)


def test_cli_finetune_trains_a_tiny_llama_folder_as_a_causal_lm(tmp_path):
    from loramini.cli import main

    tokenizer = _toy_sst2(tmp_path / "glue")
    model = C.tiny_causal_lm(tokenizer, "llama", seed=0)
    model.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    out = tmp_path / "out"
    assert main(["finetune", "--model", str(tmp_path / "llama"), "--task", "sst2", "--data-dir",
                 str(tmp_path / "glue"), "--method", "loramini", "--target-modules", "all-linear", "--epochs", "3",
                 "--batch-size", "8", "--lr", "1e-2", "--max-length", "32", "--output-dir", str(out),
                 "--no-progress"]) in (0, None)
    results = json.loads((out / "results.json").read_text())
    assert results["main_metric"] == "accuracy" and results["task"] == "sst2"
    assert set(results["final"]["validation"]) == {"accuracy", "completion_loss", "exact_match"}
    assert results["metric"] == results["final"]["validation"]["accuracy"]
    assert results["params"]["trainable"] == results["params"]["adapter"] > 0  # no head: lm_head stays frozen
    history = json.loads((out / "history.json").read_text())
    losses = [s["loss"] for s in history["steps"]]
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses


@pytest.mark.parametrize("method", ["loramini", "lora", "vera"])
def test_cli_finetune_defaults_adapt_a_llamas_q_and_v(tmp_path, method):
    """The command of issue #16 as written (no --target-modules): the default means q_proj and v_proj on Llama."""
    from loramini.cli import main

    tokenizer = _toy_sst2(tmp_path / "glue", n_train=32, n_dev=8)
    C.tiny_causal_lm(tokenizer, "llama", seed=0).save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    out = tmp_path / "out"
    assert main(["finetune", "--model", str(tmp_path / "llama"), "--task", "sst2", "--data-dir", str(tmp_path / "glue"),
                 "--method", method, "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--group-by-length",
                 "--output-dir", str(out), "--no-progress"]) in (0, None)
    results = json.loads((out / "results.json").read_text())
    assert set(results["final"]["validation"]) == {"accuracy", "completion_loss", "exact_match"}
    layers = 2 * C.tiny_causal_lm(tokenizer, "llama", seed=0).config.num_hidden_layers  # q and v per block
    adapter = json.loads(next(out.rglob("adapter_config.json")).read_text())
    names = adapter["targets"] if method == "loramini" else adapter["target_modules"]
    assert sorted({n.rsplit(".", 1)[-1] for n in names}) == ["q_proj", "v_proj"] and len(names) == layers


@pytest.mark.parametrize("method", ["lora", "vera"])
def test_peft_methods_train_a_tiny_llama_as_a_causal_lm(tmp_path, method):
    from loramini.tasks import get_task
    from loramini.train import TrainConfig, train
    from loramini.data import load_glue

    tokenizer = _toy_sst2(tmp_path)
    model = C.tiny_causal_lm(tokenizer, "llama", seed=0)
    config = TrainConfig(method=method, target_modules="all-linear", epochs=2, batch_size=8, lr=1e-2,
                         max_length=32, progress=False)
    history = train(model, (load_glue("sst2", data_dir=tmp_path), get_task("sst2")), config, tokenizer=tokenizer)
    assert type(history["trained_model"]).__name__ == "PeftModelForCausalLM"
    assert set(history["final"]["validation"]) == {"accuracy", "completion_loss", "exact_match"}
    losses = [s["loss"] for s in history["steps"]]
    assert losses[-1] < losses[0]


def test_train_on_your_own_jsonl_pairs_reports_exact_match(tmp_path, tok):
    from loramini.train import TrainConfig, train

    lines = [json.dumps({"prompt": r["prompt"], "completion": r["completion"]}) for r in ROWS * 8]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "dev.jsonl").write_text("\n".join(lines[:3]) + "\n")
    model = C.tiny_causal_lm(tok, "llama", seed=0)
    history = train(model, C.pairs_task(tmp_path / "train.jsonl", tmp_path / "dev.jsonl"),
                    TrainConfig(method="loramini", target_modules="all-linear", epochs=1, batch_size=8, lr=1e-2,
                                max_length=32, progress=False), tokenizer=tok)
    assert history["main_metric"] == "exact_match" and history["task"] == "pairs"
    assert set(history["final"]["validation"]) == {"completion_loss", "exact_match"}
