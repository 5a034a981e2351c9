import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from loramini import data
from loramini.data import (HubUnavailableError, load_glue, load_local_files, make_collator, make_dataloaders,
                           tokenize_dataset)
from loramini.tasks import get_task

REPO = Path(__file__).parents[1]
GLUE_DIR = Path(os.environ.get("LORAMINI_GLUE_DIR") or Path(__file__).parents[2] / "shared/data/glue")


def write_task(root: Path, folder: str, files: dict[str, list[str]], bom: bool = False) -> Path:
    """Write GLUE-style TSV files `root/folder/<name>` from lists of tab-joined lines."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        text = "\n".join(lines) + "\n"
        (root / folder / name).write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return root


def tsv(*fields) -> str:
    return "\t".join(fields)


# ---------------------------------------------------------------------------------------------------
# GLUE's original TSV layouts, one tiny file per task


def test_sst2_keeps_quotes_as_text(tmp_path):
    lone = 'he said " it works , and left '
    write_task(tmp_path, "SST-2", {
        "train.tsv": [tsv("sentence", "label"), tsv(lone, "1"), tsv('a "quoted" phrase', "0")],
        "dev.tsv": [tsv("sentence", "label"), tsv("fine .", "1")]})
    ds = load_glue("sst2", data_dir=tmp_path)
    assert list(ds) == ["train", "validation"]
    assert ds["train"].column_names == ["sentence", "label"]
    assert ds["train"]["sentence"] == [lone, 'a "quoted" phrase']
    assert ds["train"]["label"] == [1, 0]
    assert ds["train"].features["label"].names == ["negative", "positive"]


def test_cola_headerless_four_columns(tmp_path):
    row1 = tsv("gj04", "1", "", "Our friends won't buy this analysis, let alone the next one we propose.")
    row2 = tsv("gj04", "0", "*", "They drank the pub.")
    write_task(tmp_path, "CoLA", {"train.tsv": [row1, row2], "dev.tsv": [row2]})
    ds = load_glue("cola", data_dir=tmp_path)
    assert ds["train"]["sentence"] == ["Our friends won't buy this analysis, let alone the next one we propose.",
                                       "They drank the pub."]
    assert ds["train"]["label"] == [1, 0]
    assert len(ds["validation"]) == 1  # the first line is data, not a header


def test_mrpc_with_byte_order_mark(tmp_path):
    header = tsv("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
    row = tsv("1", "702876", "702977", 'Amrozi accused his brother , whom he called " the witness " .',
              "Referring to him as only \" the witness \" , Amrozi accused his brother .")
    write_task(tmp_path, "MRPC", {"train.tsv": [header, row, tsv("0", "1", "2", "a", "b")],
                                  "dev.tsv": [header, row]}, bom=True)
    ds = load_glue("mrpc", data_dir=tmp_path)
    assert ds["train"].column_names == ["sentence1", "sentence2", "label"]
    assert ds["train"][0] == {"sentence1": 'Amrozi accused his brother , whom he called " the witness " .',
                              "sentence2": 'Referring to him as only " the witness " , Amrozi accused his brother .',
                              "label": 1}
    assert ds["train"]["label"] == [1, 0]


def test_stsb_float_scores(tmp_path):
    header = tsv("index", "genre", "filename", "year", "old_index", "source1", "source2",
                 "sentence1", "sentence2", "score")
    rows = [tsv("0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
                "A plane is taking off.", "An air plane is taking off.", "5.000"),
            tsv("1", "main-captions", "MSRvid", "2012test", "0004", "none", "none",
                "A man is playing a flute.", "A man is playing a \"bamboo flute.", "3.800")]
    write_task(tmp_path, "STS-B", {"train.tsv": [header, *rows], "dev.tsv": [header, rows[1]]})
    ds = load_glue("stsb", data_dir=tmp_path)
    assert ds["train"]["sentence2"] == ["An air plane is taking off.", 'A man is playing a "bamboo flute.']
    assert ds["train"]["label"] == pytest.approx([5.0, 3.8])
    assert ds["train"].features["label"].dtype == "float32"


def test_qqp_columns(tmp_path):
    header = tsv("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
    rows = [tsv("133273", "213221", "213222", "How is the life of a math student?",
                "Which level of prepration is enough?", "0"),
            tsv("402555", "536040", "536041", "How do I control my horny emotions?",
                "How do you control your horniness?", "1")]
    write_task(tmp_path, "QQP", {"train.tsv": [header, *rows], "dev.tsv": [header, *rows]})
    ds = load_glue("qqp", data_dir=tmp_path)
    assert ds["validation"]["question2"][1] == "How do you control your horniness?"
    assert ds["validation"]["label"] == [0, 1]


@pytest.mark.parametrize("task,folder,fields", [("qnli", "QNLI", ("question", "sentence")),
                                                ("rte", "RTE", ("sentence1", "sentence2"))])
def test_entailment_strings_map_like_the_hub(tmp_path, task, folder, fields):
    header = tsv("index", *fields, "label")
    rows = [tsv("0", "first a", "first b", "entailment"), tsv("1", "second a", "second b", "not_entailment")]
    write_task(tmp_path, folder, {"train.tsv": [header, *rows], "dev.tsv": [header, rows[1]]})
    ds = load_glue(task, data_dir=tmp_path)
    assert ds["train"].column_names == [*fields, "label"]
    assert ds["train"]["label"] == [0, 1]  # hub: entailment = 0, not_entailment = 1
    assert ds["train"][fields[1]] == ["first b", "second b"]


def test_wnli_integer_labels(tmp_path):
    header = tsv("index", "sentence1", "sentence2", "label")
    rows = [tsv("0", "I stuck a pin through a carrot.", "The carrot had a hole.", "1"),
            tsv("1", "John couldn't see the stage.", "John is so short.", "0")]
    write_task(tmp_path, "WNLI", {"train.tsv": [header, *rows], "dev.tsv": [header, *rows]})
    ds = load_glue("wnli", data_dir=tmp_path)
    assert ds["train"]["label"] == [1, 0]
    assert ds["train"].features["label"].names == ["not_entailment", "entailment"]


def test_mnli_two_dev_files_and_gold_label(tmp_path):
    parse = ["( x )"] * 4
    train_header = tsv("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                       "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
                       "sentence1", "sentence2", "label1", "gold_label")
    dev_header = train_header.replace("label1", "label1\tlabel2\tlabel3\tlabel4\tlabel5")
    train = [train_header, tsv("0", "31193", "31193n", "government", *parse,
                               "Conceptually cream skimming has two basic dimensions.",
                               "Product and geography are what make cream skimming work. ", "neutral", "neutral")]
    dev = [dev_header, tsv("0", "63735", "63735n", "slate", *parse, "The new rights are nice enough",
                           "Everyone really likes the newest benefits ", "neutral", "entailment", "neutral",
                           "contradiction", "neutral", "contradiction")]
    write_task(tmp_path, "MNLI", {"train.tsv": train, "dev_matched.tsv": dev, "dev_mismatched.tsv": dev + dev[1:]})
    ds = load_glue("mnli", data_dir=tmp_path)
    assert list(ds) == ["train", "validation_matched", "validation_mismatched"]
    assert ds["train"].column_names == ["premise", "hypothesis", "label"]
    assert ds["train"][0]["hypothesis"] == "Product and geography are what make cream skimming work. "
    assert ds["train"]["label"] == [1]  # neutral
    assert ds["validation_matched"]["label"] == [2]  # gold_label (last column), not label1
    assert len(ds["validation_mismatched"]) == 2
    write_task(tmp_path, "MNLI", {"dev_mismatched.tsv": dev[:1]})  # header only: an error naming the file
    with pytest.raises(ValueError, match=r"dev_mismatched.tsv: no data rows after the header"):
        load_glue("mnli", data_dir=tmp_path)


def test_task_folder_itself_and_missing_files(tmp_path):
    write_task(tmp_path, "SST-2", {"train.tsv": [tsv("sentence", "label"), tsv("ok", "1")]})
    with pytest.raises(FileNotFoundError, match=r"SST-2[/\\]dev\.tsv"):
        load_glue("sst2", data_dir=tmp_path)
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nok\t0\n")
    assert load_glue("sst-2", data_dir=tmp_path / "SST-2")["validation"]["label"] == [0]
    with pytest.raises(FileNotFoundError, match=r"RTE[/\\]train\.tsv"):
        load_glue("rte", data_dir=tmp_path)


def test_bad_label_names_file_and_line(tmp_path):
    header = tsv("index", "sentence1", "sentence2", "label")
    write_task(tmp_path, "RTE", {"train.tsv": [header, tsv("0", "a", "b", "entailment"),
                                               tsv("1", "a", "b", "maybe")], "dev.tsv": [header]})
    with pytest.raises(ValueError, match=r"train\.tsv:3: label 'maybe'"):
        load_glue("rte", data_dir=tmp_path)


def test_short_rows_are_skipped_with_a_warning(tmp_path):
    header = tsv("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
    write_task(tmp_path, "QQP", {"train.tsv": [header, tsv("1", "2", "3", "q1", "q2", "1"), tsv("2", "3", "q")],
                                 "dev.tsv": [header, tsv("1", "2", "3", "q1", "q2", "0")]})
    with pytest.warns(UserWarning, match="skipped 1 malformed"):
        ds = load_glue("qqp", data_dir=tmp_path)
    assert ds["train"]["question1"] == ["q1"]


def test_max_train_samples_is_a_seeded_subset(tmp_path):
    rows = [tsv(f"sentence {i}", str(i % 2)) for i in range(50)]
    write_task(tmp_path, "SST-2", {"train.tsv": ["sentence\tlabel", *rows], "dev.tsv": ["sentence\tlabel", rows[0]]})
    full = set(load_glue("sst2", data_dir=tmp_path)["train"]["sentence"])
    a = load_glue("sst2", data_dir=tmp_path, max_train_samples=10, seed=1)["train"]["sentence"]
    b = load_glue("sst2", data_dir=tmp_path, max_train_samples=10, seed=1)["train"]["sentence"]
    c = load_glue("sst2", data_dir=tmp_path, max_train_samples=10, seed=2)["train"]["sentence"]
    assert a == b and a != c and len(set(a)) == 10 and set(a) <= full
    assert a != [f"sentence {i}" for i in range(10)]  # shuffled, not the first rows
    assert len(load_glue("sst2", data_dir=tmp_path, max_train_samples=999)["train"]) == 50
    with pytest.raises(ValueError, match="max_train_samples=0"):
        load_glue("sst2", data_dir=tmp_path, max_train_samples=0)


def test_real_sst2_from_shared_folder():
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"no GLUE SST-2 files under {GLUE_DIR} (set LORAMINI_GLUE_DIR)")
    ds = load_glue("sst2", data_dir=GLUE_DIR)
    assert {k: len(v) for k, v in ds.items()} == {"train": 67349, "validation": 872}
    assert ds["train"][0] == {"sentence": "hide new secretions from the parental units ", "label": 0}
    assert ds["validation"][0] == {"sentence": "it 's a charming and often affecting journey . ", "label": 1}
    assert set(ds["validation"]["label"]) == {0, 1}
    assert len(load_glue("sst2", data_dir=GLUE_DIR, max_train_samples=64)["train"]) == 64


# ---------------------------------------------------------------------------------------------------
# The hub path when there is no network


def test_offline_hub_raises_one_clear_error():
    code = ("import time; from loramini.data import load_glue\n"
            "t = time.time()\n"
            "try:\n    load_glue('sst2')\n"
            "except ConnectionError as e:\n    print(type(e).__name__, round(time.time() - t, 2)); print(e)\n")
    env = {k: v for k, v in os.environ.items() if k != "LORAMINI_GLUE_DIR"} | {"HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    first, message = out.stdout.split("\n", 1)
    name, seconds = first.split()
    assert name == "HubUnavailableError" and float(seconds) < 5, out.stdout + out.stderr
    assert "data_dir=" in message and "synthetic" in message
    assert "Retrying" not in out.stderr


def test_unreachable_hub_fails_fast_without_retries(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("LORAMINI_GLUE_DIR", raising=False)
    monkeypatch.setattr(data.datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # CI runs with HF_HUB_OFFLINE=1
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    start = time.time()
    with pytest.raises(HubUnavailableError, match="127.0.0.1:9 unreachable") as err:
        load_glue("rte")
    assert time.time() - start < 5
    assert "data_dir=" in str(err.value) and "RTE/train.tsv" in str(err.value) and "synthetic" in str(err.value)


def test_hub_path_keeps_task_columns_and_splits(monkeypatch):
    """The Colab path, with the download faked: the hub's extra "idx" column and "test" split are dropped."""
    from datasets import Dataset, DatasetDict

    calls = []

    def fake_load_dataset(path, name):
        calls.append((path, name))
        split = lambda n: Dataset.from_dict({"premise": ["p"] * n, "hypothesis": ["h"] * n,
                                             "label": [2] * n, "idx": list(range(n))})
        return DatasetDict({s: split(n) for s, n in [("train", 8), ("validation_matched", 2),
                                                      ("validation_mismatched", 3), ("test_matched", 4)]})

    monkeypatch.delenv("LORAMINI_GLUE_DIR", raising=False)
    monkeypatch.setattr(data.datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(data, "_hub_reachable", lambda: None)
    monkeypatch.setattr(data.datasets, "load_dataset", fake_load_dataset)
    ds = load_glue("mnli", max_train_samples=5)
    assert calls == [("nyu-mll/glue", "mnli")]
    assert {k: len(v) for k, v in ds.items()} == {"train": 5, "validation_matched": 2, "validation_mismatched": 3}
    assert ds["train"].column_names == ["premise", "hypothesis", "label"]


# ---------------------------------------------------------------------------------------------------
# Your own CSV / JSON files


def test_load_local_csv_and_json(tmp_path):
    (tmp_path / "train.csv").write_text('sentence1,sentence2,label,extra\n"a, b",c,0.5,x\nd,e,4.25,y\n')
    (tmp_path / "dev.csv").write_text("sentence1,sentence2,label,extra\nf,g,1.0,z\n")
    ds = load_local_files(tmp_path / "train.csv", tmp_path / "dev.csv", "stsb")
    assert ds["train"].column_names == ["sentence1", "sentence2", "label"]
    assert ds["train"]["sentence1"] == ["a, b", "d"] and ds["train"]["label"] == [0.5, 4.25]

    (tmp_path / "train.jsonl").write_text('{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 0}\n')
    (tmp_path / "dev.jsonl").write_text('{"sentence": "ok", "label": 1}\n')
    ds = load_local_files(tmp_path / "train.jsonl", tmp_path / "dev.jsonl", "sst2", max_train_samples=1)
    assert list(ds) == ["train", "validation"] and len(ds["train"]) == 1
    assert ds["validation"][0] == {"sentence": "ok", "label": 1}


def test_load_local_files_clear_errors(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nhi,1\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['sentence'\]"):
        load_local_files(tmp_path / "t.csv", tmp_path / "t.csv", "sst2")
    (tmp_path / "s.csv").write_text("sentence,label\nhi,positive\n")
    with pytest.raises(ValueError, match="not integers"):
        load_local_files(tmp_path / "s.csv", tmp_path / "s.csv", "sst2")
    with pytest.raises(ValueError, match="unsupported file types"):
        load_local_files(tmp_path / "t.txt", tmp_path / "t.txt", "sst2")


# ---------------------------------------------------------------------------------------------------
# Tokenize, pad, batch


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level BERT-style tokenizer built offline: [CLS] a [SEP] (b [SEP])."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = "[PAD] [UNK] [CLS] [SEP] the cat sat on a mat dog ran".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def pair_data():
    from datasets import Dataset, DatasetDict

    train = {"sentence1": ["the cat", "a dog ran on the mat", "the cat sat", "dog"],
             "sentence2": ["sat", "ran", "the mat", "a cat"], "label": [0.5, 1.0, 4.0, 2.5]}
    dev = {"sentence1": ["the dog"], "sentence2": ["the cat sat on a mat"], "label": [3.0]}
    return DatasetDict({"train": Dataset.from_dict(train), "validation": Dataset.from_dict(dev)})


def test_tokenize_pairs_truncates_and_renames_label(tokenizer):
    tokenized = tokenize_dataset(pair_data(), tokenizer, get_task("stsb"), max_length=6)
    assert set(tokenized["train"].column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert tokenized["train"][0]["input_ids"] == [2, 4, 5, 3, 6, 3]  # [CLS] the cat [SEP] sat [SEP]
    assert tokenized["train"][0]["token_type_ids"] == [0, 0, 0, 0, 1, 1]
    assert max(len(ids) for ids in tokenized["train"]["input_ids"]) == 6  # row 2 (11 tokens) truncated
    assert tokenized["validation"]["labels"] == [3.0]


def test_collator_pads_dynamically_and_loaders_are_seeded(tokenizer):
    tokenized = tokenize_dataset(pair_data(), tokenizer, "stsb", max_length=32)
    collator = make_collator(tokenizer)
    batch = collator([tokenized["train"][0], tokenized["train"][1]])  # 6 and 10 tokens
    assert batch["input_ids"].shape == (2, 10)  # the batch's longest row, not max_length
    assert batch["input_ids"][0].tolist() == [2, 4, 5, 3, 6, 3, 0, 0, 0, 0]  # right-padded with [PAD] = 0
    assert batch["attention_mask"][0].tolist() == [1] * 6 + [0] * 4
    assert batch["labels"].dtype == torch.float32

    def order(seed):
        train, _ = make_dataloaders(tokenized, collator, batch_size=1, seed=seed)
        return [b["labels"].item() for b in train]

    assert order(0) == order(0) and sorted(order(0)) == [0.5, 1.0, 2.5, 4.0]
    assert len({tuple(order(s)) for s in range(5)}) > 1  # different seeds, different orders
    train, evals = make_dataloaders(tokenized, collator, batch_size=3, seed=0)
    assert list(evals) == ["validation"] and [len(b["labels"]) for b in train] == [3, 1]


def test_classification_labels_are_long(tmp_path, tokenizer):
    write_task(tmp_path, "SST-2", {"train.tsv": ["sentence\tlabel", "the cat\t1", "a dog ran\t0"],
                                   "dev.tsv": ["sentence\tlabel", "the mat\t1"]})
    tokenized = tokenize_dataset(load_glue("sst2", data_dir=tmp_path), tokenizer, "sst2")
    train, evals = make_dataloaders(tokenized, make_collator(tokenizer), batch_size=2, seed=0)
    batch = next(iter(train))
    assert batch["labels"].dtype == torch.long and batch["input_ids"].shape == (2, 5)
    assert next(iter(evals["validation"]))["labels"].tolist() == [1]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['sentence1', 'sentence2'\]"):
        tokenize_dataset(load_glue("sst2", data_dir=tmp_path), tokenizer, "rte")


# --- length-grouped training batches (TrainConfig.group_by_length) ---------------------------------------------


def _padding(order, lengths, batch_size):
    """Padded tokens / real tokens when `order` is cut into batches of `batch_size`."""
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[j] for j in b) * len(b) for b in batches) / sum(lengths)


def test_length_grouped_sampler_is_a_seeded_permutation_with_little_padding():
    from loramini.data import LengthGroupedSampler

    lengths = [int(x) for x in torch.randint(3, 64, (900,), generator=torch.Generator().manual_seed(0))]
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=0)
    first = list(sampler)
    assert sorted(first) == list(range(900)) and len(sampler) == 900
    assert list(LengthGroupedSampler(lengths, 16, seed=0)) == first  # repeatable
    assert list(LengthGroupedSampler(lengths, 16, seed=1)) != first  # the seed matters
    sampler.set_epoch(1)
    assert list(sampler) != first  # each epoch its own order
    shuffled = torch.randperm(900, generator=torch.Generator().manual_seed(0)).tolist()
    assert _padding(first, lengths, 16) < 1.1 < 1.5 < _padding(shuffled, lengths, 16)


def test_group_by_length_loader_follows_the_epoch_through_accelerate(tokenizer):
    """The loop calls set_epoch on accelerate's wrapper: it must reach the sampler (or every epoch, and a resumed
    run, would see the first epoch's batches)."""
    from accelerate import Accelerator
    from datasets import Dataset

    from loramini.data import LengthGroupedSampler, train_loader

    texts = [" ".join(["word"] * (1 + i % 17)) for i in range(96)]
    tokenized = Dataset.from_dict(dict(tokenizer(texts), labels=[i % 2 for i in range(96)]))
    loader = train_loader(tokenized, 8, make_collator(tokenizer), seed=3, group_by_length=True)
    prepared = Accelerator(cpu=True).prepare(loader)
    lengths = [len(ids) for ids in tokenized["input_ids"]]
    seen = []
    for epoch in (0, 1):
        prepared.set_epoch(epoch)
        seen.append([b["input_ids"].tolist() for b in prepared])
    order = list(LengthGroupedSampler(lengths, 8, seed=3))
    assert [len(b[0]) for b in seen[0]] == [max(lengths[j] for j in order[i:i + 8]) for i in range(0, 96, 8)]
    assert seen[1] != seen[0]


def test_group_by_length_must_be_a_bool():
    from loramini.train import TrainConfig

    with pytest.raises(TypeError, match=r"TrainConfig.group_by_length='yes': must be true or false"):
        TrainConfig(group_by_length="yes")
