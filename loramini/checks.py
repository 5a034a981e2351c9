"""Checks for the coursework exercises: each says ✓ when right, and when wrong raises `CheckFailed`
with a hint that points at the mistake (which factor, which term), not just "wrong".

    from loramini import checks
    checks.check_loramini_count(my_count, a=32, b=32, r=8)

A check prints one ✓ line and returns None when the answer is right.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

from .layer import LoRAMiniLinear


class CheckFailed(AssertionError):
    """A wrong answer; the message is the hint. (An AssertionError, so nbgrader marks the cell failed.)"""


def _ok(message: str) -> None:
    # Returns None on purpose: an exercise cell ends with its check call, and a returned True would be echoed
    # by Jupyter under the ✓ line.
    print(f"✓ {message}")


def _fail(hint: str):
    raise CheckFailed(hint)


def _is(value, target) -> bool:
    try:
        return math.isclose(float(value), float(target), rel_tol=1e-6, abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- counting
def check_lora_count(answer, d_in: int, d_out: int, r: int) -> None:
    """Trainable numbers of one LoRA adapter on a d_in → d_out layer."""
    right = r * (d_in + d_out)
    if _is(answer, right):
        return _ok(f"LoRA trains r·(d_in + d_out) = {right:,} numbers on this layer.")
    if _is(answer, d_in * d_out):
        _fail("That is the full weight W0 (d_out × d_in): full fine-tuning, not LoRA. Count A (r × d_in) and B (d_out × r).")
    if _is(answer, r * d_in) or _is(answer, r * d_out):
        _fail("You counted only one factor. LoRA trains both A (r × d_in) and B (d_out × r).")
    if _is(answer, d_in + d_out):
        _fail("The factor r is missing: A has r rows and B has r columns.")
    _fail(f"Expected r·(d_in + d_out) for r={r}, d_in={d_in}, d_out={d_out}; check each factor's shape.")


def check_loramini_count(answer, a: int, b: int, r: int, d_in: Optional[int] = None, d_out: Optional[int] = None) -> None:
    """Trainable numbers of one LoRA-Mini adapter: A_train (r × a) + B_train (b × r)."""
    right = r * (a + b)
    if _is(answer, right):
        return _ok(f"LoRA-Mini trains r·(a + b) = {right:,} numbers on this layer.")
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
    _fail(f"Expected r·(a + b) for r={r}, a={a}, b={b}; check the shapes of A_train and B_train.")


def check_savings_ratio(answer, d_in: int, d_out: int, a: int, b: int) -> None:
    """How many times fewer trainable numbers LoRA-Mini has than LoRA on one layer (any r)."""
    right = (d_in + d_out) / (a + b)
    if _is(answer, right):
        return _ok(f"(d_in + d_out)/(a + b) = {right:g}: r cancels, so the saving does not depend on the rank.")
    if _is(answer, 1 / right):
        _fail("Upside down: divide LoRA's count by LoRA-Mini's, so the answer is larger than 1.")
    _fail("Write both counts with r in them and divide: r·(d_in + d_out) / (r·(a + b)).")


def check_adapter_bytes(answer, n_params: int, dtype: torch.dtype = torch.float32,
                        parts: Optional[dict] = None) -> None:
    """Bytes that `n_params` numbers take on disk in `dtype` (tensor data only, no header).

    `parts`: optional {name: count} of what the file holds (summing to n_params), so that leaving one out
    gets a hint naming it."""
    size = torch.tensor([], dtype=dtype).element_size()
    right = n_params * size
    if _is(answer, right):
        return _ok(f"{n_params:,} numbers × {size} bytes = {right:,} bytes.")
    for name, count in (parts or {}).items():
        if count != n_params and (_is(answer, (n_params - count) * size) or _is(answer, n_params - count)):
            _fail(f"You left out the {name} ({count:,} numbers): the file stores it too.")
    if _is(answer, n_params * size * 8):
        _fail("That is bits: divide by 8 (a float32 takes 4 bytes).")
    if _is(answer, n_params):
        _fail(f"Each number takes {size} bytes in {dtype}, not one.")
    _fail(f"Multiply the number count by the bytes per element of {dtype} ({size}).")


def check_model_count(answer, layers: dict, r: int, a: Optional[int] = None, b: Optional[int] = None,
                      n_blocks: int = 1) -> None:
    """Trainable adapter numbers of a whole model: `layers` maps each adapted layer of one block to
    (d_in, d_out), and the model has `n_blocks` identical blocks. LoRA when a and b are None, else LoRA-Mini."""
    mini = a is not None and b is not None
    per = {name: r * (a + b) if mini else r * (d_in + d_out) for name, (d_in, d_out) in layers.items()}
    right = n_blocks * sum(per.values())
    method = "LoRA-Mini" if mini else "LoRA"
    if _is(answer, right):
        return _ok(f"{method}: {n_blocks} blocks × {len(layers)} adapted layers = {right:,} trainable numbers.")
    if n_blocks > 1 and _is(answer, right / n_blocks):
        _fail(f"That is one block. The model stacks {n_blocks} identical blocks: multiply by {n_blocks}.")
    names = list(layers)
    missing = [set(names[i] for i in range(len(names)) if mask >> i & 1) for mask in range(1, 2 ** len(names) - 1)]
    missing = [m for m in missing if _is(answer, right - n_blocks * sum(per[n] for n in m))]
    if missing:
        if mini:  # every layer counts r·(a + b), so only the number of layers can be told apart
            counted = len(names) - len(missing[0])
            _fail(f"You counted {counted} adapted layers per block, but {len(names)} are adapted: {', '.join(names)}.")
        if len(missing) == 1:
            _fail(f"Missing from every block: {', '.join(sorted(missing[0]))}. Each adapted layer gets its own adapter.")
        _fail(f"Some adapted layers are missing from your sum; {len(names)} layers per block are adapted: {', '.join(names)}.")
    lora_total = n_blocks * sum(r * (d_in + d_out) for d_in, d_out in layers.values())
    if mini and _is(answer, lora_total):
        _fail("That is LoRA's count. LoRA-Mini trains only A_train (r × a) and B_train (b × r) in each layer.")
    if mini and _is(answer, right + n_blocks * sum(a * d_in + d_out * b for d_in, d_out in layers.values())):
        _fail("You included the aux factors A_aux and B_aux: they are frozen buffers, not trained numbers.")
    if _is(answer, n_blocks * sum(d_in * d_out for d_in, d_out in layers.values())):
        _fail("That is the size of the weight matrices themselves (full fine-tuning of these layers).")
    if _is(answer, right / r):
        _fail("The factor r is missing from the per-layer formula.")
    shapes = ", ".join(f"{n}: {d_in}→{d_out}" for n, (d_in, d_out) in layers.items())
    formula = "r·(a + b)" if mini else "r·(d_in + d_out)"
    _fail(f"Count layer by layer: {formula} for each of ({shapes}), sum over the block, times {n_blocks} blocks.")


def check_head_count(answer, hidden: int, num_labels: int) -> None:
    """Parameters of RoBERTa's classification head: dense (hidden → hidden) then out_proj (hidden → num_labels),
    both with biases."""
    dense, out_proj = hidden * hidden + hidden, hidden * num_labels + num_labels
    right = dense + out_proj
    if _is(answer, right):
        return _ok(f"dense {dense:,} + out_proj {out_proj:,} = {right:,} numbers, trained in full by every method.")
    if _is(answer, hidden * hidden + hidden * num_labels):
        _fail("The biases are missing: each linear layer adds one bias per output (hidden for dense, "
              "num_labels for out_proj).")
    if _is(answer, out_proj) or _is(answer, hidden * num_labels):
        _fail(f"You counted only out_proj. RoBERTa's head first applies a dense {hidden}→{hidden} layer (with bias).")
    if _is(answer, dense):
        _fail(f"You counted only the dense layer; out_proj ({hidden}→{num_labels}, with bias) follows it.")
    for labels in {1, 2, 3} - {num_labels}:
        if _is(answer, dense + hidden * labels + labels):
            _fail(f"Right structure, but the task has {num_labels} labels, not {labels}: out_proj has one output per label.")
    _fail(f"Add the two linear layers: dense ({hidden}×{hidden} weight + {hidden} bias) and out_proj "
          f"({num_labels}×{hidden} weight + {num_labels} bias).")


# ---------------------------------------------------------------- shapes and the rank bound
def check_factor_shapes(shapes: dict, d_in: int, d_out: int, r: int, a: int, b: int) -> None:
    """`shapes`: {"A_aux": (…), "A_train": (…), "B_train": (…), "B_aux": (…)}."""
    want = {"A_aux": (a, d_in), "A_train": (r, a), "B_train": (b, r), "B_aux": (d_out, b)}
    for name, shape in want.items():
        if name not in shapes:
            _fail(f"Give the shape of {name} too.")
        got = tuple(shapes[name])
        if got == shape[::-1] and shape[0] != shape[1]:
            _fail(f"{name} is transposed: it maps {shape[1]} numbers to {shape[0]}, so its shape is {shape}.")
        if got != shape:
            _fail(f"{name} has the wrong shape {got}: it must be {shape}. Follow x (d_in) → A_aux → a → A_train → r "
                  f"→ B_train → b → B_aux → d_out.")
    return _ok("All four factors have the right shapes: (a×d_in), (r×a), (b×r), (d_out×b).")


def check_rank_bound(answer, r: int, a: int, b: int) -> None:
    right = min(r, a, b)
    if _is(answer, right):
        return _ok(f"rank(ΔW) ≤ min(r, a, b) = {right}: the narrowest factor limits the rank.")
    if _is(answer, r):
        _fail("r is only one of the bottlenecks: ΔW also passes through widths a and b.")
    _fail("A product of matrices has rank at most the smallest inner width: which widths does ΔW pass through?")


def check_extra_flops(answer, d_in: int, d_out: int, r: int, a: int, b: int) -> None:
    """Extra multiply-adds per token of the adapter path x → A_aux → A_train → B_train → B_aux."""
    right = d_in * a + a * r + r * b + b * d_out
    if _is(answer, right):
        return _ok(f"d_in·a + a·r + r·b + b·d_out = {right:,} multiply-adds per token.")
    if _is(answer, r * (d_in + d_out)):
        _fail("That is LoRA's extra cost. LoRA-Mini's path has four matrix-vector products: add the two aux ones.")
    if _is(answer, r * (a + b)):
        _fail("You counted only the trained factors; the frozen A_aux and B_aux are applied in every forward pass too.")
    _fail("Add one product per factor: a vector of width n times an (m × n) matrix costs m·n multiply-adds.")


# ---------------------------------------------------------------- code the students write
def _reference_layer(seed: int = 0, d_in: int = 12, d_out: int = 10, r: int = 3, a: int = 6, b: int = 5,
                     alpha: float = 6.0) -> LoRAMiniLinear:
    torch.manual_seed(seed)
    layer = LoRAMiniLinear(nn.Linear(d_in, d_out), r=r, a=a, b=b, alpha=alpha, name="check")
    with torch.no_grad():
        layer.B_train.normal_()
    return layer


def check_delta_weight(delta_fn: Callable[[LoRAMiniLinear], torch.Tensor]) -> None:
    """`delta_fn(layer)` must return ΔW = scale · B_aux B_train A_train A_aux, shape (d_out, d_in)."""
    layer = _reference_layer()
    with torch.no_grad():
        got = delta_fn(layer)
        right = layer.delta_weight()
    if not isinstance(got, torch.Tensor):
        _fail(f"Return a tensor, got {type(got).__name__}.")
    if got.shape == right.T.shape and got.shape != right.shape:
        _fail(f"ΔW is transposed: it must have the base weight's shape (d_out, d_in) = {tuple(right.shape)}.")
    if got.shape != right.shape:
        _fail(f"ΔW has shape {tuple(got.shape)}, expected (d_out, d_in) = {tuple(right.shape)}.")
    if torch.allclose(got.float() * layer.scale, right, atol=1e-5):
        _fail("Off by the scale factor: multiply by layer.scale (alpha / r).")
    if not torch.allclose(got.float(), right, atol=1e-5):
        _fail("The shape is right but the values are not: check the order B_aux @ B_train @ A_train @ A_aux.")
    return _ok("ΔW matches scale · B_aux B_train A_train A_aux.")


def check_forward(forward_fn: Callable[[LoRAMiniLinear, torch.Tensor], torch.Tensor]) -> None:
    """`forward_fn(layer, x)` must return the LoRA-Mini layer's output for x of shape (..., d_in)."""
    layer = _reference_layer().eval()
    x = torch.randn(2, 4, layer.in_features)
    with torch.no_grad():
        right, base, adapter = layer(x), layer.base(x), layer.adapter_forward(x)
        try:
            got = forward_fn(layer, x)
        except NotImplementedError:  # a subclass of RuntimeError: the exercise is not done yet, say so plainly
            raise
        except RuntimeError as err:
            _fail(f"The forward pass raised: {err}. Check the order x → A_aux → A_train → B_train → B_aux and "
                  f"that F.linear(x, M) computes x @ M.T.")
    if not isinstance(got, torch.Tensor) or got.shape != right.shape:
        _fail(f"Output shape {getattr(got, 'shape', None)}, expected {tuple(right.shape)}: keep the leading dimensions.")
    if torch.allclose(got, adapter, atol=1e-5):
        _fail("You return only the adapter's update: add the frozen base layer's output, layer.base(x).")
    if torch.allclose(got, base, atol=1e-5):
        _fail("You return only the base output: the adapter's update is missing.")
    if torch.allclose(got, base + adapter / layer.scale, atol=1e-5):
        _fail("The update is not scaled: multiply it by layer.scale (alpha / r).")
    if not torch.allclose(got, right, atol=1e-5):
        _fail("Shape right, values wrong: check the order of the four factors and where the scale goes.")
    return _ok("Your forward pass matches LoRAMiniLinear.")


def check_grad_B_train(grad_fn: Callable[[LoRAMiniLinear, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """`grad_fn(layer, x, g)`: dL/dB_train for inputs x (n × d_in) and output gradient g = dL/dy (n × d_out)."""
    layer = _reference_layer()
    x, g = torch.randn(7, layer.in_features), torch.randn(7, layer.out_features)
    layer(x).backward(g)
    right = layer.B_train.grad
    with torch.no_grad():
        got = grad_fn(layer, x, g)
    if got.shape != right.shape:
        _fail(f"dL/dB_train must have B_train's shape (b, r) = {tuple(right.shape)}, got {tuple(got.shape)}.")
    if torch.allclose(got * layer.scale, right, atol=1e-5):
        _fail("Off by the scale factor: the forward pass multiplies by layer.scale, so the gradient does too.")
    if not torch.allclose(got, right, atol=1e-4):
        _fail("Shape right, values wrong: dL/dB_train = scale · (B_auxᵀ gᵀ) (A_train A_aux xᵀ)ᵀ — the gradient "
              "arriving at B_train's output times its input, summed over tokens.")
    return _ok("Your hand-derived gradient matches autograd.")


def check_lora_export(export_fn: Callable[[LoRAMiniLinear], tuple]) -> None:
    """`export_fn(layer) -> (A, B)`: a plain LoRA pair with A (r × d_in), B (d_out × r) and
    layer.scale · B @ A == ΔW, i.e. the adapter written as an ordinary rank-r LoRA (PEFT's lora_A, lora_B)."""
    layer = _reference_layer()
    with torch.no_grad():
        got = export_fn(layer)
        right = layer.delta_weight()
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail("Return a pair (A, B): A like PEFT's lora_A (r × d_in), B like its lora_B (d_out × r).")
    A, B = got
    r, d_in, d_out = layer.r, layer.in_features, layer.out_features
    if tuple(A.shape) == (d_out, r) and tuple(B.shape) == (r, d_in):
        _fail("A and B are swapped: return (A, B) with A = A_train @ A_aux (r × d_in) first.")
    if tuple(A.shape) != (r, d_in):
        _fail(f"A has shape {tuple(A.shape)}, expected (r, d_in) = {(r, d_in)}: A = A_train @ A_aux, the two "
              f"factors that act first.")
    if tuple(B.shape) != (d_out, r):
        _fail(f"B has shape {tuple(B.shape)}, expected (d_out, r) = {(d_out, r)}: B = B_aux @ B_train.")
    with torch.no_grad():
        product = layer.scale * (B.float() @ A.float())
    if torch.allclose(product, right * layer.scale, atol=1e-5):
        _fail("The scale is counted twice: PEFT multiplies B @ A by lora_alpha / r itself, so leave it out of A and B.")
    if not torch.allclose(product, right, atol=1e-5):
        _fail("Shapes right, values wrong: A = A_train @ A_aux and B = B_aux @ B_train (mind the order).")
    return _ok("scale · B @ A equals ΔW: your LoRA-Mini adapter is now an ordinary rank-r LoRA.")


# ---------------------------------------------------------------- experiments
def check_learning_rates(lr_loramini: float, lr_lora: float, max_ratio: float = 20.0) -> None:
    """A LoRA-Mini learning rate chosen relative to LoRA's: larger, but not wildly so."""
    if lr_loramini <= lr_lora:
        _fail("LoRA-Mini moves only r·(a+b) numbers through fixed random projections: it needs a larger learning "
              "rate than LoRA, not an equal or smaller one.")
    if lr_loramini > max_ratio * lr_lora:
        _fail(f"{lr_loramini / lr_lora:g}x LoRA's rate is a long way past the few times (about 4x) that worked in "
              f"practice; Adam's steps grow with the rate, and training this hot tends to diverge.")
    return _ok(f"LoRA-Mini's learning rate is {lr_loramini / lr_lora:g}x LoRA's.")


def check_rank_average(average_fn: Callable, metric: str = "accuracy") -> None:
    """`average_fn(table, metric)` → the mean of `metric` at each r, averaged over every other setting
    (a pandas Series indexed by r), as the paper's accuracy-vs-r curve averages over (a, b)."""
    import pandas as pd

    table = pd.DataFrame({"r": [1, 1, 2, 2, 4, 4, 1, 2, 4], "ab": ["8x8", "16x16"] * 3 + ["32x8"] * 3,
                          metric: [0.60, 0.70, 0.72, 0.78, 0.80, 0.84, 0.65, 0.74, 0.82], "cached": [False] * 9})
    table = table.sample(frac=1.0, random_state=0).reset_index(drop=True)  # order must not matter
    right = table.groupby("r")[metric].mean()
    got = average_fn(table.copy(), metric)
    if isinstance(got, pd.DataFrame):
        if metric in got.columns:
            got = got.set_index("r")[metric] if "r" in got.columns else got[metric]
        elif "mean" in got.columns:
            got = got.set_index("r")["mean"] if "r" in got.columns else got["mean"]
        else:
            _fail(f"Return a Series indexed by r (one mean {metric} per rank); got a table with columns {list(got.columns)}.")
    if not isinstance(got, pd.Series):
        _fail(f"Return a pandas Series indexed by r, one value per rank; got {type(got).__name__}. "
              f"Group the rows by r first.")
    if sorted(got.index.tolist()) != sorted(right.index.tolist()):
        if set(got.index) <= set(table["ab"]):
            _fail("You grouped by the widths (a, b); the curve is over r, so group by r and average over (a, b).")
        _fail(f"The index should be the ranks {sorted(right.index)}, got {list(got.index)}: group by 'r'.")
    got = got.reindex(right.index).astype(float)
    if (got - table.groupby("r")[metric].sum()).abs().max() < 1e-9:
        _fail("That is the sum at each r; divide by the number of runs, i.e. take the mean.")
    if (got - table.groupby("r")[metric].max()).abs().max() < 1e-9:
        _fail("That is the best run at each r, not the average over (a, b): take the mean.")
    if (got - right).abs().max() > 1e-9:
        _fail("Group by r and take the mean of the metric over all the other settings.")
    return _ok("mean over (a, b) at each r, as in the paper's accuracy-vs-r plot.")


def check_ablation_table(table, metric: str, min_ranks: int = 3) -> None:
    """A designed ablation: a DataFrame with an `r` column, ≥ `min_ranks` ranks, and finite `metric` values."""
    columns = list(getattr(table, "columns", []))
    if "r" not in columns:
        _fail(f"The table needs a column 'r' (the rank you varied); it has {columns}.")
    if metric not in columns:
        _fail(f"The table has no column {metric!r}: return the metric from your run function.")
    if table["r"].nunique() < min_ranks:
        _fail(f"Vary r over at least {min_ranks} values to see a trend; you have {sorted(table['r'].unique())}.")
    if not table[metric].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v)).all():
        _fail(f"Some {metric} values are missing or not finite: did a run diverge?")
    return _ok(f"{len(table)} runs over {table['r'].nunique()} ranks.")
