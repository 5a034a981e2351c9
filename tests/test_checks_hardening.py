"""The checks cannot be fooled (issue #11): exact integers, dtype-tolerant, references on copies, library
shortcuts blocked, the right hint for each listed mistake, grading mode, safe re-import — and every right
alternative (loops, einsum, F.linear, a merged ΔW) still passes."""

import importlib
import io
import re
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import loramini
from loramini import checks
from loramini.checks import CheckFailed
from loramini.layer import LoRAMiniFunction


def passes(fn, *args, **kwargs):
    out = io.StringIO()
    with redirect_stdout(out):
        assert fn(*args, **kwargs) is None
    text = out.getvalue()
    assert text.startswith("✓ ") and text.count("\n") == 1, text
    return text


def fails_with(match, fn, *args, **kwargs):
    with pytest.raises(CheckFailed, match=match or None) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture(autouse=True)
def normal_mode():
    checks.grading_mode(False)
    yield
    checks.grading_mode(False)


# ---------------------------------------------------------------- exact integers, any numeric type
BLOCK = {"query": (768, 768), "key": (768, 768), "value": (768, 768), "attention.output.dense": (768, 768),
         "intermediate.dense": (768, 3072), "output.dense": (3072, 768)}
LORA_ALL = 12 * (4 * 8 * 1536 + 2 * 8 * 3840)


def test_off_by_one_counts_fail():
    assert LORA_ALL == 1_327_104
    passes(checks.check_model_count, LORA_ALL, BLOCK, r=8, n_blocks=12)
    fails_with("exact", checks.check_model_count, LORA_ALL + 1, BLOCK, r=8, n_blocks=12)
    fails_with("exact", checks.check_lora_count, 30_721, d_in=768, d_out=3072, r=8)
    with pytest.raises(CheckFailed):
        checks.check_head_count(592_131, hidden=768, num_labels=2)
    with pytest.raises(CheckFailed):
        checks.check_adapter_bytes(24_577, n_params=12_288, dtype=torch.bfloat16)


@pytest.mark.parametrize("answer", [30_720, 30_720.0, np.int64(30_720), np.float64(30_720), torch.tensor(30_720),
                                    torch.tensor(30_720.0, dtype=torch.float64)])
def test_numeric_types_are_accepted(answer):
    passes(checks.check_lora_count, answer, d_in=768, d_out=3072, r=8)


@pytest.mark.parametrize("answer", [None, "30720", True, [30_720], torch.tensor([1.0, 2.0])])
def test_non_numbers_get_a_hint(answer):
    fails_with("single number", checks.check_lora_count, answer, d_in=768, d_out=3072, r=8)


def test_success_never_prints_the_value():
    for text in [passes(checks.check_lora_count, 30_720, 768, 3072, 8),
                 passes(checks.check_model_count, LORA_ALL, BLOCK, r=8, n_blocks=12),
                 passes(checks.check_head_count, 592_130, hidden=768, num_labels=2),
                 passes(checks.check_adapter_bytes, 24_576, 12_288, torch.bfloat16),
                 passes(checks.check_extra_flops, 3072 * 16 + 16 * 4 + 4 * 16 + 16 * 768, 3072, 768, 4, 16, 16),
                 passes(checks.check_savings_ratio, 64.0, 1024, 4096, 32, 48),
                 passes(checks.check_rank_bound, 4, r=8, a=64, b=4)]:
        assert not re.search(r"\d", text.replace("✓", "")), text


# ---------------------------------------------------------------- the wrong hints of #11, now right
def test_bf16_bits_hint_names_bf16():
    msg = fails_with("bits, not bytes", checks.check_adapter_bytes, 12_288 * 16, 12_288, torch.bfloat16)
    assert "bfloat16 number is 16 bits" in msg and "float32" not in msg
    fails_with("float32's size", checks.check_adapter_bytes, 12_288 * 4, 12_288, torch.bfloat16)
    passes(checks.check_adapter_bytes, 24_576, 12_288, torch.bfloat16)


def test_missing_dense_bias_hint():
    fails_with("dense layer's bias is missing", checks.check_head_count, 1024 * 1024 + 1024 * 3 + 3, 1024, 3)
    fails_with("dense layer's bias is missing", checks.check_head_count, 768 * 768 + 768 * 2 + 2, 768, 2)
    fails_with("out_proj's bias is missing", checks.check_head_count, 1024 * 1024 + 1024 + 1024 * 3, 1024, 3)
    fails_with("3 labels, not 2", checks.check_head_count, 1024 * 1024 + 1024 + 2048 + 2, 1024, 3)


def full_delta(l):
    return l.scale * l.B_aux @ l.B_train @ l.A_train @ l.A_aux


def test_alpha_instead_of_alpha_over_r():
    fails_with("alpha / r", checks.check_delta_weight, lambda l: l.alpha * l.B_aux @ l.B_train @ l.A_train @ l.A_aux)
    fails_with("alpha / r", checks.check_forward,
               lambda l, x: l.base(x) + l.alpha * x @ (l.B_aux @ l.B_train @ l.A_train @ l.A_aux).T)
    fails_with("alpha / r", checks.check_grad_B_train,
               lambda l, x, g: l.alpha * (g @ l.B_aux).T @ (x @ l.A_aux.T @ l.A_train.T))


def test_forgotten_base_bias():
    fails_with("bias is missing", checks.check_forward, lambda l, x: x @ l.base.weight.T + x @ full_delta(l).T)
    fails_with("bias is missing", checks.check_forward, lambda l, x: F.linear(x, l.weight + full_delta(l)))


# ---------------------------------------------------------------- dtypes
def test_float64_answers_get_a_verdict_not_a_crash():
    passes(checks.check_delta_weight, lambda l: full_delta(l).double())
    passes(checks.check_forward, lambda l, x: (l.base(x) + x @ full_delta(l).T).double())
    passes(checks.check_grad_B_train, lambda l, x, g: (l.scale * (g @ l.B_aux).T @ (x @ l.A_aux.T @ l.A_train.T)).double())
    fails_with("scale", checks.check_delta_weight, lambda l: (full_delta(l) / l.scale).double())
    fails_with("not scaled", checks.check_forward, lambda l, x: (l.base(x) + x @ (full_delta(l) / l.scale).T).double())

    def in_float64(l, x):  # the whole computation in float64, as a student might write it
        W = l.base.weight.double() + full_delta(l).double()
        return x.double() @ W.T + l.base.bias.double()

    passes(checks.check_forward, in_float64)


# ---------------------------------------------------------------- shortcuts are blocked
@pytest.mark.parametrize("shortcut", [
    lambda l: l.delta_weight(),
    lambda l: (l.merge(), l.base.weight.clone())[1],
    lambda l: l.adapter_forward(torch.eye(l.in_features)).T,
])
def test_delta_weight_shortcuts_fail(shortcut):
    fails_with("not with the layer's own method", checks.check_delta_weight, shortcut)


@pytest.mark.parametrize("shortcut", [
    lambda l, x: l(x),
    lambda l, x: l.forward(x),
    lambda l, x: l.base(x) + l.adapter_forward(x),
    lambda l, x: l.base(x) + x @ l.delta_weight().T,
    lambda l, x: l.base(x) + LoRAMiniFunction.apply(x.reshape(-1, l.in_features), l.A_train, l.B_train, l.A_aux,
                                                     l.B_aux, l.scale).reshape(*x.shape[:-1], -1),
])
def test_forward_shortcuts_fail(shortcut):
    fails_with("not with the layer's own method", checks.check_forward, shortcut)


def test_grad_shortcuts_fail():
    # .grad of the layer the check hands over is never set: no earlier backward to borrow from
    fails_with("returned None", checks.check_grad_B_train, lambda l, x, g: l.B_train.grad)

    def via_layer(l, x, g):
        with torch.enable_grad():
            l(x).backward(g)
        return l.B_train.grad

    fails_with("own method", checks.check_grad_B_train, via_layer)

    def via_own_chain(l, x, g):  # writes the forward, but lets autograd do the derivation
        with torch.enable_grad():
            B = l.B_train.detach().clone().requires_grad_(True)
            y = l.base(x) + l.scale * x @ l.A_aux.T @ l.A_train.T @ B.T @ l.B_aux.T
            return torch.autograd.grad(y, B, g)[0]

    fails_with("by hand", checks.check_grad_B_train, via_own_chain)

    def via_backward(l, x, g):
        with torch.enable_grad():
            B = l.B_train.detach().clone().requires_grad_(True)
            (l.scale * x @ l.A_aux.T @ l.A_train.T @ B.T @ l.B_aux.T).backward(g)
            return B.grad

    fails_with("by hand", checks.check_grad_B_train, via_backward)


def test_layer_methods_are_restored_after_a_check():
    with pytest.raises(CheckFailed):
        checks.check_forward(lambda l, x: l(x))
    layer = loramini.LoRAMiniLinear(nn.Linear(8, 6), r=2, a=4, b=3)
    x = torch.randn(2, 8)
    assert layer(x).shape == (2, 6) and layer.delta_weight().shape == (6, 8)
    layer(x).sum().backward()  # autograd is back too
    assert layer.B_train.grad is not None


def test_reference_is_computed_on_a_copy():
    def zero_and_return(l, x):  # makes "the layer" agree with a wrong answer
        with torch.no_grad():
            l.B_train.zero_()
        return l.base(x)

    fails_with("changed the layer's B_train", checks.check_forward, zero_and_return)


def test_monkeypatched_layer_does_not_move_the_reference(monkeypatch):
    wrong = lambda l: l.B_aux @ l.B_train @ l.A_train @ l.A_aux  # noqa: E731  (scale missing)
    monkeypatch.setattr(loramini.LoRAMiniLinear, "delta_weight", wrong)
    fails_with("scale", checks.check_delta_weight, wrong)


def test_checks_do_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    passes(checks.check_forward, lambda l, x: l.base(x) + x @ full_delta(l).T)
    passes(checks.check_train_step, right_step)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- right alternatives pass
def forward_loops(l, x):
    out = torch.empty(*x.shape[:-1], l.out_features)
    flat, flat_out = x.reshape(-1, l.in_features), out.view(-1, l.out_features)
    for n in range(flat.shape[0]):
        h = flat[n]
        for M in (l.A_aux, l.A_train, l.B_train, l.B_aux):
            h = torch.stack([sum(M[i, j] * h[j] for j in range(M.shape[1])) for i in range(M.shape[0])])
        flat_out[n] = l.base(flat[n]) + l.scale * h
    return out


@pytest.mark.parametrize("fn", [
    forward_loops,
    lambda l, x: l.base(x) + l.scale * torch.einsum("ob,br,ra,ad,...d->...o", l.B_aux, l.B_train, l.A_train, l.A_aux, x),
    lambda l, x: l.base(x) + l.scale * F.linear(F.linear(F.linear(F.linear(x, l.A_aux), l.A_train), l.B_train), l.B_aux),
    lambda l, x: F.linear(x, l.base.weight + full_delta(l), l.base.bias),   # merged ΔW
    lambda l, x: x @ (l.weight + full_delta(l)).T + l.bias,
])
def test_forward_alternatives_pass(fn):
    passes(checks.check_forward, fn)


@pytest.mark.parametrize("fn", [
    full_delta,
    lambda l: l.scale * torch.einsum("ob,br,ra,ad->od", l.B_aux, l.B_train, l.A_train, l.A_aux),
    lambda l: l.scale * (l.B_aux @ l.B_train) @ (l.A_train @ l.A_aux),
    lambda l: F.linear(torch.eye(l.in_features), l.scale * l.B_aux @ l.B_train @ l.A_train @ l.A_aux).T,
])
def test_delta_alternatives_pass(fn):
    passes(checks.check_delta_weight, fn)


@pytest.mark.parametrize("fn", [
    lambda l, x, g: l.scale * (g @ l.B_aux).T @ (x @ l.A_aux.T @ l.A_train.T),
    lambda l, x, g: l.scale * torch.einsum("no,ob,nr->br", g, l.B_aux, x @ l.A_aux.T @ l.A_train.T),
    lambda l, x, g: sum(l.scale * torch.outer(l.B_aux.T @ g[n], l.A_train @ l.A_aux @ x[n]) for n in range(len(x))),
])
def test_grad_alternatives_pass(fn):
    passes(checks.check_grad_B_train, fn)


def test_export_alternatives_and_shortcut():
    passes(checks.check_lora_export, lambda l: (l.A_train @ l.A_aux, l.B_aux @ l.B_train))
    passes(checks.check_lora_export, lambda l: ((l.A_train @ l.A_aux).double(), (l.B_aux @ l.B_train).double()))
    fails_with("twice", checks.check_lora_export, lambda l: (l.A_train @ l.A_aux, l.scale * l.B_aux @ l.B_train))


# ---------------------------------------------------------------- the new code exercises
def right_unload(model):
    for name, module in list(model.named_modules()):
        if isinstance(module, loramini.LoRAMiniLinear):
            new = nn.Linear(module.in_features, module.out_features)
            with torch.no_grad():
                new.weight.copy_(module.base.weight + full_delta(module))
                new.bias.copy_(module.base.bias)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, new)
    return model


def test_merge_and_unload():
    passes(checks.check_merge_and_unload, right_unload)
    fails_with("switched off", checks.check_merge_and_unload, loramini.merge_and_unload)

    def keeps_base(model):
        for name, module in list(model.named_modules()):
            if isinstance(module, loramini.LoRAMiniLinear):
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent), child, module.base)
        return model

    fails_with("ΔW was not added", checks.check_merge_and_unload, keeps_base)

    def no_bias(model):
        for name, module in list(model.named_modules()):
            if isinstance(module, loramini.LoRAMiniLinear):
                new = nn.Linear(module.in_features, module.out_features, bias=False)
                with torch.no_grad():
                    new.weight.copy_(module.base.weight + full_delta(module))
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent), child, new)
        return model

    fails_with("biases are missing", checks.check_merge_and_unload, no_bias)
    fails_with("still in the model", checks.check_merge_and_unload, lambda m: m)


def right_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def test_train_step():
    passes(checks.check_train_step, right_step)
    passes(checks.check_train_step, lambda m, o, x, y: torch.tensor(right_step(m, o, x, y)))

    def no_zero_grad(model, optimizer, x, y):
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    fails_with("zero_grad", checks.check_train_step, no_zero_grad)

    def no_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        return loss.item()

    fails_with("optimizer.step", checks.check_train_step, no_step)

    def loss_after(model, optimizer, x, y):
        right_step(model, optimizer, x, y)
        with torch.no_grad():
            return F.mse_loss(model(x), y).item()

    fails_with("before the step", checks.check_train_step, loss_after)


def right_counter(model, targets, r, a=None, b=None):
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets):
            total += r * (a + b) if a is not None else r * (m.in_features + m.out_features)
    return total


def test_adapter_counter():
    passes(checks.check_adapter_counter, right_counter)

    def last_part_only(model, targets, r, a=None, b=None):
        return sum((r * (a + b) if a is not None else r * (m.in_features + m.out_features))
                   for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in targets)

    fails_with("ends with", checks.check_adapter_counter, last_part_only)

    def shortcut(model, targets, r, a=None, b=None):
        cfg = loramini.LoRAMiniConfig(r=r, a=a or r, b=b or r, target_modules=targets)
        return loramini.predict_adapter_params(model, cfg, method="lora" if a is None else "loramini")

    fails_with("switched off", checks.check_adapter_counter, shortcut)


def test_plateau_convention_ci_and_reading():
    passes(checks.check_plateau_prediction, 1 - 48 * 48 / 64 ** 2, 64, 64, 48, 48)
    fails_with("one minus", checks.check_plateau_prediction, 48 * 48 / 64 ** 2, 64, 64, 48, 48)
    counts = {"adapter only": 12_288, "head only": 592_130, "adapter + head": 604_418}
    passes(checks.check_convention, "adapter + head", 600_000, counts)
    passes(checks.check_convention, "adapter only", 12_000, counts)
    fails_with("far from", checks.check_convention, "head only", 600_000, counts)
    fails_with("one of", checks.check_convention, "both", 600_000, counts)

    from scipy import stats

    def right_ci(values):
        v = np.asarray(values, dtype=float)
        half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
        return v.mean() - half, v.mean() + half

    passes(checks.check_confidence_interval, right_ci)
    passes(checks.check_confidence_interval, lambda v: stats.t.interval(0.95, len(v) - 1, loc=np.mean(v),
                                                                        scale=stats.sem(v)))
    fails_with("1.96", checks.check_confidence_interval,
               lambda v: (np.mean(v) - 1.96 * stats.sem(v), np.mean(v) + 1.96 * stats.sem(v)))
    fails_with("ddof=1", checks.check_confidence_interval,
               lambda v: (np.mean(v) - stats.t.ppf(0.975, len(v) - 1) * np.std(v) / np.sqrt(len(v)),
                          np.mean(v) + stats.t.ppf(0.975, len(v) - 1) * np.std(v) / np.sqrt(len(v))))
    runs = [0.74, 0.76, 0.75, 0.73, 0.77]  # 95% CI about [0.730, 0.770]
    passes(checks.check_inside, True, 0.75, runs)
    passes(checks.check_inside, False, 0.80, runs)
    passes(checks.check_inside, np.bool_(True), 0.75, runs)
    fails_with("outside", checks.check_inside, True, 0.80, runs)
    fails_with("inside", checks.check_inside, False, 0.76, runs)
    fails_with("True or False", checks.check_inside, "yes", 0.85, runs)


# ---------------------------------------------------------------- notebook rendering, grading mode, reload
def test_render_traceback_is_only_the_hint():
    with pytest.raises(CheckFailed) as info:
        checks.check_lora_count(768 * 3072, 768, 3072, 8)
    lines = info.value._render_traceback_()
    assert len(lines) == 1 and lines[0].startswith("✗ That is the full weight")
    assert isinstance(info.value, AssertionError)


WRONG = [
    (checks.check_lora_count, (30_721, 768, 3072, 8)),
    (checks.check_model_count, (LORA_ALL // 12, BLOCK), {"r": 8, "n_blocks": 12}),
    (checks.check_model_count, (LORA_ALL + 3, BLOCK), {"r": 8, "n_blocks": 12}),
    (checks.check_head_count, (1024 * 1024 + 1024 * 3 + 3, 1024, 3)),
    (checks.check_head_count, (12, 1024, 3)),
    (checks.check_adapter_bytes, (12_288 * 16, 12_288, torch.bfloat16)),
    (checks.check_adapter_bytes, (7, 12_288, torch.bfloat16)),
    (checks.check_extra_flops, (5, 3072, 768, 4, 16, 16)),
    (checks.check_factor_shapes, ({"A_aux": (64, 3072), "A_train": (8, 64), "B_train": (16, 8), "B_aux": (16, 768)},
                                  3072, 768, 8, 64, 16)),
    (checks.check_factor_shapes, ({"A_aux": (64, 3072), "A_train": (8, 64), "B_train": (16, 8), "B_aux": (700, 16)},
                                  3072, 768, 8, 64, 16)),
    (checks.check_delta_weight, (lambda l: full_delta(l).T,)),
    (checks.check_forward, (lambda l, x: x[..., :3],)),
    (checks.check_forward, (lambda l, x: x @ l.base.weight.T + x @ full_delta(l).T,)),
    (checks.check_extra_flops, (2 * (3072 * 16 + 16 * 4 + 4 * 16 + 16 * 768), 3072, 768, 4, 16, 16)),
    (checks.check_savings_ratio, (3.0, 1024, 4096, 32, 48)),
    (checks.check_learning_rates, (1.0, 5e-4)),
]


@pytest.mark.parametrize("case", WRONG, ids=lambda c: c[0].__name__)
def test_grading_mode_hints_hold_no_numbers(case):
    fn, args, kwargs = (case + ({},))[:3]
    normal = fails_with("", fn, *args, **kwargs)
    checks.grading_mode(True)
    terse = fails_with("", fn, *args, **kwargs)
    assert not re.search(r"(?<![A-Za-z_\d])\d", terse), terse  # no number (W0, float32 are names)
    assert len(terse) <= len(normal) + 5


def test_grading_mode_from_the_environment(monkeypatch):
    monkeypatch.setenv("LORAMINI_GRADING", "1")
    fresh = importlib.reload(checks)
    try:
        assert fresh.grading_mode() is True
        with pytest.raises(fresh.CheckFailed) as info:
            fresh.check_adapter_bytes(12_288 * 16, 12_288, torch.bfloat16)
        assert "bits, not bytes" in str(info.value) and not re.search(r"(?<![A-Za-z_\d])\d", str(info.value))
    finally:
        monkeypatch.delenv("LORAMINI_GRADING")
        importlib.reload(checks)
    assert checks.grading_mode() is False


def test_reload_undoes_monkeypatching():
    checks.check_rank_bound = lambda *args, **kwargs: None  # a student "passing" an exercise
    reloaded = importlib.reload(checks)
    with pytest.raises(AssertionError, match="bottlenecks"):
        reloaded.check_rank_bound(8, r=8, a=64, b=4)
    assert reloaded.CheckFailed is CheckFailed  # `except CheckFailed` from an earlier import still works
    # and the package's layer is intact after a reload in the middle of things
    assert loramini.LoRAMiniLinear(nn.Linear(4, 4), r=1, a=2, b=2)(torch.randn(1, 4)).shape == (1, 4)


def test_numbers_that_claim_to_equal_everything_fail_the_in_kernel_checks():
    """Under nbgrader the checks run in the student's kernel: an int/float subclass whose __eq__ says True to
    everything (or a tensor subclass with its own item) must be judged by the number it stores."""
    import torch

    class AnyInt(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__

    class AnyFloat(float):
        def __eq__(self, other):
            return True
        __hash__ = float.__hash__

    class AnyTensor(torch.Tensor):
        def item(self):
            return 8 * (768 + 768)

    with pytest.raises(checks.CheckFailed):
        checks.check_lora_count(AnyInt(1), 768, 768, 8)
    with pytest.raises(checks.CheckFailed):
        checks.check_lora_count(torch.tensor(1).as_subclass(AnyTensor), 768, 768, 8)
    assert not checks._is(AnyFloat(0.5), 0.25)
    checks.check_lora_count(AnyInt(8 * (768 + 768)), 768, 768, 8)  # the right number passes, whatever its class
