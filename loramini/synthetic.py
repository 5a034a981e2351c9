"""Synthetic tasks made offline, on which rank matters: a teacher with a *planted* rank-k update.

The world (fixed by a seed):

    words      V pseudo-words ("kamo", "tivu", ...), a word-level tokenizer trained on them locally
    E          teacher word embeddings, V × d (d = 16)
    x          a sentence's bag of embeddings, Σ E[w] / sqrt(len)                     (d,)
    W0         the "pretraining" map, m × d (m = 8): what the base model already knows
    ΔW = U Vᵀ  the planted update, rank k, with Vᵀ reading d-directions that W0 ignores
    z          = (W0 + ΔW) x                                                          (m,)
    s(x)       = wᵀ tanh(z): a sentence's score

Tasks built on it (columns follow GLUE, so the same tokenization and training path runs):

    "synthetic"             single sentence, label = s(x) > median                 (like SST-2)
    "synthetic-pair"        two sentences,   label = s(x1) + s(x2) > median        (like MRPC)
    "synthetic-regression"  two sentences,   score = 5·sigmoid(standardised s(x1) + s(x2)) ∈ [0, 5]
                                                                                     (like STS-B)
    "synthetic-rank"        single sentence, see below: the one where rank matters

The base model is "pretrained" (`tiny_pretrained`: seconds of full training of the tiny RoBERTa, where
every token's output regresses its word's E[w] and the <s> output regresses W0 x), so its sentence
summary knows W0 x but not the k directions the update adds, while its token features still hold them.
What this teaches, measured on the tiny model (3 epochs, 2,000 rows, one thread):
the frozen base with a trained head reaches only ~0.58 accuracy (chance 0.5), adapters reach ~0.85-0.90,
so the update must come from the adapters. But accuracy vs r is flat on these three (r=1 already ~0.88):
the label is a threshold of a nearly linear score, so one direction stands in for all k.

    "synthetic-rank"        single sentence, label = ‖(W0 + U Vᵀ) x‖₁ > median, U with k equal singular
                            values, and a base pretrained to give |W0 x| through a linear read-out of <s>

is the task where rank matters: the score needs all k directions and the nonlinearity sits in the frozen
encoder, so each direction gets its own gradient. Measured by benchmarks/accuracy_vs_params.py (tiny model,
2 epochs, 2,000 rows, tuned rates, mean of 3 seeds; benchmarks/results/accuracy-vs-params-smoke.json):
LoRA-Mini (a = b = 32) r = 1, 2, 4 → 0.692, 0.718, 0.732; PEFT LoRA r = 1, 2, 4 → 0.731, 0.747, 0.767; head
only 0.677 (95% intervals up to ±0.06: neighbouring ranks overlap). Its base pretrains 1,000 steps (~25 s
once, then cached), and the ceiling is low (~0.75-0.77): good for teaching how accuracy grows with r, not for
headline accuracy.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .tasks import TaskSpec

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4
SYNTHETIC_TASKS: dict[str, TaskSpec] = {
    "synthetic": TaskSpec("synthetic", ("sentence",), 2, "accuracy"),
    "synthetic-pair": TaskSpec("synthetic-pair", ("sentence1", "sentence2"), 2, "accuracy"),
    "synthetic-regression": TaskSpec("synthetic-regression", ("sentence1", "sentence2"), 1, "pearson_spearman"),
    "synthetic-rank": TaskSpec("synthetic-rank", ("sentence",), 2, "accuracy"),
}
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


def is_synthetic(name: str) -> bool:
    return isinstance(name, str) and name.lower() in SYNTHETIC_TASKS


@dataclass(frozen=True)
class Teacher:
    """The frozen teacher (made by `make_teacher(seed, rank)`): embeddings E (V × d), base map W0 (m × d), planted U (m × k), V (d × k), readout w (m)."""

    seed: int
    words: tuple[str, ...]
    E: np.ndarray
    W0: np.ndarray
    U: np.ndarray
    V: np.ndarray
    w: np.ndarray
    readout: str = "tanh"  # "abs" for the "synthetic-rank" world

    @property
    def rank(self) -> int:
        return self.U.shape[1]

    def bag(self, sentence: str) -> np.ndarray:
        """x = Σ E[word] / sqrt(len): the sentence's bag of embeddings, shape (d,)."""
        ids = [self._index[w] for w in sentence.split()]
        return self.E[ids].sum(0) / math.sqrt(len(ids))

    def base_features(self, sentence: str) -> np.ndarray:
        """W0 x (|W0 x| in the "abs" world), shape (m,): what pretraining teaches the base model."""
        z = self.W0 @ self.bag(sentence)
        return np.abs(z) if self.readout == "abs" else z

    def score(self, sentence: str) -> float:
        """s = wᵀ tanh((W0 + U Vᵀ) x), or s = ‖(W0 + U Vᵀ) x‖₁ in the "abs" world."""
        x = self.bag(sentence)
        z = self.W0 @ x + self.U @ (self.V.T @ x)
        return float(self.w @ (np.abs(z) if self.readout == "abs" else np.tanh(z)))

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}


def make_teacher(seed: int = 0, rank: int = 4, vocab_size: int = 256, d: int = 16, m: int = 8,
                 readout: str = "tanh") -> Teacher:
    """A random teacher whose update U Vᵀ has rank `rank` and reads directions W0 does not see.

    readout="abs" (the "synthetic-rank" world): U gets k equal singular values and w = 1, so the score
    ‖(W0 + U Vᵀ) x‖₁ needs every one of the k planted directions, and no single direction stands in for them.
    """
    if readout not in ("tanh", "abs"):
        raise ValueError(f"readout={readout!r}: choose 'tanh' or 'abs'.")
    if not 1 <= rank <= d - m:
        raise ValueError(f"rank={rank}: the planted update needs 1 <= rank <= d - m = {d - m}.")
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words = sorted({"".join(rng.choice(syllables, size=2)) for _ in range(4 * vocab_size)})
    words = tuple(rng.choice(words, size=vocab_size, replace=False).tolist())
    E = rng.standard_normal((vocab_size, d))
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))  # orthonormal directions of the embedding space
    W0 = rng.standard_normal((m, m)) @ basis[:, :m].T / math.sqrt(m)  # sees the first m directions only
    V = basis[:, m:m + rank]  # the planted update reads k directions W0 is blind to
    U = 1.5 * rng.standard_normal((m, rank))  # ... strongly enough that they matter
    w = rng.standard_normal(m)
    if readout == "abs":
        U, w = 1.5 * np.linalg.qr(U)[0], np.ones(m)  # same draws as above, so E, W0 and V are shared
    return Teacher(seed, words, E, W0, U, V, w, readout)


def make_tokenizer(texts, vocab_size: int | None = None, model_max_length: int = 128):
    """A word-level tokenizer trained locally on `texts`, with RoBERTa's special tokens and templates.

    Keeps the `vocab_size` most frequent words (None: all). Single: ``<s> A </s>``; pair:
    ``<s> A </s></s> B </s>``; ids <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4 as in RoBERTa.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS,
                                        **({"vocab_size": vocab_size} if vocab_size else {}))
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", model_max_length=model_max_length)


def _sentences(teacher: Teacher, rng: np.random.Generator, n: int, min_len: int = 6, max_len: int = 14) -> list[str]:
    return [" ".join(rng.choice(teacher.words, size=int(rng.integers(min_len, max_len + 1))))
            for _ in range(n)]


@dataclass
class SyntheticTask:
    """A synthetic task: `dataset` (DatasetDict "train"/"validation"), its `spec`, `tokenizer` and `teacher`."""

    spec: TaskSpec
    dataset: "datasets.DatasetDict"  # noqa: F821
    tokenizer: "transformers.PreTrainedTokenizerFast"  # noqa: F821
    teacher: Teacher


def make_synthetic(name: str = "synthetic", n_train: int = 2000, n_eval: int = 500, rank: int = 4,
                   seed: int = 0, max_train_samples: int | None = None) -> SyntheticTask:
    """Build synthetic task `name` ("synthetic", "synthetic-pair", "synthetic-regression", "synthetic-rank").

    The world (words, teacher) depends on `seed` and `rank` only, so all four share one tokenizer; the first
    three also share one pretrained base (`tiny_pretrained`; "synthetic-rank" pretrains its own read-out).
    Labels: int 0/1, or a float in [0, 5].
    """
    from datasets import Dataset, DatasetDict

    if not is_synthetic(name):
        raise ValueError(f"Unknown synthetic task {name!r}: choose one of {sorted(SYNTHETIC_TASKS)}.")
    spec = SYNTHETIC_TASKS[name.lower()]
    if max_train_samples is not None:
        n_train = min(n_train, int(max_train_samples))
    teacher = make_teacher(seed=seed, rank=rank, readout="abs" if spec.name == "synthetic-rank" else "tanh")
    rng = np.random.default_rng([seed, rank, list(SYNTHETIC_TASKS).index(spec.name)])
    splits = {}
    for split, n in (("train", n_train), ("validation", n_eval)):
        columns = {field: _sentences(teacher, rng, n) for field in spec.text_fields}
        scores = sum(np.array([teacher.score(s) for s in columns[f]]) for f in spec.text_fields)
        splits[split] = (columns, scores)
    train_scores = splits["train"][1]
    center, spread = float(np.median(train_scores)), float(train_scores.std()) or 1.0  # from train only
    out = {}
    for split, (columns, scores) in splits.items():
        if spec.is_regression:
            labels = (5.0 / (1.0 + np.exp(-1.5 * (scores - center) / spread))).astype(np.float32).tolist()
        else:
            labels = (scores > center).astype(np.int64).tolist()
        out[split] = Dataset.from_dict({**columns, "label": labels})
    return SyntheticTask(spec, DatasetDict(out), make_tokenizer([" ".join(teacher.words)]), teacher)


@functools.lru_cache(maxsize=4)
def _pretrained_encoder(seed: int, rank: int, steps: int, readout: str = "tanh") -> dict[str, torch.Tensor]:
    """The pretrained encoder's weights: from memory, from the disk cache, or trained now (then cached).

    The disk cache (env LORAMINI_CACHE, default ~/.cache/loramini) saves the few seconds of pretraining
    in every new process; the result is deterministic, so a cached copy equals a fresh one.
    """
    from safetensors.torch import load_file, save_file

    from .io import atomic_write

    path = encoder_cache_path(seed, rank, steps, readout)
    if path.is_file():
        try:
            return load_file(str(path))
        except Exception:  # a damaged cache file: train again and overwrite it
            pass
    weights = _pretrain_encoder(seed, rank, steps, readout)
    try:
        atomic_write(path, lambda tmp: save_file(weights, tmp))
    except OSError:  # a read-only home: no cache, still correct
        pass
    return weights


def encoder_cache_path(seed: int, rank: int, steps: int, readout: str = "tanh") -> Path:
    """The disk-cache file of one pretrained encoder (env LORAMINI_CACHE, default ~/.cache/loramini)."""
    cache = Path(os.environ.get("LORAMINI_CACHE") or Path.home() / ".cache" / "loramini")
    world = "" if readout == "tanh" else f"-{readout}"
    return cache / f"tiny-synthetic{world}-seed{seed}-rank{rank}-steps{steps}-torch{torch.__version__}.safetensors"


def _pretrain_encoder(seed: int, rank: int, steps: int, readout: str = "tanh") -> dict[str, torch.Tensor]:
    """Full-train a tiny RoBERTa on the world (not on the update); returns its encoder weights.

    Two targets, like a language model's pretraining gives word features and a sentence summary:
    every token's output regresses its word's teacher embedding E[w] (so the words' features exist in
    the encoder), and the <s> output regresses W0 x (what the base "knows" about a sentence). In the "abs"
    world the <s> output must give |W0 x| through a *linear* probe, so the nonlinearity the score needs
    sits in the frozen encoder and each planted direction gets its own gradient signal.
    """
    from .models import tiny_roberta

    teacher = make_teacher(seed=seed, rank=rank, readout=readout)
    tokenizer = make_tokenizer([" ".join(teacher.words)])
    m, d = teacher.W0.shape
    rng = np.random.default_rng([seed, rank, 99])
    sentences = _sentences(teacher, rng, 32 * steps)
    targets = torch.tensor(np.stack([teacher.base_features(s) for s in sentences]), dtype=torch.float32)
    targets = (targets - targets.mean(0)) / targets.std(0)
    # E by token id (special tokens: zeros), so token targets are one lookup.
    vocab = tokenizer.get_vocab()
    word_targets = torch.zeros(len(tokenizer), d)
    for i, word in enumerate(teacher.words):
        word_targets[vocab[word]] = torch.tensor(teacher.E[i], dtype=torch.float32)
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread (and far faster on a busy machine)
    model = tiny_roberta(num_labels=m, seed=seed, vocab_size=len(tokenizer), problem_type="regression").train()
    token_probe = nn.Linear(model.config.hidden_size, d)
    # "abs" world: <s> must give |W0 x| through a linear read-out (made only there: it draws random numbers)
    probes = [token_probe] + ([summary_probe := nn.Linear(model.config.hidden_size, m)] if readout == "abs" else [])
    optimizer = torch.optim.AdamW([*model.parameters(), *(p for probe in probes for p in probe.parameters())], lr=2e-3)
    for step in range(steps):
        rows = slice(32 * step, 32 * (step + 1))
        batch = tokenizer(sentences[rows], padding=True, return_tensors="pt")
        out = model(**batch, labels=targets[rows], output_hidden_states=True)
        hidden, mask = out.hidden_states[-1], batch["attention_mask"].bool()
        token_loss = F.mse_loss(token_probe(hidden[mask]), word_targets[batch["input_ids"][mask]])
        summary_loss = F.mse_loss(summary_probe(hidden[:, 0]), targets[rows]) if readout == "abs" else out.loss
        (summary_loss + token_loss).backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.set_rng_state(rng_state)  # pretraining leaves the caller's random stream (and threads) untouched
    torch.set_num_threads(threads)
    return {k: v.detach().clone().contiguous() for k, v in model.roberta.state_dict().items()}


def tiny_pretrained(task: SyntheticTask | None = None, num_labels: int | None = None, seed: int = 0,
                    pretrain_steps: int | None = None):
    """A tiny RoBERTa whose encoder was "pretrained" on the task's world (W0 features), with a fresh head.

    The encoder is trained once per process (a few seconds on a CPU) and cached; the head is new
    (seeded by `seed`). Without `task`, the world of `make_synthetic()`'s defaults is used.
    """
    from .models import tiny_roberta

    task = task or make_synthetic()
    num_labels = task.spec.num_labels if num_labels is None else num_labels
    readout = task.teacher.readout
    steps = pretrain_steps or (1000 if readout == "abs" else 300)  # the |W0 x| summary takes longer to learn
    key = (task.teacher.seed, task.teacher.rank, steps, readout)
    encoder = _pretrained_encoder(*key)
    model = tiny_roberta(num_labels=num_labels, seed=seed, vocab_size=len(task.tokenizer))
    try:
        model.roberta.load_state_dict(encoder)
    except RuntimeError:  # a damaged cache file (other keys or shapes): drop it and pretrain again
        _pretrained_encoder.cache_clear()
        encoder_cache_path(*key).unlink(missing_ok=True)
        encoder = _pretrained_encoder(*key)
        model = tiny_roberta(num_labels=num_labels, seed=seed, vocab_size=len(task.tokenizer))  # the same draws
        model.roberta.load_state_dict(encoder)
    return model

