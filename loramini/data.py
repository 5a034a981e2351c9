"""GLUE data: load (hub, GLUE's original TSV files, or your own CSV/JSON), tokenize, batch.

Every loader returns a `datasets.DatasetDict` of the same shape, whatever the source:

    splits:   "train" + the task's eval splits ("validation"; MNLI: "validation_matched"/"_mismatched")
    columns:  the task's text fields + "label"  (ClassLabel int for classification, float32 for STS-B)

so that `tokenize_dataset` → `make_collator` → `make_dataloaders` work the same on Colab (the hub) and
behind a firewall (`data_dir=` a local GLUE folder, or the synthetic task, which needs no files at all).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import warnings
from pathlib import Path
from typing import Optional, Union

import datasets
import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .tasks import TaskSpec, get_task

TaskLike = Union[str, TaskSpec]

# Label names in the hub's order, so a label means the same integer whichever way it was loaded.
LABEL_NAMES = {
    "cola": ("unacceptable", "acceptable"),
    "sst2": ("negative", "positive"),
    "mrpc": ("not_equivalent", "equivalent"),
    "qqp": ("not_duplicate", "duplicate"),
    "mnli": ("entailment", "neutral", "contradiction"),
    "qnli": ("entailment", "not_entailment"),
    "rte": ("entailment", "not_entailment"),
    "wnli": ("not_entailment", "entailment"),
}

# Where each output column sits in GLUE's original TSV files: a header name, or a position for CoLA,
# whose files have no header (source, label, original label, sentence).
_TSV_COLUMNS = {
    "cola": {"sentence": 3, "label": 1},
    "sst2": {"sentence": "sentence", "label": "label"},
    "mrpc": {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"},
    "qqp": {"question1": "question1", "question2": "question2", "label": "is_duplicate"},
    "stsb": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "score"},
    "mnli": {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
    "qnli": {"question": "question", "sentence": "sentence", "label": "label"},
    "rte": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
    "wnli": {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
}

_SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv",
                "validation_matched": "dev_matched.tsv", "validation_mismatched": "dev_mismatched.tsv"}


class HubUnavailableError(ConnectionError):
    """The Hugging Face hub could not be reached; the message lists the offline options."""


def _spec(task: TaskLike) -> TaskSpec:
    return task if isinstance(task, TaskSpec) else get_task(task)


def features_for(task: TaskLike) -> Features:
    """The columns every loader returns for `task`: text fields (string) + "label"."""
    spec = _spec(task)
    label = Value("float32") if spec.is_regression else ClassLabel(names=list(_label_names(spec)))
    return Features({**{f: Value("string") for f in spec.text_fields}, "label": label})


def _label_names(spec: TaskSpec) -> tuple[str, ...]:
    return LABEL_NAMES.get(spec.name, tuple(str(i) for i in range(spec.num_labels)))


# ---------------------------------------------------------------------------------------------------
# Loading


def load_glue(task: TaskLike, data_dir: Optional[Union[str, Path]] = None,
              max_train_samples: Optional[int] = None, seed: int = 0) -> DatasetDict:
    """GLUE task `task` ("sst2", "mnli", ...) as a DatasetDict: "train" + the task's eval splits.

    data_dir=None: download from the hub (`load_dataset("nyu-mll/glue", task)`), or read the folder in
                   env `LORAMINI_GLUE_DIR` when it is set. Without network this raises one
                   `HubUnavailableError` (a ConnectionError) that says how to work offline.
    data_dir=path: read GLUE's original TSV files, `<path>/<SST-2>/train.tsv` and `dev.tsv`
                   (MNLI: `dev_matched.tsv`, `dev_mismatched.tsv`); `path` may also be the task folder.
    max_train_samples: keep a random (seeded, so repeatable) subset of this many training rows.
    """
    spec = _spec(task)
    if spec.glue_dir is None:
        raise ValueError(f"load_glue({spec.name!r}): not a GLUE task (its TaskSpec has no glue_dir).")
    data_dir = data_dir if data_dir is not None else os.environ.get("LORAMINI_GLUE_DIR") or None
    if data_dir is not None:
        dsdict = _load_glue_tsv(spec, Path(data_dir))
    else:
        dsdict = _load_glue_hub(spec)
    return _subsample(dsdict, max_train_samples, seed)


def _offline_help(spec: TaskSpec, reason: str) -> str:
    return (f"Could not load GLUE task {spec.name!r} from the Hugging Face hub ({reason}). To work offline: "
            f"pass data_dir= a local folder in GLUE's original layout (<data_dir>/{spec.glue_dir}/train.tsv and "
            f"dev.tsv; or set env LORAMINI_GLUE_DIR), use load_local_files() for your own CSV/JSON files, or "
            f"train on the synthetic task (task='synthetic'), which needs no download. If the dataset is already "
            f"in your HF cache, set HF_HUB_OFFLINE=1 before starting Python.")


def _hub_reachable(timeout: float = 3.0) -> Optional[str]:
    """None if the hub answers, else the reason: `loramini.models.hub_unreachable_reason` (one check for
    models and data, through huggingface_hub's client and the proxy settings)."""
    from .models import hub_unreachable_reason

    return hub_unreachable_reason(timeout)


def _load_glue_hub(spec: TaskSpec) -> DatasetDict:
    if not datasets.config.HF_HUB_OFFLINE:
        reason = _hub_reachable()
        if reason is not None:
            raise HubUnavailableError(_offline_help(spec, reason))
    try:
        raw = datasets.load_dataset("nyu-mll/glue", spec.name)
    except ConnectionError as err:
        raise HubUnavailableError(_offline_help(spec, str(err))) from None
    columns = [*spec.text_fields, "label"]
    return DatasetDict({s: raw[s].select_columns(columns) for s in ("train", *spec.eval_splits)})


def _load_glue_tsv(spec: TaskSpec, data_dir: Path) -> DatasetDict:
    folder = data_dir / spec.glue_dir
    if not folder.is_dir() and (data_dir / "train.tsv").is_file():
        folder = data_dir  # data_dir is the task folder itself
    splits = {}
    for split in ("train", *spec.eval_splits):
        path = folder / _SPLIT_FILES[split]
        if not path.is_file():
            raise FileNotFoundError(
                f"GLUE {spec.name}: expected {path} (GLUE's original layout: <data_dir>/{spec.glue_dir}/"
                f"{_SPLIT_FILES[split]}). Pass data_dir= the folder that holds {spec.glue_dir}/, or the "
                f"{spec.glue_dir} folder itself.")
        splits[split] = Dataset.from_dict(read_glue_tsv(path, spec), features=features_for(spec))
    return DatasetDict(splits)


def read_glue_tsv(path: Union[str, Path], task: TaskLike) -> dict[str, list]:
    """Columns of one GLUE TSV file: {text field: [str], "label": [int | float]}.

    Quotes are ordinary characters (csv.QUOTE_NONE), a byte-order mark is dropped (MRPC), and string labels
    ("entailment", ...) become the hub's integers. Rows with too few fields are skipped with a warning.
    """
    spec = _spec(task)
    where = _TSV_COLUMNS[spec.name]
    names = _label_names(spec)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start}); GLUE's TSV files are "
                         f"UTF-8 text. Is this the right file?") from None
    if "\x00" in text:
        raise ValueError(f"{path}: holds NUL bytes, so it is binary, not one of GLUE's TSV text files.")
    import io

    with io.StringIO(text, newline="") as f, _csv_field_limit(len(text) + 1):
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = None if all(isinstance(c, int) for c in where.values()) else next(rows, [])
        try:
            index = {out: c if isinstance(c, int) else header.index(c) for out, c in where.items()}
        except ValueError:
            raise ValueError(f"{path}: header {header} lacks a column of {list(where.values())}; is this "
                             f"the {spec.glue_dir} file of GLUE's original release?") from None
        need = max(index.values()) + 1
        columns = {out: [] for out in where}
        skipped = 0
        for line, row in enumerate(rows, start=1 if header is None else 2):
            if len(row) < need:
                skipped += 1
                continue
            for field in spec.text_fields:
                columns[field].append(row[index[field]])
            columns["label"].append(_parse_label(row[index["label"]], spec, names, f"{path}:{line}"))
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed row(s) with fewer than {need} tab-separated fields.")
    if not columns["label"]:
        raise ValueError(f"{path}: no data rows{' after the header' if header is not None else ''} "
                         f"({skipped} malformed). Give the full {spec.glue_dir} file.")
    return columns


@contextlib.contextmanager
def _csv_field_limit(limit: int):
    """Let the csv module read fields up to `limit` characters (its default stops at 131,072), then restore it."""
    old = csv.field_size_limit(min(limit, 2 ** 31 - 1))  # a C long: 32 bits on Windows
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _parse_label(value: str, spec: TaskSpec, names: tuple[str, ...], where: str) -> Union[int, float]:
    try:
        if spec.is_regression:
            score = float(value)
            if math.isfinite(score):
                return score
            raise ValueError  # a NaN/Inf score would turn the training loss into NaN
        label = names.index(value) if value in names else int(value)
    except ValueError:
        label = None
    if label is None or (not spec.is_regression and not 0 <= label < len(names)):
        expected = "a finite number" if spec.is_regression else f"one of {list(names)} or 0..{len(names) - 1}"
        raise ValueError(f"{where}: label {value!r} is not {expected} (task {spec.name!r}).")
    return label


def load_local_files(train_file: Union[str, Path], validation_file: Union[str, Path], task: TaskLike, *,
                     max_train_samples: Optional[int] = None, seed: int = 0) -> DatasetDict:
    """Your own CSV (.csv, .tsv) or JSON (.json, .jsonl) files as a DatasetDict "train" + "validation".

    The files need the task's text columns (e.g. "sentence"; pairs: "sentence1", "sentence2") and "label":
    integers 0..num_labels-1 for classification, numbers for regression. Other columns are dropped.
    """
    spec = _spec(task)
    files = {"train": str(train_file), "validation": str(validation_file)}
    suffixes = {Path(f).suffix.lower() for f in files.values()}
    kind = "csv" if suffixes <= {".csv"} else "tsv" if suffixes <= {".tsv"} else \
        "json" if suffixes <= {".json", ".jsonl"} else None
    if kind is None:
        raise ValueError(f"load_local_files: unsupported file types {sorted(suffixes)} in {list(files.values())}; "
                         f"use .csv, .tsv, .json or .jsonl (both files of the same kind).")
    for name in files.values():  # each file on its own first, so an error names the file (and row) at fault
        _check_json_file(name, spec) if kind == "json" else _check_csv_header(name, spec, kind)
    options = {"csv": {}, "tsv": {"sep": "\t", "quoting": csv.QUOTE_NONE}, "json": {}}[kind]
    try:
        raw = datasets.load_dataset("json" if kind == "json" else "csv", data_files=files, **options)
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__ or err
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ValueError(f"Could not read {list(files.values())} ({reason}): check that both files hold the task's "
                         f"columns {[*spec.text_fields, 'label']} with one value per field.") from None
    columns = [*spec.text_fields, "label"]
    for split, ds in raw.items():
        missing = [c for c in columns if c not in ds.column_names]
        if missing:
            raise ValueError(f"{files[split]}: missing column(s) {missing} for task {spec.name!r} "
                             f"(found {ds.column_names}); rename them to {columns}.")
        if not spec.is_regression and ds.features["label"].dtype not in ("int8", "int16", "int32", "int64"):
            raise ValueError(f"{files[split]}: labels are {ds.features['label'].dtype}, not integers; map them "
                             f"to 0..{spec.num_labels - 1} first.")
        _check_labels(ds["label"], spec, files[split])
    dsdict = DatasetDict({s: ds.select_columns(columns).cast(features_for(spec)) for s, ds in raw.items()})
    return _subsample(dsdict, max_train_samples, seed)


def _check_csv_header(path: str, spec: TaskSpec, kind: str) -> None:
    """The file's header must name the task's text columns and "label" (datasets would blame either file)."""
    columns = [*spec.text_fields, "label"]
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter="\t" if kind == "tsv" else ",",
                                     quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL), [])
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start}).") from None
    except csv.Error as err:
        raise ValueError(f"{path}: line 1 is not a {kind.upper()} header ({err}).") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} for task {spec.name!r} (found {header}); rename them "
                         f"to {columns}.")


def _json_rows(path: str) -> list[tuple[int, object]]:
    """(row number, value) of a JSON Lines file (row = line) or a JSON array; a line that is not JSON is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start}).") from None
    try:
        if text.lstrip().startswith("["):
            return list(enumerate(json.loads(text), start=1))
        rows = []
        for line, row in enumerate(text.splitlines(), start=1):
            if row.strip():
                try:
                    rows.append((line, json.loads(row)))
                except ValueError as err:
                    raise ValueError(f"{path}: line {line} is not valid JSON ({err}); the file may be truncated. "
                                     f"Fix or drop that line.") from None
        return rows
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to be a table of rows.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); the file may be truncated.") from None


def _check_json_file(path: str, spec: TaskSpec) -> None:
    """Every row an object with the task's text fields (strings) and a numeric label, or one line naming the
    file, the row and the field."""
    columns = [*spec.text_fields, "label"]
    for row, value in _json_rows(path):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: row {row} is {type(value).__name__}, not an object with fields {columns}.")
        missing = [c for c in columns if c not in value]
        if missing:
            raise ValueError(f"{path}: row {row} lacks field(s) {missing} for task {spec.name!r} (has {list(value)}); "
                             f"rename them to {columns}.")
        for field in spec.text_fields:
            if not isinstance(value[field], str):
                raise ValueError(f"{path}: row {row} field {field!r} is {value[field]!r}, not a string.")
        label = value["label"]
        if isinstance(label, bool) or not isinstance(label, (int, float)):
            raise ValueError(f"{path}: row {row} field 'label' is {label!r}, not a number (task {spec.name!r}).")


def _check_labels(labels: list, spec: TaskSpec, where: str) -> None:
    """One clear error for the first bad label: out of range (classification), missing or NaN/Inf (regression)."""
    for row, value in enumerate(labels, start=1):
        if spec.is_regression:
            ok = isinstance(value, (int, float)) and math.isfinite(value)
            want = "a finite number"
        else:
            ok = isinstance(value, int) and 0 <= value < spec.num_labels
            want = f"an integer in 0..{spec.num_labels - 1}"
        if not ok:
            raise ValueError(f"{where}: row {row} has label {value!r}, not {want} (task {spec.name!r}). Fix or drop "
                             f"that row.")


def _subsample(dsdict: DatasetDict, max_train_samples: Optional[int], seed: int) -> DatasetDict:
    if max_train_samples is None:
        return dsdict
    if not isinstance(max_train_samples, int) or max_train_samples < 1:
        raise ValueError(f"max_train_samples={max_train_samples!r}: use a positive int, or None for all rows.")
    train = dsdict["train"]
    n = min(max_train_samples, len(train))
    return DatasetDict({**dsdict, "train": train.shuffle(seed=seed).select(range(n))})


# ---------------------------------------------------------------------------------------------------
# Tokenizing and batching


def tokenize_dataset(dsdict: DatasetDict, tokenizer, task_spec: TaskLike, max_length: int = 128) -> DatasetDict:
    """Tokenize every split: text columns → input_ids, attention_mask (+ token_type_ids if the tokenizer
    makes them) and "label" → "labels". Rows are truncated to `max_length` tokens but not padded (the
    collator pads each batch to its own longest row)."""
    spec = _spec(task_spec)
    for split, ds in dsdict.items():
        missing = [c for c in (*spec.text_fields, "label") if c not in ds.column_names]
        if missing:
            raise ValueError(f"tokenize_dataset: split {split!r} lacks column(s) {missing} of task {spec.name!r} "
                             f"(has {ds.column_names}).")

    def encode(batch):
        encoded = tokenizer(*(batch[f] for f in spec.text_fields), truncation=True, max_length=max_length)
        encoded["labels"] = batch["label"]
        return encoded

    return DatasetDict({split: ds.map(encode, batched=True, remove_columns=ds.column_names,
                                      desc=f"Tokenizing {split}") for split, ds in dsdict.items()})


def make_collator(tokenizer, pad_to_multiple_of: Optional[int] = None):
    """Pads a list of tokenized rows to the longest one in the batch → tensors (batch, seq_len)."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)


def make_dataloaders(tokenized: DatasetDict, collator, batch_size: int, seed: int,
                     eval_batch_size: Optional[int] = None, group_by_length: bool = False):
    """(train loader, {eval split: loader}). The training order is shuffled by a generator seeded with
    `seed`, so a run is repeatable. Eval loaders go through each split shortest row first: batches of similar
    lengths need little padding, which halves evaluation time on a CPU (benchmarks/README.md) and changes no
    metric (each row's prediction does not depend on its batch; the metrics do not depend on the order).
    group_by_length: training batches of rows of similar length too (`LengthGroupedSampler`)."""
    from torch.utils.data import DataLoader

    if "train" not in tokenized:
        raise ValueError(f"make_dataloaders: no 'train' split (have {list(tokenized)}).")
    train = train_loader(tokenized["train"], batch_size, collator, seed, group_by_length)
    evals = {split: DataLoader(_by_length(ds), batch_size=eval_batch_size or batch_size, shuffle=False,
                               collate_fn=collator)
             for split, ds in tokenized.items() if split != "train"}
    return train, evals


def train_loader(dataset, batch_size: int, collator, seed: int, group_by_length: bool = False):
    """The training DataLoader: a seeded shuffle, or with group_by_length a `LengthGroupedSampler`."""
    from torch.utils.data import DataLoader

    if not group_by_length:
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collator,
                          generator=torch.Generator().manual_seed(seed))
    sampler = LengthGroupedSampler(_lengths(dataset), batch_size, seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collator)


class LengthGroupedSampler(torch.utils.data.Sampler):
    """Training rows in an order where each run of `batch_size` rows has similar lengths, so a batch is padded
    little: shuffled, then sorted by length within windows of up to 50 batches (transformers'
    `get_length_grouped_indices`, what its Trainer's `group_by_length` uses). Which rows share a batch
    changes, and so may the results, within the seed-to-seed noise. The order is a function of (seed, epoch):
    `set_epoch` (called by the loop, and by accelerate) makes a resumed run see the same batches.

    lengths: the rows' token counts (len(input_ids)), in dataset order."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        # (seed, epoch) → one generator seed, without the collisions of seed + epoch
        seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def _lengths(dataset) -> list[int]:
    """Each row's token count, in dataset order."""
    return [len(ids) for ids in dataset["input_ids"]]


def _by_length(dataset):
    """The rows of a tokenized split, shortest first (a stable sort: equal lengths keep the file order)."""
    lengths = _lengths(dataset)
    return dataset.select(sorted(range(len(lengths)), key=lengths.__getitem__))
