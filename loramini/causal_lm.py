"""Causal-LM fine-tuning data and evaluation: prompt/completion pairs, loss on the completion only.

A decoder (GPT-2, Llama, SmolLM2) learns a task as text: each row is a `prompt` and the `completion` that
should follow it. Training sees ``prompt + completion + eos`` and is scored only on the completion:

    tokens   [bos] Review: a gem . \\n Sentiment:  positive  <eos>  <pad> <pad>
    labels   -100  -100 ....................  -100  positive  <eos>  -100  -100

Labels are the input ids themselves (the model shifts them by one inside its loss); -100 marks what the
loss ignores: the prompt and the padding. The completion's eos is a label, so the model learns to stop,
even when the pad token *is* eos (GPT-2 and Llama tokenizers have no pad token; we use eos).

Data: your own JSONL/CSV file with fields `prompt` and `completion` (`load_pair_files`), or a GLUE task
rendered as text by a template (`as_text`, `TEMPLATES`):

    sst2   "Review: {sentence}\\nSentiment:"                        → " negative" / " positive"
    stsb   "Sentence 1: {sentence1}\\nSentence 2: {sentence2}\\nSame meaning?" → " no" / " yes"
           binarised: score >= 3.0 ("roughly equivalent" or closer in STS-B's 0-5 scale) is " yes"

Evaluation (`evaluate`), on a text split, in one place for the loop, the CLI and notebook 05:

    completion_loss  mean cross-entropy per completion token (eos included), the training loss's definition
    accuracy         label-word accuracy: the label word whose completion (word + eos) has the highest
                     log-likelihood, summed over its tokens, is the prediction (templated tasks only)
    exact_match      greedy generation (left-padded batch) equals the completion, whitespace stripped

Right padding for training and scoring (positions stay 0..n-1 for the real tokens), left padding for
generation (every row's next token sits at the last position).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn

IGNORE_INDEX = -100  # what torch's cross_entropy (and every HF causal-LM loss) skips
PAIR_FIELDS = ("prompt", "completion")


# ---------------------------------------------------------------------------------------------------
# Templates: GLUE tasks as text


@dataclass(frozen=True)
class TextTemplate:
    """How a GLUE row becomes (prompt, completion): `prompt` formatted with the row's text fields, and
    `label_words[label]` as the completion. `threshold`: regression tasks are binarised, label = score >= it."""

    prompt: str
    label_words: tuple[str, ...]
    threshold: Optional[float] = None

    def label_of(self, row: dict) -> int:
        return int(row["label"] >= self.threshold) if self.threshold is not None else int(row["label"])

    def render(self, row: dict) -> dict:
        """{"prompt": str, "completion": str, "label": int} for one GLUE row."""
        label = self.label_of(row)
        return {"prompt": self.prompt.format(**row), "completion": self.label_words[label], "label": label}


TEMPLATES = {
    "sst2": TextTemplate("Review: {sentence}\nSentiment:", (" negative", " positive")),
    "stsb": TextTemplate("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nSame meaning?", (" no", " yes"),
                         threshold=3.0),
}


def template_for(task: str) -> TextTemplate:
    """The template of GLUE task `task` (sst2, stsb), or one clear ValueError."""
    key = str(task).lower().replace("-", "")
    if key not in TEMPLATES:
        raise ValueError(f"No causal-LM text template for task {task!r}: choose one of {sorted(TEMPLATES)}, or give "
                         f"your own prompt/completion file (JSONL or CSV with fields 'prompt', 'completion').")
    return TEMPLATES[key]


def as_text(dsdict, task: str):
    """A GLUE DatasetDict (from `loramini.data.load_glue`) → the same splits with columns prompt, completion,
    label (the label word's index)."""
    from datasets import Value

    template = template_for(task)
    text = dsdict.map(template.render, remove_columns=next(iter(dsdict.values())).column_names,
                      desc="Rendering as text")
    return text.cast_column("label", Value("int64"))  # STS-B's float score column would otherwise keep its type


# ---------------------------------------------------------------------------------------------------
# Your own prompt/completion files


def read_pairs(path: Union[str, Path]) -> list[dict]:
    """Rows {"prompt": str, "completion": str} of a JSONL (.jsonl, .json: one object a line) or CSV file.

    A bad file raises one ValueError naming the file, the row (JSONL: line number; CSV: data row, the header
    not counted) and the field. Other fields are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give a JSONL or CSV file with fields 'prompt' and 'completion'.")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv"):
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use .jsonl (one JSON object a line) or .csv.")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(_csv_rows(f, path) if suffix == ".csv" else _jsonl_rows(f, path))
    if not rows:
        raise ValueError(f"{path}: no rows; each row needs a 'prompt' and a 'completion'.")
    return [_checked(row, path, n) for n, row in rows]


def _jsonl_rows(f, path: Path):
    for n, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, row {n}: not valid JSON ({err.msg}); write one object a line, "
                             f'e.g. {{"prompt": "...", "completion": "..."}}.') from None


def _csv_rows(f, path: Path):
    reader = csv.DictReader(f)
    missing = [c for c in PAIR_FIELDS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}, row 0 (header), field {missing[0]!r}: missing; the header must name "
                         f"'prompt' and 'completion' (found {reader.fieldnames}).")
    for n, row in enumerate(reader, start=1):
        yield n, row


def _checked(row, path: Path, n: int) -> dict:
    if not isinstance(row, dict):
        raise ValueError(f"{path}, row {n}: a {type(row).__name__}, not an object with 'prompt' and 'completion'.")
    for field in PAIR_FIELDS:
        value = row.get(field)
        if not isinstance(value, str) or (field == "completion" and not value.strip()):
            got = "missing" if value is None else f"{value!r} ({type(value).__name__})"
            raise ValueError(f"{path}, row {n}, field {field!r}: {got}; it must be a "
                             f"{'non-empty ' if field == 'completion' else ''}string.")
    return {field: row[field] for field in PAIR_FIELDS}


def load_pair_files(train_file, validation_file):
    """Your prompt/completion files as a DatasetDict "train" + "validation" (columns prompt, completion)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_list(read_pairs(path))
                        for split, path in (("train", train_file), ("validation", validation_file))})


def pairs_task(train_file, validation_file, name: str = "pairs"):
    """(DatasetDict, TaskSpec) of your prompt/completion files, the form `loramini.train.train` takes as `task`;
    scored by completion loss and exact match (there are no label words)."""
    from .tasks import TaskSpec

    return load_pair_files(train_file, validation_file), TaskSpec(name, ("prompt",), 0, "exact_match")


# ---------------------------------------------------------------------------------------------------
# Models and tokenizers


def is_causal_lm(model_or_path) -> bool:
    """True for a causal-LM module (`LlamaForCausalLM`, `GPT2LMHeadModel`, ...; also wrapped by PEFT) or a model
    folder/name whose config.json lists one: the classes transformers' `AutoModelForCausalLM` maps to."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from .models import hub_unreachable_reason

    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if isinstance(model_or_path, nn.Module):
        inner = getattr(model_or_path, "get_base_model", lambda: model_or_path)()
        return type(inner).__name__ in causal
    if not isinstance(model_or_path, (str, Path)) or str(model_or_path) == "tiny":
        return False
    try:  # a folder, or a hub name in the HF cache: no network
        architectures = AutoConfig.from_pretrained(model_or_path, local_files_only=True).architectures
    except (OSError, ValueError):
        if Path(model_or_path).is_dir() or hub_unreachable_reason() is not None:
            return False  # loading it will fail anyway, with the loader's own message
        try:
            architectures = AutoConfig.from_pretrained(model_or_path).architectures
        except (OSError, ValueError):
            return False
    architectures = architectures or []
    return any(a in causal for a in architectures)


def tiny_causal_lm(tokenizer, family: str = "llama", seed: int = 0, hidden: int = 64, layers: int = 2, **overrides):
    """A small random `LlamaForCausalLM` (q/k/v/o, gate/up/down: bias-free nn.Linear) or `GPT2LMHeadModel`
    (Conv1D c_attn, c_proj, c_fc) sized to `tokenizer`, built offline from a config, for tests and smoke mode."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    ensure_pad_token(tokenizer)
    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id, **overrides)
    torch.manual_seed(seed)
    if family == "llama":
        config = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **ids)
        return LlamaForCausalLM(config).eval()
    if family == "gpt2":
        config = GPT2Config(n_embd=hidden, n_layer=layers, n_head=4, n_positions=256, **ids)
        return GPT2LMHeadModel(config).eval()
    raise ValueError(f"tiny_causal_lm(family={family!r}): choose 'llama' or 'gpt2'.")


def ensure_pad_token(tokenizer, model: Optional[nn.Module] = None):
    """Give `tokenizer` a pad token (its eos) when it has none, and tell `model`'s config; returns the tokenizer."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{type(tokenizer).__name__} has neither a pad nor an eos token; set "
                             f"tokenizer.pad_token yourself.")
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def _bos(tokenizer) -> list[int]:
    """[bos id] if the tokenizer puts bos in front of a text on its own (Llama, our word-level one), else []."""
    bos = tokenizer.bos_token_id
    return [bos] if bos is not None and tokenizer("a").input_ids[:1] == [bos] else []


def encode_pair(tokenizer, prompt: str, completion: str, max_length: int) -> dict:
    """One row → {"input_ids", "attention_mask", "labels"}: lists of n <= max_length ints.

    ids = [bos] + prompt + completion + [eos]; labels = -100 on [bos] + prompt, the ids on completion + eos.
    Too long: the prompt loses tokens from its left (the end, next to the answer, matters most), then the
    completion from its right.
    """
    prompt_ids = _bos(tokenizer) + tokenizer(prompt, add_special_tokens=False).input_ids
    answer = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    answer = answer[:max_length - 1]  # keep at least one prompt token to predict the answer from
    prompt_ids = prompt_ids[max(0, len(prompt_ids) - (max_length - len(answer))):]
    ids = prompt_ids + answer
    return {"input_ids": ids, "attention_mask": [1] * len(ids),
            "labels": [IGNORE_INDEX] * len(prompt_ids) + answer}


def tokenize_pairs(dsdict, tokenizer, max_length: int = 128):
    """Every split's (prompt, completion) rows → input_ids, attention_mask, labels (unpadded lists)."""
    ensure_pad_token(tokenizer)

    def encode(row):
        return encode_pair(tokenizer, row["prompt"], row["completion"], max_length)

    return dsdict.map(encode, remove_columns=next(iter(dsdict.values())).column_names, desc="Tokenizing")


class CompletionCollator:
    """Pads rows of `encode_pair` to the batch's longest → tensors (batch, seq_len).

    input_ids are padded with the pad token, attention_mask with 0, labels with -100 (so padding never
    counts in the loss, even when pad == eos). padding_side "right" for training, "left" for generation.
    """

    def __init__(self, tokenizer, padding_side: str = "right"):
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side={padding_side!r}: choose 'right' or 'left'.")
        self.pad_id = ensure_pad_token(tokenizer).pad_token_id
        self.padding_side = padding_side

    def __call__(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        fill = {"input_ids": self.pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        batch = {}
        for key, pad in fill.items():
            if key not in rows[0]:
                continue
            padded = [self._pad(list(r[key]), [pad] * (longest - len(r[key]))) for r in rows]
            batch[key] = torch.tensor(padded, dtype=torch.long)
        return batch

    def _pad(self, values: list, padding: list) -> list:
        return values + padding if self.padding_side == "right" else padding + values


# ---------------------------------------------------------------------------------------------------
# Evaluation


def completion_logprobs(model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log p over each row's labelled tokens (batch,), number of those tokens (batch,)).

    batch: input_ids, attention_mask, labels (batch, seq_len), right-padded. Logits at position t predict
    the token at t + 1, hence the shift.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    targets = batch["labels"][:, 1:]                                        # (batch, seq_len - 1)
    mask = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1], dim=-1)                        # (batch, seq_len - 1, vocab)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(1), mask.sum(1)


def score_completions(model, tokenizer, prompts: Sequence[str], completions: Sequence[str],
                      batch_size: int = 16, max_length: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-likelihood of each completion (+ eos) after its prompt: (sum over its tokens (N,), token counts (N,))."""
    collate = CompletionCollator(tokenizer, "right")
    device = next(model.parameters()).device
    sums, counts = [], []
    for start in range(0, len(prompts), batch_size):
        rows = [encode_pair(tokenizer, p, c, max_length)
                for p, c in zip(prompts[start:start + batch_size], completions[start:start + batch_size])]
        batch = {k: v.to(device) for k, v in collate(rows).items()}
        with torch.no_grad():
            s, n = completion_logprobs(model, batch)
        sums.append(s.cpu())
        counts.append(n.cpu())
    return torch.cat(sums), torch.cat(counts)


def label_word_scores(model, tokenizer, prompts: Sequence[str], label_words: Sequence[str],
                      **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-likelihood of every label word after every prompt (N, num_words), token counts (N, num_words))."""
    scored = [score_completions(model, tokenizer, prompts, [w] * len(prompts), **kwargs) for w in label_words]
    return torch.stack([s for s, _ in scored], 1), torch.stack([n for _, n in scored], 1)


def generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 4, batch_size: int = 16,
             max_length: int = 128) -> list[str]:
    """Greedy continuations of `prompts` (left-padded batches), decoded without special tokens."""
    collate = CompletionCollator(tokenizer, "left")
    device = next(model.parameters()).device
    texts = []
    for start in range(0, len(prompts), batch_size):
        rows = [_prompt_row(tokenizer, p, max_length) for p in prompts[start:start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(rows).items()}
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=collate.pad_id, eos_token_id=tokenizer.eos_token_id)
        texts += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return texts


def _prompt_row(tokenizer, prompt: str, max_length: int) -> dict:
    ids = (_bos(tokenizer) + tokenizer(prompt, add_special_tokens=False).input_ids)[-max_length:]
    return {"input_ids": ids, "attention_mask": [1] * len(ids)}


def evaluate(model, tokenizer, rows, label_words: Optional[Sequence[str]] = None, batch_size: int = 16,
             max_length: int = 128, max_new_tokens: Optional[int] = None) -> dict[str, float]:
    """completion_loss, exact_match and (with `label_words` and a "label" column) accuracy on `rows`.

    rows: a Dataset (or list of dicts) with prompt, completion (and label: the index of the right label word).
    max_new_tokens: generation length (default: the longest completion's tokens + 1, for eos).
    """
    was_training = model.training
    model.eval()
    column = (lambda k: list(rows[k])) if hasattr(rows, "column_names") else (lambda k: [r[k] for r in rows])
    prompts, targets = column("prompt"), column("completion")
    opts = dict(batch_size=batch_size, max_length=max_length)
    results = {}
    if label_words is not None:  # the right label word's score is the completion's: one pass serves both
        labels = torch.as_tensor(column("label"))
        scores, counts = label_word_scores(model, tokenizer, prompts, label_words, **opts)
        results["accuracy"] = float((scores.argmax(1) == labels).float().mean())
        sums, counts = scores.gather(1, labels[:, None]), counts.gather(1, labels[:, None])
    else:
        sums, counts = score_completions(model, tokenizer, prompts, targets, **opts)
    results["completion_loss"] = float(-sums.sum() / counts.sum())
    longest = max(len(tokenizer(t, add_special_tokens=False).input_ids) for t in targets)
    generated = generate(model, tokenizer, prompts, max_new_tokens or longest + 1, **opts)
    results["exact_match"] = exact_match(generated, targets)
    model.train(was_training)
    return results


def exact_match(generated: Sequence[str], targets: Sequence[str]) -> float:
    """Fraction of generations equal to their target, leading/trailing whitespace ignored."""
    hits = [g.strip() == t.strip() for g, t in zip(generated, targets, strict=True)]
    return sum(hits) / len(hits) if hits else math.nan


# ---------------------------------------------------------------------------------------------------
# The training loop's causal-LM branch (loramini.train calls these when the model is a causal LM)


def load_causal_model(name_or_path, dtype=torch.float32):
    """(AutoModelForCausalLM, AutoTokenizer) from a hub name or local folder, with a pad token set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
    ensure_pad_token(tokenizer, model)
    return model, tokenizer


@dataclass
class CausalEval:
    """The held-out side of a causal-LM run: the text splits and how to score them (`evaluate` per split).

    metric_name: "accuracy" (label-word) for templated tasks, "exact_match" for your own prompt/completion pairs.
    """

    tokenizer: object
    splits: dict  # {split name: Dataset with prompt, completion (, label)}
    label_words: Optional[tuple[str, ...]]
    batch_size: int = 16
    max_length: int = 128

    @property
    def metric_name(self) -> str:
        return "accuracy" if self.label_words is not None else "exact_match"

    def __call__(self, model) -> dict[str, dict[str, float]]:
        return {split: evaluate(model, self.tokenizer, rows, self.label_words, self.batch_size, self.max_length)
                for split, rows in self.splits.items()}


def text_task(dataset, task_name: str):
    """(text DatasetDict, label words or None): GLUE columns are rendered by the task's template; a dataset that
    already has prompt/completion columns (`load_pair_files`) is used as it is."""
    columns = next(iter(dataset.values())).column_names
    if "prompt" in columns and "completion" in columns:
        words = tuple(TEMPLATES[task_name].label_words) if task_name in TEMPLATES and "label" in columns else None
        return dataset, words
    return as_text(dataset, task_name), template_for(task_name).label_words


def causal_batches(dataset, task_name: str, tokenizer, config):
    """(train DataLoader of right-padded completion-only batches, CausalEval of the other splits).

    config: a TrainConfig (batch_size, eval_batch_size, max_length, seed, group_by_length are read)."""
    from .data import train_loader

    ensure_pad_token(tokenizer)
    text, words = text_task(dataset, task_name)
    tokenized = tokenize_pairs(text, tokenizer, config.max_length)
    train = train_loader(tokenized["train"], config.batch_size, CompletionCollator(tokenizer), config.seed,
                         config.group_by_length)
    evals = {split: rows for split, rows in text.items() if split != "train"}
    return train, CausalEval(tokenizer, evals, words, config.eval_batch_size, config.max_length)
