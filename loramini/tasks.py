"""The task table: what each GLUE task (and each synthetic task) looks like to the rest of the package.

A `TaskSpec` says which text columns to feed the tokenizer, how many labels there are (1 = regression),
which metric is official, and which validation splits to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class TaskSpec:
    """How to read, tokenize and score one task.

    name:         short name ("sst2", "stsb", "synthetic", ...)
    text_fields:  one column (single sentence) or two (sentence pair)
    num_labels:   classes; 1 means regression (a float label)
    metric:       the official metric: "accuracy", "f1", "matthews", "pearson_spearman"
    eval_splits:  validation split names to report (MNLI has matched and mismatched)
    glue_dir:     folder name in GLUE's original TSV layout ("SST-2"), None for synthetic tasks
    """

    name: str
    text_fields: tuple[str, ...]
    num_labels: int
    metric: str
    eval_splits: tuple[str, ...] = ("validation",)
    glue_dir: Optional[str] = None

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2


GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec("cola", ("sentence",), 2, "matthews", glue_dir="CoLA"),
    "sst2": TaskSpec("sst2", ("sentence",), 2, "accuracy", glue_dir="SST-2"),
    "mrpc": TaskSpec("mrpc", ("sentence1", "sentence2"), 2, "f1", glue_dir="MRPC"),
    "qqp": TaskSpec("qqp", ("question1", "question2"), 2, "f1", glue_dir="QQP"),
    "stsb": TaskSpec("stsb", ("sentence1", "sentence2"), 1, "pearson_spearman", glue_dir="STS-B"),
    "mnli": TaskSpec("mnli", ("premise", "hypothesis"), 3, "accuracy",
                     eval_splits=("validation_matched", "validation_mismatched"), glue_dir="MNLI"),
    "qnli": TaskSpec("qnli", ("question", "sentence"), 2, "accuracy", glue_dir="QNLI"),
    "rte": TaskSpec("rte", ("sentence1", "sentence2"), 2, "accuracy", glue_dir="RTE"),
    "wnli": TaskSpec("wnli", ("sentence1", "sentence2"), 2, "accuracy", glue_dir="WNLI"),
}


def get_task(name: str) -> TaskSpec:
    """The spec of GLUE task `name` (case-insensitive; "sst-2" and "sst2" both work)."""
    key = name.lower().replace("-", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"Unknown task {name!r}: choose one of {sorted(GLUE_TASKS)} or 'synthetic'.")
    return GLUE_TASKS[key]


def as_task(task, max_train_samples=None):
    """A synthetic task's name → its `SyntheticTask` (built here, the one place); any other task as it is."""
    from .synthetic import is_synthetic, make_synthetic

    if isinstance(task, str) and is_synthetic(task):
        return make_synthetic(task, max_train_samples=max_train_samples)
    return task


def load_task(task, tokenizer=None, data_dir=None, max_train_samples=None, seed=0):
    """(DatasetDict, TaskSpec, tokenizer or None) for a task name, a `SyntheticTask` or (DatasetDict, TaskSpec)."""
    from .synthetic import SyntheticTask

    task = as_task(task, max_train_samples)
    if isinstance(task, SyntheticTask):
        return task.dataset, task.spec, tokenizer or task.tokenizer
    if isinstance(task, tuple) and len(task) == 2 and isinstance(task[1], TaskSpec):
        return task[0], task[1], tokenizer
    if isinstance(task, (str, TaskSpec)):
        from . import data

        spec = task if isinstance(task, TaskSpec) else get_task(task)
        return data.load_glue(spec, data_dir=data_dir, max_train_samples=max_train_samples, seed=seed), spec, tokenizer
    raise TypeError(f"task={task!r}: give a task name ('sst2', 'synthetic', ...), a SyntheticTask, "
                    f"or a (DatasetDict, TaskSpec) pair.")
