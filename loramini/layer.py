"""`LoRAMiniLinear`: a frozen linear layer (`nn.Linear`, or transformers' `Conv1D`) plus the LoRA-Mini update.

    y = base(x) + scale · B_aux · B_train · A_train · A_aux · dropout(x)

    A_aux   (a × d_in)   frozen buffer, random from (projection_seed, module name)
    A_train (r × a)      trainable, Kaiming-uniform like LoRA's A
    B_train (b × r)      trainable, zeros, so ΔW = 0 at step 0
    B_aux   (d_out × b)  frozen buffer, random from (projection_seed, module name)

Dtypes: the aux buffers follow the base layer (device and dtype). The trainable factors are created in
float32 on a bf16/fp16/fp32 base (float64 on a float64 base), because with only r·(a+b) numbers per
layer the optimizer's small updates would round away in bf16/fp16; in the forward pass they are cast to
the activation dtype, which costs nothing (they are tiny) and lets autograd accumulate fp32 gradients.
Products that need precision run in `promote_types(activation dtype, float32)`: fp32, or fp64 for a
float64 model (so `torch.autograd.gradcheck` works on the layer).

Base layers: `nn.Linear` stores its weight d_out × d_in; transformers' `Conv1D` (GPT-2) stores it d_in × d_out
(PEFT's `fan_in_fan_out`). `fan_in_fan_out(base)` is the one transpose rule: `dense_weight(base)` is the weight as
a (d_out × d_in) view for merge and unmerge, `layer_shape(base)` reads (d_in, d_out) for every caller, and
`export_peft` sets PEFT's `fan_in_fan_out` from it. The forward calls the base layer itself.

Forward: `LoRAMiniLinear.chain` is the plain four-matmul chain above, the reference. By default the adapter
path runs through `LoRAMiniFunction`, a custom autograd function that computes the same numbers (tested equal,
values and gradients), but whose backward keeps only two thin activations per token (a + r numbers; PEFT LoRA
keeps the d_in-wide input) and does every product with the wide gradient only r wide, by folding the frozen
output projection into `scale · B_aux B_train` (d_out × r) once per call (see `benchmarks/`). Set
`layer.lean_backward = False` (or on the class) to run the plain chain instead.

Shared aux (`share_aux=True`): every layer of the same shape (d_in, d_out) uses one `AuxFactors` pair, drawn
from the seed and the shape instead of the module name, as VeRA shares its projections. The pair is a shared
submodule, so `.to()` moves it once and the sharing survives device and dtype moves.
"""

from __future__ import annotations

import hashlib
import math
import sys
from typing import Optional

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .config import adapter_scale, check_rank, resolve_alpha


def stable_seed(projection_seed: int, module_name: str, factor: str) -> int:
    """A 63-bit seed from (projection_seed, module name, factor), equal in every process and run.

    Python's `hash()` is salted per process, so we hash with SHA-256 instead.
    """
    digest = hashlib.sha256(f"{projection_seed}|{module_name}|{factor}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def aux_shape(factor: str, d_in: int, d_out: int, a: int, b: int) -> tuple[int, int, int]:
    """(rows, cols, fan_in) of an aux factor: A_aux is a × d_in (fan-in d_in), B_aux is d_out × b (fan-in b)."""
    if factor == "A":
        return a, d_in, d_in
    if factor == "B":
        return d_out, b, b
    raise ValueError(f"factor={factor!r}: 'A' or 'B'.")


def layer_aux(factor: str, d_in: int, d_out: int, a: int, b: int, init: str, projection_seed: int,
              name: str) -> torch.Tensor:
    """The aux factor ('A' or 'B') of the layer `name` (d_in -> d_out), float32 on the CPU: what every
    `LoRAMiniLinear` with these settings draws, and what `load_adapter` regenerates."""
    rows, cols, fan_in = aux_shape(factor, d_in, d_out, a, b)
    return make_aux(rows, cols, fan_in, init, stable_seed(projection_seed, name, factor))


def master_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the trainable factors and of precise products: float32, or float64 on a float64 base."""
    return torch.promote_types(dtype, torch.float32) if dtype.is_floating_point else torch.float32


def make_aux(rows: int, cols: int, fan_in: int, init: str, seed: int) -> torch.Tensor:
    """A frozen projection (rows × cols) in float32 on the CPU, reproducible from `seed`.

    "gaussian": N(0, 1/fan_in), so a projection keeps the per-entry variance of its input.
    "orthogonal": orthonormal rows (or columns), rescaled to the gaussian's expected Frobenius norm.
    "identity": the identity (rows == cols), which turns LoRA-Mini back into LoRA.
    """
    if init == "identity":
        if rows != cols:
            raise ValueError(f"aux_init='identity' needs a square projection, got {rows} × {cols}.")
        return torch.eye(rows)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    gaussian = torch.randn(rows, cols, generator=generator, dtype=torch.float32)
    if init == "gaussian":
        return gaussian / math.sqrt(fan_in)
    # QR of the tall orientation gives orthonormal columns; transpose back for wide matrices.
    tall = gaussian if rows >= cols else gaussian.T
    q, r = torch.linalg.qr(tall.double())
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # fix QR's sign ambiguity: a unique answer
    q = (q if rows >= cols else q.T).float()
    expected_norm = math.sqrt(rows * cols / fan_in)
    return q * (expected_norm / q.norm())


class LoRAMiniFunction(torch.autograd.Function):
    """y = scale · B_aux B_train A_train A_aux x, for x (N, d_in), with a lean backward.

    Forward, left to right:  u = x A_auxᵀ (N × a),  h = u A_trainᵀ (N × r),  y = h B_effᵀ (N × d_out),
    with B_eff = scale · B_aux B_train (d_out × r) formed once per call (d_out·b·r multiply-adds).
    Saved for backward: u and h, i.e. (a + r) numbers per token (B_eff is recomputed); plain autograd on the
    chain saves the same, PEFT LoRA saves the input x (d_in numbers per token) instead. With G = ∂L/∂y:

        ∂L/∂h       = G B_eff                       (N × r)
        ∂L/∂B_train = scale · B_auxᵀ (Gᵀ h)         (b × r)
        ∂L/∂A_train = (∂L/∂h)ᵀ u                    (r × a)
        ∂L/∂x       = (∂L/∂h) (A_train A_aux)       (N × d_in)

    so the backward touches the wide tensors G and ∂L/∂x only through r-wide products, as LoRA does,
    where plain autograd on the chain would go back through the a- and b-wide aux factors. The products
    are written transposed where that gives the matmul a wide output (r × d rather than d × r): on a CPU
    a product with an r-wide output is several times slower. Parameter gradients come back in float32
    (the trainable factors' dtype: fp32 masters, or fp64 on a float64 model).
    """

    @staticmethod
    def forward(ctx, x, A_train, B_train, A_aux, B_aux, scale):
        dtype = x.dtype
        u = x @ A_aux.to(dtype).t()  # (N, a)
        h = u @ A_train.to(dtype).t()  # (N, r)
        ctx.save_for_backward(u, h, A_train, B_train, A_aux, B_aux)  # only u and h are new memory
        ctx.scale = scale
        return h @ _b_eff_t(B_train, B_aux, scale, dtype)  # (N, d_out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        u, h, A_train, B_train, A_aux, B_aux = ctx.saved_tensors
        dtype = h.dtype  # the compute dtype of the forward (also under autocast)
        grad_y = grad_y.to(dtype)
        grad_h_t = _b_eff_t(B_train, B_aux, ctx.scale, dtype) @ grad_y.t()  # (r, N) = (∂L/∂h)ᵀ
        acc = torch.promote_types(master_dtype(dtype), A_train.dtype)  # fp32 (fp64 on a float64 model)
        grad_x = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            a_eff = (A_train.to(acc) @ A_aux.to(acc)).to(dtype)  # (r, d_in), formed once
            grad_x = grad_h_t.t() @ a_eff
        if ctx.needs_input_grad[1]:
            grad_a = (grad_h_t.to(acc) @ u.to(acc)).to(A_train.dtype)  # (r, a); thin operands, so fp32 is cheap
        if ctx.needs_input_grad[2]:
            h_t_grad = (h.t() @ grad_y).to(acc)  # (r, d_out) = (Gᵀ h)ᵀ
            grad_b = ((h_t_grad @ B_aux.to(acc)) * ctx.scale).t().contiguous().to(B_train.dtype)  # (b, r)
        return grad_x, grad_a, grad_b, None, None, None


def _b_eff_t(B_train: torch.Tensor, B_aux: torch.Tensor, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """(scale · B_aux B_train)ᵀ = scale · B_trainᵀ B_auxᵀ, shape (r, d_out), formed in fp32 (fp64 for fp64)."""
    acc = torch.promote_types(master_dtype(dtype), B_train.dtype)
    return ((B_train.to(acc).t() @ B_aux.to(acc).t()) * scale).to(dtype)


# ---------------------------------------------------------------------------------------------------
# Base layers: which ones can be adapted, their sizes, and the one transpose rule.


def _conv1d_class():
    """transformers' `Conv1D`, if transformers is loaded (a model that holds one has loaded it), else None.
    Looked up, never imported: the layer needs torch only."""
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)


def is_adaptable(module: nn.Module) -> bool:
    """True for the layers LoRA-Mini can wrap: `nn.Linear` and transformers' `Conv1D`."""
    conv1d = _conv1d_class()
    return isinstance(module, nn.Linear) or (conv1d is not None and isinstance(module, conv1d))


def fan_in_fan_out(base: nn.Module) -> bool:
    """The one transpose rule. False for `nn.Linear` (weight d_out × d_in); True for transformers' `Conv1D`
    (GPT-2's layers: weight d_in × d_out, what PEFT calls `fan_in_fan_out`). TypeError for anything else."""
    if isinstance(base, nn.Linear):
        return False
    if is_adaptable(base):
        return True
    raise TypeError(f"LoRA-Mini wraps nn.Linear or transformers' Conv1D layers, got {type(base).__name__}.")


def dense_weight(base: nn.Module) -> torch.Tensor:
    """`base`'s weight as `nn.Linear` lays it out, (d_out, d_in): a view (transposed for Conv1D), so an in-place
    write (merge, unmerge) goes through to the base layer."""
    return base.weight.t() if fan_in_fan_out(base) else base.weight


def layer_shape(base: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of a linear base layer, read by its type."""
    d_out, d_in = dense_weight(base).shape
    return d_in, d_out


def check_fits(name: str, d_in: int, d_out: int, a: int, b: int, aux_init: str = "gaussian") -> None:
    """The one rule on a layer's size: a <= d_in and b <= d_out (a wider projection adds numbers, not rank),
    and aux_init='identity' needs a = d_in and b = d_out. ValueError naming the layer otherwise."""
    if a > d_in or b > d_out:
        raise ValueError(
            f"Layer {name!r} ({d_in} -> {d_out}) is too small for a={a}, b={b}: LoRA-Mini needs a <= d_in and "
            f"b <= d_out. Lower a/b or leave this layer out of target_modules."
        )
    if aux_init == "identity" and (a != d_in or b != d_out):
        raise ValueError(f"aux_init='identity' needs a = d_in and b = d_out; layer {name!r} has d_in={d_in}, "
                         f"d_out={d_out} but a={a}, b={b}.")


def aux_name(name: str, d_in: int, d_out: int, share_aux: bool = False) -> str:
    """The name the aux factors are seeded (and, with save_projection, saved) under: the layer's own name, or
    with `share_aux` one name per layer shape, e.g. "shared_aux.576x192"."""
    return f"shared_aux.{d_in}x{d_out}" if share_aux else name


class AuxFactors(nn.Module):
    """The frozen pair A_aux (a × d_in) and B_aux (d_out × b), as non-persistent buffers: they follow `.to()`
    but stay out of `state_dict` (regenerated from the seed). A module of its own so that layers can share one."""

    def __init__(self, A_aux: torch.Tensor, B_aux: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("A_aux", A_aux, persistent=False)
        self.register_buffer("B_aux", B_aux, persistent=False)

    def extra_repr(self) -> str:
        return f"A_aux={tuple(self.A_aux.shape)}, B_aux={tuple(self.B_aux.shape)}"


class LoRAMiniLinear(nn.Module):
    """A frozen linear layer with a LoRA-Mini adapter.

    Args:
        base: the `nn.Linear` (or transformers' `Conv1D`) to adapt. Its weight and bias are used as they are
            (not copied) and frozen.
        r, a, b, alpha, dropout, aux_init, use_rslora: see `LoRAMiniConfig` (alpha=None means 2·r).
        name: the module's full name in the model; with `projection_seed` it fixes the aux factors.
        share_aux: seed the aux factors from the layer shape instead of `name` (see `aux_name`).
        aux: an existing `AuxFactors` of the right shapes to share (what `inject` passes with share_aux).

    Shapes: input (..., d_in) → output (..., d_out), any number of leading dimensions.
    """

    lean_backward = True  # False: the adapter path runs `chain` (plain autograd) instead of LoRAMiniFunction

    def __init__(
        self,
        base: nn.Module,
        r: int = 8,
        a: int = 32,
        b: int = 32,
        alpha: float | None = None,
        dropout: float = 0.0,
        name: str = "",
        projection_seed: int = 0,
        aux_init: str = "gaussian",
        use_rslora: bool = False,
        share_aux: bool = False,
        aux: Optional[AuxFactors] = None,
    ) -> None:
        super().__init__()
        if not is_adaptable(base):
            raise TypeError(f"LoRAMiniLinear wraps nn.Linear (or transformers' Conv1D), got {type(base).__name__} "
                            f"for {name!r}.")
        d_in, d_out = layer_shape(base)
        check_rank(r, a, b, where=f"LoRAMiniLinear({name!r})")
        check_fits(name, d_in, d_out, a, b, aux_init)
        self.base = base
        for param in base.parameters(recurse=False):
            param.requires_grad_(False)
        self.in_features, self.out_features = d_in, d_out
        self.r, self.a, self.b = r, a, b
        self.alpha, self.use_rslora = resolve_alpha(alpha, r), use_rslora
        self.scale = adapter_scale(alpha, r, use_rslora)
        self.name, self.projection_seed, self.aux_init = name, projection_seed, aux_init
        self.aux_name = aux_name(name, d_in, d_out, share_aux)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

        device, dtype = base.weight.device, base.weight.dtype
        # Trainable factors: fp32 masters (see module docstring), on the base's device.
        self.A_train = nn.Parameter(torch.empty(r, a, device=device, dtype=master_dtype(dtype)))
        self.B_train = nn.Parameter(torch.empty(b, r, device=device, dtype=master_dtype(dtype)))
        if aux is None:
            aux = AuxFactors(self._aux("A", device, dtype), self._aux("B", device, dtype))
        elif (aux.A_aux.shape, aux.B_aux.shape) != ((a, d_in), (d_out, b)):
            raise ValueError(f"Layer {name!r}: the shared aux factors are {tuple(aux.A_aux.shape)} and "
                             f"{tuple(aux.B_aux.shape)}, this layer needs {(a, d_in)} and {(d_out, b)}.")
        self.aux = aux
        self._init_trainable()

    @property
    def A_aux(self) -> torch.Tensor:
        return self.aux.A_aux

    @property
    def B_aux(self) -> torch.Tensor:
        return self.aux.B_aux

    def _aux(self, factor: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if device.type == "meta":  # counting / shape checks without allocating memory
            rows, cols, _ = aux_shape(factor, self.in_features, self.out_features, self.a, self.b)
            return torch.empty(rows, cols, device="meta", dtype=dtype)
        # Always drawn on the CPU in fp32, then moved: identical on every device and dtype.
        aux = layer_aux(factor, self.in_features, self.out_features, self.a, self.b, self.aux_init,
                        self.projection_seed, self.aux_name)
        return aux.to(device=device, dtype=dtype)

    @torch.no_grad()
    def _init_trainable(self) -> None:
        if self.A_train.device.type == "meta":
            return
        nn.init.kaiming_uniform_(self.A_train, a=math.sqrt(5))  # LoRA's init for A
        self.B_train.zero_()  # ΔW = 0: the model starts exactly at the pretrained one

    def regenerate_aux(self) -> None:
        """Redraw the aux buffers from the seed (after `to_empty()` on a meta model, before loading trained
        A_train/B_train into the layer; for a fresh adapter call `reset_parameters()` instead)."""
        device, dtype = self.base.weight.device, self.base.weight.dtype
        self.aux.A_aux = self._aux("A", device, dtype)
        self.aux.B_aux = self._aux("B", device, dtype)

    def reset_parameters(self) -> None:
        """Start the adapter over: A_train Kaiming-uniform, B_train = 0 (ΔW = 0), aux redrawn from the seed.

        After `model.to_empty(device=...)` on a model built on the meta device, the adapter's memory is
        uninitialised: call this (it does not touch the base weights, which the base model's own init
        or checkpoint loading fills). Leaves the layer unmerged.
        """
        self.regenerate_aux()
        self._init_trainable()
        self.merged = False

    @property
    def weight(self) -> torch.Tensor:
        """The base layer's weight, as the base stores it (d_in × d_out for Conv1D); see `dense_weight`."""
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def chain(self, x: torch.Tensor) -> torch.Tensor:
        """The reference: scale · B_aux B_train A_train A_aux x as four plain matmuls, (..., d_in) → (..., d_out).

        Autograd saves each matmul's input for backward: x (d_in), u (a), h (r) and v (b) numbers per token.
        """
        dtype = x.dtype
        u = x @ self.A_aux.to(dtype).t()  # (..., a)    frozen
        h = u @ self.A_train.to(dtype).t()  # (..., r)  trained
        v = h @ self.B_train.to(dtype).t()  # (..., b)  trained
        return (v @ self.B_aux.to(dtype).t()) * self.scale  # (..., d_out) frozen

    def adapter_forward(self, x: torch.Tensor) -> torch.Tensor:
        """scale · B_aux B_train A_train A_aux dropout(x) for x (..., d_in) → (..., d_out).

        The same numbers as `chain`; computed by `LoRAMiniFunction` (faster, and it keeps less for backward)
        unless `lean_backward` is False.
        """
        x = self.dropout(x)
        if not self.lean_backward:
            return self.chain(x)
        flat = x.reshape(-1, self.in_features)
        y = LoRAMiniFunction.apply(flat, self.A_train, self.B_train, self.A_aux, self.B_aux, self.scale)
        return y.reshape(*x.shape[:-1], self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:  # ΔW already lives in base.weight: no extra cost
            return out
        return out + self.adapter_forward(x).to(out.dtype)

    def delta_weight(self) -> torch.Tensor:
        """ΔW = scale · B_aux B_train A_train A_aux, shape (d_out, d_in), computed in fp32 (fp64 for fp64)."""
        acc = torch.promote_types(master_dtype(self.base.weight.dtype), self.A_train.dtype)
        b_full = self.B_aux.to(acc) @ self.B_train.to(acc)  # (d_out, r)
        a_full = self.A_train.to(acc) @ self.A_aux.to(acc)  # (r, d_in)
        return (b_full @ a_full) * self.scale

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """W + ΔW, (d_out, d_in) in the base dtype, without changing anything; ValueError if it holds inf/NaN.

        `loramini.merge` computes this for every layer first, so that one bad layer leaves the whole
        model unmerged (all-or-nothing)."""
        weight, delta = dense_weight(self.base), self.delta_weight()
        merged = (weight.to(delta.dtype) + delta).to(weight.dtype)
        if not torch.isfinite(merged).all():
            raise ValueError(
                f"Merging layer {self.name!r} would give non-finite weights in {weight.dtype}: the adapter "
                f"is too large for this dtype. Check training for divergence, or merge in float32."
            )
        return merged

    @torch.no_grad()
    def merge(self) -> None:
        """W ← W + ΔW. Refuses (ValueError) if the result would hold inf/NaN in the base dtype."""
        if self.merged:
            return
        dense_weight(self.base).copy_(self.merged_weight())
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W ← W − ΔW: the original weight again, up to float rounding."""
        if not self.merged:
            return
        weight = dense_weight(self.base)
        delta = self.delta_weight()
        weight.copy_((weight.to(delta.dtype) - delta).to(weight.dtype))
        self.merged = False

    def extra_repr(self) -> str:
        shared = f", aux_name={self.aux_name!r}" if self.aux_name != self.name else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"a={self.a}, b={self.b}, scale={self.scale:g}, aux_init={self.aux_init!r}{shared}, "
                f"merged={self.merged}")
