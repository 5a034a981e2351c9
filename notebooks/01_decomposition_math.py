# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The mathematics of LoRA-Mini
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/loramini-course/loramini/blob/main/notebooks/01_decomposition_math.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/loramini-course/loramini/main?labpath=notebooks%2F01_decomposition_math.ipynb)
#
# Fine-tuning a large model means nudging its weight matrices. This notebook follows one weight matrix
# through three ways of nudging it: **full fine-tuning** (move every number), **LoRA** (move a low-rank
# product) and **LoRA-Mini** (move only the small middle of a four-factor product). Everything runs on a
# CPU in well under a minute, and every claim is checked by a cell that would fail if it were false.

# %% [markdown]
# > **For instructors — learning goals.** After this notebook students can
# > 1. write down $\Delta W = \tfrac{\alpha}{r}\,B_{aux}B_{train}A_{train}A_{aux}$ with the shape of every factor, and say which factors are trained;
# > 2. explain why $\operatorname{rank}\Delta W \le \min(r, a, b)$ and why $B_{train}=0$ makes the adapted model start *exactly* at the pretrained one;
# > 3. derive the gradients of $A_{train}$ and $B_{train}$ by hand and confirm them with autograd;
# > 4. recognise LoRA as the special case $A_{aux}=I$, $B_{aux}=I$, and any LoRA-Mini adapter as an ordinary LoRA after multiplying out;
# > 5. explain why merging costs nothing at inference, and count the extra multiply-adds when the adapter is *not* merged;
# > 6. read a singular-value spectrum, and predict from a small experiment what LoRA-Mini can and cannot learn.
# >
# > *Time:* 30–45 minutes. *Prerequisites:* matrix products, rank, the chain rule, basic PyTorch.
# > *Source to read alongside:* [`loramini/layer.py`](../loramini/layer.py) (the layer) and
# > [`loramini/counting.py`](../loramini/counting.py) (the closed-form counts).

# %% [markdown]
# > **Exercises.** Cells whose first lines read `# Exercise N` are for you. In the student copy of this
# > notebook (in `notebooks/exercises/`) the answer is replaced by `raise NotImplementedError()`: delete that
# > line, write your answer there, and run the cell. The `checks.…` call at the end of the cell prints a ✓
# > when you are right, and otherwise a hint that says what looks wrong. Later cells never depend on your
# > answers, so you can skip an exercise and come back to it.

# %%
# NBVAL_IGNORE_OUTPUT
# On Colab: install loramini from GitHub. Everywhere else (your venv, conda, Binder, CI) this cell
# does nothing, because the package is already installed there.
import sys

if "google.colab" in sys.modules:
    # %pip install -q "loramini @ git+https://github.com/loramini-course/loramini.git"

# %%
# NBVAL_IGNORE_OUTPUT
# Pick the best accelerator available: CUDA (Colab GPU), then Apple's MPS, then the CPU.
import os

import torch

import loramini

if torch.cuda.is_available():
    device = torch.device("cuda")
elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    device = torch.device("mps")
else:
    device = torch.device("cpu")

# One switch shrinks the experiments (CI and Binder set it); every cell still runs.
SMOKE = os.environ.get("LORAMINI_SMOKE", "0") == "1"
print(f"loramini {loramini.__version__} | torch {torch.__version__} | device: {device} | smoke mode: {SMOKE}")

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import pandas as pd
from torch import nn

from loramini import checks   # the exercises' answer checks

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3.2)})
_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. Three ways to change a weight matrix
#
# Take one frozen linear layer of a pretrained model, $h = W_0 x + \text{bias}$ with
# $W_0 \in \mathbb{R}^{d_{out}\times d_{in}}$. Fine-tuning replaces $W_0$ by $W_0 + \Delta W$; the three methods
# differ only in how $\Delta W$ is built, and therefore in how many numbers the optimizer has to move.
#
# | method | $\Delta W$ | trainable numbers |
# |---|---|---|
# | full fine-tuning | any $d_{out}\times d_{in}$ matrix | $d_{out}\,d_{in}$ |
# | LoRA | $\tfrac{\alpha}{r}\,B A$, with $A\in\mathbb{R}^{r\times d_{in}}$, $B\in\mathbb{R}^{d_{out}\times r}$ | $r\,(d_{in}+d_{out})$ |
# | LoRA-Mini | $\tfrac{\alpha}{r}\,B_{aux}\,B_{train}\,A_{train}\,A_{aux}$ | $r\,(a+b)$ |
#
# LoRA-Mini splits each LoRA factor once more. The outer pieces $A_{aux}$ ($a\times d_{in}$) and
# $B_{aux}$ ($d_{out}\times b$) are **random and frozen**; they are regenerated from a seed, so they are never
# trained and never need to be stored. Only the small inner pieces $A_{train}$ ($r\times a$) and
# $B_{train}$ ($b\times r$) learn. Let us put numbers on it for one $768\times768$ attention projection of
# RoBERTa-base, using the package's own closed forms from
# [`loramini/counting.py`](../loramini/counting.py):

# %%
# NBVAL_CHECK_OUTPUT
d_in = d_out = 768                 # one attention projection of roberta-base
r, a, b = 8, 32, 32

full = d_out * d_in
lora = loramini.lora_params(d_in, d_out, r)
mini = loramini.loramini_params(a, b, r)
assert lora == r * (d_in + d_out) and mini == r * (a + b)   # the closed forms, spelled out

print(f"full fine-tuning : {full:>9,} numbers")
print(f"LoRA      (r={r})  : {lora:>9,} numbers  ({full / lora:.0f}x fewer than full)")
print(f"LoRA-Mini (r={r}, a={a}, b={b}): {mini:>5,} numbers  ({lora / mini:.0f}x fewer than LoRA)")
print(f"saving vs LoRA = (d_in + d_out) / (a + b) = {(d_in + d_out) / (a + b):g}, whatever r is")

# %% [markdown]
# Notice the last line: because both counts are proportional to $r$, the saving over LoRA is
# $(d_{in}+d_{out})/(a+b)$ and does not depend on the rank at all. Notebook 02 turns this into exact counts
# for whole models.
#
# Your turn. A transformer block has wider matrices than the attention projections: its feed-forward
# part first widens each token from 768 to 3072 numbers. Count with pencil and paper first, then type
# the number (not a formula that the computer evaluates for you, at least the first time).

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: count LoRA's trainable numbers by hand
# RoBERTa-base's feed-forward layer `intermediate.dense` maps d_in = 768 to d_out = 3072.
# How many numbers does a LoRA adapter with r = 8 train on it? Set `lora_ffn` to that number.
### BEGIN SOLUTION
lora_ffn = 8 * 768 + 3072 * 8   # A is r × d_in, B is d_out × r
### END SOLUTION
checks.check_lora_count(lora_ffn, d_in=768, d_out=3072, r=8)
### BEGIN HIDDEN TESTS
assert lora_ffn == 30_720
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Meet the layer
#
# [`loramini.LoRAMiniLinear`](../loramini/layer.py) wraps an existing `nn.Linear`. We use a deliberately
# small, lopsided layer ($d_{in}=64$, $d_{out}=48$, $a=16$, $b=12$, $r=4$) so that no two dimensions are
# equal and every shape tells you which factor it belongs to.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
base = nn.Linear(64, 48)
layer = loramini.LoRAMiniLinear(base, r=4, a=16, b=12, alpha=8, name="demo.proj")
print(layer)

rows = []
trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
for factor in ["A_aux", "A_train", "B_train", "B_aux"]:
    tensor = getattr(layer, factor)
    rows.append({"factor": factor, "shape": tuple(tensor.shape), "trainable": factor in trainable,
                 "kind": "parameter" if isinstance(tensor, nn.Parameter) else "buffer (from seed)"})
assert layer.A_aux.shape == (16, 64) and layer.A_train.shape == (4, 16)
assert layer.B_train.shape == (12, 4) and layer.B_aux.shape == (48, 12)
assert trainable == {"A_train", "B_train"}          # the base weight and bias are frozen
pd.DataFrame(rows)

# %% [markdown]
# Read the shapes left to right in the order the input travels: $x$ ($d_{in}=64$) is squeezed by
# $A_{aux}$ to $a=16$ numbers, by $A_{train}$ to $r=4$, widened by $B_{train}$ to $b=12$ and by $B_{aux}$ back
# to $d_{out}=48$. That is the chain that `adapter_forward` in [`layer.py`](../loramini/layer.py)
# computes.
#
# The aux factors are drawn from a CPU random generator seeded with `(projection_seed, module name)`. The
# same name and seed give bit-identical factors on any machine, which is why an adapter file can leave
# them out:

# %%
# NBVAL_CHECK_OUTPUT
same = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=16, b=12, name="demo.proj")
other = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=16, b=12, name="demo.other")
reseeded = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=16, b=12, name="demo.proj", projection_seed=1)
print("same name, same seed  -> identical A_aux:", torch.equal(same.A_aux, layer.A_aux))
print("other name            -> identical A_aux:", torch.equal(other.A_aux, layer.A_aux))
print("same name, other seed -> identical A_aux:", torch.equal(reseeded.A_aux, layer.A_aux))
print("aux tensors in state_dict:", [k for k in layer.state_dict() if "aux" in k])

# %% [markdown]
# Shapes are the grammar of linear algebra: if you can say the shape of every factor, you can write the
# forward pass, the gradients and the parameter counts. Practise on a layer that goes the other way, from
# wide to narrow.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: the shapes of the four factors
# RoBERTa's `output.dense` maps d_in = 3072 to d_out = 768. Adapt it with r = 8, a = 64, b = 16.
# Fill in the (rows, columns) of each factor, e.g. my_shapes = {"A_aux": (?, ?), "A_train": (?, ?), ...}
### BEGIN SOLUTION
my_shapes = {"A_aux": (64, 3072), "A_train": (8, 64), "B_train": (16, 8), "B_aux": (768, 16)}
### END SOLUTION
checks.check_factor_shapes(my_shapes, d_in=3072, d_out=768, r=8, a=64, b=16)
### BEGIN HIDDEN TESTS
_real = loramini.LoRAMiniLinear(nn.Linear(3072, 768), r=8, a=64, b=16, name="hidden")
assert all(tuple(my_shapes[f]) == tuple(getattr(_real, f).shape) for f in ["A_aux", "A_train", "B_train", "B_aux"])
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Why the adapted model starts exactly where the pretrained one was
#
# $B_{train}$ starts at zero, so the whole product $\Delta W$ is zero, and the layer computes exactly
# what the base layer computes: not approximately, *exactly*. Training therefore begins from the
# pretrained model, not from a randomly perturbed copy of it.
#
# Why not start both trainable factors at zero? Because then both gradients would be zero too (each one is
# multiplied by the other factor, as Section 5 shows), and gradient descent could never leave the start.
# LoRA-Mini copies LoRA's trick: $A_{train}$ is random (Kaiming-uniform), $B_{train}$ is zero.

# %%
# NBVAL_CHECK_OUTPUT
x = torch.randn(5, 64)
print("B_train is all zeros   :", bool((layer.B_train == 0).all()))
print("A_train is all zeros   :", bool((layer.A_train == 0).all()))
print("ΔW is exactly zero     :", bool((layer.delta_weight() == 0).all()))
print("layer(x) == base(x)    :", torch.equal(layer(x), base(x)))
assert torch.equal(layer(x), base(x))


# %% [markdown]
# ### Write the layer yourself
#
# The package's layer is about a hundred lines, most of them bookkeeping. Its heart is two formulas, and
# you can write both from the table in Section 1. Each exercise hands you a real `LoRAMiniLinear` (with
# random, non-zero factors, so that mistakes show) and compares your function with the package's.
# Read the factors as attributes: `layer.A_aux`, `layer.A_train`, `layer.B_train`, `layer.B_aux`,
# `layer.scale` ($\alpha/r$) and `layer.base` (the frozen `nn.Linear`).
#
# First $\Delta W$ itself, a $d_{out}\times d_{in}$ matrix, like the base weight it is added to:

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: build ΔW from the four factors
def my_delta_weight(layer):
    """ΔW of a LoRAMiniLinear, shape (d_out, d_in)."""
    ### BEGIN SOLUTION
    return layer.scale * layer.B_aux @ layer.B_train @ layer.A_train @ layer.A_aux
    ### END SOLUTION


checks.check_delta_weight(my_delta_weight)


# %% [markdown]
# Now the forward pass. A batch arrives as rows: `x` has shape `(..., d_in)`, with any number of leading
# dimensions (batch, sequence). In row form a linear map $M$ is applied as `x @ M.T`. Follow the cheap order
# of the chain, $x\to A_{aux}\to A_{train}\to B_{train}\to B_{aux}$, so that you never build a
# $d_{out}\times d_{in}$ matrix, and do not forget the frozen base layer. (The package computes the same
# thing in `LoRAMiniLinear.forward` and `adapter_forward`; read them *after* you have written yours.)

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 4: implement LoRAMiniLinear.forward
def my_forward(layer, x):
    """The output of a LoRAMiniLinear for x of shape (..., d_in): base output plus the scaled update."""
    ### BEGIN SOLUTION
    h = x @ layer.A_aux.T        # (..., a)
    h = h @ layer.A_train.T      # (..., r)
    h = h @ layer.B_train.T      # (..., b)
    update = h @ layer.B_aux.T   # (..., d_out)
    return layer.base(x) + layer.scale * update
    ### END SOLUTION


checks.check_forward(my_forward)
### BEGIN HIDDEN TESTS
_layer = loramini.LoRAMiniLinear(nn.Linear(20, 7), r=2, a=5, b=4, alpha=3, name="hidden").eval()
with torch.no_grad():
    _layer.B_train.normal_()
    _x = torch.randn(3, 20)
    assert torch.allclose(my_forward(_layer, _x), _layer(_x), atol=1e-5), "my_forward only works for one shape"
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The rank bound: $\operatorname{rank}\Delta W \le \min(r, a, b)$
#
# The rank of a product is at most the smallest inner dimension it passes through. Written out,
# $\Delta W = \tfrac{\alpha}{r}\,B_{aux}\,(B_{train}A_{train})\,A_{aux}$ passes through widths $a$, $r$ and
# $b$, so no LoRA-Mini adapter can have rank above $\min(r, a, b)$. A useful way to picture it:
# $\Delta W = B_{aux} M A_{aux}$ where the small matrix $M = B_{train}A_{train}$ ($b\times a$) has rank at most
# $r$; LoRA-Mini is a low-rank update **inside a fixed random subspace** (the $b$ columns of $B_{aux}$ and the
# $a$ rows of $A_{aux}$).
#
# Let us check it numerically: give $B_{train}$ random values (as training would) and count singular
# values. In float32 the "zero" singular values come out around $10^{-7}$ of the largest, so we count those
# above $10^{-4}$ times the largest.

# %%
# NBVAL_CHECK_OUTPUT
def numerical_rank(matrix):
    return int(torch.linalg.matrix_rank(matrix, rtol=1e-4))

rows = []
for r_, a_, b_ in [(4, 16, 12), (2, 16, 12), (8, 16, 12), (8, 6, 12), (8, 16, 5), (12, 16, 12)]:
    torch.manual_seed(1)
    probe = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=r_, a=a_, b=b_, name="probe")
    with torch.no_grad():
        probe.B_train.normal_()
    rank = numerical_rank(probe.delta_weight())
    assert rank == min(r_, a_, b_)
    rows.append({"r": r_, "a": a_, "b": b_, "min(r, a, b)": min(r_, a_, b_), "rank of ΔW": rank})
pd.DataFrame(rows)

# %% [markdown]
# The rows with $r > \min(a, b)$ show rank stuck at $\min(a,b)$: the extra rank is paid for in
# parameters but buys nothing. That is why `LoRAMiniConfig` refuses such settings, with a message saying
# how to fix them:

# %%
# NBVAL_CHECK_OUTPUT
try:
    loramini.LoRAMiniConfig(r=16, a=8, b=32)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# Check your understanding with a lopsided setting, where the rank you asked for is not the one you get.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 5: find the bottleneck
# A colleague adapts a layer with r = 8, a = 64, b = 4 (LoRAMiniConfig would refuse it; imagine it did not).
# What is the largest rank ΔW can reach? Set `max_rank` to that number.
### BEGIN SOLUTION
max_rank = 4   # ΔW passes through widths a = 64, r = 8 and b = 4; the narrowest one wins
### END SOLUTION
checks.check_rank_bound(max_rank, r=8, a=64, b=4)

# %% [markdown]
# ## 5. Which gradients exist, derived by hand
#
# Only $A_{train}$ and $B_{train}$ are trainable, so only they get gradients. To derive them, use the
# column convention of the maths: a batch of $n$ inputs is $X\in\mathbb{R}^{d_{in}\times n}$, and
# $G = \partial L/\partial Y\in\mathbb{R}^{d_{out}\times n}$ is the gradient arriving from above. Name the
# intermediate activations in forward order, with $s=\alpha/r$:
#
# $$P = A_{aux}X\;(a\times n),\quad Q = A_{train}P\;(r\times n),\quad Z = B_{train}Q\;(b\times n),\quad
# Y = W_0X + s\,B_{aux}Z.$$
#
# Going backwards, one linear map at a time (the gradient of $L$ with respect to $M$ in $U = MV$ is
# $\frac{\partial L}{\partial U}V^\top$, and with respect to $V$ it is $M^\top\frac{\partial L}{\partial U}$):
#
# $$\frac{\partial L}{\partial Z} = s\,B_{aux}^\top G\;(b\times n), \qquad
# \boxed{\frac{\partial L}{\partial B_{train}} = s\,B_{aux}^\top\,G\,(A_{train}A_{aux}X)^\top}\;(b\times r)$$
#
# $$\frac{\partial L}{\partial Q} = s\,B_{train}^\top B_{aux}^\top G\;(r\times n), \qquad
# \boxed{\frac{\partial L}{\partial A_{train}} = s\,(B_{aux}B_{train})^\top\,G\,(A_{aux}X)^\top}\;(r\times a)$$
#
# Three things to notice:
# * **At initialisation** $B_{train}=0$, so $\partial L/\partial A_{train}=0$: the first optimizer step moves
#   only $B_{train}$; after that both move. (LoRA behaves the same way.)
# * **Compared with LoRA**, whose gradient for $B$ is $s\,G(AX)^\top$, LoRA-Mini's gradient for $B_{train}$ is
#   that same quantity (with $A = A_{train}A_{aux}$) multiplied on the left by $B_{aux}^\top$: the LoRA
#   gradient, projected into the $b$-dimensional random subspace.
# * $W_0$, the bias, $A_{aux}$ and $B_{aux}$ get no gradient at all, so the optimizer keeps no state for them.
#
# Now let autograd check the algebra. We give $B_{train}$ random values first so that both gradients are
# non-zero, and use the loss $L=\tfrac12\lVert Y-T\rVert^2$, for which $G = Y - T$.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(2)
with torch.no_grad():
    layer.B_train.normal_()
X_rows = torch.randn(5, 64)                    # PyTorch stores a batch as rows: (n, d_in)
target = torch.randn(5, 48)

layer.zero_grad()
Y_rows = layer(X_rows)
loss = 0.5 * ((Y_rows - target) ** 2).sum()
loss.backward()

# The same quantities in the column convention used above.
X, G, s = X_rows.T, (Y_rows - target).detach().T, layer.scale
A_aux, A_train, B_train, B_aux = layer.A_aux, layer.A_train.detach(), layer.B_train.detach(), layer.B_aux
dB_train = s * B_aux.T @ G @ (A_train @ A_aux @ X).T
dA_train = s * (B_aux @ B_train).T @ G @ (A_aux @ X).T

for name, by_hand in [("B_train", dB_train), ("A_train", dA_train)]:
    auto = getattr(layer, name).grad
    ok = torch.allclose(by_hand, auto, rtol=1e-4, atol=1e-5)
    print(f"dL/d{name}: by hand {tuple(by_hand.shape)}, autograd {tuple(auto.shape)}, equal: {ok}")
    assert ok
print("gradient on the base weight:", layer.base.weight.grad)
print("tensors that received a gradient:", [n for n, p in layer.named_parameters() if p.grad is not None])

# %%
# NBVAL_CHECK_OUTPUT
# At initialisation (B_train = 0) only B_train gets a non-zero gradient.
fresh = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=16, b=12, alpha=8, name="demo.proj")
(0.5 * ((fresh(X_rows) - target) ** 2).sum()).backward()
print("at init, |dL/dA_train| = 0 :", bool((fresh.A_train.grad == 0).all()))
print("at init, |dL/dB_train| > 0 :", bool(fresh.B_train.grad.abs().sum() > 0))


# %% [markdown]
# Now translate the boxed formula for $\partial L/\partial B_{train}$ into PyTorch's *row* convention, where
# the batch `x` is `(n, d_in)` and the gradient arriving from above, `g` $=\partial L/\partial y$, is
# `(n, d_out)`. Every transpose flips: the column formula's $X$ is the rows' `x.T`, and $G$ is `g.T`. Shapes
# are your guide: the answer must be $b\times r$, like $B_{train}$. The check runs autograd on the same
# layer and compares.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 6: the gradient of B_train, by hand
def my_grad_B_train(layer, x, g):
    """dL/dB_train, shape (b, r), for inputs x (n, d_in) and output gradient g = dL/dy (n, d_out)."""
    ### BEGIN SOLUTION
    h = x @ layer.A_aux.T @ layer.A_train.T   # (n, r): what B_train receives
    g_z = layer.scale * g @ layer.B_aux        # (n, b): the gradient at B_train's output
    return g_z.T @ h                           # (b, r), summed over the n tokens
    ### END SOLUTION


checks.check_grad_B_train(my_grad_B_train)

# %% [markdown]
# ## 6. LoRA is a special case, and every LoRA-Mini adapter *is* a LoRA
#
# Two facts tie the methods together.
#
# **LoRA inside LoRA-Mini.** Choose $a = d_{in}$, $b = d_{out}$ and make both aux factors the identity
# (`aux_init="identity"`). Then $\Delta W = \tfrac{\alpha}{r}B_{train}A_{train}$, which is LoRA with
# $A = A_{train}$ and $B = B_{train}$. We check this against Hugging Face PEFT's own LoRA layer by giving both
# the same numbers.

# %%
# NBVAL_CHECK_OUTPUT
import peft


class OneLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(64, 48)

    def forward(self, x):
        return self.proj(x)


torch.manual_seed(3)
plain = OneLayer()
as_lora = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=64, b=48, alpha=8, aux_init="identity",
                                  name="proj")
as_lora.base.load_state_dict(plain.proj.state_dict())
with torch.no_grad():
    as_lora.B_train.normal_()
print("A_aux is I:", torch.equal(as_lora.A_aux, torch.eye(64)), "| B_aux is I:", torch.equal(as_lora.B_aux, torch.eye(48)))

peft_model = peft.get_peft_model(plain, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["proj"]))
peft_layer = peft_model.base_model.model.proj
with torch.no_grad():
    peft_layer.lora_A["default"].weight.copy_(as_lora.A_train)   # (r, d_in)
    peft_layer.lora_B["default"].weight.copy_(as_lora.B_train)   # (d_out, r)

x = torch.randn(7, 64)
same_output = torch.allclose(peft_model(x), as_lora(x), atol=1e-6)
peft_trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
ours_trainable = sum(p.numel() for p in as_lora.parameters() if p.requires_grad)
print("PEFT LoRA output == LoRA-Mini(identity) output:", same_output)
print(f"trainable numbers: PEFT {peft_trainable:,}, LoRA-Mini {ours_trainable:,}, "
      f"r*(d_in+d_out) = {loramini.lora_params(64, 48, 4):,}")
assert same_output and peft_trainable == ours_trainable == loramini.lora_params(64, 48, 4)

# %% [markdown]
# **LoRA-Mini inside LoRA.** Group the four factors in pairs:
# $\Delta W = \tfrac{\alpha}{r}\,(B_{aux}B_{train})(A_{train}A_{aux})$. The left pair is $d_{out}\times r$,
# the right pair $r\times d_{in}$: an ordinary rank-$r$ LoRA. This is how
# [`loramini.export_peft`](../loramini/io.py) writes an adapter that any LoRA server can load. Training is
# where the methods differ (LoRA-Mini moves far fewer numbers), not inference.

# %%
# NBVAL_CHECK_OUTPUT
B_lora = layer.B_aux @ layer.B_train          # (d_out, r)
A_lora = layer.A_train @ layer.A_aux          # (r, d_in)
as_plain_lora = layer.scale * B_lora @ A_lora
print("B =", tuple(B_lora.shape), "| A =", tuple(A_lora.shape))
print("(α/r)·B·A == ΔW:", torch.allclose(as_plain_lora, layer.delta_weight(), atol=1e-6))
assert torch.allclose(as_plain_lora, layer.delta_weight(), atol=1e-6)

# %% [markdown]
# ## 7. Merging: zero extra cost at inference
#
# Once training is over, $W_0 + \Delta W$ is just another $d_{out}\times d_{in}$ matrix. `merge()` adds
# $\Delta W$ into the base weight, after which the layer costs exactly what the original layer cost;
# `unmerge()` subtracts it again (to keep training, or to swap adapters). The outputs agree up to float
# rounding, first for one layer, then for a whole (tiny, randomly initialised) RoBERTa.

# %%
# NBVAL_CHECK_OUTPUT
x = torch.randn(5, 64)
W0 = layer.base.weight.detach().clone()
with torch.no_grad():
    unmerged = layer(x)
    layer.merge()
    merged = layer(x)
print("merged:", layer.merged, "| merged output == unmerged output:", torch.allclose(merged, unmerged, atol=1e-5))
assert torch.allclose(merged, unmerged, atol=1e-5)
layer.unmerge()
print("after unmerge, the weight is W0 again:", torch.allclose(layer.base.weight, W0, atol=1e-6))
assert torch.allclose(layer.base.weight, W0, atol=1e-6)

# %%
# NBVAL_CHECK_OUTPUT
model = loramini.tiny_roberta(seed=0)
loramini.inject(model, loramini.LoRAMiniConfig(r=4, a=16, b=16, target_modules="attention"))
torch.manual_seed(4)
with torch.no_grad():
    for _, adapted in loramini.loramini_layers(model):
        adapted.B_train.normal_(std=0.02)   # pretend we trained
ids = torch.randint(3, 1000, (2, 12))
with torch.no_grad():
    before = model(input_ids=ids).logits
    plain_model = loramini.merge_and_unload(model)
    after = plain_model(input_ids=ids).logits
left = sum(1 for _ in loramini.loramini_layers(plain_model))
print("LoRA-Mini layers left after merge_and_unload:", left)
print("logits unchanged by merging:", torch.allclose(before, after, atol=1e-5))
assert left == 0 and torch.allclose(before, after, atol=1e-5)

# %% [markdown]
# ## 8. Extra compute per token when the adapter is not merged
#
# During training (and when serving several adapters on one base model) the adapter runs as a side
# branch. Following the cheap order $x \to a \to r \to b \to d_{out}$, one token costs
#
# $$\underbrace{d_{in}a}_{A_{aux}} + \underbrace{ar}_{A_{train}} + \underbrace{rb}_{B_{train}} +
# \underbrace{b\,d_{out}}_{B_{aux}} \quad\text{multiply-adds, versus LoRA's}\quad r\,(d_{in}+d_{out}).$$
#
# Since $a, b \ge r$, LoRA-Mini's side branch is never cheaper than LoRA's: it trades a little compute for
# far fewer trainable (and stored) numbers. Both are small next to the base layer's $d_{in}d_{out}$, and
# both vanish after merging. Here are RoBERTa-base's three matrix shapes with $r=8$, $a=b=32$:

# %%
# NBVAL_CHECK_OUTPUT
r, a, b = 8, 32, 32
rows = []
for kind, (d_in, d_out) in {"attention 768→768": (768, 768), "intermediate 768→3072": (768, 3072),
                            "output 3072→768": (3072, 768)}.items():
    base_macs = d_in * d_out
    mini_macs = d_in * a + a * r + r * b + b * d_out
    lora_macs = r * (d_in + d_out)
    rows.append({"layer": kind, "base": base_macs, "LoRA r=8": lora_macs, "LoRA-Mini r=8,a=b=32": mini_macs,
                 "LoRA % of base": round(100 * lora_macs / base_macs, 2),
                 "LoRA-Mini % of base": round(100 * mini_macs / base_macs, 2), "merged": 0})
pd.DataFrame(rows).set_index("layer")

# %% [markdown]
# Do not take a formula on trust when you can count. PyTorch's `FlopCounterMode` counts the floating-point
# operations of every matrix product (2 per multiply-add). Running the chain on one token, with the real
# factors of a RoBERTa-sized `LoRAMiniLinear`, should give exactly twice the formula:

# %%
# NBVAL_CHECK_OUTPUT
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn, *args):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops()


def chain(m, x):
    """The adapter written out factor by factor: x → A_aux → A_train → B_train → B_aux."""
    return m.scale * (((x @ m.A_aux.T) @ m.A_train.T) @ m.B_train.T) @ m.B_aux.T


for d_in, d_out in [(768, 768), (768, 3072), (3072, 768)]:
    big = loramini.LoRAMiniLinear(nn.Linear(d_in, d_out), r=8, a=32, b=32, name="flops")
    flops = count_flops(chain, big, torch.randn(1, d_in))
    formula = d_in * 32 + 32 * 8 + 8 * 32 + 32 * d_out
    print(f"{d_in:>4}→{d_out:<4}: counted {flops:>7,} FLOPs = 2 × {formula:,} multiply-adds: {flops == 2 * formula}")
    assert flops == 2 * formula

# %% [markdown]
# A library is free to *regroup* the same product for speed. For instance, multiplying
# $B_{aux}B_{train}$ into one $d_{out}\times r$ matrix once per batch (a cost of $d_{out}\,b\,r$ per batch,
# not per token) brings the per-token cost down to $d_{in}a + ar + r\,d_{out}$. Which grouping loramini uses
# is documented in [`layer.py`](../loramini/layer.py); the next cell measures the package's own
# `adapter_forward`, separating the per-token cost from any once-per-batch cost by counting two batch sizes.
# Whatever the grouping, the result must never cost more per token than the plain chain.

# %%
# NBVAL_IGNORE_OUTPUT
# Implementation-dependent (so not checked by nbval): the package's adapter path, per token.
big = loramini.LoRAMiniLinear(nn.Linear(768, 768), r=8, a=32, b=32, name="flops")
f_small, f_large = (count_flops(big.adapter_forward, torch.randn(n, 768)) for n in (1, 1001))
per_token = (f_large - f_small) // 1000 // 2
per_batch = f_small // 2 - per_token
print(f"loramini.adapter_forward, 768→768: {per_token:,} multiply-adds per token "
      f"+ {per_batch:,} once per batch")
print(f"plain chain d_in·a + a·r + r·b + b·d_out = {768 * 32 + 32 * 8 + 8 * 32 + 32 * 768:,}; "
      f"LoRA r·(d_in + d_out) = {8 * 1536:,}")
assert per_token <= 768 * 32 + 32 * 8 + 8 * 32 + 32 * 768

# %% [markdown]
# One more count, this time of compute rather than memory, for the widest-to-narrowest layer of the block.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 7: extra multiply-adds per token
# An unmerged LoRA-Mini adapter on `output.dense` (d_in = 3072 → d_out = 768) with r = 4, a = b = 16,
# applied as the plain chain x → A_aux → A_train → B_train → B_aux. How many multiply-adds per token?
### BEGIN SOLUTION
extra_macs = 3072 * 16 + 16 * 4 + 4 * 16 + 16 * 768
### END SOLUTION
checks.check_extra_flops(extra_macs, d_in=3072, d_out=768, r=4, a=16, b=16)

# %% [markdown]
# ## 9. Pictures: what the updates look like
#
# Heatmaps first. LoRA's $\Delta W$ (left) is a product of two trained factors and can point anywhere.
# LoRA-Mini's $\Delta W$ (middle) is built from the small trained core $M = B_{train}A_{train}$ (right, only
# $b\times a = 12\times16$) and spread out over the full $48\times 64$ matrix by the fixed random projections.
# Both have rank 4.

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(5)
lora_like = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=64, b=48, alpha=4, aux_init="identity", name="p")
mini_like = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=16, b=12, alpha=4, name="p")
with torch.no_grad():
    for m in (lora_like, mini_like):
        m.B_train.normal_()
panels = [("LoRA ΔW (48×64)", lora_like.delta_weight()),
          ("LoRA-Mini ΔW (48×64)", mini_like.delta_weight()),
          ("core M = B_train A_train (12×16)", (mini_like.B_train @ mini_like.A_train).detach())]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
for ax, (title, mat) in zip(axes, panels):
    lim = mat.abs().max().item()
    im = ax.imshow(mat.detach().numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("input dim")
    ax.set_ylabel("output dim")
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Heatmaps hide rank; **singular values** reveal it. A matrix of rank $k$ has exactly $k$ non-zero
# singular values, so on a log scale its spectrum falls off a cliff after the $k$-th one. A dense random
# update (what full fine-tuning may produce) has no cliff; LoRA and LoRA-Mini with $r=4$ both drop after
# 4 values; and LoRA-Mini with $r=8$ but $a=6$ drops after 6, the rank bound of Section 4 seen in a picture.

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(6)
capped = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=8, a=6, b=12, alpha=8, name="p")
with torch.no_grad():
    capped.B_train.normal_()
spectra = {"dense random update (full FT)": torch.randn(48, 64),
           "LoRA, r=4": lora_like.delta_weight(),
           "LoRA-Mini, r=4, a=16, b=12": mini_like.delta_weight(),
           "LoRA-Mini, r=8, a=6, b=12": capped.delta_weight()}
fig, ax = plt.subplots(figsize=(7, 3.4))
for (label, mat), marker in zip(spectra.items(), "o^sD"):
    sv = torch.linalg.svdvals(mat.detach())
    ax.semilogy(range(1, len(sv) + 1), (sv / sv[0]).clamp_min(1e-9).numpy(), marker=marker, ms=3, label=label)
ax.set_xlabel("index i")
ax.set_ylabel("σ_i / σ_1 (log scale)")
ax.set_title("Singular-value spectra of ΔW")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 10. A small experiment: recovering a planted low-rank update
#
# Suppose the "right" update for a task is a known rank-$k$ matrix $\Delta W^*$ (here $k=4$, on a
# $64\times64$ layer with $a=b=32$). We show the layer random inputs $x$ together with the outputs
# $\Delta W^* x$ it should produce, and let Adam fit $A_{train}$ and $B_{train}$ by gradient descent, for
# ranks $r=1,\dots,8$. We measure the relative error $\lVert\Delta W-\Delta W^*\rVert_F^2/\lVert\Delta W^*\rVert_F^2$.
#
# We plant two kinds of target:
# * **inside LoRA-Mini's subspace**, $\Delta W^* = B_{aux}M^*A_{aux}$ with $M^*$ of rank $k$. Prediction: the
#   error falls as $r$ grows and hits (numerically) zero at $r=k$: a *knee*.
# * **a generic rank-$k$ matrix**, not aligned with the random subspaces. LoRA (identity aux) can still fit
#   it exactly from $r=k$ on. LoRA-Mini can only reach the part of $\Delta W^*$ that lives in its
#   $b$-dimensional output and $a$-dimensional input subspaces; for random subspaces that is about a
#   fraction $\frac{a}{d_{in}}\cdot\frac{b}{d_{out}}$ of the energy, so the error should plateau near
#   $1-\frac{a\,b}{d_{in}d_{out}} = 0.75$, whatever $r$.
#
# The second case is an honest limit of the method: with $a, b \ll d$, LoRA-Mini bets that a random
# subspace of a *large* layer contains enough useful directions. Whether that bet pays off on real tasks is
# an empirical question, which notebooks 03 and 04 take up. (Smoke mode uses fewer optimizer steps; the
# conclusions are the same.)

# %%
# NBVAL_IGNORE_OUTPUT
D, A_DIM, B_DIM, K = 64, 32, 32, 4
RANKS = list(range(1, 9))
STEPS = 120 if SMOKE else 300


def relative_error(adapted, target):
    with torch.no_grad():
        return ((adapted.delta_weight() - target).norm() ** 2 / target.norm() ** 2).item()


def fit(target, r, aux_init="gaussian", a=A_DIM, b=B_DIM, steps=STEPS, lr=2e-2):
    """Fit one adapter's A_train/B_train so that the adapter maps x to target @ x (teaching code)."""
    torch.manual_seed(0)
    adapted = loramini.LoRAMiniLinear(nn.Linear(D, D), r=r, a=a, b=b, alpha=r, name="planted",
                                      aux_init=aux_init).to(device)
    target = target.to(device)
    opt = torch.optim.Adam([adapted.A_train, adapted.B_train], lr=lr)
    inputs = torch.Generator().manual_seed(1)
    for _ in range(steps):
        xb = torch.randn(128, D, generator=inputs).to(device)
        loss = ((adapted.adapter_forward(xb) - xb @ target.T) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return relative_error(adapted, target)


# The two planted targets, both with singular values 4, 3, 2, 1.
gen = torch.Generator().manual_seed(42)
strengths = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0]))
subspace = loramini.LoRAMiniLinear(nn.Linear(D, D), r=1, a=A_DIM, b=B_DIM, name="planted")  # same aux as fit()
U, _ = torch.linalg.qr(torch.randn(B_DIM, K, generator=gen))
V, _ = torch.linalg.qr(torch.randn(A_DIM, K, generator=gen))
target_inside = subspace.B_aux @ (U @ strengths @ V.T) @ subspace.A_aux
U, _ = torch.linalg.qr(torch.randn(D, K, generator=gen))
V, _ = torch.linalg.qr(torch.randn(D, K, generator=gen))
target_generic = U @ strengths @ V.T
assert numerical_rank(target_inside) == numerical_rank(target_generic) == K

start, threads = time.time(), torch.get_num_threads()
torch.set_num_threads(1)   # these matrices are tiny: one CPU thread beats several fighting over them
results = pd.DataFrame({
    "r": RANKS,
    "LoRA-Mini, target in its subspace": [fit(target_inside, r) for r in RANKS],
    "LoRA-Mini, generic target": [fit(target_generic, r) for r in RANKS],
    "LoRA, generic target": [fit(target_generic, r, aux_init="identity", a=D, b=D) for r in RANKS],
}).set_index("r")
torch.set_num_threads(threads)
print(f"{3 * len(RANKS)} fits of {STEPS} steps in {time.time() - start:.1f}s")
results.round(4)

# %%
# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(7, 3.6))
for column, marker in zip(results.columns, "os^"):
    ax.semilogy(results.index, results[column].clip(lower=1e-8), marker=marker, label=column)
ax.axvline(K, color="grey", ls="--", lw=1)
ax.text(K + 0.1, 1e-3, f"planted rank k={K}", color="grey")
ax.set_xlabel("adapter rank r")
ax.set_ylabel("relative error of ΔW (log)")
ax.set_title("Recovering a planted rank-4 update")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
# What the experiment must show, in either mode (the exact numbers are not checked, the shape is).
inside = results["LoRA-Mini, target in its subspace"]
generic = results["LoRA-Mini, generic target"]
lora = results["LoRA, generic target"]
knee = inside[K - 1] > 0.01 and inside[K] < 1e-3 and all(inside[r] < 1e-3 for r in RANKS if r >= K)
falls = all(inside[r] > inside[r + 1] for r in range(1, K))
plateau = 1 - A_DIM * B_DIM / D**2
print("LoRA-Mini, target in its subspace: error falls until r=k, then ~0 (a knee at k):", knee and falls)
print("LoRA on the generic target: the same knee at k:", lora[K - 1] > 0.01 and lora[K] < 1e-3)
print(f"LoRA-Mini on the generic target: stuck near 1 - ab/d^2 = {plateau}:",
      all(abs(generic[r] - plateau) < 0.1 for r in RANKS if r >= K))
assert knee and falls and lora[K] < 1e-3

# %% [markdown]
# ## Summary
#
# * LoRA-Mini writes the update as $\Delta W = \tfrac{\alpha}{r}B_{aux}B_{train}A_{train}A_{aux}$. The outer
#   factors are frozen and regenerated from a seed; only $A_{train}$ ($r\times a$) and $B_{train}$ ($b\times r$)
#   are trained: $r(a+b)$ numbers instead of LoRA's $r(d_{in}+d_{out})$.
# * $\operatorname{rank}\Delta W\le\min(r,a,b)$, so $r$ above $\min(a,b)$ is wasted (and refused by the config).
# * $B_{train}=0$ at the start makes $\Delta W=0$ exactly, and makes the first step move $B_{train}$ only.
# * The gradients are LoRA's gradients projected by the frozen factors; autograd agrees with the hand
#   derivation.
# * With identity aux factors LoRA-Mini is LoRA; conversely every LoRA-Mini adapter multiplies out to a
#   rank-$r$ LoRA, which is why it can be exported to PEFT and merged for free.
# * Unmerged, the side branch costs $d_{in}a+ar+rb+b\,d_{out}$ multiply-adds per token as a plain chain
#   (a bit more than LoRA; regrouping can save some of it), and nothing once merged.
# * LoRA-Mini learns low-rank updates *inside a random subspace*; the planted-update experiment shows the
#   knee at the true rank, and also what lies outside its reach.
#
# ## More to explore (open questions, no automatic check)
#
# 1. **Predict, then check.** Rerun the experiment's generic target with $a=b=48$ and then $a=b=16$. Before
#    you run it, use $1-ab/d^2$ to predict where the LoRA-Mini curve will plateau.
# 2. **Both factors at zero.** In `fit`, set `A_train` to zero as well before training. What happens to the
#    error, and which line of the gradient derivation explains it?
# 3. **Orthogonal aux factors.** Build layers with `aux_init="orthogonal"`. Does the rank bound change? Does
#    the plateau in exercise 1 move? Why might orthonormal projections be a better bet than Gaussian ones?
# 4. **Cheaper than LoRA?** Using the FLOP formula, show that LoRA-Mini's unmerged branch can never be cheaper
#    than LoRA's when $r\le\min(a,b)$. For which layer shapes is the gap largest?
# 5. **Trainable aux.** If $A_{aux}$ were trained too, write down $\partial L/\partial A_{aux}$ and the new
#    parameter count. What would be left of LoRA-Mini's saving?
#
# **Read next:** [`loramini/layer.py`](../loramini/layer.py) (about 200 lines, everything in this notebook),
# then [`loramini/inject.py`](../loramini/inject.py), and notebook
# [`02_parameter_counting.ipynb`](02_parameter_counting.ipynb) for exact counts on RoBERTa.
