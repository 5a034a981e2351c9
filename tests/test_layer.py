"""LoRAMiniLinear: shapes, init, gradients, rank, merge, determinism, dtypes."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from loramini import LoRAMiniLinear
from loramini.layer import make_aux, stable_seed


def make_layer(d_in=24, d_out=20, r=4, a=8, b=6, **kw):
    torch.manual_seed(0)
    return LoRAMiniLinear(nn.Linear(d_in, d_out), r=r, a=a, b=b, name="layer", **kw)


def test_shapes_and_frozen_base_is_the_original_object():
    base = nn.Linear(24, 20)
    layer = LoRAMiniLinear(base, r=4, a=8, b=6)
    assert layer.A_aux.shape == (8, 24) and layer.A_train.shape == (4, 8)
    assert layer.B_train.shape == (6, 4) and layer.B_aux.shape == (20, 6)
    assert layer.weight is base.weight and layer.bias is base.bias
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert {n for n, p in layer.named_parameters() if p.requires_grad} == {"A_train", "B_train"}
    assert "A_aux" not in layer.state_dict()  # regenerated from the seed, not stored


@pytest.mark.parametrize("lead", [(5,), (2, 3), (2, 3, 4)])
def test_any_leading_shape(lead):
    layer = make_layer()
    x = torch.randn(*lead, 24)
    assert layer(x).shape == (*lead, 20)


def test_output_equals_base_at_init():
    layer = make_layer()
    x = torch.randn(7, 24)
    assert torch.equal(layer.delta_weight(), torch.zeros(20, 24))
    assert torch.allclose(layer(x), layer.base(x), atol=0)


def test_forward_matches_the_formula():
    layer = make_layer(alpha=3.0)
    nn.init.normal_(layer.B_train)
    x = torch.randn(5, 24)
    delta = (3.0 / 4) * layer.B_aux @ layer.B_train @ layer.A_train @ layer.A_aux
    assert torch.allclose(layer(x), layer.base(x) + x @ delta.T, atol=1e-5)
    assert torch.allclose(layer.delta_weight(), delta, atol=1e-6)


def test_rslora_scale():
    assert make_layer(alpha=8.0, use_rslora=True).scale == pytest.approx(8.0 / 2.0)
    assert make_layer(alpha=8.0).scale == pytest.approx(2.0)


def test_only_inner_factors_get_gradients_and_loss_goes_down():
    layer = make_layer(r=4, a=8, b=6)
    torch.manual_seed(1)
    x = torch.randn(64, 24)
    with torch.no_grad():  # a target the adapter can reach: a rank-2 update inside the aux spans
        planted = layer.B_aux @ torch.randn(6, 2) @ torch.randn(2, 8) @ layer.A_aux
        target = layer.base(x) + x @ planted.T
    opt = torch.optim.Adam([p for p in layer.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.mse_loss(layer(x), target)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert layer.A_train.grad is not None and layer.B_train.grad is not None
    assert layer.base.weight.grad is None and layer.base.bias.grad is None
    assert not layer.A_aux.requires_grad and not layer.B_aux.requires_grad
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("r,a,b", [(2, 8, 6), (4, 4, 6), (5, 8, 5)])
def test_rank_of_delta_is_bounded_by_min_r_a_b(r, a, b):
    layer = make_layer(r=r, a=a, b=b)
    with torch.no_grad():  # what a few training steps do: B_train leaves zero
        layer.B_train.normal_()
    assert torch.linalg.matrix_rank(layer.delta_weight()).item() == min(r, a, b)


def test_merge_unmerge_equivalence_and_merged_forward_skips_adapter():
    layer = make_layer()
    with torch.no_grad():
        layer.B_train.normal_()
    x = torch.randn(9, 24)
    before, w0 = layer(x), layer.weight.clone()
    layer.merge()
    assert layer.merged
    assert torch.allclose(layer(x), before, atol=1e-5)
    assert torch.allclose(layer(x), layer.base(x))  # the adapter path is skipped
    layer.unmerge()
    assert torch.allclose(layer.weight, w0, atol=1e-6)
    assert torch.allclose(layer(x), before, atol=1e-5)


def test_merge_refuses_non_finite():
    layer = make_layer()
    with torch.no_grad():
        layer.B_train.fill_(float("inf"))
    w0 = layer.weight.clone()
    with pytest.raises(ValueError, match="non-finite"):
        layer.merge()
    assert torch.equal(layer.weight, w0) and not layer.merged


def test_merge_refuses_overflow_in_fp16():
    layer = LoRAMiniLinear(nn.Linear(24, 20).half(), r=4, a=8, b=6)
    with torch.no_grad():
        layer.B_train.fill_(1e4)
        layer.A_train.fill_(1e4)
    with pytest.raises(ValueError, match="float16"):
        layer.merge()


def test_aux_same_seed_equal_other_seed_different():
    one, two = make_layer(projection_seed=3), make_layer(projection_seed=3)
    other = make_layer(projection_seed=4)
    assert torch.equal(one.A_aux, two.A_aux) and torch.equal(one.B_aux, two.B_aux)
    assert not torch.allclose(one.A_aux, other.A_aux)
    renamed = LoRAMiniLinear(nn.Linear(24, 20), r=4, a=8, b=6, name="another.layer", projection_seed=3)
    assert not torch.allclose(one.A_aux, renamed.A_aux)


def test_aux_identical_across_fresh_processes():
    """Two fresh interpreters with different hash salts draw the same seed and the same aux factor as this one
    (Python's `hash()` would give each process its own seed)."""
    code = ("import torch; from loramini.layer import make_aux, stable_seed; "
            "s = stable_seed(7, 'enc.query', 'A'); t = make_aux(8, 24, 24, 'gaussian', s); "
            "print(s, repr(t.sum().item()), repr(t[3, 5].item()))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": salt}).stdout for salt in ("1", "2")]
    seed = stable_seed(7, "enc.query", "A")
    here = make_aux(8, 24, 24, "gaussian", seed)
    assert runs[0] == runs[1] == f"{seed} {here.sum().item()!r} {here[3, 5].item()!r}\n"


def test_gaussian_aux_is_a_fresh_generators_draw():
    """The aux factor is exactly N(0, 1)/sqrt(fan_in) from a fresh CPU generator seeded with stable_seed: nothing
    else (global RNG state, earlier draws) leaks in."""
    seed = stable_seed(3, "enc.value", "B")
    torch.manual_seed(123)
    torch.randn(5)  # disturb the global RNG: must not matter
    expected = torch.randn(20, 6, generator=torch.Generator().manual_seed(seed)) / 6 ** 0.5
    assert torch.equal(make_aux(20, 6, 6, "gaussian", seed), expected)
    assert seed != stable_seed(3, "enc.value", "A") and seed != stable_seed(4, "enc.value", "B")


def test_aux_scaling_and_orthogonal_init():
    gauss = make_aux(64, 256, 256, "gaussian", 0)
    assert gauss.std().item() == pytest.approx(1 / 16, rel=0.05)
    a_orth = make_aux(16, 64, 64, "orthogonal", 0)  # wide: orthonormal rows
    assert torch.allclose(a_orth @ a_orth.T, torch.eye(16), atol=1e-5)
    b_orth = make_aux(64, 16, 16, "orthogonal", 0)  # tall: orthogonal columns, gaussian-sized norm
    gram = b_orth.T @ b_orth
    assert torch.allclose(gram, gram[0, 0] * torch.eye(16), atol=1e-4)
    assert b_orth.norm().item() == pytest.approx((64 * 16 / 16) ** 0.5, rel=1e-5)


def test_identity_aux_is_lora():
    layer = make_layer(d_in=12, d_out=10, r=3, a=12, b=10, aux_init="identity")
    assert torch.equal(layer.A_aux, torch.eye(12)) and torch.equal(layer.B_aux, torch.eye(10))
    with torch.no_grad():
        layer.B_train.normal_()
    lora_delta = layer.scale * layer.B_train @ layer.A_train  # LoRA's B A
    assert torch.allclose(layer.delta_weight(), lora_delta, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_base_on_cpu(dtype):
    base = nn.Linear(24, 20).to(dtype)
    layer = LoRAMiniLinear(base, r=4, a=8, b=6, name="layer")
    assert layer.A_aux.dtype == dtype and layer.B_aux.dtype == dtype
    assert layer.A_train.dtype == torch.float32  # fp32 masters, documented in layer.py
    fp32 = LoRAMiniLinear(nn.Linear(24, 20), r=4, a=8, b=6, name="layer")
    assert torch.allclose(layer.A_aux.float(), fp32.A_aux, rtol=1e-2, atol=1e-2)  # same draw, rounded
    with torch.no_grad():
        layer.B_train.normal_()
    x = torch.randn(3, 5, 24, dtype=dtype)
    out = layer(x)
    assert out.dtype == dtype and torch.isfinite(out).all()
    out.float().sum().backward()
    assert layer.B_train.grad.dtype == torch.float32 and layer.B_train.grad.abs().sum() > 0
    # Reference: fp32 math on the same (rounded) inputs. The output is rounded to `dtype` after a sum of terms up
    # to max|expected| in size, so allow two units of rounding at that size: 2·eps·max|expected|.
    adapter = x.float() @ layer.delta_weight().T
    expected = x.float() @ base.weight.float().T + base.bias.float() + adapter
    tol = 2 * torch.finfo(dtype).eps * expected.abs().max().item()
    assert adapter.abs().max().item() > 20 * tol  # the adapter's share is far above the tolerance
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=tol)


def test_wrapping_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRAMiniLinear(nn.Conv1d(3, 3, 1))


def test_too_wide_projection_names_the_layer():
    with pytest.raises(ValueError, match="'small'.*a <= d_in"):
        LoRAMiniLinear(nn.Linear(4, 20), r=2, a=8, b=6, name="small")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    cpu = make_layer()
    with torch.no_grad():
        cpu.B_train.normal_()
    gpu = make_layer().cuda()
    gpu.load_state_dict(cpu.state_dict())
    assert torch.equal(gpu.A_aux.cpu(), cpu.A_aux)  # drawn on the CPU, then moved
    x = torch.randn(4, 24)
    assert torch.allclose(gpu(x.cuda()).cpu(), cpu(x), atol=1e-4)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_chain_and_lean_function_agree_in_values_and_gradients(dtype, tol):
    """`chain` (four plain matmuls, autograd) is the reference; the default path (LoRAMiniFunction) must give
    the same output and the same gradients for x, A_train and B_train."""
    layer = make_layer().to(dtype)
    with torch.no_grad():
        layer.B_train.normal_()
    x = torch.randn(2, 7, 24, dtype=dtype)
    grad_out = torch.randn(2, 7, 20, dtype=dtype)
    results = []
    for lean in (False, True):
        layer.lean_backward = lean
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        out = layer.adapter_forward(xi)
        out.backward(grad_out)
        results.append((out.detach(), xi.grad, layer.A_train.grad.clone(), layer.B_train.grad.clone()))
    (ref, *ref_grads), (got, *got_grads) = results
    assert ref.abs().max() > 0.1 and all(g.abs().max() > 0.1 for g in ref_grads)  # nothing trivially zero
    torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
    for g_got, g_ref in zip(got_grads, ref_grads):
        torch.testing.assert_close(g_got, g_ref, rtol=tol, atol=tol)


def test_chain_is_the_formula():
    layer = make_layer(alpha=3.0)
    with torch.no_grad():
        layer.B_train.normal_()
    x = torch.randn(5, 24)
    four = x @ layer.A_aux.T @ layer.A_train.T @ layer.B_train.T @ layer.B_aux.T * (3.0 / 4)
    torch.testing.assert_close(layer.chain(x), four, rtol=1e-6, atol=1e-6)
