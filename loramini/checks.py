"""Checks for the coursework exercises: each prints one ✓ line when right, and when wrong raises `CheckFailed`
with a hint that points at the mistake (which factor, which term), not just "wrong".

    from loramini import checks
    checks.check_loramini_count(my_count, a=32, b=32, r=8)

Rules every check follows:

* **No answer key.** Success prints "✓ <what was checked>", never the expected value.
* **Exact integers.** A count must equal the right count exactly (an off-by-one fails); ratios and other real
  numbers are compared with a relative tolerance of 1e-6.
* **Harmless dtypes are fine.** A float64 (or numpy, or 0-d tensor) answer gets the same verdict as a float32 one.
* **Independent references.** A reference is computed in float64 from the layer's factors, copied before the
  student's code runs, never with the layer's own methods (which a student could have patched), and the
  student gets a freshly built layer (no `.grad` left from an earlier backward).
* **No library shortcuts.** Where the exercise is to write the code, the package's own implementation
  (`LoRAMiniLinear.forward`, `adapter_forward`, `delta_weight`, `merge`, …) raises while the student's
  function runs.
* **A typed number cannot stand in for a computation.** Where the answer depends on the model, the exercise asks
  for a function, tried on models the check builds (so it holds for whichever model the student ran); a table of
  training runs is re-derived by training some of its rows again (`fixed=` in the run-table checks).
* **Hints teach, they do not hand out the answer.** A hint names the mistake and the idea to use (which factor,
  which term, which way round), never the expected value, shape or finished formula, so that trying a few
  answers against the hints does not replace working it out.
* **Grading mode** (`LORAMINI_GRADING=1` or `checks.grading_mode(True)`): hints stay terse and never contain a
  value, so a graded run reveals nothing (a few fixed phrases such as "above 1" or "n − 1" are not values).

In a notebook a failing check shows only its hint (see `CheckFailed._render_traceback_`), not a traceback.
The module keeps no state that a re-import would lose: `importlib.reload(checks)` gives fresh checks (a
grader does that to undo a student's monkeypatching).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import counting as _counting
from . import inject as _inject
from .layer import LoRAMiniFunction, LoRAMiniLinear

_NUMBER = re.compile(r"(?<![A-Za-z_\d])\d")  # a number, not a digit inside a name like W0 or float32
# Numbers that state a fact of the method, not a value of any answer: kept in grading mode.
_NOT_A_VALUE = re.compile(r"\b(?:above|below|larger than|smaller than) 1\b|n − 1|ddof=1|95%")
_GRADING = os.environ.get("LORAMINI_GRADING", "").strip().lower() not in ("", "0", "false", "no")


def grading_mode(on: Optional[bool] = None) -> bool:
    """Turn grading mode on or off (None: leave it); returns the current setting.

    In grading mode hints are terse and hold no numbers. The default comes from the environment variable
    `LORAMINI_GRADING` (1 = on)."""
    global _GRADING
    if on is not None:
        _GRADING = bool(on)
    return _GRADING


class CheckFailed(AssertionError):
    """A wrong answer; the message is the hint. (An AssertionError, so nbgrader marks the cell failed.)

    IPython renders it as the hint alone: the traceback through this module would only hide it."""

    def _render_traceback_(self) -> list[str]:
        return [f"✗ {line}" if i == 0 else f"  {line}" for i, line in enumerate(str(self).splitlines() or [""])]


# A re-import (importlib.reload) keeps the first CheckFailed class, so that `except CheckFailed` written
# against an earlier import still catches what the fresh checks raise.
CheckFailed = globals().get("_FIRST_CHECKFAILED", CheckFailed)
_FIRST_CHECKFAILED = CheckFailed


def _ok(message: str) -> None:
    # Returns None on purpose: an exercise cell ends with its check call, and a returned True would be echoed
    # by Jupyter under the ✓ line. The message says what was checked, never the expected value.
    print(f"✓ {message}")


def _fail(hint: str, terse: Optional[str] = None):
    """Raise CheckFailed(hint). In grading mode the terse form is used, and any hint holding a number is
    replaced by a generic one, so no value leaks (digits inside names such as W0 or float32, and the fixed
    phrases of `_NOT_A_VALUE` such as "above 1", are fine)."""
    if _GRADING:
        hint = terse if terse is not None else hint
        if _NUMBER.search(_NOT_A_VALUE.sub("", hint)):
            hint = "Not right yet. Re-read the exercise and check each term."
    raise CheckFailed(hint)


# ---------------------------------------------------------------- numbers
def _number(value):
    """A plain int or float from an answer (int, float, numpy scalar, 0-d tensor); None if it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, torch.Tensor):
        if torch.Tensor.numel(value) != 1:
            return None
        value = torch.Tensor.item(value)  # the base class's, whatever a subclass overrides
    elif hasattr(value, "item") and not isinstance(value, (int, float)):  # numpy scalars
        try:
            value = value.item()
        except (TypeError, ValueError):
            return None
    # The stored number itself, as a plain int or float: a subclass that claims to equal everything gets no say.
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return None


def _is(value, target) -> bool:
    """Integers exactly (30720.0 equals 30720, 30721 does not); real numbers to a relative 1e-6."""
    got = _number(value)
    if got is None:
        return False
    if isinstance(target, int) and not isinstance(target, bool):
        return got == target
    return math.isclose(got, float(target), rel_tol=1e-6, abs_tol=1e-12)


def _need_number(answer, name: str = "your answer") -> None:
    if _number(answer) is None:
        _fail(f"Set {name} to a single number; got {type(answer).__name__}.",
              "Set the answer to a single number.")


# ---------------------------------------------------------------- counting
def check_lora_count(answer, d_in: int, d_out: int, r: int) -> None:
    """Trainable numbers of one LoRA adapter on a d_in → d_out layer."""
    _need_number(answer)
    right = r * (d_in + d_out)
    if _is(answer, right):
        return _ok("LoRA's trainable count on this layer: r·(d_in + d_out).")
    if _is(answer, d_in * d_out):
        _fail("That is the full weight W0 (d_out × d_in): full fine-tuning, not LoRA. Count A (r × d_in) and B (d_out × r).")
    if _is(answer, r * d_in) or _is(answer, r * d_out):
        _fail("You counted only one factor. LoRA trains both A (r × d_in) and B (d_out × r).")
    if _is(answer, d_in + d_out):
        _fail("The factor r is missing: A has r rows and B has r columns.")
    if _number(answer) is not None and abs(_number(answer) - right) <= 2:
        _fail("Close, but a count must be exact: recount each factor's rows × columns.")
    _fail("Count each factor as rows × columns: A is r × d_in, B is d_out × r.")


def check_loramini_count(answer, a: int, b: int, r: int, d_in: Optional[int] = None, d_out: Optional[int] = None) -> None:
    """Trainable numbers of one LoRA-Mini adapter: A_train (r × a) + B_train (b × r)."""
    _need_number(answer)
    right = r * (a + b)
    if _is(answer, right):
        return _ok("LoRA-Mini's trainable count on this layer: r·(a + b).")
    if d_in is not None and d_out is not None:
        if _is(answer, r * (d_in + d_out)):
            _fail("That is LoRA's count. In LoRA-Mini only the inner factors train: A_train (r × a) and B_train (b × r).")
        if _is(answer, right + a * d_in + d_out * b):
            _fail("You included the aux factors A_aux (a × d_in) and B_aux (d_out × b): they are frozen, not trained.")
    if _is(answer, r * a) or _is(answer, r * b):
        _fail("One inner factor is missing: count both A_train (r × a) and B_train (b × r).")
    if _is(answer, a * b):
        _fail("a·b is the size of the product B_train·A_train, not the number of trained numbers: count each factor.")
    if _is(answer, a + b):
        _fail("The factor r is missing: A_train has r rows and B_train has r columns.")
    _fail("Count the two trained factors as rows × columns: A_train is r × a, B_train is b × r.")


def check_savings_ratio(answer, d_in: int, d_out: int, a: int, b: int) -> None:
    """How many times fewer trainable numbers LoRA-Mini has than LoRA on one layer (any r)."""
    _need_number(answer)
    right = (d_in + d_out) / (a + b)
    if _is(answer, right):
        return _ok("The saving (d_in + d_out)/(a + b): r cancels, so it does not depend on the rank.")
    if _is(answer, 1 / right):
        _fail("Upside down: divide LoRA's count by LoRA-Mini's, so the answer is larger than 1.")
    if _is(answer, d_in * d_out / (a * b)):
        _fail("Those are the areas d_in·d_out and a·b; the trained counts are sums: r·(d_in + d_out) and r·(a + b).")
    _fail("Write both counts with r in them and divide: r·(d_in + d_out) / (r·(a + b)).")


def check_adapter_bytes(answer, n_params: int, dtype: torch.dtype = torch.float32,
                        parts: Optional[dict] = None) -> None:
    """Bytes that `n_params` numbers take on disk in `dtype` (tensor data only, no header).

    `parts`: optional {name: count} of what the file holds (summing to n_params), so that leaving one out
    gets a hint naming it."""
    _need_number(answer)
    size = torch.tensor([], dtype=dtype).element_size()
    dtype_name = str(dtype).replace("torch.", "")
    right = n_params * size
    if _is(answer, right):
        return _ok("Bytes of the tensor data in this dtype: numbers × bytes per number.")
    for name, count in (parts or {}).items():
        if count != n_params and (_is(answer, (n_params - count) * size) or _is(answer, n_params - count)):
            _fail(f"You left out the {name} ({count:,} numbers): the file stores it too.",
                  f"You left out the {name}: the file stores it too.")
    if _is(answer, right * 8):
        _fail(f"That is bits, not bytes: a {dtype_name} number is {size * 8} bits, and a byte holds eight.",
              "That is bits, not bytes: a byte holds eight bits.")
    if size != 4 and (_is(answer, n_params * 4) or _is(answer, n_params * 32)):
        _fail(f"That is float32's size; a {dtype_name} number is smaller: its name says how many bits it has.",
              f"That is float32's size; check how many bytes a {dtype_name} number takes.")
    if _is(answer, n_params):
        _fail(f"That counts numbers, not bytes: each {dtype_name} number takes more than one byte.",
              f"Each {dtype_name} number takes more than one byte.")
    _fail(f"Bytes = numbers stored × bytes per number. How many bits has a {dtype_name} number (its name says), "
          f"and how many bits make a byte? (`torch.tensor([], dtype=...).element_size()` tells you too.)",
          f"Multiply the number count by the bytes per element of {dtype_name}.")


def check_model_count(answer, layers: dict, r: int, a: Optional[int] = None, b: Optional[int] = None,
                      n_blocks: int = 1) -> None:
    """Trainable adapter numbers of a whole model: `layers` maps each adapted layer of one block to
    (d_in, d_out), and the model has `n_blocks` identical blocks. LoRA when a and b are None, else LoRA-Mini."""
    _need_number(answer)
    mini = a is not None and b is not None
    per = {name: r * (a + b) if mini else r * (d_in + d_out) for name, (d_in, d_out) in layers.items()}
    right = n_blocks * sum(per.values())
    method = "LoRA-Mini" if mini else "LoRA"
    if _is(answer, right):
        return _ok(f"{method}'s adapter count over every adapted layer of every block.")
    names = list(layers)
    missing = [set(names[i] for i in range(len(names)) if mask >> i & 1) for mask in range(1, 2 ** len(names) - 1)]
    missing = [m for m in missing if _is(answer, right - n_blocks * sum(per[n] for n in m))]
    one_block = n_blocks > 1 and _is(answer, right // n_blocks)
    if one_block and missing:  # e.g. 2 blocks of 2 layers: one block and one layer per block give the same number
        _fail("That is a fraction of the count, and two mistakes give it: counting one block only, or leaving "
              f"adapted layers out of each block. Count every adapted layer ({', '.join(names)}) in every block.",
              "That is a fraction of the count: count every adapted layer in every block.")
    if one_block:
        _fail(f"That is one block. The model stacks {n_blocks} identical blocks: multiply by {n_blocks}.",
              "That is one block; the model stacks several identical blocks.")
    if missing:
        if mini:  # every layer counts r·(a + b), so only the number of layers can be told apart
            counted = len(names) - len(missing[0])
            _fail(f"You counted {counted} adapted layer{'' if counted == 1 else 's'} per block, but {len(names)} are "
                  f"adapted: {', '.join(names)}.",
                  "Some adapted layers per block are missing from your sum.")
        if len(missing) == 1:
            _fail(f"Missing from every block: {', '.join(sorted(missing[0]))}. Each adapted layer gets its own adapter.")
        _fail(f"Some adapted layers are missing from your sum; {len(names)} layers per block are adapted: {', '.join(names)}.",
              "Some adapted layers per block are missing from your sum.")
    lora_total = n_blocks * sum(r * (d_in + d_out) for d_in, d_out in layers.values())
    if mini and _is(answer, lora_total):
        _fail("That is LoRA's count. LoRA-Mini trains only A_train (r × a) and B_train (b × r) in each layer.")
    if mini and _is(answer, right + n_blocks * sum(a * d_in + d_out * b for d_in, d_out in layers.values())):
        _fail("You included the aux factors A_aux and B_aux: they are frozen buffers, not trained numbers.")
    if _is(answer, n_blocks * sum(d_in * d_out for d_in, d_out in layers.values())):
        _fail("That is the size of the weight matrices themselves (full fine-tuning of these layers).")
    if _is(answer, right // r):
        _fail("The factor r is missing from the per-layer formula.")
    got = _number(answer)
    if got is not None and 0 < abs(got - right) <= 2 * n_blocks:
        _fail("Close, but a count must be exact: recount each layer's factors.")
    shapes = ", ".join(f"{n}: {d_in}→{d_out}" for n, (d_in, d_out) in layers.items())
    formula = "r·(a + b)" if mini else "r·(d_in + d_out)"
    _fail(f"Count layer by layer: {formula} for each of ({shapes}), sum over the block, times {n_blocks} blocks.",
          f"Count layer by layer with {formula}, sum over the block, then over the blocks.")


def check_head_count(answer, hidden: int, num_labels: int) -> None:
    """Parameters of RoBERTa's classification head: dense (hidden → hidden) then out_proj (hidden → num_labels),
    both with biases."""
    _need_number(answer)
    dense_w, out_w = hidden * hidden, hidden * num_labels
    right = dense_w + hidden + out_w + num_labels
    if _is(answer, right):
        return _ok("Head count: dense and out_proj, weights and biases; every method trains it in full.")
    if _is(answer, dense_w + out_w):
        _fail("Both biases are missing: each linear layer adds one bias per output (hidden for dense, "
              "num_labels for out_proj).")
    if _is(answer, dense_w + out_w + num_labels):
        _fail(f"The dense layer's bias is missing: dense ({hidden}→{hidden}) has {hidden} bias numbers too.",
              "The dense layer's bias is missing.")
    if _is(answer, dense_w + hidden + out_w):
        _fail(f"out_proj's bias is missing: one bias number per label ({num_labels}).",
              "out_proj's bias is missing: one bias number per label.")
    if _is(answer, out_w + num_labels) or _is(answer, out_w):
        _fail(f"You counted only out_proj. RoBERTa's head first applies a dense {hidden}→{hidden} layer (with bias).",
              "You counted only out_proj; the head first applies a dense layer (with bias).")
    if _is(answer, dense_w + hidden):
        _fail(f"You counted only the dense layer; out_proj ({hidden}→{num_labels}, with bias) follows it.",
              "You counted only the dense layer; out_proj (with bias) follows it.")
    for labels in sorted({1, 2, 3} - {num_labels}):
        if _is(answer, dense_w + hidden + hidden * labels + labels):
            _fail(f"Right structure, but the task has {num_labels} labels, not {labels}: out_proj has one output per label.",
                  "Right structure, but check the number of labels: out_proj has one output per label.")
    _fail("RoBERTa's head is two linear layers, dense (hidden → hidden) then out_proj (hidden → one output per "
          "label). Count each one's weight (outputs × inputs) and its bias (one per output), then add the four.",
          "Add the two linear layers, dense and out_proj, each with its weight and its bias.")


# ---------------------------------------------------------------- shapes, rank, cost
def check_factor_shapes(shapes: dict, d_in: int, d_out: int, r: int, a: int, b: int) -> None:
    """`shapes`: {"A_aux": (…), "A_train": (…), "B_train": (…), "B_aux": (…)}."""
    if not isinstance(shapes, dict):
        _fail(f"Give a dict of shapes, e.g. {{'A_aux': (rows, cols), ...}}; got {type(shapes).__name__}.",
              "Give a dict mapping each factor's name to its (rows, columns).")
    want = {"A_aux": (a, d_in), "A_train": (r, a), "B_train": (b, r), "B_aux": (d_out, b)}
    for name, shape in want.items():
        if name not in shapes:
            _fail(f"Give the shape of {name} too.")
        try:
            got = tuple(int(v) for v in shapes[name])
        except (TypeError, ValueError):
            _fail(f"The shape of {name} must be a pair (rows, columns).")
        if got == shape[::-1] and shape[0] != shape[1]:
            _fail(f"{name} is transposed: a factor that maps n numbers to m numbers is an (m, n) matrix, "
                  f"(outputs, inputs).", f"{name} is transposed: a factor is (outputs, inputs).")
        if got != shape:
            _fail(f"{name} has the wrong shape {got}. Follow one token through the chain x → A_aux → A_train → "
                  f"B_train → B_aux → y: which width goes into {name}, which comes out? Its shape is (outputs, inputs).",
                  f"{name} has the wrong shape. Follow x → A_aux → A_train → B_train → B_aux.")
    return _ok("All four factor shapes: (a×d_in), (r×a), (b×r), (d_out×b).")


def check_rank_bound(answer, r: int, a: int, b: int) -> None:
    _need_number(answer)
    right = min(r, a, b)
    if _is(answer, right):
        return _ok("The rank bound min(r, a, b): the narrowest width limits the rank.")
    if _is(answer, r):
        _fail("r is only one of the bottlenecks: ΔW also passes through widths a and b.")
    if _is(answer, max(r, a, b)) or _is(answer, a) or _is(answer, b):
        _fail("A product can have no larger rank than its narrowest inner width: which of r, a, b is smallest?")
    _fail("A product of matrices has rank at most the smallest inner width: which widths does ΔW pass through?")


def check_extra_flops(answer, d_in: int, d_out: int, r: int, a: int, b: int) -> None:
    """Extra multiply-adds per token of the adapter path x → A_aux → A_train → B_train → B_aux."""
    _need_number(answer)
    right = d_in * a + a * r + r * b + b * d_out
    if _is(answer, right):
        return _ok("Per-token multiply-adds of the plain chain: one m·n term per factor.")
    if _is(answer, 2 * right):
        _fail("That counts FLOPs (2 per multiply-add); the question asks for multiply-adds.",
              "That counts FLOPs (two per multiply-add); the question asks for multiply-adds.")
    if _is(answer, r * (d_in + d_out)):
        _fail("That is LoRA's extra cost. LoRA-Mini's path has four matrix-vector products: add the two aux ones.")
    if _is(answer, r * (a + b)):
        _fail("You counted only the trained factors; the frozen A_aux and B_aux are applied in every forward pass too.")
    if _is(answer, d_in * a + a * r + r * d_out):
        _fail("That is the cost with B_aux·B_train pre-multiplied; the question asks for the plain four-step chain.")
    _fail("Add one product per factor: a vector of width n times an (m × n) matrix costs m·n multiply-adds.")


def check_plateau_prediction(answer, d_in: int, d_out: int, a: int, b: int) -> None:
    """The predicted relative error of LoRA-Mini on a generic target: the energy outside its random
    subspaces, 1 − (a/d_in)(b/d_out)."""
    _need_number(answer)
    right = 1 - (a * b) / (d_in * d_out)
    if _is(answer, right):
        return _ok("Predicted plateau 1 − ab/(d_in·d_out): the share of a random target outside the subspaces.")
    if _is(answer, 1 - right):
        _fail("That is the share LoRA-Mini *can* reach; the error is what is left: one minus it.")
    if _is(answer, 1 - a / d_in) or _is(answer, 1 - b / d_out):
        _fail("Both subspaces restrict it: the reachable share is (a/d_in)·(b/d_out), the product of the two.")
    if _is(answer, 1 - (a + b) / (d_in + d_out)):
        _fail("The two restrictions multiply, not add: the reachable share is (a/d_in)·(b/d_out).")
    _fail("A random direction keeps a fraction a/d_in of its energy in the input subspace and b/d_out in the "
          "output one; the error is what stays outside.")


# ---------------------------------------------------------------- code the students write
_SHORTCUT = "write it from the factors, not with the layer's own method"


@contextlib.contextmanager
def _blocked(targets: list[tuple[object, str]], message: str):
    """While the block runs, each (owner, attribute) raises CheckFailed(message) when called."""
    saved = []

    def refuse(*args, **kwargs):
        raise CheckFailed(message)

    try:
        for owner, name in targets:
            had = name in vars(owner)
            saved.append((owner, name, had, vars(owner).get(name)))
            setattr(owner, name, staticmethod(refuse) if isinstance(owner, type) else refuse)
        yield
    finally:
        for owner, name, had, original in reversed(saved):
            if had:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


def _layer_methods() -> list[tuple[object, str]]:
    return [(LoRAMiniLinear, "forward"), (LoRAMiniLinear, "adapter_forward"), (LoRAMiniLinear, "chain"),
            (LoRAMiniLinear, "delta_weight"),
            (LoRAMiniLinear, "merge"), (LoRAMiniLinear, "unmerge"), (LoRAMiniFunction, "apply"),
            (_inject, "merge"), (_inject, "merge_and_unload")] + _package_level(["merge", "merge_and_unload"])


def _package_level(names: list[str]) -> list[tuple[object, str]]:
    import loramini  # the names re-exported at the top level are separate references

    return [(loramini, n) for n in names if hasattr(loramini, n)]


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's global generator for a block and restore it afterwards: a check must not change the
    random numbers of the notebook that calls it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _reference_layer(seed: int = 0, d_in: int = 12, d_out: int = 10, r: int = 3, a: int = 6, b: int = 5,
                     alpha: float = 6.0) -> LoRAMiniLinear:
    """A fresh layer with non-zero factors (scale = alpha / r = 2, so a missing scale shows)."""
    with _seeded(seed), torch.no_grad():
        base = nn.Linear(d_in, d_out)
        base.bias.normal_()  # a clearly non-zero bias, so that forgetting it shows
        layer = LoRAMiniLinear(base, r=r, a=a, b=b, alpha=alpha, name="check")
        layer.A_train.normal_()
        layer.B_train.normal_()
    return layer


def _factors(layer: LoRAMiniLinear) -> dict:
    """float64 copies of everything the formulas use, taken before the student's code runs."""
    f = {n: getattr(layer, n).detach().clone().double() for n in ("A_aux", "A_train", "B_train", "B_aux")}
    f["W0"] = layer.base.weight.detach().clone().double()
    f["bias"] = layer.base.bias.detach().clone().double() if layer.base.bias is not None else None
    f["scale"] = float(layer.scale)
    f["r"] = layer.r
    return f


def _ref_delta(f: dict) -> torch.Tensor:
    return f["scale"] * f["B_aux"] @ f["B_train"] @ f["A_train"] @ f["A_aux"]


def _ref_base(f: dict, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x.double(), f["W0"], f["bias"])


def _ref_update(f: dict, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x.double(), _ref_delta(f))


def _as_float64(got, what: str, shape: tuple) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        _fail(f"Return a tensor ({what}, shape {shape}); got {type(got).__name__}.",
              f"Return a tensor ({what}).")
    if got.is_complex():
        _fail("Return a real tensor.")
    return got.detach().to("cpu", torch.float64)


def _close(got: torch.Tensor, right: torch.Tensor, dtype: torch.dtype) -> bool:
    tol = 2e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4
    return got.shape == right.shape and torch.allclose(got, right, rtol=tol, atol=tol * right.abs().max().item())


def _unchanged(layer: LoRAMiniLinear, f: dict) -> None:
    now = _factors(layer)
    for n in ("A_aux", "A_train", "B_train", "B_aux", "W0"):
        if not torch.equal(now[n], f[n]):
            _fail(f"Your function changed the layer's {n}: compute the answer without modifying the layer.")


_SHAPES_ADVICE = "Check each product's shapes (x @ M.T applies M to rows; F.linear(x, M) does the same)."


def _call(fn: Callable, *args, advice: str = _SHAPES_ADVICE):
    """Run the student's function; a crash becomes a hint (NotImplementedError passes: the exercise is not done).
    `advice`: what to look at for this exercise (matrix shapes by default)."""
    try:
        return fn(*args)
    except (NotImplementedError, CheckFailed):
        raise
    except (RuntimeError, TypeError, ValueError, IndexError, AttributeError, KeyError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        _fail(f"Your function raised {type(err).__name__}: {first}. {advice}",
              f"Your function raised {type(err).__name__}. {advice}")


def _expect_shape(got: torch.Tensor, right: torch.Tensor, name: str, must: str) -> None:
    """Fail with a hint unless `got` has `right`'s shape; `must` names it, e.g. "B_train's shape (b, r)"."""
    if got.shape == right.T.shape and got.shape != right.shape:
        _fail(f"{name} is transposed: it must have {must} = {tuple(right.shape)}.",
              f"{name} is transposed: it must have {must}.")
    if got.shape != right.shape:
        _fail(f"{name} has shape {tuple(got.shape)}; it must have {must} = {tuple(right.shape)}.",
              f"{name} must have {must}.")


def _scale_mistakes(got, right, f: dict, dtype, missing_scale: str) -> None:
    """Fail with a hint when `got` is `right` without the scale alpha / r, or scaled by alpha instead."""
    if _close(got * f["scale"], right, dtype):
        _fail("Off by the scale factor: " + missing_scale)
    if _close(got, right * f["r"], dtype):
        _fail("You scaled by alpha; the scale is alpha / r (that is layer.scale).")


def check_delta_weight(delta_fn: Callable[[LoRAMiniLinear], torch.Tensor]) -> None:
    """`delta_fn(layer)` must return ΔW = scale · B_aux B_train A_train A_aux, shape (d_out, d_in)."""
    layer = _reference_layer()
    f = _factors(layer)
    right = _ref_delta(f)
    with _blocked(_layer_methods(), _SHORTCUT), torch.no_grad():
        raw = _call(delta_fn, layer)
    _unchanged(layer, f)
    got = _as_float64(raw, "ΔW", tuple(right.shape))
    dtype = raw.dtype
    _expect_shape(got, right, "ΔW", "the base weight's shape (d_out, d_in)")
    if _close(got, right, dtype):
        return _ok("ΔW = scale · B_aux B_train A_train A_aux, written from the factors.")
    _scale_mistakes(got, right, f, dtype, "multiply by layer.scale (alpha / r).")
    if _close(got + f["W0"], right, dtype) or _close(got, right + f["W0"], dtype):
        _fail("ΔW is the update only: leave the base weight W0 out of it.")
    _fail("The shape is right but the values are not: check the order of the product. ΔW acts on x from the left, "
          "so the factor that acts on x first stands rightmost.")


def check_forward(forward_fn: Callable[[LoRAMiniLinear, torch.Tensor], torch.Tensor]) -> None:
    """`forward_fn(layer, x)` must return the LoRA-Mini layer's output for x of shape (..., d_in):
    base(x) + scale · B_aux B_train A_train A_aux x."""
    layer = _reference_layer().eval()
    f = _factors(layer)
    x = torch.randn(2, 4, layer.in_features, generator=torch.Generator().manual_seed(1))
    base, update = _ref_base(f, x), _ref_update(f, x)
    right = base + update
    with _blocked(_layer_methods(), _SHORTCUT), torch.no_grad():
        raw = _call(forward_fn, layer, x.clone())
    _unchanged(layer, f)
    got = _as_float64(raw, "the layer's output", tuple(right.shape))
    dtype = raw.dtype
    if got.shape != right.shape:
        _fail(f"Output shape {tuple(got.shape)}, expected {tuple(right.shape)}: keep the leading dimensions "
              f"(apply each factor to the last one).",
              "The output's shape is wrong: keep the leading dimensions.")
    if _close(got, right, dtype):
        return _ok("Your forward pass equals base(x) + scale · B_aux B_train A_train A_aux x.")
    if f["bias"] is not None and _close(got, right - f["bias"], dtype):
        _fail("The base layer's bias is missing: the frozen layer computes x @ W0.T + bias (layer.base(x) "
              "includes it).")
    if _close(got, update, dtype):
        _fail("You return only the adapter's update: add the frozen base layer's output, layer.base(x).")
    if _close(got, base, dtype):
        _fail("You return only the base output: the adapter's update is missing.")
    if _close(got, base + update / f["scale"], dtype):
        _fail("The update is not scaled: multiply it by layer.scale (alpha / r).")
    if _close(got, base + update * f["r"], dtype):
        _fail("You scaled by alpha; the scale is alpha / r (that is layer.scale).")
    _fail("Shape right, values wrong: check the order of the four factors and where the scale goes.")


def check_lora_forward(forward_fn: Callable) -> None:
    """`forward_fn(x, base, A, B, scale)`: plain LoRA's output base(x) + scale · B A x for x of shape (..., d_in),
    A (r × d_in), B (d_out × r), base a frozen nn.Linear with a bias."""
    with _seeded(5), torch.no_grad():
        base = nn.Linear(12, 10)
        base.bias.normal_()  # a clearly non-zero bias, so that forgetting it shows
        A, B = torch.randn(3, 12), torch.randn(10, 3)
    scale = 2.0
    x = torch.randn(2, 4, 12, generator=torch.Generator().manual_seed(6))
    W0, bias = base.weight.detach().double().clone(), base.bias.detach().double().clone()
    base_out = F.linear(x.double(), W0, bias)
    update = x.double() @ A.double().T @ B.double().T
    right = base_out + scale * update
    with torch.no_grad():
        raw = _call(forward_fn, x.clone(), base, A.clone(), B.clone(), scale)
    got = _as_float64(raw, "the layer's output", tuple(right.shape))
    if got.shape != right.shape:
        _fail(f"Output shape {tuple(got.shape)}, expected {tuple(right.shape)}: keep the leading dimensions and "
              f"apply each matrix to the last one.", "The output's shape is wrong: keep the leading dimensions.")
    if _close(got, right, raw.dtype):
        return _ok("Your LoRA forward pass equals base(x) + scale · B A x.")
    if _close(got, scale * update, raw.dtype):
        _fail("You return only the update: add the frozen layer's output, base(x).")
    if _close(got, base_out, raw.dtype):
        _fail("You return only the frozen layer's output: the update B A x is missing.")
    if _close(got, base_out + update, raw.dtype):
        _fail("The update is not scaled: multiply it by scale (alpha / r).")
    if _close(got, right - bias, raw.dtype):
        _fail("The bias is missing: base(x) includes it (x @ W0.T alone does not).")
    _fail("Shape right, values wrong: A acts first (d_in → r), then B (r → d_out); with x's rows as tokens that is "
          "x @ A.T, then @ B.T.", "Shape right, values wrong: A acts first, then B.")


def _ref_grad_B_train(f: dict, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """dL/dB_train by autograd, on float64 copies and a forward written here (not the layer's)."""
    B_train = f["B_train"].clone().requires_grad_(True)
    with torch.enable_grad():
        y = _ref_base(f, x) + f["scale"] * F.linear(
            F.linear(F.linear(F.linear(x.double(), f["A_aux"]), f["A_train"]), B_train), f["B_aux"])
        (grad,) = torch.autograd.grad(y, B_train, g.double())
    return grad


def check_grad_B_train(grad_fn: Callable[[LoRAMiniLinear, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """`grad_fn(layer, x, g)`: dL/dB_train for inputs x (n × d_in) and output gradient g = dL/dy (n × d_out),
    derived by hand (autograd is switched off while it runs) and compared with autograd on a copy."""
    layer = _reference_layer()
    f = _factors(layer)
    gen = torch.Generator().manual_seed(2)
    x, g = torch.randn(7, layer.in_features, generator=gen), torch.randn(7, layer.out_features, generator=gen)
    right = _ref_grad_B_train(f, x, g)
    no_autograd = "derive it by hand: autograd (backward, autograd.grad) is switched off in this check"
    autograd = [(torch.Tensor, "backward"), (torch.autograd, "backward"), (torch.autograd, "grad")]
    with _blocked(_layer_methods(), _SHORTCUT), _blocked(autograd, no_autograd), torch.no_grad():
        raw = _call(grad_fn, layer, x.clone(), g.clone())
    _unchanged(layer, f)
    if raw is None:
        _fail("Your function returned None: return the gradient tensor you computed (layer.B_train.grad is not set "
              "here, there was no backward pass).")
    got = _as_float64(raw, "dL/dB_train", tuple(right.shape))
    dtype = raw.dtype
    _expect_shape(got, right, "dL/dB_train", "B_train's shape (b, r)")
    if _close(got, right, dtype):
        return _ok("Your hand-derived dL/dB_train equals autograd's.")
    _scale_mistakes(got, right, f, dtype, "the forward pass multiplies by layer.scale, so the gradient does too.")
    if _close(got * x.shape[0], right, dtype):
        _fail("Sum over the tokens, do not average: the loss gradient g is already per token.")
    _fail("Shape right, values wrong. For a linear map z = W h (one token) dL/dW = (dL/dz) hᵀ, summed over "
          "tokens. So find two things: h, what B_train receives (x after the factors that act before it), and "
          "dL/dz, the gradient at B_train's output (g carried back through what acts after it, scale included).",
          "Shape right, values wrong: multiply the gradient at B_train's output by B_train's input, summed over tokens.")


def check_lora_export(export_fn: Callable[[LoRAMiniLinear], tuple]) -> None:
    """`export_fn(layer) -> (A, B)`: a plain LoRA pair with A (r × d_in), B (d_out × r) and
    layer.scale · B @ A == ΔW, i.e. the adapter written as an ordinary rank-r LoRA (PEFT's lora_A, lora_B)."""
    layer = _reference_layer()
    f = _factors(layer)
    right = _ref_delta(f)
    with _blocked(_layer_methods(), _SHORTCUT), torch.no_grad():
        got = _call(export_fn, layer)
    _unchanged(layer, f)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail("Return a pair (A, B): A like PEFT's lora_A (r × d_in), B like its lora_B (d_out × r).")
    r, d_in, d_out = layer.r, layer.in_features, layer.out_features
    A = _as_float64(got[0], "A", (r, d_in))
    B = _as_float64(got[1], "B", (d_out, r))
    if tuple(A.shape) == (d_out, r) and tuple(B.shape) == (r, d_in):
        _fail("A and B are swapped: return (A, B) with A = A_train @ A_aux (r × d_in) first.")
    if tuple(A.shape) != (r, d_in):
        _fail(f"A has shape {tuple(A.shape)}; like lora_A it must map d_in to r: the product of the two factors "
              f"that act first.", "A must be (r, d_in): the two factors that act first.")
    if tuple(B.shape) != (d_out, r):
        _fail(f"B has shape {tuple(B.shape)}; like lora_B it must map r to d_out: the product of the two factors "
              f"that act last.", "B must be (d_out, r): the two factors that act last.")
    product = f["scale"] * (B @ A)
    if _close(product, right, got[0].dtype):
        return _ok("scale · B @ A equals ΔW: the adapter as an ordinary rank-r LoRA.")
    if _close(product, right * f["scale"], got[0].dtype):
        _fail("The scale is counted twice: PEFT multiplies B @ A by lora_alpha / r itself, so leave it out of A and B.")
    _fail("Shapes right, values wrong: A is the product of the two factors that act first, B of the two that act "
          "last (mind the order inside each product).")


# ---------------------------------------------------------------- whole models
class _Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.query, self.value, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        return x + self.out(torch.tanh(self.query(x)) * self.value(x))


def _toy_model(seed: int = 0, d: int = 16, blocks: int = 2) -> nn.Module:
    """A small nested model (blocks.0.query, ...; head) to adapt, merge and train in the checks."""
    with _seeded(seed):
        return nn.ModuleDict({"blocks": nn.Sequential(*[_Block(d) for _ in range(blocks)]), "head": nn.Linear(d, 3)})


def _toy_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model["head"](model["blocks"](x))


def _toy_adapted(seed: int = 0) -> nn.Module:
    """The toy model with LoRA-Mini on query and value, every factor non-zero."""
    model = _toy_model(seed)
    with _seeded(seed + 100):
        for name, module in list(model.named_modules()):
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in ("query", "value"):
                parent, _, child = name.rpartition(".")
                layer = LoRAMiniLinear(module, r=2, a=6, b=5, alpha=4, name=name)
                with torch.no_grad():
                    layer.B_train.normal_(std=0.5)
                setattr(model.get_submodule(parent), child, layer)
    return model


def check_merge_and_unload(unload_fn: Callable[[nn.Module], nn.Module]) -> None:
    """`unload_fn(model)` must return the model with every LoRAMiniLinear replaced by a plain nn.Linear holding
    W0 + ΔW (and the base bias): same outputs, no adapter left. The package's merge methods are switched off."""
    model = _toy_adapted()
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    names = [n for n, m in model.named_modules() if isinstance(m, LoRAMiniLinear)]
    refs = {n: _factors(model.get_submodule(n)) for n in names}
    with torch.no_grad():
        right = _toy_forward(_ref_merged(model, refs), x.double())  # from the float64 copies, not merge()
        base_only = _toy_forward(_ref_merged(model, refs, with_delta=False), x.double())
        no_bias = _toy_forward(_ref_merged(model, refs, bias=False), x.double())
    with _blocked(_layer_methods(), "write the swap yourself: the package's merge methods are switched off "
                  "in this check"), torch.no_grad():
        out = _call(unload_fn, model, advice="Walk list(model.named_modules()), and for each LoRAMiniLinear build an "
                    "nn.Linear of the same widths and set it on the parent module.")
    if out is None:
        out = model  # changed in place and returned nothing: fine
    if not isinstance(out, nn.Module):
        _fail(f"Return the model (an nn.Module); got {type(out).__name__}.", "Return the model.")
    left = [n for n, m in out.named_modules() if isinstance(m, LoRAMiniLinear)]
    if left:
        _fail(f"LoRA-Mini layers are still in the model: {', '.join(left)}. Replace each one on its parent "
              f"module: setattr(model.get_submodule(parent_name), child_name, new_linear).",
              "LoRA-Mini layers are still in the model: replace each one on its parent module.")
    for n in names:
        new = out.get_submodule(n)
        if type(new) is not nn.Linear:
            _fail(f"{n} is a {type(new).__name__}; it should be a plain nn.Linear.", "Each adapted layer should "
                  "become a plain nn.Linear.")
    with torch.no_grad():
        got = _toy_forward(out, x).double()
    if torch.allclose(got, right, rtol=1e-4, atol=1e-5):
        return _ok("Every adapter merged into a plain nn.Linear; the model's outputs are unchanged.")
    if torch.allclose(got, base_only, rtol=1e-4, atol=1e-5):
        _fail("The outputs are the base model's: ΔW was not added to the new layers' weights.")
    if torch.allclose(got, no_bias, rtol=1e-4, atol=1e-5):
        _fail("The base layers' biases are missing: copy base.bias into the new nn.Linear (bias=True).")
    _fail("The merged model's outputs differ: each new weight must be W0 + ΔW (with ΔW including the scale).")


def _ref_merged(model: nn.Module, refs: dict, with_delta: bool = True, bias: bool = True) -> nn.Module:
    """A float64 copy of `model` with each LoRA-Mini layer replaced by nn.Linear(W0 [+ ΔW], bias)."""
    out = _toy_model().double()
    plain = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    with torch.no_grad():
        for n, m in out.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            if n in refs:
                f = refs[n]
                m.weight.copy_(f["W0"] + (_ref_delta(f) if with_delta else 0))
                m.bias.copy_(f["bias"] if bias else torch.zeros_like(m.bias))
            else:
                m.weight.copy_(plain[n].weight.double())
                m.bias.copy_(plain[n].bias.double())
    return out


def check_train_step(step_fn: Callable) -> None:
    """`step_fn(model, optimizer, x, y)` must do one training step on the mean squared error between
    `forward(model, x)` and y (clear old gradients, forward, loss, backward, optimizer step) and return the
    loss as a Python float (measured before the step). Checked over two steps against a reference."""
    def setup():
        model = _toy_adapted(seed=1)
        for n, p in model.named_parameters():
            p.requires_grad_(n.endswith(("A_train", "B_train")))
        return model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)

    gen = torch.Generator().manual_seed(4)
    batches = [(torch.randn(8, 16, generator=gen), torch.randn(8, 3, generator=gen)) for _ in range(2)]
    ref, ref_opt = setup()
    ref_losses, ref_states = [], []
    for x, y in batches:
        ref_opt.zero_grad()
        loss = F.mse_loss(_toy_forward(ref, x), y)
        loss.backward()
        ref_opt.step()
        ref_losses.append(loss.item())
        ref_states.append({n: p.detach().clone() for n, p in ref.named_parameters() if p.requires_grad})
    model, opt = setup()
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.forward = lambda x: _toy_forward(model, x)  # so that model(x) works in the student's step
    for i, (x, y) in enumerate(batches):
        loss = _call(step_fn, model, opt, x.clone(), y.clone(), advice="The step gets (model, optimizer, x, y): "
                     "the prediction is model(x), compared with y by F.mse_loss.")
        now = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        if i == 0 and all(torch.equal(now[n], start[n]) for n in now):
            _fail("The parameters did not move: call optimizer.step() after loss.backward().")
        if not all(torch.allclose(now[n], ref_states[i][n], rtol=1e-4, atol=1e-6) for n in now):
            if i == 1:
                _fail("The first step is right, the second is not: clear the old gradients with "
                      "optimizer.zero_grad() before each backward, or they add up.")
            _fail("The step moved the parameters differently from one SGD step on the mean squared error: "
                  "forward, F.mse_loss(prediction, y), loss.backward(), optimizer.step().")
        value = _number(loss)
        if value is None:
            _fail(f"Return the loss as a number (loss.item()); got {type(loss).__name__}.",
                  "Return the loss as a number (loss.item()).")
        if not math.isclose(value, ref_losses[i], rel_tol=1e-4):
            _fail("The parameters moved correctly, but the returned loss is not the batch's mean squared error "
                  "before the step.")
    return _ok("Two training steps match zero_grad → forward → MSE → backward → step, and the loss is returned.")


def check_adapter_counter(count_fn: Callable) -> None:
    """`count_fn(model, targets, r, a=None, b=None)`: trainable adapter numbers for every nn.Linear whose name
    is a target or ends with "." + a target: r·(d_in + d_out) each for LoRA (a, b None), r·(a + b) for
    LoRA-Mini. Counted by walking the model; the package's counting helpers are switched off meanwhile."""
    from .models import tiny_roberta

    model = tiny_roberta(seed=0)
    cases = [(["query", "value"], 4, None, None), (["query", "value"], 4, 8, 16),
             (["intermediate.dense", "output.dense"], 2, None, None), (["key", "intermediate.dense"], 2, 16, 8)]
    shortcuts = [(_counting, n) for n in ("count_parameters", "predict_adapter_params", "lora_params",
                                           "loramini_params")]
    shortcuts += [(_inject, n) for n in ("find_targets", "inject")]
    shortcuts += _package_level(["count_parameters", "predict_adapter_params", "lora_params", "loramini_params",
                                 "find_targets", "inject"])
    for targets, r, a, b in cases:
        layers = [m for n, m in model.named_modules()
                  if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]
        per = [r * (a + b) if a is not None else r * (m.in_features + m.out_features) for m in layers]
        right = sum(per)
        with _blocked(shortcuts, "walk the model yourself: the package's counting helpers are switched off "
                      "in this check"):
            got = _call(count_fn, model, list(targets), r, a, b, advice="Walk model.named_modules(), keep the "
                        "nn.Linear layers whose name matches a target, and use their in_features and out_features.")
        what = f"targets={targets}, r={r}" + ("" if a is None else f", a={a}, b={b}")
        if _number(got) is None:
            _fail(f"Return a number; got {type(got).__name__} for {what}.", "Return a number.")
        if _is(got, right):
            continue
        if a is not None and _is(got, sum(r * (m.in_features + m.out_features) for m in layers)):
            _fail(f"For {what} you counted LoRA's r·(d_in + d_out); with a and b given it is LoRA-Mini: r·(a + b).",
                  "With a and b given, count LoRA-Mini's r·(a + b) per layer, not LoRA's.")
        if len(layers) > 1 and _is(got, per[0]):
            _fail(f"For {what}: count every matching layer (there are {len(layers)}), not one.",
                  "Count every matching layer, not one.")
        all_linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if len(all_linear) != len(layers) and _is(got, sum(
                r * (a + b) if a is not None else r * (m.in_features + m.out_features) for m in all_linear)):
            _fail(f"For {what} you counted every nn.Linear; count only those whose name matches a target.",
                  "Count only the layers whose name matches a target.")
        _fail(f"For {what} the right count differs from yours: match a layer when its full name equals a target "
              f"or ends with '.' + target, and use each layer's own in_features and out_features.",
              "Match a layer when its full name equals a target or ends with '.' + target; use each layer's "
              "own widths.")
    return _ok("Your counter agrees on every model/target/width combination tried, for LoRA and LoRA-Mini.")


def check_convention(answer, reported: float, counts: dict) -> None:
    """Which counting convention does a reported number use? `counts` maps each convention's name to the count
    it gives; the right answer is the convention whose count is closest to `reported` (relatively)."""
    if answer not in counts:
        _fail(f"Answer with one of {sorted(counts)}; got {answer!r}.", "Answer with one of the offered conventions.")
    right = min(counts, key=lambda k: abs(counts[k] - reported) / max(abs(counts[k]), 1))
    if answer == right:
        return _ok("The convention behind the reported number is identified.")
    _fail(f"Under {answer!r} the count is {counts[answer]:,}, far from the {reported:,} reported: compare each "
          f"convention's count with the reported number.",
          "Compare each convention's count with the reported number.")


# ---------------------------------------------------------------- noise
def check_confidence_interval(ci_fn: Callable) -> None:
    """`ci_fn(values) -> (low, high)`: the 95% confidence interval of the mean of `values` (a 1-d list of
    independent runs, e.g. one per seed), with Student's t and the sample standard deviation."""
    from scipy import stats

    samples = [[0.71, 0.74, 0.69, 0.73, 0.70], [0.5, 0.9, 0.7], [1.0, 2.0, 4.0, 3.0, 2.5, 3.5, 1.5, 2.0]]
    for values in samples:
        n = len(values)
        t = torch.tensor(values, dtype=torch.float64)
        mean, sd = t.mean().item(), t.std(unbiased=True).item()
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        got = _call(ci_fn, list(values), advice="The function gets a plain list of numbers: convert it "
                    "(np.asarray) before arithmetic, and return two numbers (low, high).")
        try:
            low, high = (_number(v) for v in got)
        except (TypeError, ValueError):
            _fail(f"Return a pair (low, high); got {got!r}.", "Return a pair (low, high).")
        if low is None or high is None:
            _fail("Return two numbers (low, high).")
        if math.isclose(low, mean - half, rel_tol=1e-6, abs_tol=1e-9) and math.isclose(high, mean + half,
                                                                                        rel_tol=1e-6, abs_tol=1e-9):
            continue
        got_half = (high - low) / 2
        if not math.isclose((low + high) / 2, mean, rel_tol=1e-6, abs_tol=1e-9):
            _fail("The interval must be centred on the mean of the values.")
        z_half = 1.959963984540054 * sd / math.sqrt(n)
        if math.isclose(got_half, z_half, rel_tol=1e-3):
            _fail(f"With only {n} runs use Student's t quantile (scipy.stats.t.ppf(0.975, n - 1)), not the "
                  f"normal 1.96: few runs make the interval wider.",
                  "With few runs use Student's t quantile, not the normal one.")
        sd0 = t.std(unbiased=False).item()
        if math.isclose(got_half, stats.t.ppf(0.975, n - 1) * sd0 / math.sqrt(n), rel_tol=1e-3):
            _fail("Use the sample standard deviation (divide by n − 1: np.std(values, ddof=1)).",
                  "Use the sample standard deviation (divide by n minus one).")
        if math.isclose(got_half, stats.t.ppf(0.975, n - 1) * sd, rel_tol=1e-3):
            _fail("That interval is for a single run; the mean's standard error is std / √n.")
        if math.isclose(got_half, sd / math.sqrt(n), rel_tol=1e-3):
            _fail("That is ± one standard error; a 95% interval multiplies it by the t quantile.")
        _fail("mean ± t · std / √n, with t = scipy.stats.t.ppf(0.975, n − 1) and the sample std (ddof=1).")
    return _ok("Your 95% interval: mean ± t(0.975, n−1) · s / √n.")


def _t_interval(values) -> tuple[float, float]:
    from scipy import stats

    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * t.std(unbiased=True).item() / math.sqrt(n)
    return t.mean().item() - half, t.mean().item() + half


def check_inside(answer, value: float, values) -> None:
    """`answer`: True when `value` lies inside the 95% confidence interval of the mean of `values`
    (reading a confidence interval; the interval is computed here, not taken from the student)."""
    if isinstance(answer, np.bool_) or (isinstance(answer, torch.Tensor) and answer.dtype == torch.bool
                                            and answer.numel() == 1):
        answer = bool(answer)  # numpy's or torch's True is as good as Python's
    if not isinstance(answer, bool):
        _fail(f"Answer True or False; got {answer!r}.", "Answer True or False.")
    low, high = _t_interval(values)
    if answer == (low <= value <= high):
        return _ok("You read the interval right.")
    if answer:
        _fail("Look again: the value lies outside the interval, so the runs disagree with it beyond the noise.")
    _fail("Look again: the value lies inside the interval, so the runs do not contradict it.")


# ---------------------------------------------------------------- experiments
def check_learning_rates(lr_loramini: float, lr_lora: float, max_ratio: float = 20.0) -> None:
    """A LoRA-Mini learning rate chosen relative to LoRA's: larger, but not wildly so."""
    _need_number(lr_loramini, "the learning rate")
    lr_loramini = _number(lr_loramini)
    if lr_loramini <= lr_lora:
        _fail("LoRA-Mini moves only r·(a+b) numbers through fixed random projections: it needs a larger learning "
              "rate than LoRA, not an equal or smaller one.")
    if lr_loramini > max_ratio * lr_lora:
        _fail(f"{lr_loramini / lr_lora:g}x LoRA's rate is a long way past the few times (about 4x) that worked in "
              f"practice; Adam's steps grow with the rate, and training this hot tends to diverge.",
              "That is a long way past the few times LoRA's rate that worked in practice; training this hot "
              "tends to diverge.")
    return _ok("LoRA-Mini's learning rate is larger than LoRA's, within a sensible factor.")


def check_rank_average(average_fn: Callable, metric: str = "accuracy") -> None:
    """`average_fn(table, metric)` → the mean of `metric` at each r, averaged over every other setting
    (a pandas Series indexed by r), as the paper's accuracy-vs-r curve averages over (a, b)."""
    import pandas as pd

    table = pd.DataFrame({"r": [1, 1, 2, 2, 4, 4, 1, 2, 4], "ab": ["8x8", "16x16"] * 3 + ["32x8"] * 3,
                          metric: [0.60, 0.70, 0.72, 0.78, 0.80, 0.84, 0.65, 0.74, 0.82], "cached": [False] * 9})
    table = table.sample(frac=1.0, random_state=0).reset_index(drop=True)  # order must not matter
    right = table.groupby("r")[metric].mean()
    got = _call(average_fn, table.copy(), metric, advice=(
        "The table is a pandas DataFrame with columns r, ab, the metric and a non-numeric column: group the rows by "
        "'r' and average only the metric's column (table.groupby('r')[metric]), not the whole table."))
    if isinstance(got, pd.DataFrame):
        if metric in got.columns:
            got = got.set_index("r")[metric] if "r" in got.columns else got[metric]
        elif "mean" in got.columns:
            got = got.set_index("r")["mean"] if "r" in got.columns else got["mean"]
        else:
            _fail(f"Return a Series indexed by r (one mean {metric} per rank); got a table with columns {list(got.columns)}.",
                  "Return a Series indexed by r (one mean per rank).")
    if not isinstance(got, pd.Series):
        _fail(f"Return a pandas Series indexed by r, one value per rank; got {type(got).__name__}. "
              f"Group the rows by r first.")
    if sorted(got.index.tolist()) != sorted(right.index.tolist()):
        if set(got.index) <= set(table["ab"]):
            _fail("You grouped by the widths (a, b); the curve is over r, so group by r and average over (a, b).")
        _fail(f"The index should be the ranks {sorted(right.index)}, got {list(got.index)}: group by 'r'.",
              "The index should be the ranks: group by 'r'.")
    got = got.reindex(right.index).astype(float)
    if (got - table.groupby("r")[metric].sum()).abs().max() < 1e-9:
        _fail("That is the sum at each r; divide by the number of runs, i.e. take the mean.")
    if (got - table.groupby("r")[metric].max()).abs().max() < 1e-9:
        _fail("That is the best run at each r, not the average over (a, b): take the mean.")
    if (got - right).abs().max() > 1e-9:
        _fail("Group by r and take the mean of the metric over all the other settings.")
    return _ok("Mean over (a, b) at each r, as in an accuracy-vs-r plot.")


def check_ablation_table(table, metric: str, min_ranks: int = 3, fixed: Optional[dict] = None,
                         reruns: int = 2) -> None:
    """A designed ablation: a DataFrame with an `r` column, ≥ `min_ranks` ranks, and finite `metric` values.

    With `fixed` (the settings every run shares, on the tiny model) the numbers must come from training: the
    table also needs columns `a` (and `b`, default a), `seed` and `final_train_loss`, and `reruns` of its rows,
    drawn at random, are trained again with `train_cell({**fixed, "r": r, "a": a, "b": b, "seed": seed})`; each
    must give the row's metric and final training loss (to float rounding). A typed table fails."""
    columns = list(getattr(table, "columns", []))
    if "r" not in columns:
        _fail(f"The table needs a column 'r' (the rank you varied); it has {columns}.",
              "The table needs a column 'r' (the rank you varied).")
    if metric not in columns:
        _fail(f"The table has no column {metric!r}: return the metric from your run function.")
    if table["r"].nunique() < min_ranks:
        _fail(f"Vary r over at least {min_ranks} values to see a trend; you have {sorted(table['r'].unique())}.",
              "Vary r over more values to see a trend.")
    if not table[metric].map(lambda v: _number(v) is not None and math.isfinite(_number(v))).all():
        _fail(f"Some {metric} values are missing or not finite: did a run diverge?")
    if fixed is None:
        return _ok("The ablation table has the rank column, enough ranks and finite metric values.")
    _rerun_rows(table, metric, lambda row: {**fixed, "r": row["r"], "a": row["a"],
                                            "b": row["b"] if "b" in columns else row["a"], "seed": row["seed"]},
                needs=["a", "seed"], model=fixed.get("model"), reruns=reruns)
    return _ok("The ablation table has the rank column and enough ranks, and the runs re-trained by the check "
               "gave the numbers in your table.")


_LOSS = "final_train_loss"


def _rerun_rows(table, metric: str, settings: Callable, needs: list, model, reruns: int) -> None:
    """Train `reruns` random rows of `table` again (`settings(row)` → the run's parameters) and compare the
    metric (absolute 0.005: a validation row or two, for float rounding on another machine) and the final
    training loss (relative 1e-3: a typed number does not get that close) with the row's."""
    import random

    from .ablation import train_cell

    missing = [c for c in needs + [_LOSS] if c not in list(table.columns)]
    if missing:
        _fail(f"The table needs the columns {needs + [_LOSS]} as well (keep them from each run's result), so that "
              f"the check can re-run your runs; missing: {missing}.",
              "Keep each run's settings and its final_train_loss in the table: the check re-runs some of them.")
    if model != "tiny":
        _fail("The check re-runs your runs on the tiny model only: keep FIXED as the notebook sets it.")
    if not table[_LOSS].map(lambda v: _number(v) is not None and math.isfinite(_number(v))).all():
        _fail(f"Some {_LOSS} values are missing or not finite: keep the value from each run's result.")
    rows = table.to_dict("records")
    threads = torch.get_num_threads()
    for i in random.SystemRandom().sample(range(len(rows)), min(reruns, len(rows))):
        row = {k: _number(v) if _number(v) is not None else v for k, v in rows[i].items()}
        params = settings(row)
        params.update({k: int(params[k]) for k in ("r", "a", "b", "seed") if isinstance(params.get(k), float)
                       and params[k].is_integer()})
        where = ", ".join(f"{k}={params[k]}" for k in ("method", "r", "a", "b", "seed") if k in params)
        try:
            torch.set_num_threads(1)  # the tiny model trains fastest on one thread
            with contextlib.redirect_stdout(None):
                again = train_cell(params)
        except (ValueError, TypeError, KeyError) as err:
            _fail(f"The check could not re-run the row {where}: {str(err).splitlines()[0]}",
                  "The check could not re-run one of your rows: give integer r, a, b and seed.")
        finally:
            torch.set_num_threads(threads)
        loss = _number(row[_LOSS])
        counted = row.get("adapter_params", again["adapter_params"])
        if abs(_number(row[metric]) - again["metric"]) > 0.005 or not _is(counted, again["adapter_params"]) or \
                not math.isclose(loss, again[_LOSS], rel_tol=1e-3, abs_tol=1e-6):
            _fail(f"The row {where} does not match a re-run of that setting: fill the table from the runs "
                  f"themselves (cached_run(...)'s result), not typed or edited numbers.",
                  "A row does not match a re-run of its setting: fill the table from the runs themselves.")


def check_equal_cost_comparison(table, metric: str = "metric", min_seeds: int = 3, fixed: Optional[dict] = None,
                                lrs: Optional[dict] = None, reruns: int = 2) -> None:
    """LoRA against LoRA-Mini at equal cost: a DataFrame with one row per run and columns `method` ("lora" or
    "loramini"), `seed`, `adapter_params` and `metric`; both methods, ≥ `min_seeds` seeds each, one adapter
    count per method, the same for both, finite metric values.

    With `fixed` (the tiny model's shared settings) and `lrs` ({method: learning rate}) the numbers must come
    from training, as in `check_ablation_table`: columns `r`, `a`, `b` (LoRA-Mini's rows) and `final_train_loss`
    too, and `reruns` random rows are trained again and must match."""
    columns = list(getattr(table, "columns", []))
    missing = [c for c in ("method", "seed", "adapter_params", metric) if c not in columns]
    if missing:
        _fail(f"The table needs the columns method, seed, adapter_params and {metric}; missing: {missing}.",
              "The table needs the columns method, seed, adapter_params and the metric.")
    methods = set(table["method"])
    if methods != {"lora", "loramini"}:
        _fail(f"Compare exactly two methods, 'lora' and 'loramini'; the table has {sorted(methods)}.")
    for method, rows in table.groupby("method"):
        if rows["seed"].nunique() < min_seeds:
            _fail(f"{method} has {rows['seed'].nunique()} seed(s): run at least {min_seeds}, or no interval can "
                  f"tell the methods apart.", f"{method}: run more seeds, or no interval can tell the methods apart.")
        if rows["adapter_params"].nunique() != 1:
            _fail(f"{method} mixes shapes with different adapter counts: compare one shape per method.")
    counts = table.groupby("method")["adapter_params"].first()
    if counts["lora"] != counts["loramini"]:
        _fail(f"Not the same cost: LoRA trains {counts['lora']:,} adapter numbers, LoRA-Mini {counts['loramini']:,}. "
              f"LoRA costs r·(d_in + d_out) per adapted matrix, LoRA-Mini r·(a + b): pick shapes that make them equal.",
              "Not the same cost: pick shapes whose adapter counts are equal.")
    if not table[metric].map(lambda v: isinstance(_number(v), (int, float)) and math.isfinite(_number(v))).all():
        _fail(f"Some {metric} values are missing or not finite: did a run diverge?")
    if fixed is None:
        return _ok("LoRA and LoRA-Mini at the same number of adapter numbers, over enough seeds to compare.")
    rates = dict(lrs or {})

    def settings(row):
        if row["method"] == "lora":
            return {**fixed, "method": "lora", "lr": rates.get("lora", fixed.get("lr")), "r": row["r"],
                    "seed": row["seed"]}
        return {**fixed, "lr": rates.get("loramini", fixed.get("lr")), "r": row["r"], "a": row["a"], "b": row["b"],
                "seed": row["seed"]}

    _rerun_rows(table, metric, settings, needs=["r", "a", "b"], model=fixed.get("model"), reruns=reruns)
    return _ok("LoRA and LoRA-Mini at the same number of adapter numbers, over enough seeds to compare, and the "
               "runs re-trained by the check gave the numbers in your table.")


__all__ = ["CheckFailed", "grading_mode"] + sorted(n for n in list(globals()) if n.startswith("check_"))


# ---------------------------------------------------------------- notebooks 03 and 04: reading results
def _ci95(values) -> tuple[float, float]:
    """Student-t 95% interval of the mean of `values` (sample std, n − 1), in float64."""
    from scipy import stats

    v = np.asarray([float(x) for x in values], dtype=np.float64)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean() - half, v.mean() + half


def check_unresolved(verdict_fn: Callable) -> None:
    """`verdict_fn(values_a, values_b) -> bool`: True when the two 95% t-intervals overlap (the seeds do not
    resolve a difference), False when they are apart. Tried on pairs where the means, a normal (1.96) interval,
    or one side's interval alone would give the wrong verdict."""
    cases = [([0.71, 0.74, 0.69], [0.80, 0.82, 0.81]),        # apart
             ([0.70, 0.78, 0.74], [0.76, 0.79, 0.80]),        # different means, overlapping intervals
             ([0.60, 0.66, 0.63], [0.68, 0.70, 0.69]),        # apart with 1.96, overlapping with t(0.975, 2)
             ([0.50, 0.52, 0.51, 0.53], [0.50, 0.52, 0.51, 0.53]),  # identical
             ([0.83, 0.85, 0.84], [0.60, 0.62, 0.61])]        # apart, a above b
    for values_a, values_b in cases:
        (lo_a, hi_a), (lo_b, hi_b) = _ci95(values_a), _ci95(values_b)
        right = bool(lo_a <= hi_b and lo_b <= hi_a)
        got = _call(verdict_fn, list(values_a), list(values_b), advice="Each argument is a plain list of scores, "
                    "one per seed: compute each list's 95% interval, then compare the two intervals.")
        if isinstance(got, (np.bool_, torch.Tensor)) and np.asarray(got).size == 1:
            got = bool(got)
        if not isinstance(got, bool):
            _fail(f"Return True or False; got {got!r}.", "Return True or False.")
        if got == right:
            continue
        mean_a, mean_b = np.mean(values_a), np.mean(values_b)
        z_half = [1.959963984540054 * np.std(v, ddof=1) / math.sqrt(len(v)) for v in (values_a, values_b)]
        z_apart = abs(mean_a - mean_b) > sum(z_half)
        if right and got is False and z_apart:
            _fail("With 3 seeds use Student's t quantile (scipy.stats.t.ppf(0.975, n − 1)), not the normal 1.96: "
                  "few runs make the intervals wider.", "Use Student's t quantile, not the normal one.")
        if right and got is False and mean_a != mean_b:
            _fail("Different means alone do not make a difference: when the two intervals overlap, the seeds have "
                  "not resolved it (return True).")
        if not right:
            _fail("These intervals are apart: lower end of one above the upper end of the other (return False).")
        _fail("Compute both intervals with Student's t (scipy.stats.t.ppf(0.975, n − 1)) and the sample std "
              "(ddof=1); with 3 seeds the normal 1.96 makes them too narrow.",
              "Use Student's t quantile and the sample std for both intervals.")
    return _ok("Your verdict matches the 95% intervals on every pair tried.")


_RATIO_SHAPES = [(384, 32), (768, 32), (64, 16), (1024, 48)]  # (d_out, b): the models of 04, and two more


def check_lr_ratio(answer, d_out: int = 384, b: int = 32) -> None:
    """The learning-rate ratio LoRA-Mini / LoRA that makes Adam's first step lower a loss equally:
    sqrt(d_out / b) (LoRA's B has d_out·r numbers, LoRA-Mini's B_train b·r, each gradient entry of the latter
    being a sum over d_out / b times as many terms with random signs). Relative tolerance 5%.

    `answer` is a number (for this d_out and b) or a function `ratio(d_out, b)`, tried on several shapes."""
    if callable(answer):
        for shape in [(d_out, b)] + [s for s in _RATIO_SHAPES if s != (d_out, b)]:
            got = _call(answer, *shape, advice="The function gets two integers, d_out and b: return one number.")
            _need_number(got, "the value your function returns")
            with contextlib.redirect_stdout(None):
                check_lr_ratio(got, *shape)
        return _ok("The ratio that evens out the first Adam step, for every (d_out, b) tried.")
    _need_number(answer, "my_ratio")
    got, right = float(_number(answer)), math.sqrt(d_out / b)
    if math.isclose(got, right, rel_tol=0.05):
        return _ok("The ratio that evens out the first Adam step.")
    if math.isclose(got, d_out / b, rel_tol=0.05):
        _fail("That is the ratio of the numbers trained, d_out/b. Adam moves each number by ±lr, and the descent is "
              "lr times the sum of |gradient| entries: count how that sum scales with the number of entries and "
              "with the size of each.", "That is the ratio of counts; look at how the sum of |gradient| scales.")
    if math.isclose(got, 1 / right, rel_tol=0.05):
        _fail("Upside down: LoRA-Mini's step lowers the loss less, so its rate must be the larger one.")
    if got <= 1:
        _fail("LoRA-Mini's first step lowers the loss less than LoRA's at the same rate, so the ratio is above 1.")
    _fail("Follow the derivation: per column LoRA's |gradient| sum has d_out entries, LoRA-Mini's b entries, each "
          "about 1/√b as large as a column's norm. Take the ratio of the two sums; the rate must undo it.",
          "The first-step descent is lr times the sum of |gradient| entries: compare that sum for the two methods.")


__all__ += ["check_unresolved", "check_lr_ratio"]


# ---------------------------------------------------------------- notebook 03: sizes, on models the check builds
# (hidden size, layers, labels, r, a, b): a model larger than 03's tiny one first (4 layers, so that one block and
# one left-out target give different counts), then the tiny shape, then a third. Checked on these rather than on the
# notebook's model, so the answer holds for whichever model a student ran (roberta-base on Colab) and a count
# printed by the notebook cannot stand in for it.
_SIZE_CASES = [(128, 4, 3, 4, 8, 16), (64, 2, 2, 2, 16, 16), (96, 3, 5, 2, 16, 8)]


def _size_case(hidden: int, layers: int, labels: int):
    """A RobertaConfig of this shape (a small vocabulary: nothing here depends on it)."""
    from .models import roberta_config

    return roberta_config("tiny", num_labels=labels, hidden_size=hidden, num_hidden_layers=layers,
                          intermediate_size=2 * hidden)


def _described(what: str, inner: Callable, *args, **kwargs) -> None:
    """Run another check quietly; its hint, when it fails, says which model it was about."""
    try:
        with contextlib.redirect_stdout(None):
            inner(*args, **kwargs)
    except CheckFailed as err:
        _fail(f"{what}: {err}", str(err))


def _same_for_all(answers: list, rights: list) -> None:
    """A function that answers every model alike returns a number, not a computation: say so."""
    plain = [_number(v) if _number(v) is not None else v for v in answers]
    if len(plain) > 1 and all(repr(v) == repr(plain[0]) for v in plain) and len({repr(r) for r in rights}) > 1:
        _fail("Your function gives the same answer for models of different sizes: compute it from the model (or "
              "config) it is given, not from a number the notebook printed.")


def check_adapter_prediction(predict_fn: Callable) -> None:
    """`predict_fn(config, r, a, b) -> (lora, loramini)`: the trainable adapter numbers of LoRA (rank r) and of
    LoRA-Mini (r, a, b) on `query` and `value` of every layer of a RoBERTa with this Hugging Face config, from
    the config's sizes alone. Tried on several configs; the package's counting helpers are switched off meanwhile."""
    shortcuts = [(_counting, n) for n in ("count_parameters", "predict_adapter_params", "lora_params",
                                           "loramini_params")]
    shortcuts += _package_level(["count_parameters", "predict_adapter_params", "lora_params", "loramini_params"])
    answers, rights = [], []
    for hidden, layers, labels, r, a, b in _SIZE_CASES:
        with _blocked(shortcuts, "Compute it from the config's sizes: the package's counting helpers are "
                      "switched off in this check."):
            answers.append(_call(predict_fn, _size_case(hidden, layers, labels), r, a, b, advice="The function "
                                 "gets a Hugging Face config and three integers: read config.num_hidden_layers "
                                 "and config.hidden_size."))
        rights.append((layers * 2 * r * 2 * hidden, layers * 2 * r * (a + b)))
    _same_for_all(answers, rights)
    with _blocked(shortcuts, "Compute it from the config's sizes: the package's counting helpers are switched off "
                  "in this check."):  # the first model again, with other (r, a, b)
        again = _call(predict_fn, _size_case(*_SIZE_CASES[0][:3]), 1, 2, 3)
    if repr(again) == repr(answers[0]):
        _fail("Your function gives the same answer for other r, a and b: use its arguments, not the notebook's "
              "R, A and B.")
    for got, (lora_right, mini_right), (hidden, layers, labels, r, a, b) in zip(answers, rights, _SIZE_CASES):
        what = f"a RoBERTa with {layers} layers of width {hidden}, r={r}, a={a}, b={b}"
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            _fail(f"Return two numbers, (lora, loramini); got {type(got).__name__} for {what}.",
                  "Return two numbers: (lora, loramini).")
        if _is(got[0], mini_right) and _is(got[1], lora_right):
            _fail("The two counts are swapped: return (lora, loramini), LoRA's first.")
        qv = {"query": (hidden, hidden), "value": (hidden, hidden)}
        _described(f"LoRA-Mini's count on {what}", check_model_count, got[1], qv, r=r, a=a, b=b, n_blocks=layers)
        _described(f"LoRA's count on {what}", check_model_count, got[0], qv, r=r, n_blocks=layers)
    return _ok("Your prediction holds for every model shape tried, for LoRA and LoRA-Mini: depth, width and "
               "(r, a, b) all come from the arguments.")


def _injected_case(hidden: int, layers: int, labels: int, r: int, a: int, b: int) -> nn.Module:
    """A freshly built RoBERTa of this shape with LoRA-Mini on query and value (seeded: the same every time)."""
    from transformers import RobertaForSequenceClassification

    from .config import LoRAMiniConfig
    from .inject import inject

    with _seeded(0):
        model = RobertaForSequenceClassification(_size_case(hidden, layers, labels))
    return inject(model, LoRAMiniConfig(r=r, a=a, b=b, target_modules=["query", "value"]))


def check_file_bytes(bytes_fn: Callable) -> None:
    """`bytes_fn(model) -> int`: the bytes of tensor data that `loramini.save_adapter(model, ...)` writes for an
    injected float32 model (headers and JSON not included): its trained factors and its task head. Tried on
    several freshly built models."""
    answers, facts = [], []
    for case in _SIZE_CASES:
        model = _injected_case(*case)
        saved = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # A_train, B_train and the head
        adapter = sum(p.numel() for n, p in saved if n.endswith(("A_train", "B_train")))
        facts.append((sum(p.numel() * p.element_size() for _, p in saved), adapter,
                      sum(p.numel() for _, p in saved) - adapter))
        answers.append(_call(bytes_fn, model, advice="The function gets an injected model: count what "
                             "save_adapter stores."))
    _same_for_all(answers, [right for right, _, _ in facts])
    for got, (right, adapter, head), (hidden, layers, labels, r, a, b) in zip(answers, facts, _SIZE_CASES):
        if not _is(got, right):
            what = f"a RoBERTa with {layers} layers of width {hidden} and {labels} labels, r={r}, a={a}, b={b}"
            _described(f"On {what}", check_adapter_bytes, got, adapter + head,
                       parts={"adapter": adapter, "classifier head": head})
    return _ok("Your byte count matches what save_adapter stores, on every model tried.")


__all__ += ["check_adapter_prediction", "check_file_bytes"]
