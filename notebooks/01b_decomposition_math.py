# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01b · The mathematics of LoRA-Mini
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/loramini-course/loramini/blob/main/notebooks/01b_decomposition_math.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/loramini-course/loramini/main?labpath=notebooks%2F01b_decomposition_math.ipynb)
#
# Notebook 01 built LoRA-Mini from scratch and took the package's layer apart: the four factors and their
# shapes, the scale $\alpha/r$, the exact start at the pretrained model and the rank bound. This notebook does
# the mathematics of the same layer: the **gradients** derived by hand and checked by autograd, **LoRA as a
# special case** (and every LoRA-Mini adapter as a LoRA), **merging** for free inference, the **extra compute**
# of an unmerged adapter, **pictures** of the updates, and a small **experiment** that shows what LoRA-Mini can
# and cannot learn, read with a confidence interval over seeds. Everything runs on a CPU in a few minutes at
# most, and the claims in the text are checked by cells that would fail if they were false.

# %% [markdown]
# > **For instructors — learning goals.** After this notebook students can
# > 1. derive the gradient of $B_{train}$ by hand and confirm it with autograd;
# > 2. recognise LoRA as the special case $A_{aux}=I$, $B_{aux}=I$, and any LoRA-Mini adapter as an ordinary LoRA after multiplying out;
# > 3. count the extra multiply-adds of an unmerged adapter, and explain why merging (or pre-multiplying) removes them;
# > 4. read a singular-value spectrum for the rank of an update;
# > 5. predict from a small experiment what LoRA-Mini can and cannot learn, and compute and read a confidence
# >    interval over seeds.
# > 6. say why the aux factors are scaled by $1/\sqrt{\text{fan-in}}$, and what keeps the activations saved for the
# >    backward pass thin (the hourglass, not the custom backward).
# >
# > *Time:* 40–50 minutes of reading, plus the exercises. *Prerequisites:* notebook 01, the chain rule.
# > *Source to read alongside:* `loramini/layer.py` (the layer, `merge`, and the custom backward
# > `LoRAMiniFunction`), in the package folder or on
# > [GitHub](https://github.com/loramini-course/loramini/blob/main/loramini/layer.py).

# %% [markdown]
# > **Exercises.** Cells whose first line reads `# Exercise N: …` are for you. In the student copy of this
# > notebook (in `notebooks/exercises/`) the answer is replaced by `raise Todo("Exercise N: …")`: delete that
# > line, write your answer there, and run the cell. The `checks.…` call at the end of the cell prints a ✓
# > when you are right, and otherwise one line with a hint that says what looks wrong. Where you write code,
# > the check switches the package's own implementation off while your function runs, so it really tests
# > yours. Later cells never depend on your answers, so you can skip an exercise and come back to it.

# %%
# NBVAL_IGNORE_OUTPUT
# On Colab: install loramini (and what the notebooks use) from GitHub. Everywhere else (your venv, conda,
# Binder, CI) this cell does nothing, because the package is already installed there.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "loramini[lab] @ git+https://github.com/loramini-course/loramini.git"], check=True)

# %%
# NBVAL_IGNORE_OUTPUT
# The same start in every notebook (loramini/notebook.py): the device is CUDA when there is a GPU (Colab),
# else the CPU, the two that training runs on; SMOKE (LORAMINI_SMOKE=1, set by CI and Binder) shrinks the
# experiments while every cell still runs.
import torch

import loramini
import loramini.notebook

device, SMOKE = loramini.notebook.setup()

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math
import time
from collections import OrderedDict

import matplotlib.pyplot as plt
import pandas as pd
from torch import nn

from loramini import checks   # the exercises' answer checks

plt.rcParams.update({"figure.dpi": 110, "figure.figsize": (8, 3.2)})
_ = torch.manual_seed(0)

# %% [markdown]
# ## The layer of notebook 01
#
# Throughout, we use notebook 01's deliberately small, lopsided layer ($d_{in}=64$, $d_{out}=48$, $a=16$,
# $b=12$, $r=4$, $\alpha=8$): no two dimensions are equal, so every shape tells you which factor it belongs to.
# Its $B_{train}$ is still zero, as after any fresh injection.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
layer = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=16, b=12, alpha=8, name="demo.proj")
print(layer)
print({factor: tuple(getattr(layer, factor).shape) for factor in ["A_aux", "A_train", "B_train", "B_aux"]},
      "| scale α/r =", layer.scale)


def numerical_rank(matrix):
    """Rank as the count of singular values above 1e-4 of the largest (float32's 'zeros' sit near 1e-7)."""
    return int(torch.linalg.matrix_rank(matrix, rtol=1e-4))


# %% [markdown]
# ## 1. The gradients, derived by hand
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
# Autograd checks the algebra. We give $B_{train}$ random values first so that both gradients are non-zero,
# and use the loss $L=\tfrac12\lVert Y-T\rVert^2$, for which $G = Y - T$.

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
# are your guide: the answer must be $b\times r$, like $B_{train}$. Autograd is switched off while your
# function runs (so it has to be a derivation); the check then compares with autograd on a copy.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: the gradient of B_train, by hand
def my_grad_B_train(layer, x, g):
    """dL/dB_train, shape (b, r), for inputs x (n, d_in) and output gradient g = dL/dy (n, d_out)."""
    ### BEGIN SOLUTION
    h = x @ layer.A_aux.T @ layer.A_train.T   # (n, r): what B_train receives
    g_z = layer.scale * g @ layer.B_aux        # (n, b): the gradient at B_train's output
    return g_z.T @ h                           # (b, r), summed over the n tokens
    ### END SOLUTION


checks.check_grad_B_train(my_grad_B_train)
### BEGIN HIDDEN TESTS
_layer = loramini.LoRAMiniLinear(nn.Linear(9, 6), r=2, a=4, b=3, alpha=5, name="hidden")
with torch.no_grad():
    _layer.B_train.normal_()
_x, _g = torch.randn(5, 9), torch.randn(5, 6)
with torch.no_grad():
    _mine = my_grad_B_train(_layer, _x, _g).float()
_layer(_x).backward(_g)
assert torch.allclose(_mine, _layer.B_train.grad, rtol=1e-4, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. LoRA is a special case, and every LoRA-Mini adapter *is* a LoRA
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
# the right pair $r\times d_{in}$: an ordinary rank-$r$ LoRA. This is how `loramini.export_peft` (in
# `loramini/io.py`) writes an adapter that any LoRA server can load. The methods differ in training (LoRA-Mini
# moves far fewer numbers), not in what the finished adapter can be turned into.

# %%
# NBVAL_CHECK_OUTPUT
B_lora = layer.B_aux @ layer.B_train          # (d_out, r)
A_lora = layer.A_train @ layer.A_aux          # (r, d_in)
as_plain_lora = layer.scale * B_lora @ A_lora
print("B =", tuple(B_lora.shape), "| A =", tuple(A_lora.shape))
print("(α/r)·B·A == ΔW:", torch.allclose(as_plain_lora, layer.delta_weight(), atol=1e-6))
assert torch.allclose(as_plain_lora, layer.delta_weight(), atol=1e-6)

# %% [markdown]
# ## 3. Merging: zero extra cost at inference
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
# `merge_and_unload` is the layer swap of notebook 01 (`swap_in`) run backwards: each adapted layer is replaced, on its
# parent, by a plain `nn.Linear` that holds $W_0 + \Delta W$. Write it yourself. The check gives you a small
# model with LoRA-Mini on some layers and switches the package's merge functions off while yours runs.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: merge and unload, by hand
def my_merge_and_unload(model):
    """Replace every loramini.LoRAMiniLinear in `model` by a plain nn.Linear with weight W0 + ΔW and the
    base layer's bias; return the model."""
    ### BEGIN SOLUTION
    for name, module in list(model.named_modules()):
        if isinstance(module, loramini.LoRAMiniLinear):
            merged = nn.Linear(module.in_features, module.out_features, bias=module.base.bias is not None)
            with torch.no_grad():
                delta = module.scale * module.B_aux @ module.B_train @ module.A_train @ module.A_aux
                merged.weight.copy_(module.base.weight + delta)
                if module.base.bias is not None:
                    merged.bias.copy_(module.base.bias)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, merged)
    return model
    ### END SOLUTION


checks.check_merge_and_unload(my_merge_and_unload)
### BEGIN HIDDEN TESTS
_m = loramini.inject(loramini.tiny_roberta(seed=1), loramini.LoRAMiniConfig(r=2, a=8, b=8, target_modules="attention"))
with torch.no_grad():
    for _, _l in loramini.loramini_layers(_m):
        _l.B_train.normal_(std=0.02)
    _ids = torch.randint(3, 1000, (2, 6))
    _before = _m(input_ids=_ids).logits
    _out = my_merge_and_unload(_m) or _m
    assert not list(loramini.loramini_layers(_out)) and torch.allclose(_out(input_ids=_ids).logits, _before, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Extra compute per token when the adapter is not merged
#
# During training (and when serving several adapters on one base model) the adapter runs as a side branch.
# Following the chain $x \to a \to r \to b \to d_{out}$ one factor at a time, one token costs
#
# $$\underbrace{d_{in}a}_{A_{aux}} + \underbrace{ar}_{A_{train}} + \underbrace{rb}_{B_{train}} +
# \underbrace{b\,d_{out}}_{B_{aux}} \quad\text{multiply-adds, versus LoRA's}\quad r\,(d_{in}+d_{out}).$$
#
# Since $a, b \ge r$, this plain chain is never cheaper than LoRA's branch. For RoBERTa-base's three matrix
# shapes with $r=8$, $a=b=32$:

# %%
# NBVAL_CHECK_OUTPUT
r, a, b = 8, 32, 32
rows = []
for kind, (d_in, d_out) in {"attention 768→768": (768, 768), "intermediate 768→3072": (768, 3072),
                            "output 3072→768": (3072, 768)}.items():
    base_macs = d_in * d_out
    chain_macs = d_in * a + a * r + r * b + b * d_out
    lora_macs = r * (d_in + d_out)
    rows.append({"layer": kind, "base": base_macs, "LoRA r=8": lora_macs, "LoRA-Mini chain": chain_macs,
                 "chain / LoRA": round(chain_macs / lora_macs, 2),
                 "LoRA-Mini chain % of base": round(100 * chain_macs / base_macs, 2), "merged": 0})
pd.DataFrame(rows).set_index("layer")

# %% [markdown]
# On the attention shape the plain chain costs **49,664** multiply-adds per token against LoRA's **12,288**:
# about **4x** LoRA's branch (here $a=b=32$ is four times $r=8$), though still only 8% of the base layer's
# 589,824. All of it vanishes after merging.
#
# There is a cheaper grouping. Multiply each pair once per batch, $A = A_{train}A_{aux}$ ($r\times d_{in}$,
# costing $r\,a\,d_{in}$) and $B = B_{aux}B_{train}$ ($d_{out}\times r$, costing $d_{out}\,b\,r$); after that each
# token costs $r\,(d_{in}+d_{out})$, **exactly LoRA's cost**, which is the export of Section 2 applied on the fly.
# PyTorch's `FlopCounterMode` counts floating-point operations (2 per multiply-add); counting at two batch
# sizes separates the per-token cost from the once-per-batch cost:

# %%
# NBVAL_CHECK_OUTPUT
from torch.utils.flop_counter import FlopCounterMode


def count_macs(fn, *args):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() // 2


def per_token_and_per_batch(fn, m, d_in):
    one, many = count_macs(fn, m, torch.randn(1, d_in)), count_macs(fn, m, torch.randn(1001, d_in))
    per_token = (many - one) // 1000
    return per_token, one - per_token


def chain(m, x):
    """Factor by factor: x → A_aux → A_train → B_train → B_aux."""
    return m.scale * (((x @ m.A_aux.T) @ m.A_train.T) @ m.B_train.T) @ m.B_aux.T


def premultiplied(m, x):
    """Both pairs multiplied once per batch, then a plain rank-r LoRA: x → A (r) → B (d_out)."""
    A, B = m.A_train @ m.A_aux, m.scale * (m.B_aux @ m.B_train)
    return (x @ A.T) @ B.T


big = loramini.LoRAMiniLinear(nn.Linear(768, 768), r=8, a=32, b=32, name="flops")
rows = []
for label, fn in [("plain chain", chain), ("both pairs pre-multiplied", premultiplied),
                  ("loramini's adapter_forward", lambda m, x: m.adapter_forward(x))]:
    token, batch = per_token_and_per_batch(fn, big, 768)
    rows.append({"768→768, r=8, a=b=32": label, "multiply-adds per token": token, "once per batch": batch})
rows.append({"768→768, r=8, a=b=32": "LoRA r=8 (formula)", "multiply-adds per token": 8 * 1536, "once per batch": 0})
cost = pd.DataFrame(rows).set_index("768→768, r=8, a=b=32")
assert cost.iloc[0, 0] == 768 * 32 + 32 * 8 + 8 * 32 + 32 * 768 == 49_664
assert cost.iloc[1, 0] == 8 * (768 + 768) == 12_288
cost

# %% [markdown]
# The package's `adapter_forward` sits in between: it pre-multiplies only the output pair
# ($B_{aux}B_{train}$, once per call) and keeps the input side as the chain, so per token it pays
# $d_{in}a + ar + r\,d_{out}$. Pre-multiplying the input pair as well would reach LoRA's per-token cost, at
# $r\,a\,d_{in}$ multiply-adds per batch. Every grouping computes the same $\Delta W x$; only the cost moves.
#
# One more count, for the widest-to-narrowest layer of the block. Predict it by hand, then the cell counts it.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: extra multiply-adds per token
# An unmerged LoRA-Mini adapter on `output.dense` (d_in = 3072 → d_out = 768) with r = 4, a = b = 16,
# applied as the plain chain x → A_aux → A_train → B_train → B_aux. How many multiply-adds per token?
### BEGIN SOLUTION
extra_macs = 3072 * 16 + 16 * 4 + 4 * 16 + 16 * 768
### END SOLUTION
checks.check_extra_flops(extra_macs, d_in=3072, d_out=768, r=4, a=16, b=16)
_wide = loramini.LoRAMiniLinear(nn.Linear(3072, 768), r=4, a=16, b=16, name="exercise")
print("counted by FlopCounterMode:", count_macs(chain, _wide, torch.randn(1, 3072)) == extra_macs)
### BEGIN HIDDEN TESTS
assert extra_macs == 61_568
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Pictures: what the updates look like
#
# Heatmaps first. LoRA's $\Delta W$ (left) is a product of two trained factors and can point anywhere.
# LoRA-Mini's $\Delta W$ (middle) is built from the small trained core $M = B_{train}A_{train}$ (right, only
# $b\times a = 12\times16$, indexed by the aux directions rather than by input and output coordinates) and spread
# over the full $48\times 64$ matrix by the fixed random projections. Both have rank 4.

# %%
# NBVAL_IGNORE_OUTPUT
from matplotlib.ticker import MaxNLocator

torch.manual_seed(5)
lora_like = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=64, b=48, alpha=4, aux_init="identity", name="p")
mini_like = loramini.LoRAMiniLinear(nn.Linear(64, 48), r=4, a=16, b=12, alpha=4, name="p")
with torch.no_grad():
    for m in (lora_like, mini_like):
        m.B_train.normal_()
panels = [("LoRA ΔW (48×64)", lora_like.delta_weight(), "input coordinate j", "output coordinate i"),
          ("LoRA-Mini ΔW (48×64)", mini_like.delta_weight(), "input coordinate j", "output coordinate i"),
          ("core M = B_train A_train (12×16)", (mini_like.B_train @ mini_like.A_train).detach(),
           "A_aux direction (row of A_aux)", "B_aux direction (column of B_aux)")]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
for ax, (title, mat, xlabel, ylabel) in zip(axes, panels):
    lim = mat.abs().max().item()
    im = ax.imshow(mat.detach().numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # rows and columns are whole numbers
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(im, ax=ax, shrink=0.8, label="entry value")
fig.tight_layout()
plt.show()

# %% [markdown]
# Heatmaps hide rank; **singular values** reveal it. A matrix of rank $k$ has exactly $k$ non-zero
# singular values, so on a log scale its spectrum falls off a cliff after the $k$-th one. A dense random
# update (what full fine-tuning may produce) has no cliff; LoRA and LoRA-Mini with $r=4$ both drop after
# 4 values; and LoRA-Mini with $r=8$ but $a=6$ drops after 6, the rank bound of notebook 01 seen in a picture.

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(6)
capped_factors = [torch.randn(48, 12), torch.randn(12, 8), torch.randn(8, 6), torch.randn(6, 64)]
capped = torch.linalg.multi_dot(capped_factors)   # B_aux B_train A_train A_aux with r = 8 > a = 6
spectra = {"dense random update (full FT)": torch.randn(48, 64),
           "LoRA, r=4": lora_like.delta_weight(),
           "LoRA-Mini, r=4, a=16, b=12": mini_like.delta_weight(),
           "LoRA-Mini, r=8, a=6, b=12 (multiplied out)": capped}
fig, ax = plt.subplots(figsize=(7, 3.4))
for (label, mat), marker in zip(spectra.items(), "o^sD"):
    sv = torch.linalg.svdvals(mat.detach())
    ax.semilogy(range(1, len(sv) + 1), (sv / sv[0]).clamp_min(1e-9).numpy(), marker=marker, ms=3, label=label)
ax.set_xlabel("singular value index i")
ax.set_ylabel("σ_i / σ_1 (log scale)")
ax.set_title("Singular-value spectra of ΔW", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. A small experiment: recovering a planted low-rank update
#
# Suppose the "right" update for a task is a known rank-$k$ matrix $\Delta W^*$ (here $k=4$, on a
# $64\times64$ layer with $a=b=32$). We show the layer random inputs $x$ together with the outputs
# $\Delta W^* x$ it should produce, and let Adam fit $A_{train}$ and $B_{train}$, for ranks $r=1,\dots,8$. We
# measure the relative error $\lVert\Delta W-\Delta W^*\rVert_F^2/\lVert\Delta W^*\rVert_F^2$.
#
# We plant two kinds of target, both built from a core with singular values 4, 3, 2, 1:
# * **inside LoRA-Mini's subspace**, $\Delta W^* = B_{aux}M^*A_{aux}$ where $M^*$ ($32\times32$) has singular
#   values 4, 3, 2, 1. The random aux factors are not orthonormal, so $\Delta W^*$ itself ends up with other
#   singular values (printed below), still exactly 4 of them. Prediction: the error falls as $r$ grows and
#   reaches (numerically) zero at $r=k$: a *knee*.
# * **a generic rank-$k$ matrix** with singular values exactly 4, 3, 2, 1 and random singular vectors, not
#   aligned with the random subspaces. LoRA (identity aux) can fit it exactly from $r=k$ on. LoRA-Mini can only
#   reach the part of $\Delta W^*$ that lives in its $b$-dimensional output and $a$-dimensional input
#   subspaces; for random subspaces that is on average a fraction $\frac{a}{d_{in}}\cdot\frac{b}{d_{out}}$ of the
#   energy, so once $r \ge k$ its error should plateau near $1-\frac{a\,b}{d_{in}d_{out}} = 0.75$, and raising
#   $r$ further cannot lower it. Below $k$ the rank limits it as well, so the error starts higher.
#
# The second case is an honest limit of the method: with $a, b \ll d$, LoRA-Mini bets that a random subspace of
# a *large* layer contains enough useful directions (Section 7 says why that bet is reasonable). Smoke mode
# runs fewer optimizer steps than full mode, so the numbers in this section differ slightly between the modes.

# %%
# NBVAL_IGNORE_OUTPUT
D, A_DIM, B_DIM, K = 64, 32, 32, 4
RANKS = list(range(1, 9))
STEPS = 120 if SMOKE else 300


def relative_error(adapted, target):
    with torch.no_grad():
        return ((adapted.delta_weight() - target.to(adapted.A_aux.device)).norm() ** 2 / target.norm() ** 2).item()


def fit(target, r, aux_init="gaussian", a=A_DIM, b=B_DIM, steps=STEPS, lr=2e-2, projection_seed=0):
    """Fit one adapter's A_train/B_train so that the adapter maps x to target @ x; returns the relative error."""
    torch.manual_seed(0)
    adapted = loramini.LoRAMiniLinear(nn.Linear(D, D), r=r, a=a, b=b, alpha=r, name="planted",
                                      aux_init=aux_init, projection_seed=projection_seed).to(device)
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
for label, target_ in [("inside the subspace", target_inside), ("generic", target_generic)]:
    sv = torch.linalg.svdvals(target_)
    print(f"target {label:<19}: top singular values {[round(v, 3) for v in sv[:5].tolist()]}, "
          f"best rank-1 relative error {(sv[1:] ** 2).sum().item() / (sv ** 2).sum().item():.3f}")

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
ax.set_ylabel("relative error ‖ΔW − ΔW*‖² / ‖ΔW*‖²")
ax.set_title("Recovering a planted rank-4 update (64×64 layer, a = b = 32)", fontsize=10)
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
print(f"LoRA-Mini on the generic target: within 0.1 of 1 - ab/d^2 = {plateau} for every r >= k:",
      all(abs(generic[r] - plateau) < 0.1 for r in RANKS if r >= K))
assert knee and falls and lora[K] < 1e-3

# %% [markdown]
# Predict before you run: if the aux widths grow from 32 to 48 on the same $64\times64$ layer, where will
# LoRA-Mini's error on the generic target settle? Use the argument above, write your prediction as a number,
# and the cell then runs the fit at $r=k=4$ and prints the measured error next to it.

# %%
# NBVAL_IGNORE_OUTPUT
# Exercise 4: predict the plateau, then run
# LoRA-Mini with a = b = 48 on the 64 × 64 layer, generic rank-4 target. Set `predicted_error` to the relative
# error you expect (a number between 0 and 1).
### BEGIN SOLUTION
predicted_error = 1 - (48 / 64) * (48 / 64)   # the energy outside both random subspaces
### END SOLUTION
checks.check_plateau_prediction(predicted_error, d_in=64, d_out=64, a=48, b=48)
measured = fit(target_generic, r=K, a=48, b=48)
print(f"predicted {predicted_error:.3f}, measured {measured:.3f} (r = {K}, {STEPS} steps)")
### BEGIN HIDDEN TESTS
assert abs(predicted_error - 0.4375) < 1e-6
### END HIDDEN TESTS

# %% [markdown]
# The plateau of $0.75$ is an average over random subspaces; any one draw of the aux factors sits a little above
# or below it. Is the prediction right on average, or is the argument off? One draw cannot tell; ten draws (ten
# projection seeds) and a 95% confidence interval for their mean can. To keep the optimizer out of the question,
# we take for each draw the best error that *any* adapter with those aux factors can reach: project the target
# onto the column space of $B_{aux}$ and the row space of $A_{aux}$ exactly (with $r \ge k$ the adapter can
# represent that projection, and a long enough fit approaches it).

# %%
# NBVAL_CHECK_OUTPUT
def best_error(target, a, b, projection_seed):
    """The smallest relative error reachable with the aux factors of this seed (r >= rank of the target)."""
    m = loramini.LoRAMiniLinear(nn.Linear(D, D), r=1, a=a, b=b, name="planted", projection_seed=projection_seed)
    Q_out = torch.linalg.qr(m.B_aux.double()).Q        # orthonormal basis of the b output directions
    Q_in = torch.linalg.qr(m.A_aux.double().T).Q       # orthonormal basis of the a input directions
    reachable = Q_out @ Q_out.T @ target.double() @ Q_in @ Q_in.T
    return 1 - (reachable.norm() ** 2 / target.double().norm() ** 2).item()


seed_errors = [best_error(target_generic, A_DIM, B_DIM, seed) for seed in range(10)]
print("best reachable error, generic target, a = b = 32, projection seeds 0-9:")
print([round(e, 4) for e in seed_errors])

# %%
# NBVAL_IGNORE_OUTPUT
print(f"seed 0: best reachable {seed_errors[0]:.4f}, the fit of Section 6 at r = 4 reached {generic[K]:.4f} "
      f"({STEPS} steps)")

# %% [markdown]
# Write `ci95(values)`: the 95% confidence interval for the mean of a few independent runs, as
# mean $\pm\, t \cdot s/\sqrt{n}$, with $s$ the sample standard deviation (divide by $n-1$) and $t$ the 0.975
# quantile of Student's $t$ with $n-1$ degrees of freedom (`scipy.stats.t.ppf(0.975, n - 1)`; with 10 runs it is
# 2.26, not the normal 1.96). Then read it: does the predicted plateau $1-ab/d^2=0.75$ lie inside?

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 5: a 95% confidence interval over seeds
from scipy import stats


def ci95(values):
    """(low, high): the 95% confidence interval for the mean of `values` (a list of independent runs)."""
    ### BEGIN SOLUTION
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    return mean - half, mean + half
    ### END SOLUTION


checks.check_confidence_interval(ci95)
### BEGIN HIDDEN TESTS
_low, _high = stats.t.interval(0.95, len(seed_errors) - 1, loc=sum(seed_errors) / len(seed_errors),
                               scale=stats.sem(seed_errors))
assert abs(ci95(seed_errors)[0] - _low) < 1e-9 and abs(ci95(seed_errors)[1] - _high) < 1e-9
### END HIDDEN TESTS

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 6: read the interval
# Compute the 95% interval of `seed_errors` (with your ci95, or scipy.stats.t.interval) and print it. Does the
# predicted plateau 0.75 lie inside? Set `prediction_inside` to True or False.
### BEGIN SOLUTION
low, high = ci95(seed_errors)
print(f"mean {sum(seed_errors) / len(seed_errors):.3f}, 95% CI [{low:.3f}, {high:.3f}]")
prediction_inside = bool(low <= 0.75 <= high)
### END SOLUTION
checks.check_inside(prediction_inside, 0.75, seed_errors)
### BEGIN HIDDEN TESTS
_low, _high = stats.t.interval(0.95, len(seed_errors) - 1, loc=sum(seed_errors) / len(seed_errors),
                               scale=stats.sem(seed_errors))
assert prediction_inside == (_low <= 0.75 <= _high)
### END HIDDEN TESTS

# %% [markdown]
# How to read it: 0.75 inside the interval means these ten draws do not contradict the prediction; it does not
# prove it, only that the data cannot tell the two apart. Intervals from very few runs deserve extra care, because
# the spread is itself estimated from those few runs. Here is the same interval from the first five seeds only:

# %%
# NBVAL_CHECK_OUTPUT
five = seed_errors[:5]
low5, high5 = stats.t.interval(0.95, len(five) - 1, loc=sum(five) / len(five), scale=stats.sem(five))
print(f"seeds 0-4: mean {sum(five) / len(five):.3f}, 95% CI [{low5:.3f}, {high5:.3f}], "
      f"contains 0.75: {low5 <= 0.75 <= high5}")
print(f"standard deviation over seeds 0-4: {stats.tstd(five):.3f}; over seeds 0-9: {stats.tstd(seed_errors):.3f}")

# %% [markdown]
# The first five draws happen to lie close together and all above 0.75, so their interval is narrow and misses
# 0.75; the next five spread wider. A 95% interval misses the true mean in about one experiment out of twenty, and
# with five runs the estimate of the spread is rough. When a difference matters, add runs before concluding.

# %% [markdown]
# ## 7. Where LoRA-Mini sits
#
# **Why random frozen projections can work at all.** Fine-tuning a pretrained model turns out to need far fewer
# free directions than it has weights. Aghajanyan et al. (2020, "Intrinsic dimensionality explains the
# effectiveness of language model fine-tuning") fine-tuned models with the update restricted to a *random*
# low-dimensional subspace, $\theta = \theta_0 + P z$ with $P$ random and fixed and only $z$ trained, and
# reported that for large pretrained models a few hundred trained dimensions could already reach 90% of full
# fine-tuning's accuracy on some GLUE tasks (about 200 for RoBERTa-large on MRPC). LoRA-Mini applies the same idea per matrix: $A_{aux}$ and $B_{aux}$ are random, fixed
# subspaces, and only a low-rank core inside them is trained. Section 6 showed both sides of that bet: an
# update inside the subspaces is learned exactly, an update outside them is not.
#
# **Relatives.** Methods that also freeze random or fixed factors and train less than LoRA (trainable numbers for
# one $768\times768$ matrix, from each method's parameterisation; the VeRA count is confirmed with PEFT):
#
# | method | update | trained per matrix | frozen |
# |---|---|---|---|
# | LoRA | $BA$ | $r(d_{in}+d_{out})$ | nothing |
# | LoRA-FA | $BA$ with $A$ random, frozen | $r\,d_{out}$ | $A$ |
# | VeRA | $\Lambda_b B \Lambda_d A$, $A$, $B$ random, shared by all layers | $d_{out} + r$ (two scaling vectors) | $A$, $B$ |
# | LoRA-XS | $B R A$, $A$, $B$ from the SVD of $W_0$ | $r^2$ | $A$, $B$ |
# | LoRA-Mini | $B_{aux}B_{train}A_{train}A_{aux}$, aux random | $r(a+b)$ | $A_{aux}$, $B_{aux}$ |
#
# LoRA-Mini sits between LoRA-FA (one factor frozen) and VeRA/LoRA-XS (almost everything frozen): it keeps a
# trainable rank-$r$ core but lets it see only $a$ input and $b$ output directions.

# %%
# NBVAL_CHECK_OUTPUT
d, r_rel = 768, 8
relatives = pd.DataFrame({
    "method": ["LoRA", "LoRA-FA", "VeRA (r=256)", "LoRA-XS", "LoRA-Mini (a=b=32)"],
    "rank": [r_rel, r_rel, 256, r_rel, r_rel],
    "trained per 768×768 matrix": [r_rel * 2 * d, r_rel * d, d + 256, r_rel ** 2, r_rel * 64],
}).set_index("method")

# VeRA's count, from PEFT itself: its trainable vectors on one 768×768 layer.
vera = peft.get_peft_model(nn.Sequential(OrderedDict(proj=nn.Linear(768, 768))),
                           peft.VeraConfig(r=256, target_modules=["proj"]))
vera_trained = sum(p.numel() for n, p in vera.named_parameters() if p.requires_grad)
print("PEFT VeRA, r=256, one 768×768 layer, trainable numbers:", vera_trained)
assert vera_trained == relatives.loc["VeRA (r=256)", "trained per 768×768 matrix"]
relatives

# %% [markdown]
# **Why the aux factors are divided by $\sqrt{\text{fan-in}}$.** A Gaussian matrix with entries of variance
# $1/n$, applied to a vector of $n$ entries of variance 1, gives entries of variance about 1: the projection keeps
# the scale of what passes through it. Unscaled $N(0,1)$ entries (as in a loralib-style layer with the same factor
# names) multiply the variance by the fan-in instead. That scale feeds straight into $\Delta W$: with the same
# $A_{train}$ and $B_{train}$, unscaled aux factors make $\Delta W$ larger by $\sqrt{d_{in}\cdot b}$ (the product of
# the two fan-in factors). Adam moves each trained number by about the learning rate per step whatever its
# gradient's size, so how far $\Delta W$ moves per step is set by the learning rate *times* the aux scale: a
# method with unscaled factors needs a far smaller learning rate than one with scaled factors. This package
# scales them and compensates with a learning rate a few times LoRA's (notebook 03). Numerically, for a
# $768\times768$ layer with $a=b=32$:

# %%
# NBVAL_CHECK_OUTPUT
from loramini.layer import make_aux

x = torch.randn(4096, 768, generator=torch.Generator().manual_seed(0))
A_scaled = make_aux(32, 768, fan_in=768, init="gaussian", seed=1)          # the package's A_aux
B_scaled = make_aux(768, 32, fan_in=32, init="gaussian", seed=2)           # the package's B_aux
A_raw, B_raw = A_scaled * math.sqrt(768), B_scaled * math.sqrt(32)         # the same draws, unscaled N(0, 1)
z = torch.randn(4096, 32, generator=torch.Generator().manual_seed(1))
print(f"variance of x: {x.var():.2f} | of A_aux x, scaled: {(x @ A_scaled.T).var():.2f} | "
      f"unscaled: {(x @ A_raw.T).var():.0f}")
print(f"variance of z: {z.var():.2f} | of B_aux z, scaled: {(z @ B_scaled.T).var():.2f} | "
      f"unscaled: {(z @ B_raw.T).var():.1f}")
core = torch.randn(32, 8, generator=torch.Generator().manual_seed(3)) @ torch.randn(8, 32, generator=torch.Generator().manual_seed(4))
ratio = ((B_raw @ core @ A_raw).norm() / (B_scaled @ core @ A_scaled).norm()).item()
print(f"same core B_train·A_train: ‖ΔW‖ unscaled / scaled = {ratio:.1f} = √(768·32) = {math.sqrt(768 * 32):.1f}")
assert abs((x @ A_scaled.T).var().item() - 1) < 0.1 and abs(ratio - math.sqrt(768 * 32)) < 1e-2 * ratio

# %% [markdown]
# ## 8. Optional: the custom backward, `LoRAMiniFunction`
#
# `LoRAMiniLinear.adapter_forward` does not leave the chain to autograd; it calls `LoRAMiniFunction`, a
# `torch.autograd.Function` with a hand-written backward (the formulas of Section 1, in row form). Two questions
# matter for memory and speed:
#
# * **What is kept for the backward pass?** To compute the gradients later, a layer must keep some activations of
#   every token until the backward pass. The LoRA-Mini chain needs only the two thin ones, $u = A_{aux}x$ ($a$
#   numbers) and $h = A_{train}u$ ($r$ numbers): $A_{aux}$ is frozen, so no gradient needs $x$ itself. A LoRA
#   branch $x \to A \to B$ must keep its $d_{in}$-wide input $x$ (for $A$'s gradient) and $h$. Is the thin
#   memory the custom function's doing, or the hourglass's? Predict, then read the count below.
# * **How wide are the backward products?** The custom function folds $s\,B_{aux}B_{train}$ into one
#   $d_{out}\times r$ matrix, so the wide gradient is only ever multiplied r-wide, as in LoRA.
#
# PyTorch can show what is kept: `saved_tensors_hooks` sees every tensor saved for backward. Counting the saved
# numbers with one row per token, for the custom function, for the same chain left to plain autograd, and for
# LoRA:

# %%
# NBVAL_CHECK_OUTPUT
def saved_per_token(fn, d_in, n=1000):
    """Numbers per token that autograd keeps for the backward pass of fn(x), x of shape (n, d_in)."""
    saved = []
    x = torch.randn(n, d_in, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn(x)
    return sum(t.numel() for t in saved if t.dim() >= 1 and t.shape[0] == n) // n


mini_layer = loramini.LoRAMiniLinear(nn.Linear(768, 768), r=8, a=32, b=32, name="memory")
lora_A, lora_B = nn.Parameter(torch.randn(8, 768) / 768 ** 0.5), nn.Parameter(torch.zeros(768, 8))
memory = pd.DataFrame({
    "numbers saved per token": {
        "LoRAMiniFunction (the package)": saved_per_token(mini_layer.adapter_forward, 768),
        "the same chain under plain autograd": saved_per_token(lambda x: chain(mini_layer, x), 768),
        "LoRA branch x → A → B": saved_per_token(lambda x: x @ lora_A.T @ lora_B.T, 768)}})
assert memory.iloc[0, 0] == 32 + 8 and memory.iloc[2, 0] == 768 + 8
memory

# %% [markdown]
# Both LoRA-Mini versions keep $a + r = 40$ numbers per token against LoRA's $d_{in} + r = 776$: that saving comes
# from the hourglass itself ($A_{aux}$ is frozen, so autograd needs only $A_{aux}$, not $x$, to pass the gradient
# back through it). What the custom function adds is the r-wide backward products. It must give the same
# gradients as plain autograd on the chain, up to float rounding:

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    mini_layer.B_train.normal_()
x = torch.randn(50, 768, requires_grad=True)
g = torch.randn(50, 768)
results_backward = {}
for label, fn in [("custom", mini_layer.adapter_forward), ("autograd", lambda t: chain(mini_layer, t))]:
    mini_layer.zero_grad()
    x.grad = None
    y = fn(x)
    y.backward(g)
    results_backward[label] = [y.detach(), mini_layer.A_train.grad.clone(), mini_layer.B_train.grad.clone(), x.grad.clone()]
for name, ours, ref in zip(["output", "dL/dA_train", "dL/dB_train", "dL/dx"], *results_backward.values()):
    rel = ((ours - ref).norm() / ref.norm()).item()
    print(f"{name:<12}: custom vs plain autograd, relative difference < 1e-5: {rel < 1e-5}")
    assert rel < 1e-5

# %% [markdown]
# ## Summary
#
# * The gradients are LoRA's gradients projected by the frozen factors; autograd agrees with the hand derivation.
#   At the start ($B_{train}=0$) only $B_{train}$ gets a non-zero gradient.
# * With identity aux factors LoRA-Mini is LoRA; every LoRA-Mini adapter multiplies out to a rank-$r$ LoRA, which
#   is why it can be exported to PEFT and merged for free.
# * Unmerged, the plain chain costs $d_{in}a+ar+rb+b\,d_{out}$ multiply-adds per token: 49,664 against LoRA's
#   12,288 on a $768\times768$ layer with $a=b=32$, $r=8$ (about 4x). Pre-multiplying both pairs once per batch
#   brings it to exactly LoRA's per-token cost; merged, it costs nothing.
# * A singular-value spectrum shows an update's rank as a cliff; the rank bound of notebook 01 shows up there.
# * LoRA-Mini learns low-rank updates *inside a random subspace*: the planted-update experiment shows the knee at
#   the true rank, and from $r=k$ on a plateau near $1-ab/d^2$ for updates outside the subspaces; ten projection
#   seeds and a 95% interval test that prediction.
# * The aux factors are scaled by $1/\sqrt{\text{fan-in}}$ so projections keep the size of what they project;
#   LoRA-Mini keeps only $a+r$ numbers per token for the backward pass because of the hourglass, not because of
#   its custom backward.
#
# ## Questionnaire
#
# Answer in a sentence or two each, without running code; every answer is in this notebook. (Good for a quiz or a
# discussion section; there is no automatic check.)
#
# 1. At initialisation, which trained factor receives a non-zero gradient, and why only that one?
# 2. How does LoRA-Mini's gradient for $B_{train}$ relate to LoRA's gradient for $B$?
# 3. Which choice of $a$, $b$ and aux factors makes LoRA-Mini exactly LoRA, and why can every LoRA-Mini adapter
#    be exported as a LoRA?
# 4. Why can an adapter be merged into $W_0$ at no cost at inference time, and what does the unmerged chain
#    cost per token instead?
# 5. How do you read the rank of an update from its singular-value spectrum?
# 6. In the planted-update experiment, why does LoRA-Mini's error on a generic target stop falling near
#    $1-ab/d^2$ while LoRA's reaches zero? What did ten projection seeds and a 95% interval add to one run?
# 7. Why are the aux factors divided by $\sqrt{\text{fan-in}}$, and what would unscaled factors do to the
#    learning rate?
# 8. Which keeps LoRA-Mini's saved activations thin, the hourglass or the custom backward, and what does the
#    custom backward change?
#
# ## More to explore (open questions, no automatic check)
#
# 1. **Both factors at zero.** If $A_{train}$ started at zero as well, which line of the gradient derivation
#    says what training would do? Try it on notebook 01's `ScratchLoRAMini`.
# 2. **Orthogonal aux factors.** Build layers with `aux_init="orthogonal"`. Does the plateau of Section 6 move,
#    and does its seed-to-seed spread shrink?
# 3. **Cheaper than LoRA?** Show that the plain chain can never be cheaper than LoRA per token when
#    $r\le\min(a,b)$. For which layer shapes is the gap largest, and when does pre-multiplying pay for itself?
# 4. **Trainable aux.** If $A_{aux}$ were trained too, write down $\partial L/\partial A_{aux}$ and the new
#    parameter count. What would be left of LoRA-Mini's saving?
#
# **Read next:** `loramini/layer.py` (the layer, the aux factors and the custom backward), then
# `loramini/inject.py` (the layer swap with presets and checks), and notebook `02_parameter_counting.ipynb` for
# exact counts on RoBERTa.
