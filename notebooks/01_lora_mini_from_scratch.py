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
# # 01 · LoRA-Mini from scratch
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/loramini-course/loramini/blob/main/notebooks/01_lora_mini_from_scratch.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/loramini-course/loramini/main?labpath=notebooks%2F01_lora_mini_from_scratch.ipynb)
#
# Fine-tuning a large model means nudging its weight matrices. This notebook builds LoRA-Mini **from scratch**
# in a few dozen lines: first plain LoRA's forward pass, then the LoRA-Mini layer, the code that swaps it into a
# model, and a training loop, and proves that they compute exactly what the `loramini` package computes. Then it
# follows one weight matrix through three ways of nudging it: **full fine-tuning** (move every number), **LoRA**
# (move a low-rank product) and **LoRA-Mini** (move only the small middle of a four-factor product), and takes
# the package's layer apart factor by factor: the shapes, why training starts exactly at the pretrained model,
# and the largest rank an adapter can have. Notebook 01b continues with the mathematics: gradients by hand,
# LoRA as a special case, merging, compute and a small experiment. Everything runs on a CPU in a minute or
# two, and the claims in the text are checked by cells that would fail if they were false.

# %% [markdown]
# > **For instructors — learning goals.** After this notebook students can
# > 1. write plain LoRA's forward pass, then a LoRA-Mini layer, the code that swaps it into a model, and a training
# >    loop, in plain PyTorch, and say what the scale $\alpha/r$ is for;
# > 2. count the trainable numbers of full fine-tuning, LoRA and LoRA-Mini on one matrix, and say why LoRA-Mini's
# >    saving over LoRA does not depend on $r$;
# > 3. write down $\Delta W = \tfrac{\alpha}{r}\,B_{aux}B_{train}A_{train}A_{aux}$ with the shape of every factor, and say which factors are trained;
# > 4. explain why $B_{train}=0$ makes the adapted model start *exactly* at the pretrained one, and why
# >    $\operatorname{rank}\Delta W \le \min(r, a, b)$.
# >
# > *Time:* 30–35 minutes of reading, plus the exercises. *Prerequisites:* matrix products, rank, basic PyTorch.
# > *Next:* notebook 01b (the mathematics). *Source to read alongside:* `loramini/layer.py` (the layer) and
# > `loramini/counting.py` (the closed-form counts), in the package folder or on
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
from collections import OrderedDict

import matplotlib.pyplot as plt
import pandas as pd
import torch.nn.functional as F
from torch import nn

from loramini import checks   # the exercises' answer checks

plt.rcParams.update({"figure.dpi": 110, "figure.figsize": (8, 3.2)})
_ = torch.manual_seed(0)

# %% [markdown]
# ## 1. LoRA-Mini from scratch
#
# Take one frozen linear layer of a pretrained model, $h = W_0 x + \text{bias}$ with
# $W_0 \in \mathbb{R}^{d_{out}\times d_{in}}$. LoRA-Mini adds a side branch that squeezes the input through
# four small matrices, an **hourglass**:
#
# $$x\;(d_{in}) \xrightarrow{A_{aux}} a \xrightarrow{A_{train}} r \xrightarrow{B_{train}} b
# \xrightarrow{B_{aux}} d_{out}, \qquad y = W_0x + \text{bias} + \tfrac{\alpha}{r}\,B_{aux}B_{train}A_{train}A_{aux}\,x .$$
#
# The outer two factors are **random and frozen** (drawn from a seed, never trained, never stored); only the
# inner two are **trained**.
#
# **The scale $\alpha/r$.** The update is multiplied by a constant $s=\alpha/r$, as in LoRA: $r$ is the rank, and
# $\alpha$ is a number you fix once (the LoRA paper sets it to the first $r$ it tries and never tunes it; this
# course mostly uses $\alpha = 2r$, so $s = 2$). Why divide by $r$? $B_{train}A_{train}$ is a sum of $r$ rank-one
# terms, so at the same learning rate a larger $r$ changes $\Delta W$ more per step; dividing by $r$ keeps its
# size about the same when you change $r$, so the learning rate found for one rank still works for another. With
# Adam, raising $\alpha$ acts much like raising the learning rate, which is why $\alpha$ is fixed and the rate
# is tuned. In code the scale is `layer.scale`.
#
# The picture below is drawn to scale for one $768\times768$ attention matrix of RoBERTa-base with $a=b=32$,
# $r=8$ (the height of each bar is the width of the vector at that point).

# %%
# NBVAL_IGNORE_OUTPUT
from matplotlib.patches import Patch, Polygon, Rectangle


def draw_hourglass(widths, names, trained, ax):
    """Bars whose heights are the vector widths; bands between them are the factors (grey frozen, orange trained)."""
    xs = [2.0 * i for i in range(len(widths))]
    for i, (x0, x1) in enumerate(zip(xs, xs[1:])):
        h0, h1 = widths[i] / 2, widths[i + 1] / 2
        color = "tab:orange" if trained[i] else "0.75"
        ax.add_patch(Polygon([(x0 + 0.15, -h0), (x1 - 0.15, -h1), (x1 - 0.15, h1), (x0 + 0.15, h0)], color=color))
        shape = f"{widths[i + 1]}×{widths[i]}"
        ax.text((x0 + x1) / 2, max(h0, h1) + 25, f"{names[i]}\n{shape}", ha="center", va="bottom", fontsize=8)
    for x, w, label in zip(xs, widths, ["x: d_in", "a", "r", "b", "y: d_out"]):
        ax.add_patch(Rectangle((x - 0.15, -w / 2), 0.3, w, color="tab:blue"))
        ax.text(x, -w / 2 - 25, f"{label}\n= {w}", ha="center", va="top", fontsize=8)
    top = max(widths) / 2 + 130
    ax.annotate("", xy=(xs[-1], top), xytext=(xs[0], top), arrowprops=dict(arrowstyle="->", color="0.4"))
    ax.text((xs[0] + xs[-1]) / 2, top + 10, "frozen W₀ (768×768) + bias: the pretrained path, unchanged",
            ha="center", va="bottom", fontsize=8, color="0.3")
    ax.set_xlim(-0.8, xs[-1] + 0.8)
    ax.set_ylim(-max(widths) / 2 - 130, top + 80)
    ax.axis("off")


fig, ax = plt.subplots(figsize=(8, 3.6))
draw_hourglass([768, 32, 8, 32, 768], ["A_aux", "A_train", "B_train", "B_aux"], [False, True, True, False], ax)
ax.legend(handles=[Patch(color="0.75", label="frozen factor (random, regenerated from a seed)"),
                   Patch(color="tab:orange", label="trained factor (nn.Parameter)"),
                   Patch(color="tab:blue", label="vector width at that point")],
          loc="lower center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=7, frameon=False)
ax.set_title("The LoRA-Mini side branch of one 768×768 layer (a = b = 32, r = 8), heights to scale", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### First, plain LoRA
#
# LoRA-Mini is LoRA with two frozen factors wrapped around the trained pair, so start with LoRA itself. LoRA
# adds to the frozen layer a rank-$r$ update made of two trained matrices, $A\in\mathbb{R}^{r\times d_{in}}$ and
# $B\in\mathbb{R}^{d_{out}\times r}$:
#
# $$y = W_0x + \text{bias} + \tfrac{\alpha}{r}\,B A\,x .$$
#
# Write its forward pass for a batch: `x` has shape `(..., d_in)` (any number of leading dimensions: batch,
# tokens), `base` is the frozen `nn.Linear` ($W_0$ and the bias), and `scale` is $\alpha/r$. In PyTorch a row of
# `x` is one token, so a matrix $M$ is applied to every row at once as `x @ M.T`.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: plain LoRA's forward pass
def my_lora_forward(x, base, A, B, scale):
    """y = base(x) + scale · B A x for x of shape (..., d_in); A is (r, d_in), B is (d_out, r)."""
    ### BEGIN SOLUTION
    return base(x) + scale * (x @ A.T @ B.T)
    ### END SOLUTION


checks.check_lora_forward(my_lora_forward)

# %% [markdown]
# LoRA-Mini keeps this shape of computation and changes only what sits between $x$ and the output: $A$ becomes
# $A_{train}A_{aux}$ and $B$ becomes $B_{aux}B_{train}$, with the outer factors frozen.
#
# ### The layer in 20 lines
#
# Two trained `nn.Parameter`s and two frozen buffers. Buffers move with `.to(device)` like parameters do, but
# the optimizer never sees them. The aux factors are Gaussian, divided by $\sqrt{\text{fan-in}}$ so that a
# projection keeps the size of what it projects (notebook 01b, Section 7 checks this), and drawn from a CPU
# random generator seeded from `(seed, layer name)`, so every machine gets the same ones. We borrow one helper
# from the package, `stable_seed`, which only turns `(seed, name, factor)` into an integer by hashing.
# $A_{train}$ starts random as in LoRA, $B_{train}$ at zero, so $\Delta W = 0$ at step 0.

# %%
# NBVAL_CHECK_OUTPUT
from loramini.layer import stable_seed   # (seed, name, "A"/"B") -> an int, the same in every process


class ScratchLoRAMini(nn.Module):
    """y = base(x) + (alpha / r) · B_aux B_train A_train A_aux x, for x of shape (..., d_in)."""

    def __init__(self, base: nn.Linear, r=8, a=32, b=32, alpha=16.0, seed=0, name=""):
        super().__init__()
        d_out, d_in = base.weight.shape
        self.base, self.scale = base.requires_grad_(False), alpha / r       # W0 and bias: frozen
        draw = lambda factor: torch.Generator().manual_seed(stable_seed(seed, name, factor))  # noqa: E731
        self.register_buffer("A_aux", torch.randn(a, d_in, generator=draw("A")) / math.sqrt(d_in))  # (a, d_in)
        self.register_buffer("B_aux", torch.randn(d_out, b, generator=draw("B")) / math.sqrt(b))    # (d_out, b)
        self.A_train = nn.Parameter(torch.empty(r, a))                                              # (r, a)
        nn.init.kaiming_uniform_(self.A_train, a=math.sqrt(5))               # LoRA's init for A
        self.B_train = nn.Parameter(torch.zeros(b, r))                       # (b, r): ΔW = 0 at the start

    def forward(self, x):
        h = x @ self.A_aux.T @ self.A_train.T @ self.B_train.T @ self.B_aux.T   # d_in → a → r → b → d_out
        return self.base(x) + self.scale * h


demo = ScratchLoRAMini(nn.Linear(64, 48), r=4, a=16, b=12, alpha=8, name="demo")
print("trained parameters:", {n: tuple(p.shape) for n, p in demo.named_parameters() if p.requires_grad})
print("frozen parameters :", {n: tuple(p.shape) for n, p in demo.named_parameters() if not p.requires_grad})
print("frozen buffers    :", {n: tuple(t.shape) for n, t in demo.named_buffers()})

# %% [markdown]
# ### Swapping it into a model
#
# A model is a tree of modules with dotted names (`encoder.layer.0.attention.self.query`). To adapt a layer
# we replace it *on its parent*: find the parent by the name's prefix, then `setattr(parent, child, new)`.
# Everything else is frozen first, so only the new adapters train. `list(...)` takes a snapshot of the tree,
# because we change it while walking it.

# %%
# NBVAL_CHECK_OUTPUT
def swap_in(model, targets, **layer_args):
    """Replace every nn.Linear whose last name part is in `targets` by a ScratchLoRAMini; freeze the rest."""
    model.requires_grad_(False)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, ScratchLoRAMini(module, name=name, **layer_args))
    return model


def make_pretrained():
    """A small 'pretrained' network: 32 → 64 → 32 with a tanh, fixed weights."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(up=nn.Linear(32, 64), act=nn.Tanh(), down=nn.Linear(64, 32)))


scratch = swap_in(make_pretrained(), targets=["up", "down"], r=4, a=16, b=16, alpha=8)
print(scratch)
print("trainable:", [n for n, p in scratch.named_parameters() if p.requires_grad])

# %% [markdown]
# ### A short training loop
#
# The task: a "fine-tuned" teacher is the same network with a random rank-2 change added to both weight
# matrices; the adapted student sees random inputs and the teacher's outputs, and Adam moves only
# $A_{train}$ and $B_{train}$ to reduce the mean squared error. The teacher's change is generic, not chosen to
# lie in the student's random subspaces, so the loss cannot reach zero (notebook 01b, Section 6 explains
# why); it should fall, and level off above zero.

# %%
# NBVAL_CHECK_OUTPUT
teacher = make_pretrained()
with torch.no_grad():
    gen = torch.Generator().manual_seed(1)
    for layer_ in (teacher.up, teacher.down):
        d_out, d_in = layer_.weight.shape
        layer_.weight += 0.5 * torch.randn(d_out, 2, generator=gen) @ torch.randn(2, d_in, generator=gen) / math.sqrt(d_in)


def train(model, steps=150, lr=1e-2, seed=0):
    """Adam on the trainable parameters; returns the loss of every step."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    data = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randn(64, 32, generator=data)
        with torch.no_grad():
            y = teacher(x)
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()    # clear the previous step's gradients
        loss.backward()          # gradients for A_train and B_train only
        optimizer.step()
        losses.append(loss.item())
    return losses


scratch_losses = train(scratch)
print(f"loss at step 1: {scratch_losses[0]:.4f}, after {len(scratch_losses)} steps: {scratch_losses[-1]:.4f}")
assert scratch_losses[-1] < 0.75 * scratch_losses[0]

# %%
# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(1, len(scratch_losses) + 1), scratch_losses, label="ScratchLoRAMini (r=4, a=b=16) on up and down")
ax.set_xlabel("training step")
ax.set_ylabel("mean squared error to the teacher")
ax.set_yscale("log")
ax.set_title("The from-scratch adapter learns", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Now write a training step yourself, as a function. It gets the model, its optimizer and one batch, and must
# leave the model one optimizer step further. Order matters, and one forgotten line makes gradients pile
# up from step to step: the check runs two steps and compares with a reference.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: one training step
def my_step(model, optimizer, x, y):
    """One step on the mean squared error between model(x) and y; return the loss before the step (a float)."""
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


checks.check_train_step(my_step)
### BEGIN HIDDEN TESTS
_m = swap_in(make_pretrained(), ["up"], r=2, a=8, b=8)
_opt = torch.optim.SGD([p for p in _m.parameters() if p.requires_grad], lr=0.1)
_before = _m.up.B_train.detach().clone()
_x = torch.randn(4, 32)
_loss = my_step(_m, _opt, _x, teacher(_x).detach())   # a float or a one-number tensor, as the check accepts
assert isinstance(_loss, (int, float, torch.Tensor)) and not isinstance(_loss, bool) and torch.as_tensor(_loss).numel() == 1, \
    "return the loss before the step, one number (loss.item())"
assert not torch.equal(_m.up.B_train, _before), "the step must move the trained factors"
### END HIDDEN TESTS

# %% [markdown]
# ### Is it the same as the package?
#
# `loramini.LoRAMiniLinear` and `loramini.inject` are the package's versions of `ScratchLoRAMini` and
# `swap_in`. They draw the aux factors the same way from the same `(seed, name)`, so on the same pretrained
# network both adapters have bit-identical $A_{aux}$, $B_{aux}$. The random initial $A_{train}$ comes from the
# global generator in a different order, so we copy it over, give both $B_{train}$ the same random values,
# and compare outputs, gradients and a whole training run.

# %%
# NBVAL_CHECK_OUTPUT
scratch = swap_in(make_pretrained(), targets=["up", "down"], r=4, a=16, b=16, alpha=8)
package = loramini.inject(make_pretrained(), loramini.LoRAMiniConfig(r=4, a=16, b=16, alpha=8,
                                                                     target_modules=["up", "down"]))
print(type(package.up).__name__, "|", package.up)
for name in ["up", "down"]:
    ours, theirs = scratch.get_submodule(name), package.get_submodule(name)
    assert torch.equal(ours.A_aux, theirs.A_aux) and torch.equal(ours.B_aux, theirs.B_aux)
    with torch.no_grad():
        ours.A_train.copy_(theirs.A_train)
        theirs.B_train.normal_()
        ours.B_train.copy_(theirs.B_train)
print("aux factors bit-identical in both layers: True")

x = torch.randn(16, 32)
y = teacher(x).detach()
out_ours, out_theirs = scratch(x), package(x)
F.mse_loss(out_ours, y).backward()
F.mse_loss(out_theirs, y).backward()
print("same outputs:", torch.allclose(out_ours, out_theirs, atol=1e-6))
for name in ["up.A_train", "up.B_train", "down.A_train", "down.B_train"]:
    g_ours, g_theirs = scratch.get_parameter(name).grad, package.get_parameter(name).grad
    print(f"same gradient for {name:<13}:", torch.allclose(g_ours, g_theirs, rtol=1e-4, atol=1e-6))
    assert torch.allclose(g_ours, g_theirs, rtol=1e-4, atol=1e-6)
trainable = lambda m: sorted(n for n, p in m.named_parameters() if p.requires_grad)  # noqa: E731
print("same trainable tensors:", trainable(scratch) == trainable(package), trainable(package))
losses_ours, losses_theirs = train(scratch, steps=50), train(package, steps=50)
print("same 50-step loss curve:", all(math.isclose(p, q, rel_tol=1e-3) for p, q in zip(losses_ours, losses_theirs)))
assert torch.allclose(out_ours, out_theirs, atol=1e-6) and trainable(scratch) == trainable(package)

# %% [markdown]
# From here on we use the package. Its layer does the same maths; what the package adds is bookkeeping:
# dtypes (the trained factors stay float32 on a bf16 model), devices, merging, saving, a custom backward
# (notebook 01b, Section 8), validation with clear error messages, and `inject`'s target presets. How the
# source of `loramini/layer.py` splits up:

# %%
# NBVAL_IGNORE_OUTPUT
import inspect

import loramini.layer

source_lines = lambda obj: len(inspect.getsource(obj).splitlines())  # noqa: E731
print(f"loramini/layer.py: {source_lines(loramini.layer)} lines in all, of which")
print(f"  LoRAMiniLinear (the layer, merge/unmerge, docstrings): {source_lines(loramini.LoRAMiniLinear)} lines")
print(f"  LoRAMiniFunction (the custom backward):                {source_lines(loramini.layer.LoRAMiniFunction)} lines")
print(f"  make_aux + stable_seed (the aux factors):              "
      f"{source_lines(loramini.layer.make_aux) + source_lines(loramini.layer.stable_seed)} lines")

# %% [markdown]
# ## 2. Three ways to change a weight matrix
#
# Fine-tuning replaces $W_0$ by $W_0 + \Delta W$; the three methods differ only in how $\Delta W$ is built,
# and therefore in how many numbers the optimizer has to move.
#
# | method | $\Delta W$ | trainable numbers |
# |---|---|---|
# | full fine-tuning | any $d_{out}\times d_{in}$ matrix | $d_{out}\,d_{in}$ |
# | LoRA | $\tfrac{\alpha}{r}\,B A$, with $A\in\mathbb{R}^{r\times d_{in}}$, $B\in\mathbb{R}^{d_{out}\times r}$ | $r\,(d_{in}+d_{out})$ |
# | LoRA-Mini | $\tfrac{\alpha}{r}\,B_{aux}\,B_{train}\,A_{train}\,A_{aux}$ | $r\,(a+b)$ |
#
# Numbers for one $768\times768$ attention projection of RoBERTa-base, with the package's closed forms
# from `loramini/counting.py`:

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
# Because both counts are proportional to $r$, the saving over LoRA is $(d_{in}+d_{out})/(a+b)$ and does not
# depend on the rank. Notebook 02 turns this into exact counts for whole models.
#
# Your turn. A transformer block has wider matrices than the attention projections: its feed-forward part
# first widens each token from 768 to 3072 numbers, then `output.dense` narrows it back from 3072 to 768. Count
# with pencil and paper, then type the resulting number itself (e.g. `lora_out = 12345`), not a formula: the
# point is to do the arithmetic once by hand.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: count LoRA's trainable numbers by hand
# RoBERTa-base's feed-forward layer `output.dense` maps d_in = 3072 to d_out = 768.
# How many numbers does a LoRA adapter with r = 4 train on it? Set `lora_out` to that number.
### BEGIN SOLUTION
lora_out = 15_360   # A is r × d_in = 12,288 numbers, B is d_out × r = 3,072
### END SOLUTION
checks.check_lora_count(lora_out, d_in=3072, d_out=768, r=4)
### BEGIN HIDDEN TESTS
assert lora_out == 15_360
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The package's layer, factor by factor
#
# `loramini.LoRAMiniLinear` wraps an existing `nn.Linear`. We use a deliberately small, lopsided layer
# ($d_{in}=64$, $d_{out}=48$, $a=16$, $b=12$, $r=4$) so that no two dimensions are equal and every shape tells
# you which factor it belongs to.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
base = nn.Linear(64, 48)
layer = loramini.LoRAMiniLinear(base, r=4, a=16, b=12, alpha=8, name="demo.proj")
print(layer)

rows = []
trainable_names = {n for n, p in layer.named_parameters() if p.requires_grad}
for factor in ["A_aux", "A_train", "B_train", "B_aux"]:
    tensor = getattr(layer, factor)
    rows.append({"factor": factor, "shape": tuple(tensor.shape), "trainable": factor in trainable_names,
                 "kind": "parameter" if isinstance(tensor, nn.Parameter) else "buffer (from seed)"})
assert layer.A_aux.shape == (16, 64) and layer.A_train.shape == (4, 16)
assert layer.B_train.shape == (12, 4) and layer.B_aux.shape == (48, 12)
assert trainable_names == {"A_train", "B_train"}          # the base weight and bias are frozen
pd.DataFrame(rows)

# %% [markdown]
# Read the shapes in the order the input travels: $x$ ($d_{in}=64$) is squeezed by $A_{aux}$ to $a=16$
# numbers, by $A_{train}$ to $r=4$, widened by $B_{train}$ to $b=12$ and by $B_{aux}$ back to $d_{out}=48$.
#
# The aux factors come from a CPU random generator seeded with `(projection_seed, module name)`. The same
# name and seed give bit-identical factors, which is why an adapter file can leave them out:

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
# Exercise 4: the shapes of the four factors
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
# ## 4. Why the adapted model starts exactly where the pretrained one was
#
# $B_{train}$ starts at zero, so the whole product $\Delta W$ is zero, and the layer computes exactly what
# the base layer computes: not approximately, *exactly*. Training therefore begins from the pretrained model.
#
# Why not start both trainable factors at zero? Because then both gradients would be zero too (each one is
# multiplied by the other factor, as notebook 01b, Section 1 shows), and gradient descent could never leave
# the start. LoRA-Mini copies LoRA's trick: $A_{train}$ is random (Kaiming-uniform), $B_{train}$ is zero.

# %%
# NBVAL_CHECK_OUTPUT
x = torch.randn(5, 64)
print("B_train is all zeros   :", bool((layer.B_train == 0).all()))
print("A_train is all zeros   :", bool((layer.A_train == 0).all()))
print("ΔW is exactly zero     :", bool((layer.delta_weight() == 0).all()))
print("layer(x) == base(x)    :", torch.equal(layer(x), base(x)))
assert torch.equal(layer(x), base(x))


# %% [markdown]
# ### Write the formulas yourself
#
# You have seen the forward pass in `ScratchLoRAMini`; now write ΔW and the forward pass as free functions
# of a package layer, from its attributes `layer.A_aux`, `layer.A_train`, `layer.B_train`, `layer.B_aux`,
# `layer.scale` ($\alpha/r$) and `layer.base` (the frozen `nn.Linear`). The check hands you a fresh layer with
# random, non-zero factors (so that mistakes show), switches off the layer's own `forward`, `adapter_forward`,
# `delta_weight` and `merge` while your function runs, and compares with a float64 reference.
#
# First $\Delta W$ itself, a $d_{out}\times d_{in}$ matrix, like the base weight it is added to:

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 5: build ΔW from the four factors
def my_delta_weight(layer):
    """ΔW of a LoRAMiniLinear, shape (d_out, d_in)."""
    ### BEGIN SOLUTION
    return layer.scale * layer.B_aux @ layer.B_train @ layer.A_train @ layer.A_aux
    ### END SOLUTION


checks.check_delta_weight(my_delta_weight)
### BEGIN HIDDEN TESTS
_layer = loramini.LoRAMiniLinear(nn.Linear(20, 7), r=2, a=5, b=4, alpha=3, name="hidden")
with torch.no_grad():
    _layer.B_train.normal_()
    assert torch.allclose(my_delta_weight(_layer).float(), _layer.delta_weight(), atol=1e-5)
### END HIDDEN TESTS


# %% [markdown]
# Now the forward pass. A batch arrives as rows: `x` has shape `(..., d_in)`, with any number of leading
# dimensions (batch, sequence). In row form a linear map $M$ is applied as `x @ M.T` (or `F.linear(x, M)`).
# Follow the cheap order of the chain, $x\to A_{aux}\to A_{train}\to B_{train}\to B_{aux}$, so that you never
# build a $d_{out}\times d_{in}$ matrix, and do not forget the frozen base layer with its bias.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 6: the forward pass
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
    assert torch.allclose(my_forward(_layer, _x).float(), _layer(_x), atol=1e-5), "my_forward only works for one shape"
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The rank bound: $\operatorname{rank}\Delta W \le \min(r, a, b)$
#
# The rank of a product is at most the smallest inner dimension it passes through. Written out,
# $\Delta W = \tfrac{\alpha}{r}\,B_{aux}\,(B_{train}A_{train})\,A_{aux}$ passes through widths $a$, $r$ and
# $b$, so no LoRA-Mini adapter can have rank above $\min(r, a, b)$. A useful way to picture it:
# $\Delta W = B_{aux} M A_{aux}$ where the small matrix $M = B_{train}A_{train}$ ($b\times a$) has rank at most
# $r$; LoRA-Mini is a low-rank update **inside a fixed random subspace** (spanned by the $b$ columns of
# $B_{aux}$ on the output side and the $a$ rows of $A_{aux}$ on the input side).
#
# Before the general check, predict one case yourself.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 7: predict the rank, then measure it
# A colleague adapts a 64 → 48 layer with r = 8, a = 16, b = 4 (the package refuses r > min(a, b);
# our ScratchLoRAMini does not). Once B_train has been trained to non-zero values, what rank will ΔW have?
# Predict it first and set `predicted_rank`; the cell then builds the layer and measures the rank.
### BEGIN SOLUTION
predicted_rank = 4   # ΔW passes through widths a = 16, r = 8 and b = 4: the narrowest one wins
### END SOLUTION
checks.check_rank_bound(predicted_rank, r=8, a=16, b=4)
_probe = ScratchLoRAMini(nn.Linear(64, 48), r=8, a=16, b=4, name="probe")
with torch.no_grad():
    _probe.B_train.normal_()
    _delta = _probe.scale * _probe.B_aux @ _probe.B_train @ _probe.A_train @ _probe.A_aux
print("measured rank of ΔW:", int(torch.linalg.matrix_rank(_delta, rtol=1e-4)))
### BEGIN HIDDEN TESTS
assert predicted_rank == 4
### END HIDDEN TESTS

# %% [markdown]
# Now many settings at once: give $B_{train}$ random values (as training would) and count singular values.
# In float32 the "zero" singular values come out around $10^{-7}$ of the largest, so we count those above
# $10^{-4}$ times the largest. The settings with $r > \min(a, b)$ need `ScratchLoRAMini`, since the package's
# layer refuses them (see below), so the whole table uses it.

# %%
# NBVAL_CHECK_OUTPUT
def numerical_rank(matrix):
    return int(torch.linalg.matrix_rank(matrix, rtol=1e-4))


def scratch_delta(m):
    """ΔW of a ScratchLoRAMini, (d_out, d_in)."""
    return (m.scale * m.B_aux @ m.B_train @ m.A_train @ m.A_aux).detach()


rows = []
for r_, a_, b_ in [(2, 16, 12), (4, 16, 12), (8, 16, 12), (12, 16, 12), (8, 6, 12), (8, 16, 5)]:
    torch.manual_seed(1)
    probe = ScratchLoRAMini(nn.Linear(64, 48), r=r_, a=a_, b=b_, name="probe")
    with torch.no_grad():
        probe.B_train.normal_()
    rank = numerical_rank(scratch_delta(probe))
    assert rank == min(r_, a_, b_)
    rows.append({"r": r_, "a": a_, "b": b_, "min(r, a, b)": min(r_, a_, b_), "rank of ΔW": rank})
pd.DataFrame(rows)

# %% [markdown]
# The rows with $r > \min(a, b)$ show the rank stuck at $\min(a,b)$: the extra rank is paid for in
# parameters but buys nothing. That is why `LoRAMiniConfig` and `LoRAMiniLinear` refuse such settings, with a
# message saying how to fix them:

# %%
# NBVAL_CHECK_OUTPUT
for build in [lambda: loramini.LoRAMiniConfig(r=16, a=8, b=32),
              lambda: loramini.LoRAMiniLinear(nn.Linear(64, 48), r=8, a=16, b=4, name="probe")]:
    try:
        build()
    except ValueError as err:
        print("ValueError:", err)

# %% [markdown]
# ## Summary
#
# * Plain LoRA adds $\tfrac{\alpha}{r}BA$ to a frozen layer; LoRA-Mini keeps that shape of computation and wraps
#   the trained pair in two frozen random factors.
# * LoRA-Mini fits in a 20-line module: two frozen random buffers $A_{aux}$ ($a\times d_{in}$), $B_{aux}$
#   ($d_{out}\times b$) and two trained parameters $A_{train}$ ($r\times a$), $B_{train}$ ($b\times r$), swapped into a
#   model on each target layer's parent. The from-scratch version gives the same outputs, gradients and training
#   curve as `loramini.LoRAMiniLinear` / `loramini.inject`.
# * The aux factors are drawn from `(seed, layer name)`, so an adapter file leaves them out and a reload draws
#   them again, bit for bit.
# * It trains $r(a+b)$ numbers per matrix instead of LoRA's $r(d_{in}+d_{out})$: a saving of
#   $(d_{in}+d_{out})/(a+b)$ whatever $r$ is.
# * $B_{train}=0$ at the start makes $\Delta W=0$ exactly: training starts at the pretrained model.
# * $\operatorname{rank}\Delta W\le\min(r,a,b)$, so $r$ above $\min(a,b)$ is wasted (and refused by the config).
#
# ## Questionnaire
#
# Answer in a sentence or two each, without running code; every answer is in this notebook. (Good for a quiz or a
# discussion section; there is no automatic check.)
#
# 1. Write plain LoRA's forward pass for a batch of rows `x`. Which of its matrices are trained?
# 2. What does the scale $\alpha/r$ do, and why divide by $r$ rather than use $\alpha$ alone?
# 3. Write LoRA-Mini's update $\Delta W$ with the shape of each of its four factors. Which two are trained, and
#    how does a reloaded adapter get the other two back?
# 4. To put an adapter into a model, on which module do you call `setattr`, and why does `swap_in` walk a
#    `list(...)` of the modules rather than the live iterator?
# 5. Which line of a training step, if forgotten, makes gradients pile up from step to step?
# 6. How many numbers does LoRA-Mini train on a $d_{in}\times d_{out}$ layer, and why is its saving over LoRA
#    the same at every $r$?
# 7. Why does training start exactly at the pretrained model? Which factor is zero, and why must the other
#    trained one not be zero too?
# 8. What is the largest rank $\Delta W$ can have, and why does the package refuse $r > \min(a, b)$?
#
# ## More to explore (open questions, no automatic check)
#
# 1. **Both factors at zero.** In `ScratchLoRAMini`, start `A_train` at zero as well and run `train`. What happens
#    to the loss? (Notebook 01b, Section 1 derives the gradients that explain it.)
# 2. **Orthogonal aux factors.** Build layers with `aux_init="orthogonal"`. Does the rank bound change?
# 3. **Unscaled aux.** Use $N(0,1)$ aux factors in `ScratchLoRAMini` and find, by trying, the learning rate at
#    which `train` works again. How does it compare with $\sqrt{d_{in}\,b}$? (Notebook 01b, Section 7 says why.)
#
# **Read next:** notebook `01b_decomposition_math.ipynb` (the mathematics: gradients by hand, LoRA as a special
# case, merging, compute, a planted-update experiment), then `loramini/layer.py` (the layer and the aux factors)
# and `loramini/inject.py` (the layer swap with presets and checks).
