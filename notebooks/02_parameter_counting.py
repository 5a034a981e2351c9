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
# # 02 · Counting parameters exactly
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/loramini-course/loramini/blob/main/notebooks/02_parameter_counting.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/loramini-course/loramini/main?labpath=notebooks%2F02_parameter_counting.ipynb)
#
# "Twenty times fewer parameters" is a claim about counting, and counting is easy to get subtly wrong: which
# layers were adapted, was the classifier head included, were the frozen random factors counted? In this
# notebook we count **exactly**, for the real RoBERTa-base and RoBERTa-large shapes, without downloading a
# single weight: the models are built on PyTorch's `meta` device, where tensors have shapes but no memory.

# %% [markdown]
# > **For instructors — learning goals.** After this notebook students can
# > 1. build a full-size model on the `meta` device and count its parameters without memory or downloads;
# > 2. predict adapter sizes from closed forms ($r(d_{in}+d_{out})$ for LoRA, $r(a+b)$ for LoRA-Mini) and
# >    confirm them on a real (meta) model, including against Hugging Face PEFT's own LoRA;
# > 3. name the three counting conventions (adapter only / head only / both) and show how the choice changes
# >    a "times fewer" claim by an order of magnitude;
# > 4. find the $(a, b)$ settings behind a claimed saving such as "20x", and convert counts into bytes on disk.
# >
# > *Time:* 25–35 minutes, plus the exercises. *Prerequisites:* notebook 01 (the factor shapes). *Source to read
# > alongside* (in the package folder, or on [GitHub](https://github.com/loramini-course/loramini/tree/main/loramini)):
# > `loramini/counting.py`, `loramini/models.py`, `loramini/inject.py` (the presets) and `loramini/io.py` (what is saved).

# %% [markdown]
# > **Exercises.** Cells whose first line reads `# Exercise N: …` are for you. In the student copy of this
# > notebook (in `notebooks/exercises/`) the answer is replaced by `raise Todo("Exercise N: …")`: delete that
# > line, write your answer there, and run the cell. The `checks.…` call at the end of the cell prints a ✓
# > when you are right, and otherwise one line with a hint that says what looks wrong. Counts are compared
# > exactly: off by one is wrong. Later cells never depend on your answers, so you can skip an exercise and
# > come back to it.

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
import tempfile
import warnings
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import peft
from IPython.display import display
from transformers import AutoModelForSequenceClassification

from loramini import checks   # the exercises' answer checks

plt.rcParams.update({"figure.dpi": 110})
warnings.filterwarnings("ignore", category=FutureWarning)   # library deprecation notices, not our business here
print("Counting needs no accelerator: everything below lives on the 'meta' device.")

# %% [markdown]
# ## 1. Full-size models with no memory: the `meta` device
#
# A tensor on the `meta` device records its shape and dtype and nothing else. Building a model inside
# `with torch.device("meta"):` therefore takes milliseconds and no RAM, yet every layer has its true shape,
# which is all that counting needs. `loramini.roberta_config` (in `loramini/models.py`) supplies the published
# shapes of `roberta-base` and `roberta-large` so that no `config.json` has to be downloaded either.

# %%
# NBVAL_CHECK_OUTPUT
MODELS = ["roberta-base", "roberta-large"]


def meta_model(name):
    """A RoBERTa sequence classifier (2 labels) with real shapes, built on the meta device."""
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(loramini.roberta_config(name))


for name in MODELS:
    model = meta_model(name)
    counts = loramini.count_parameters(model)
    head = sum(p.numel() for p in model.classifier.parameters())
    print(f"{name:<13}: {counts.total:>11,} parameters (of which classifier head {head:,}), "
          f"device = {next(model.parameters()).device}")

# %% [markdown]
# ## 2. Which layers does each preset adapt?
#
# `target_modules` accepts module names, a regular expression, or one of three presets (defined in
# `loramini/inject.py`). In every RoBERTa block there are six linear layers: four in
# attention (`query`, `key`, `value` and the attention output projection, all $d\times d$) and two in the
# feed-forward part (`intermediate.dense`, $d\to4d$, and `output.dense`, $4d\to d$).
# * `"attention"`: the four attention matrices,
# * `"dense"`: the two feed-forward matrices,
# * `"all-linear"`: all six (never the task head, which is trained in full instead).
#
# `loramini.find_targets` shows exactly what a config selects, before anything is changed:

# %%
# NBVAL_CHECK_OUTPUT
PRESETS = ["attention", "dense", "all-linear"]
rows = []
for name in MODELS:
    model = meta_model(name)
    shapes = dict(model.named_modules())
    for preset in PRESETS:
        targets = loramini.find_targets(model, loramini.LoRAMiniConfig(target_modules=preset))
        kinds = pd.Series([tuple(shapes[t].weight.shape[::-1]) for t in targets]).value_counts()
        rows.append({"model": name, "preset": preset, "layers": len(targets),
                     "shapes (d_in, d_out) × count": ", ".join(f"{s} × {n}" for s, n in kinds.items())})
pd.DataFrame(rows)

# %% [markdown]
# ### Count by hand before the machine does
#
# The closed forms are short enough to use with pencil and paper, and doing it once by hand is the best
# protection against a wrong number later. First one layer whose input and output widths differ, with
# unequal aux widths, so that no factor can be confused with another:

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 1: LoRA-Mini's trainable numbers on one layer
# `intermediate.dense` of roberta-base (d_in = 768 → d_out = 3072), adapted by LoRA-Mini with
# r = 4, a = 16, b = 64. How many numbers are trained? Set `mini_ffn`.
### BEGIN SOLUTION
mini_ffn = 4 * 16 + 64 * 4   # A_train is r × a, B_train is b × r; the aux factors are frozen
### END SOLUTION
checks.check_loramini_count(mini_ffn, a=16, b=64, r=4, d_in=768, d_out=3072)
### BEGIN HIDDEN TESTS
assert mini_ffn == 320
### END HIDDEN TESTS

# %% [markdown]
# Now a whole model. The table above lists the six linear layers of one RoBERTa-base block; the model
# stacks 12 such blocks. Count the adapter numbers of the `all-linear` preset, for LoRA and for LoRA-Mini, at a
# smaller rank and with unequal aux widths (the tables further down use $r=8$, $a=b=32$; do not look ahead).

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 2: a whole model, by hand
# One roberta-base block, as (d_in, d_out) for each linear layer that `all-linear` adapts:
ROBERTA_BASE_BLOCK = {"query": (768, 768), "key": (768, 768), "value": (768, 768),
                      "attention.output.dense": (768, 768),
                      "intermediate.dense": (768, 3072), "output.dense": (3072, 768)}
# Set `lora_all` (LoRA, r = 4) and `mini_all` (LoRA-Mini, r = 4, a = 16, b = 48) for all 12 blocks.
### BEGIN SOLUTION
lora_all = 12 * (4 * 4 * (768 + 768) + 4 * (768 + 3072) + 4 * (3072 + 768))
mini_all = 12 * 6 * 4 * (16 + 48)
### END SOLUTION
checks.check_model_count(lora_all, ROBERTA_BASE_BLOCK, r=4, n_blocks=12)
checks.check_model_count(mini_all, ROBERTA_BASE_BLOCK, r=4, a=16, b=48, n_blocks=12)
### BEGIN HIDDEN TESTS
_cfg = loramini.LoRAMiniConfig(r=4, a=16, b=48, target_modules="all-linear")
assert lora_all == loramini.predict_adapter_params(meta_model("roberta-base"), _cfg, method="lora")
assert mini_all == loramini.predict_adapter_params(meta_model("roberta-base"), _cfg, method="loramini")
### END HIDDEN TESTS

# %% [markdown]
# By hand is how to understand a count; code is how to trust one on a model you have never seen. Write a
# function that walks a model's modules and adds up the adapter numbers of every `nn.Linear` it would adapt.
# A layer is adapted when its full dotted name equals a target or ends with `"." + target` (so `"dense"` is not
# enough to tell `intermediate.dense` from `output.dense`, and a target may contain dots). Each matching layer
# counts $r(d_{in}+d_{out})$ for LoRA (when `a` and `b` are `None`) or $r(a+b)$ for LoRA-Mini; take $d_{in}$ and
# $d_{out}$ from the layer itself (`in_features`, `out_features`). The check runs your function on a tiny RoBERTa
# with several targets and switches the package's own counting helpers off while it runs.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 3: count adapters by walking the model
from torch import nn


def my_adapter_count(model, targets, r, a=None, b=None):
    """Trainable adapter numbers for every nn.Linear of `model` whose name matches one of `targets`."""
    ### BEGIN SOLUTION
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets):
            if a is None:
                total += r * (module.in_features + module.out_features)
            else:
                total += r * (a + b)
    return total
    ### END SOLUTION


checks.check_adapter_counter(my_adapter_count)
print("roberta-base, query + value, LoRA r=8:",
      f"{my_adapter_count(meta_model('roberta-base'), ['query', 'value'], 8):,}")
### BEGIN HIDDEN TESTS
_cfg = loramini.LoRAMiniConfig(r=4, a=16, b=8, target_modules=["key", "output.dense"])
assert my_adapter_count(meta_model("roberta-base"), ["key", "output.dense"], 4, 16, 8) == \
    loramini.predict_adapter_params(meta_model("roberta-base"), _cfg, method="loramini")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Three honest answers to "how many parameters does LoRA train?"
#
# The classic setting from the LoRA paper: rank $r=8$ on `query` and `value` of RoBERTa-base, for a
# two-class task. We build it with Hugging Face PEFT itself (on the meta device, so still no download) and
# split the trainable numbers by role with `loramini.count_parameters`:

# %%
# NBVAL_IGNORE_OUTPUT
with torch.device("meta"):
    peft_model = peft.get_peft_model(
        meta_model("roberta-base"),
        peft.LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], task_type="SEQ_CLS"))
peft_model.print_trainable_parameters()   # PEFT's own summary line

# %%
# NBVAL_CHECK_OUTPUT
lora_counts = loramini.count_parameters(peft_model)
adapter_formula = 12 * 2 * loramini.lora_params(768, 768, r=8)      # 12 blocks × (query, value)
head_formula = (768 * 768 + 768) + (768 * 2 + 2)                    # classifier.dense + classifier.out_proj
print(f"1. adapter only     : {lora_counts.adapter:>9,}   = 12 × 2 × 8 × (768 + 768)")
print(f"2. head only        : {lora_counts.head:>9,}   = (768·768 + 768) + (768·2 + 2)")
print(f"3. adapter + head   : {lora_counts.trainable:>9,}   (what PEFT's summary line reports)")
assert lora_counts.adapter == adapter_formula == 294_912
assert lora_counts.head == head_formula == 592_130
assert lora_counts.trainable == 887_042 == peft_model.get_nb_trainable_parameters()[0]

# %% [markdown]
# All three numbers are "correct"; they answer different questions.
# 1. **Adapter only (294,912)** is what LoRA itself adds, and what papers usually put in a "# trainable
#    parameters" column (the LoRA paper lists about 0.3M for this setting).
# 2. **Head only (592,130)**: the freshly initialised classifier must be trained in full whatever the
#    method, because the pretrained model has no head for *your* labels. For RoBERTa-base it is *twice* the
#    size of the LoRA adapter.
# 3. **Both (887,042)** is what actually receives gradients and what you must store per task. It is what
#    `print_trainable_parameters()` reports. (Its "all params" figure, 125,534,212, is the model's
#    124,647,170 plus 294,912 plus 592,130: PEFT keeps a frozen copy of the original head next to the
#    trainable one, so the head appears twice.)
#
# Now watch what the convention does to a comparison. The same targets with LoRA-Mini, $r=8$, $a=b=32$:

# %%
# NBVAL_CHECK_OUTPUT
mini_model = loramini.inject(meta_model("roberta-base"),
                             loramini.LoRAMiniConfig(r=8, a=32, b=32, target_modules=["query", "value"]))
mini_counts = loramini.count_parameters(mini_model)
assert mini_counts.adapter == 12 * 2 * loramini.loramini_params(32, 32, r=8)
assert mini_counts.head == lora_counts.head

table = pd.DataFrame({
    "LoRA r=8": [lora_counts.adapter, lora_counts.head, lora_counts.trainable],
    "LoRA-Mini r=8, a=b=32": [mini_counts.adapter, mini_counts.head, mini_counts.trainable],
}, index=["1. adapter only", "2. head only", "3. adapter + head"])
table["LoRA / LoRA-Mini"] = (table.iloc[:, 0] / table.iloc[:, 1]).round(2)
table

# %% [markdown]
# Counting adapters only, LoRA-Mini is **24x** smaller. Counting what is really trained, it is only about
# **1.5x** smaller, because both methods carry the same 592,130-number head, and that head now dominates.
# Neither number is wrong; a comparison is only meaningful when both sides use the same convention, and a
# careful paper says which one it uses. (One way to shrink the head too: `modules_to_save=[]` plus a smaller
# head, or adapting the head's dense layer with LoRA-Mini as well; see "More to explore" at the end.)
#
# The frozen aux factors are a fourth quantity. They are buffers, not parameters: regenerated from a seed,
# never trained, not stored unless `save_projection=True`. `count_parameters` reports them separately:

# %%
# NBVAL_CHECK_OUTPUT
print(mini_counts)
assert mini_counts.frozen_aux == 12 * 2 * (32 * 768 + 768 * 32)

# %% [markdown]
# Reading other people's numbers is the practical side of this. Work out which convention a reported number
# uses before you compare it with anything.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 4: which convention?
# A blog post says LoRA (r = 8 on query and value of roberta-base, a 2-label task) trains "0.89M parameters",
# and LoRA-Mini "0.60M", so "LoRA-Mini saves only 1.5x". Which convention gives LoRA's 0.89M? Set `convention`
# to one of "adapter only", "head only", "adapter + head".
### BEGIN SOLUTION
convention = "adapter + head"   # 294,912 + 592,130 = 887,042 ≈ 0.89M (adapter only would be 0.29M)
### END SOLUTION
checks.check_convention(convention, reported=890_000,
                        counts={"adapter only": lora_counts.adapter, "head only": lora_counts.head,
                                "adapter + head": lora_counts.trainable})
### BEGIN HIDDEN TESTS
assert convention == "adapter + head"
### END HIDDEN TESTS

# %% [markdown]
# The head deserves a count of its own, because it is the part that no adapter method shrinks. RoBERTa's
# classification head (`RobertaClassificationHead` in `transformers`) takes the first token's vector,
# applies a `dense` layer of the model's width with a bias, then `out_proj` to one output per label.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 5: count the classifier head
# roberta-large (hidden size 1024) on MNLI, a task with 3 labels. How many numbers does its head train?
### BEGIN SOLUTION
head_large_mnli = (1024 * 1024 + 1024) + (1024 * 3 + 3)
### END SOLUTION
checks.check_head_count(head_large_mnli, hidden=1024, num_labels=3)
### BEGIN HIDDEN TESTS
with torch.device("meta"):
    _model = AutoModelForSequenceClassification.from_config(loramini.roberta_config("roberta-large", num_labels=3))
assert head_large_mnli == sum(p.numel() for p in _model.classifier.parameters())
### END HIDDEN TESTS

# %% [markdown]
# ## 4. LoRA vs LoRA-Mini across targets, ranks and widths
#
# `loramini.predict_adapter_params` gives the count from shapes alone (the closed forms summed over the
# selected layers). Before trusting it for big tables, we check it against two independent counts on real
# meta models: LoRA-Mini injected by `loramini.inject`, and LoRA built by PEFT on the very same layers.

# %%
# NBVAL_CHECK_OUTPUT
BASE_MODELS = {name: meta_model(name) for name in MODELS}   # kept un-injected, for predictions
rows = []
for name in MODELS:
    for preset in PRESETS:
        cfg = loramini.LoRAMiniConfig(r=8, a=32, b=32, target_modules=preset)
        predicted_mini = loramini.predict_adapter_params(BASE_MODELS[name], cfg, method="loramini")
        predicted_lora = loramini.predict_adapter_params(BASE_MODELS[name], cfg, method="lora")
        injected = loramini.count_parameters(loramini.inject(meta_model(name), cfg)).adapter
        targets = loramini.find_targets(BASE_MODELS[name], cfg)
        with torch.device("meta"):
            by_peft = loramini.count_parameters(peft.get_peft_model(
                meta_model(name), peft.LoraConfig(r=8, target_modules=targets, task_type="SEQ_CLS"))).adapter
        assert predicted_mini == injected and predicted_lora == by_peft
        rows.append({"model": name, "preset": preset, "layers": len(targets),
                     "LoRA r=8 (PEFT)": by_peft, "LoRA-Mini r=8, a=b=32 (injected)": injected,
                     "ratio": round(by_peft / injected, 2)})
print("predictions match injected LoRA-Mini and PEFT LoRA for every model and preset")
pd.DataFrame(rows)

# %%
# NBVAL_IGNORE_OUTPUT
summary = pd.DataFrame(rows)
fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for ax, name in zip(axes, MODELS):
    part = summary[summary.model == name]
    xs = range(len(part))
    ax.bar([x - 0.2 for x in xs], part["LoRA r=8 (PEFT)"], width=0.4, label="LoRA r=8")
    ax.bar([x + 0.2 for x in xs], part["LoRA-Mini r=8, a=b=32 (injected)"], width=0.4, label="LoRA-Mini r=8, a=b=32")
    ax.axhline(loramini.count_parameters(BASE_MODELS[name]).total, ls=":", color="grey", label="whole model")
    ax.set_xticks(list(xs), part["preset"])
    ax.set_yscale("log")
    ax.set_xlabel("target preset (r = 8, a = b = 32)")
    ax.set_title(name, fontsize=10)
axes[0].set_ylabel("trainable adapter numbers (log scale)")
fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=3, fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0, 1, 0.92))
plt.show()


# %% [markdown]
# The ratio is $24$ for attention ($1536/64$) but $60$ for the feed-forward layers ($3840/64$): the saving
# $(d_{in}+d_{out})/(a+b)$ grows with the layer, since $a$ and $b$ stay fixed while $d$ grows. That is also why
# the ratio is larger on RoBERTa-large.
#
# Next, the rank and the widths. For the `attention` preset on RoBERTa-base, adapter sizes for several
# $r$ (rows) and $a=b$ (columns). A dash marks settings the config refuses ($r>\min(a,b)$, see notebook 01);
# the LoRA column is there for comparison.

# %%
# NBVAL_CHECK_OUTPUT
def adapter_count(model_name, target, r, a=None, b=None):
    """Predicted adapter size: LoRA when a and b are None, else LoRA-Mini (None if the setting is invalid)."""
    model = BASE_MODELS[model_name]
    if a is None:
        cfg = loramini.LoRAMiniConfig(r=r, a=r, b=r, target_modules=target)   # a, b unused by LoRA
        return loramini.predict_adapter_params(model, cfg, method="lora")
    try:
        cfg = loramini.LoRAMiniConfig(r=r, a=a, b=b, target_modules=target)   # refuses r > min(a, b)
    except ValueError:
        return None
    shapes = [model.get_submodule(t).weight.shape for t in loramini.find_targets(model, cfg)]
    if any(a > d_in or b > d_out for d_out, d_in in shapes):                # wider than the layer
        return None
    return loramini.predict_adapter_params(model, cfg, method="loramini")


RANKS, WIDTHS = [1, 2, 4, 8, 16, 32, 64], [16, 32, 64, 128]
grid = pd.DataFrame(
    {f"LoRA-Mini a=b={w}": [adapter_count("roberta-base", "attention", r, w, w) for r in RANKS] for w in WIDTHS},
    index=pd.Index(RANKS, name="r"))
grid["LoRA"] = [adapter_count("roberta-base", "attention", r) for r in RANKS]
assert grid.loc[8, "LoRA"] == 8 * 48 * 1536 and grid.loc[8, "LoRA-Mini a=b=32"] == 8 * 48 * 64
grid.map(lambda v: "—" if pd.isna(v) else f"{int(v):,}")

# %% [markdown]
# ## 5. Where does "20x" come from?
#
# The paper's abstract claims up to 20x fewer trainable parameters than LoRA. Since the rank cancels, the
# saving of a LoRA-Mini adapter over a LoRA adapter of the same rank is, for a single $d\times d$ matrix,
#
# $$\frac{r(d_{in}+d_{out})}{r(a+b)} = \frac{d_{in}+d_{out}}{a+b} = \frac{1536}{a+b}\quad\text{for RoBERTa-base attention,}$$
#
# so 20x needs $a+b\approx77$, e.g. $a=b=38$ (20.2x), while $a=b=32$ gives 24x and $a=b=64$ gives 12x. If the
# feed-forward layers are adapted too (the `all-linear` preset), the average $d_{in}+d_{out}$ per layer is
# $(4\cdot1536+2\cdot3840)/6=2304$ and the same ratio needs $a+b\approx115$.
# The tables compute the exact ratios (adapter-only convention) from real counts:

# %%
# NBVAL_CHECK_OUTPUT
AB = [16, 32, 38, 48, 64, 96, 128]
for preset in ["attention", "all-linear"]:
    ratios = pd.DataFrame(
        {b: [adapter_count("roberta-base", preset, 8) / adapter_count("roberta-base", preset, 8, a, b)
             for a in AB] for b in AB},
        index=pd.Index(AB, name="a \\ b"))
    assert abs(ratios.loc[38, 38] - (1536 / 76 if preset == "attention" else 2304 / 76)) < 1e-9
    pairs = sorted(((a, b) for a in AB for b in AB if a <= b), key=lambda ab: abs(ratios.loc[ab] - 20))
    print(f"roberta-base, preset {preset!r}: LoRA / LoRA-Mini adapter size (any r ≤ min(a, b))")
    display(ratios.round(1))
    print("  closest to 20x (a ≤ b): " + ", ".join(f"a={a}, b={b}: {ratios.loc[a, b]:.1f}x" for a, b in pairs[:3]) + "\n")

# %% [markdown]
# Of the paper we have the abstract, the opening of its introduction, a README whose results sections are
# empty, and one layer file. None of them says which layers were adapted, which $(a, b)$ grid was swept or which
# counting convention the 20x uses, so we cannot say which row of these tables it comes from. What the tables
# do say: "20x" sits at $a+b\approx77$ when only attention layers count (e.g. $a=b=38$), and at
# $a+b\approx115$ when the dense layers are adapted too (e.g. $a=48$, $b=64$); smaller widths save more,
# larger ones less. Always check the convention as well: these are adapter-only ratios. With the head
# included (Section 3) they shrink a lot; for $r=8$ on the attention preset no choice of $(a, b)$ can reach
# even 2x, because LoRA's adapter (589,824) is smaller than the shared head (592,130). Notebook 04 measures what the widths cost in
# accuracy.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 6: the saving on a bigger layer
# roberta-large's `intermediate.dense` maps 1024 → 4096. Adapt it with LoRA-Mini, a = 32, b = 48.
# How many times fewer trainable numbers than LoRA of the same rank? Set `saving_large_ffn`.
### BEGIN SOLUTION
saving_large_ffn = (1024 + 4096) / (32 + 48)   # r cancels
### END SOLUTION
checks.check_savings_ratio(saving_large_ffn, d_in=1024, d_out=4096, a=32, b=48)
### BEGIN HIDDEN TESTS
assert abs(saving_large_ffn - 64) < 1e-9
### END HIDDEN TESTS


# %% [markdown]
# ## 6. Bytes on disk
#
# An adapter file stores each trained number once; in float32 that is 4 bytes a number (2 in fp16/bf16).
# LoRA-Mini's aux factors are regenerated from the seed, so they cost nothing on disk unless you ask for
# them with `save_projection=True`. For the classic setting ($r=8$ on `query`, `value` of RoBERTa-base):

# %%
# NBVAL_CHECK_OUTPUT
def megabytes(numbers, bytes_per_number=4):
    return round(numbers * bytes_per_number / 1e6, 3)


aux_numbers = mini_counts.frozen_aux
whole_model = loramini.count_parameters(BASE_MODELS["roberta-base"]).total
disk = pd.DataFrame([
    ("full fine-tuning (whole model)", whole_model),
    ("LoRA adapter", lora_counts.adapter),
    ("LoRA-Mini adapter (aux from seed)", mini_counts.adapter),
    ("LoRA-Mini adapter with save_projection=True", mini_counts.adapter + aux_numbers),
    ("classifier head (either method)", lora_counts.head),
], columns=["what is stored", "numbers"]).set_index("what is stored")
disk["MB (fp32)"] = disk["numbers"].map(megabytes)
disk["MB (bf16)"] = disk["numbers"].map(lambda n: megabytes(n, 2))
assert whole_model == 124_647_170 and aux_numbers == 24 * 2 * 32 * 768
disk

# %% [markdown]
# Per task you store the adapter *and* the head: 3.5 MB for LoRA against 2.4 MB for LoRA-Mini in fp32,
# against 499 MB for a fully fine-tuned copy. The head is again the larger part.
#
# Numbers on paper are one thing; let us write a real file. Meta tensors hold no data, so we use the tiny
# random RoBERTa from `loramini/models.py` and `loramini.save_adapter`, once
# without the head (`modules_to_save=[]`) so the file holds only $A_{train}$ and $B_{train}$:

# %%
# NBVAL_CHECK_OUTPUT
from safetensors.torch import load_file

tiny_cfg = loramini.LoRAMiniConfig(r=4, a=16, b=16, target_modules=["query", "value"], modules_to_save=[])
tiny = loramini.inject(loramini.tiny_roberta(seed=0), tiny_cfg)
tiny_counts = loramini.count_parameters(tiny)
folder = Path(tempfile.mkdtemp()) / "tiny_adapter"
loramini.save_adapter(tiny, folder)
stored = load_file(str(folder / "adapter_model.safetensors"))
stored_numbers = sum(t.numel() for t in stored.values())
print(f"tensors in the file: {len(stored)} ({sorted({k.rsplit('.', 1)[-1] for k in stored})})")
print(f"numbers stored: {stored_numbers:,} = adapter count {tiny_counts.adapter:,} = 2 layers × 2 targets × 4 × (16 + 16)")
print(f"payload: {4 * stored_numbers:,} bytes in fp32")
assert stored_numbers == tiny_counts.adapter == 2 * 2 * loramini.loramini_params(16, 16, r=4)

# %%
# NBVAL_IGNORE_OUTPUT
# Actual file sizes: the payload plus a small JSON header (names, shapes) and the config file.
for f in sorted(folder.iterdir()):
    print(f"{f.name:<28} {f.stat().st_size:>7,} bytes")
overhead = (folder / "adapter_model.safetensors").stat().st_size - 4 * stored_numbers
print(f"safetensors header: {overhead:,} bytes")
assert 0 < overhead < 4096

# %% [markdown]
# Your turn to convert counts into bytes: mind the dtype.

# %%
# NBVAL_CHECK_OUTPUT
# Exercise 7: bytes on disk in bf16
# The LoRA-Mini adapter above (r = 8, a = b = 32 on query and value of roberta-base) holds 12,288 trained
# numbers. How many bytes does its tensor data take when saved in bfloat16? Set `adapter_bytes_bf16`.
### BEGIN SOLUTION
adapter_bytes_bf16 = 12_288 * 2   # bf16 is 16 bits = 2 bytes a number
### END SOLUTION
checks.check_adapter_bytes(adapter_bytes_bf16, n_params=12_288, dtype=torch.bfloat16)
### BEGIN HIDDEN TESTS
assert adapter_bytes_bf16 == mini_counts.adapter * 2 == 24_576
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Explore it yourself
#
# Move the sliders: the table and the bar chart update live (the chart uses a log scale, since the
# numbers span several orders of magnitude). The explorer uses only built-in `ipywidgets`, so it runs on
# Colab and Binder as well as in Jupyter. In a static view of this notebook (GitHub, or before you run it)
# the widget is not shown; the cell right after it prints the table for the default settings.

# %%
# NBVAL_CHECK_OUTPUT
def explorer_table(model_name, target, r, a, b):
    """LoRA vs LoRA-Mini for one setting, in all three conventions, with sizes in MB (fp32)."""
    total = loramini.count_parameters(BASE_MODELS[model_name]).total
    head = sum(p.numel() for p in BASE_MODELS[model_name].classifier.parameters())
    lora = adapter_count(model_name, target, r)
    mini = adapter_count(model_name, target, r, a, b)
    if mini is None:
        raise ValueError(f"r={r}, a={a}, b={b} is not a valid LoRA-Mini setting here (need r ≤ min(a, b)).")
    rows = {f"LoRA (r={r})": lora, f"LoRA-Mini (r={r}, a={a}, b={b})": mini}
    table = pd.DataFrame({
        "adapter": rows,
        "adapter + head": {k: v + head for k, v in rows.items()},
        "% of model": {k: round(100 * (v + head) / total, 3) for k, v in rows.items()},
        "MB fp32 (adapter)": {k: megabytes(v) for k, v in rows.items()},
    })
    table.loc["head (both)"] = [head, head, round(100 * head / total, 3), megabytes(head)]
    table[["adapter", "adapter + head"]] = table[["adapter", "adapter + head"]].astype(int)
    table.attrs["ratio"] = lora / mini
    return table


default = explorer_table("roberta-base", "attention", r=8, a=32, b=32)
print(f"LoRA / LoRA-Mini (adapter only): {default.attrs['ratio']:.1f}x")
default


# %%
# NBVAL_IGNORE_OUTPUT
# Widget messages can reach the kernel on two threads at once (JupyterLab sends some on a subshell), and after
# each one the kernel asks pyplot to redraw every figure it holds. matplotlib's text layout is not thread-safe,
# so a chart made with plt.subplots() can be laid out by two threads at once and fail. The chart is therefore
# a bare `Figure` that pyplot never sees, drawn under a lock, with plain tick labels (no math text).
import threading

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

_one_chart_at_a_time = threading.Lock()


def show(model_name, target, r, a, b):
    try:
        table = explorer_table(model_name, target, r, a, b)
    except ValueError as err:
        print(err)
        return
    with _one_chart_at_a_time:
        print(f"{model_name}, {target}: LoRA / LoRA-Mini = {table.attrs['ratio']:.1f}x (adapter only)")
        display(table)
        fig = Figure(figsize=(6.5, 2.4), dpi=plt.rcParams["figure.dpi"], layout="constrained")
        ax = fig.subplots()
        ax.barh(table.index, table["adapter"], color=["tab:blue", "tab:orange", "tab:grey"])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("trainable numbers (log scale)")
        ax.invert_yaxis()
        display(fig)


controls = dict(
    model_name=widgets.Dropdown(options=MODELS, value="roberta-base", description="model"),
    target=widgets.Dropdown(options=PRESETS, value="attention", description="targets"),
    r=widgets.IntSlider(value=8, min=1, max=64, description="r"),
    a=widgets.IntSlider(value=32, min=8, max=256, step=8, description="a"),
    b=widgets.IntSlider(value=32, min=8, max=256, step=8, description="b"),
)
out = widgets.interactive_output(show, controls)
display(widgets.VBox([widgets.HBox([controls["model_name"], controls["target"]]),
                      widgets.HBox([controls["r"], controls["a"], controls["b"]]), out]))

# %% [markdown]
# ## Summary
#
# * On the `meta` device a full RoBERTa-large costs no memory and no download, yet has every true shape:
#   ideal for counting.
# * LoRA trains $r(d_{in}+d_{out})$ numbers per adapted matrix, LoRA-Mini $r(a+b)$. The closed forms
#   (`predict_adapter_params`) agree exactly with injected LoRA-Mini and with PEFT's LoRA.
# * For LoRA $r=8$ on `query`, `value` of RoBERTa-base: **294,912** adapter numbers, **592,130** in the
#   head, **887,042** in total. Say which convention you use; with the head included, a 24x adapter saving
#   becomes about 1.5x.
# * The saving over LoRA is $(d_{in}+d_{out})/(a+b)$, independent of $r$; "20x" corresponds to
#   $a+b\approx77$ on RoBERTa-base attention layers.
# * On disk, LoRA-Mini stores only $A_{train}$ and $B_{train}$ (4 bytes a number in fp32); the aux factors
#   come back from the seed.
#
# ## Questionnaire
#
# Answer in a sentence or two each; every answer is in this notebook. (No automatic check.)
#
# 1. What is the `meta` device, and why can it count the parameters of roberta-large on a laptop?
# 2. What are the three counting conventions (adapter only, head only, both), and which one does PEFT's
#    `print_trainable_parameters` line report?
# 3. Why does RoBERTa's classification head have so many numbers compared with the adapters, and how does it
#    change a "times fewer" claim?
# 4. Which layers do the presets `attention`, `dense` and `all-linear` adapt, and why is the head never one of them?
# 5. Why is a target such as `"dense"` ambiguous, and what rule does the package use to match a layer's name?
# 6. Which $a+b$ makes LoRA-Mini train 20x fewer adapter numbers than LoRA on roberta-base's attention layers,
#    and why does the answer not depend on $r$?
# 7. Why does a LoRA-Mini adapter file hold only $A_{train}$, $B_{train}$ and the head? How many bytes does a
#    number take in float32 and in bfloat16?
#
# ## More to explore (open questions, no automatic check)
#
# 1. **Shrink the head.** Use `modules_to_save=[]` and add `"classifier.dense"` to the targets. How do the
#    three conventions change? What does the model lose?
# 2. **Other models.** Use `loramini.roberta_config("roberta-base", hidden_size=1024, intermediate_size=4096,
#    num_attention_heads=16)` or a BERT config from `transformers` to count for a model of your choice. Which
#    preset names still match, and which need a regex?
# 3. **Equal budget.** For the `all-linear` preset, find LoRA-Mini settings with the same number of trainable
#    numbers as LoRA at $r=1$. What rank do they allow?
# 4. **Per-layer widths.** The saving grows with $d$. Sketch how a rule such as $a = d_{in}/24$, $b = d_{out}/24$
#    would change the tables. Is it still "the same method"?
# 5. **Bytes for many tasks.** You serve 1,000 customer-specific classifiers on one RoBERTa-base. Compare the
#    storage for full fine-tuning, LoRA and LoRA-Mini, in fp32 and in bf16, counting the heads.
#
# **Read next:** `loramini/counting.py`, then notebook
# `03_finetune_roberta.ipynb`, where these adapters are trained.
