"""Every coursework check: the right answer passes, typical mistakes get their own hint."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from helpers import fails_with, passes
from loramini import checks


def test_lora_count():
    passes(checks.check_lora_count, 12288, 768, 768, 8)
    fails_with("full fine-tuning", checks.check_lora_count, 768 * 768, 768, 768, 8)
    fails_with("only one factor", checks.check_lora_count, 8 * 768, 768, 768, 8)
    fails_with("factor r is missing", checks.check_lora_count, 1536, 768, 768, 8)


def test_loramini_count():
    passes(checks.check_loramini_count, 512, a=32, b=32, r=8, d_in=768, d_out=768)
    fails_with("LoRA's count", checks.check_loramini_count, 12288, a=32, b=32, r=8, d_in=768, d_out=768)
    fails_with("aux factors", checks.check_loramini_count, 512 + 2 * 32 * 768, a=32, b=32, r=8, d_in=768, d_out=768)
    fails_with("One inner factor", checks.check_loramini_count, 256, a=32, b=16, r=8)
    fails_with("product", checks.check_loramini_count, 32 * 16, a=32, b=16, r=8)


def test_savings_ratio_and_bytes():
    passes(checks.check_savings_ratio, 24, 768, 768, 32, 32)
    fails_with("Upside down", checks.check_savings_ratio, 1 / 24, 768, 768, 32, 32)
    passes(checks.check_adapter_bytes, 4 * 512, 512)
    passes(checks.check_adapter_bytes, 2 * 512, 512, torch.bfloat16)
    fails_with("bits", checks.check_adapter_bytes, 32 * 512, 512)
    fails_with("numbers, not bytes", checks.check_adapter_bytes, 512, 512)


def test_factor_shapes():
    right = {"A_aux": (32, 768), "A_train": (8, 32), "B_train": (32, 8), "B_aux": (768, 32)}
    passes(checks.check_factor_shapes, right, 768, 768, 8, 32, 32)
    fails_with("A_train is transposed", checks.check_factor_shapes, dict(right, A_train=(32, 8)), 768, 768, 8, 32, 32)
    fails_with("B_aux has the wrong shape", checks.check_factor_shapes, dict(right, B_aux=(768, 16)), 768, 768, 8, 32, 32)
    fails_with("B_train too", checks.check_factor_shapes, {"A_aux": (32, 768), "A_train": (8, 32)}, 768, 768, 8, 32, 32)


def test_rank_bound_and_flops():
    passes(checks.check_rank_bound, 4, r=8, a=4, b=16)
    fails_with("only one of the bottlenecks", checks.check_rank_bound, 8, r=8, a=4, b=16)
    passes(checks.check_extra_flops, 768 * 32 + 32 * 8 + 8 * 32 + 32 * 768, 768, 768, 8, 32, 32)
    fails_with("LoRA's extra cost", checks.check_extra_flops, 8 * 1536, 768, 768, 8, 32, 32)
    fails_with("only the trained factors", checks.check_extra_flops, 8 * 64, 768, 768, 8, 32, 32)


def test_delta_weight():
    passes(checks.check_delta_weight, lambda l: l.scale * l.B_aux @ l.B_train @ l.A_train @ l.A_aux)
    fails_with("scale factor", checks.check_delta_weight, lambda l: l.B_aux @ l.B_train @ l.A_train @ l.A_aux)
    fails_with("transposed", checks.check_delta_weight, lambda l: (l.scale * l.B_aux @ l.B_train @ l.A_train @ l.A_aux).T)


def right_forward(layer, x):
    h = F.linear(F.linear(x, layer.A_aux), layer.A_train)
    return layer.base(x) + layer.scale * F.linear(F.linear(h, layer.B_train), layer.B_aux)


def test_forward():
    passes(checks.check_forward, right_forward)
    fails_with("only the adapter", checks.check_forward, lambda l, x: right_forward(l, x) - l.base(x))
    fails_with("not scaled", checks.check_forward,
               lambda l, x: l.base(x) + (right_forward(l, x) - l.base(x)) / l.scale)
    fails_with("order", checks.check_forward, lambda l, x: l.base(x) + x @ l.A_aux.T @ l.A_train.T @ l.B_aux[:, :3].T)


def test_grad_B_train():
    def right(layer, x, g):
        h = x @ layer.A_aux.T @ layer.A_train.T  # (n, r): B_train's input
        g_b = g @ layer.B_aux  # (n, b): the gradient at B_train's output
        return layer.scale * g_b.T @ h

    passes(checks.check_grad_B_train, right)
    fails_with("scale factor", checks.check_grad_B_train, lambda l, x, g: right(l, x, g) / l.scale)
    fails_with("B_train's shape", checks.check_grad_B_train, lambda l, x, g: right(l, x, g).T)


def test_learning_rates_and_ablation_table():
    passes(checks.check_learning_rates, 2e-3, 5e-4)
    fails_with("larger learning rate", checks.check_learning_rates, 5e-4, 5e-4)
    table = pd.DataFrame({"r": [1, 2, 4, 1, 2, 4], "accuracy": [0.6, 0.7, 0.8, 0.62, 0.71, 0.79]})
    passes(checks.check_ablation_table, table, "accuracy")
    fails_with("at least 3", checks.check_ablation_table, table[table.r < 4], "accuracy")
    fails_with("no column 'f1'", checks.check_ablation_table, table, "f1")
    fails_with("not finite", checks.check_ablation_table, table.assign(accuracy=float("nan")), "accuracy")


ATTENTION = {"query": (768, 768), "key": (768, 768), "value": (768, 768), "attention.output": (768, 768)}
ALL_LINEAR = dict(ATTENTION, intermediate=(768, 3072), output=(3072, 768))


def test_model_count_lora_and_loramini():
    lora = 12 * (4 * 8 * 1536 + 2 * 8 * 3840)
    passes(checks.check_model_count, lora, ALL_LINEAR, r=8, n_blocks=12)
    passes(checks.check_model_count, 72 * 8 * 64, ALL_LINEAR, r=8, a=32, b=32, n_blocks=12)
    fails_with("one block", checks.check_model_count, lora // 12, ALL_LINEAR, r=8, n_blocks=12)
    fails_with("intermediate, output", checks.check_model_count, 12 * 4 * 8 * 1536, ALL_LINEAR, r=8, n_blocks=12)
    fails_with("4 adapted layers per block", checks.check_model_count, 48 * 512, ALL_LINEAR, r=8, a=32, b=32, n_blocks=12)
    fails_with("LoRA's count", checks.check_model_count, lora, ALL_LINEAR, r=8, a=32, b=32, n_blocks=12)
    with_aux = 72 * 512 + 12 * sum(32 * d_in + d_out * 32 for d_in, d_out in ALL_LINEAR.values())
    fails_with("aux factors", checks.check_model_count, with_aux, ALL_LINEAR, r=8, a=32, b=32, n_blocks=12)
    fails_with("factor r", checks.check_model_count, lora // 8, ALL_LINEAR, r=8, n_blocks=12)


def test_head_count():
    passes(checks.check_head_count, 768 * 768 + 768 + 768 * 2 + 2, hidden=768, num_labels=2)
    passes(checks.check_head_count, 592_130, hidden=768, num_labels=2)
    fails_with("biases are missing", checks.check_head_count, 768 * 768 + 768 * 2, hidden=768, num_labels=2)
    fails_with("only out_proj", checks.check_head_count, 1024 * 3 + 3, hidden=1024, num_labels=3)
    fails_with("only the dense", checks.check_head_count, 1024 * 1024 + 1024, hidden=1024, num_labels=3)
    fails_with("3 labels, not 2", checks.check_head_count, 1024 * 1024 + 1024 + 2048 + 2, hidden=1024, num_labels=3)


def test_forward_lets_not_implemented_through():
    def unfinished(layer, x):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):  # not a CheckFailed about a "RuntimeError" (it subclasses it)
        checks.check_forward(unfinished)


def test_learning_rates_too_hot():
    fails_with("diverge", checks.check_learning_rates, 5e-2, 5e-4)


def test_lora_export():
    def right(layer):
        return layer.A_train @ layer.A_aux, layer.B_aux @ layer.B_train

    passes(checks.check_lora_export, right)
    fails_with("swapped", checks.check_lora_export, lambda l: right(l)[::-1])
    fails_with("counted twice", checks.check_lora_export, lambda l: (right(l)[0], l.scale * right(l)[1]))
    fails_with("A has shape", checks.check_lora_export, lambda l: (l.A_train, right(l)[1]))
    fails_with("mind the order", checks.check_lora_export, lambda l: (right(l)[0], l.B_aux @ l.B_train.flip(0)))


def test_rank_average():
    passes(checks.check_rank_average, lambda t, m: t.groupby("r")[m].mean())
    passes(checks.check_rank_average, lambda t, m: t.groupby("r")[m].agg(["mean", "std"]).reset_index())
    fails_with("sum", checks.check_rank_average, lambda t, m: t.groupby("r")[m].sum())
    fails_with("best run", checks.check_rank_average, lambda t, m: t.groupby("r")[m].max())
    fails_with("grouped by the widths", checks.check_rank_average, lambda t, m: t.groupby("ab")[m].mean())
    fails_with("Group the rows by r", checks.check_rank_average, lambda t, m: t[m].mean())


def test_adapter_bytes_names_a_left_out_part():
    parts = {"adapter": 512, "classifier head": 1000}
    passes(checks.check_adapter_bytes, 4 * 1512, 1512, parts=parts)
    fails_with("left out the classifier head", checks.check_adapter_bytes, 4 * 512, 1512, parts=parts)


# ---------------------------------------------------------------- hints that were wrong (#18)
TINY_QV = {"query": (64, 64), "value": (64, 64)}  # notebook 03's tiny model: 2 blocks, query and value adapted


def test_one_block_and_one_missing_layer_give_the_same_number():
    # 2 blocks × 2 layers: counting one block and leaving out value everywhere both give half the count; the hint
    # used to say "That is one block" whichever the student did.
    right = 2 * 2 * 8 * 64
    msg = fails_with("two mistakes", checks.check_model_count, right // 2, TINY_QV, r=8, a=32, b=32, n_blocks=2)
    assert "one block" in msg and "query, value" in msg
    fails_with("That is one block", checks.check_model_count, 2 * 8 * 64, TINY_QV, r=8, a=32, b=32, n_blocks=12)


def test_a_pandas_error_gets_pandas_advice():
    # the non-numeric column makes table.groupby("r").mean() raise a TypeError
    msg = fails_with("raised TypeError", checks.check_rank_average, lambda t, m: t.groupby("r").mean())
    assert "groupby('r')[metric]" in msg and "x @ M.T" not in msg


def test_grading_mode_keeps_hints_that_hold_no_value():
    checks.grading_mode(True)
    try:
        fails_with("ratio is above 1", checks.check_lr_ratio, 0.5, d_out=384, b=32)
        msg = fails_with("", checks.check_adapter_bytes, 12_288 * 16, 12_288, torch.bfloat16)
        assert "bits, not bytes" in msg and "16" not in msg.replace("bfloat16", "")
    finally:
        checks.grading_mode(False)


# ---------------------------------------------------------------- practice hints teach, they do not give it away
def test_shape_hints_do_not_state_the_right_shape():
    right = {"A_aux": (32, 768), "A_train": (8, 32), "B_train": (32, 8), "B_aux": (768, 32)}
    for name, wrong in [("A_train", (32, 8)), ("B_aux", (768, 16)), ("A_aux", (16, 768))]:
        msg = fails_with(name, checks.check_factor_shapes, dict(right, **{name: wrong}), 768, 768, 8, 32, 32)
        assert str(right[name]) not in msg and "(outputs, inputs)" in msg


def test_gradient_hint_does_not_write_the_formula():
    def wrong(layer, x, g):
        return layer.scale * (g @ layer.B_aux).T @ (x @ layer.A_aux.T)[:, : layer.r]

    msg = fails_with("Shape right, values wrong", checks.check_grad_B_train, wrong)
    assert "@" not in msg and "B_aux" not in msg and "A_train" not in msg


def test_head_and_bytes_and_ratio_hints_do_not_give_the_value():
    msg = fails_with("dense", checks.check_head_count, 5, hidden=1024, num_labels=3)
    assert not any(str(v) in msg for v in (1024, 3, 1024 * 1024, 3072))
    for answer in (7, 12_288 * 4):
        msg = fails_with("", checks.check_adapter_bytes, answer, 12_288, torch.bfloat16)
        assert "2 bytes" not in msg and "(2)" not in msg
    msg = fails_with("", checks.check_lr_ratio, 2.0, d_out=384, b=32)
    assert "sqrt" not in msg and "3.46" not in msg and "√(" not in msg


def test_equal_cost_comparison():
    def runs(method, params, seeds=(0, 1, 2), metric=0.7):
        return [{"method": method, "seed": s, "adapter_params": params, "metric": metric + s / 100} for s in seeds]

    right = pd.DataFrame(runs("lora", 512) + runs("loramini", 512))
    passes(checks.check_equal_cost_comparison, right)
    fails_with("Not the same cost: LoRA trains 512", checks.check_equal_cost_comparison,
               pd.DataFrame(runs("lora", 512) + runs("loramini", 1024)))
    fails_with("exactly two methods", checks.check_equal_cost_comparison, pd.DataFrame(runs("lora", 512)))
    fails_with("loramini has 2 seed", checks.check_equal_cost_comparison,
               pd.DataFrame(runs("lora", 512) + runs("loramini", 512, seeds=(0, 1))))
    fails_with("mixes shapes", checks.check_equal_cost_comparison,
               pd.DataFrame(runs("lora", 512) + runs("loramini", 512) + runs("loramini", 256, seeds=(3,))))
    fails_with("missing", checks.check_equal_cost_comparison, right.drop(columns="adapter_params"))
    fails_with("not finite", checks.check_equal_cost_comparison, right.assign(metric=float("nan")))


def test_lora_forward():
    passes(checks.check_lora_forward, lambda x, base, A, B, s: base(x) + s * (x @ A.T @ B.T))
    passes(checks.check_lora_forward, lambda x, base, A, B, s: base(x) + s * F.linear(x, B @ A))
    fails_with("only the update", checks.check_lora_forward, lambda x, base, A, B, s: s * (x @ A.T @ B.T))
    fails_with("not scaled", checks.check_lora_forward, lambda x, base, A, B, s: base(x) + x @ A.T @ B.T)
    fails_with("bias is missing", checks.check_lora_forward,
               lambda x, base, A, B, s: x @ base.weight.T + s * (x @ A.T @ B.T))
    fails_with("only the frozen", checks.check_lora_forward, lambda x, base, A, B, s: base(x))
    fails_with("raised RuntimeError", checks.check_lora_forward, lambda x, base, A, B, s: base(x) + s * (x @ A @ B))
