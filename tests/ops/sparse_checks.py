"""Shared pieces of the sparse families' CPU-kernel tests (bitmap_linear, nm_linear, block_linear): the layer computed
exactly (fp64) and by torch in fp32 on any SparseWeight's dense masked weight, the float tolerance rule, autograd
and training through a family's functional entry point against torch on the dense weight, and fixtures that run
the native kernels at each tier or thread count.

A float kernel sums in another order than torch, so it is held to the error of torch's own fp32 computation of the
same layer (same operands) against the exact fp64 result: within 2x that error (measured on the running machine),
plus, when the kernel writes bf16, the output's rounding to bf16 (2^-8 relative).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from native_kernels import require_native
from simd_tiers import at_kernel_tier

from apt_fast.sparsity.formats import SparseWeight


def multiplied(x: torch.Tensor, values_dtype: torch.dtype) -> torch.Tensor:
    """x as the layer multiplies it, in fp32: rounded to bf16 against bf16 values."""
    return x.bfloat16().float() if values_dtype == torch.bfloat16 else x.float()


def exact_forward(x, w: SparseWeight, bias):
    """fp64 y [..., N] of the layer as specified (x rounded to bf16 against bf16 values)."""
    y = multiplied(x, w.values.dtype).double() @ w.to_dense().double().T
    return y + bias.double() if bias is not None else y


def torch_fp32_forward(x, w: SparseWeight, bias):
    return torch.nn.functional.linear(multiplied(x, w.values.dtype), w.to_dense(),
                                      bias.float() if bias is not None else None)


def value_positions(w: SparseWeight) -> torch.Tensor:
    """[values.numel()] int64: where each stored value sits in the flattened dense weight [N * K] (found by
    unpacking the numbers 1, 2, ... as values)."""
    count = w.values.numel()
    assert count < 2 ** 24, "the positions are unpacked as fp32 numbers"
    numbered = w.to_dense(torch.arange(1, count + 1, dtype=torch.float32).reshape(w.values.shape)).flatten()
    kept = numbered.nonzero().squeeze(1)  # [count] dense positions
    positions = torch.empty(count, dtype=torch.int64)
    positions[numbered[kept].long() - 1] = kept
    return positions


def at_values(dense: torch.Tensor, w: SparseWeight) -> torch.Tensor:
    """The entries of a dense [N, K] gradient at the stored values, in values' shape."""
    return dense.flatten()[value_positions(w)].reshape(w.values.shape)


def exact_backward(grad_y, x, w: SparseWeight):
    """fp64 (grad_x, grad_values): grad_y . W, and grad_y^T . x at the stored values (x as the forward
    multiplies it)."""
    g = grad_y.reshape(-1, w.out_features).double()  # [M, N]
    xm = multiplied(x, w.values.dtype).reshape(-1, w.in_features).double()  # [M, K]
    return (g @ w.to_dense().double()).reshape(x.shape), at_values(g.T @ xm, w)


def torch_fp32_backward(grad_y, x, w: SparseWeight):
    g = grad_y.reshape(-1, w.out_features).float()
    xm = multiplied(x, w.values.dtype).reshape(-1, w.in_features)
    return (g @ w.to_dense()).reshape(x.shape), at_values(g.T @ xm, w)


def dense_layer(x, w: SparseWeight, values, bias, dtype: torch.dtype):
    """y [..., N] of the layer as torch computes it in `dtype` (float64: exact; float32: torch's own rounding) on
    the dense weight built from `values`, for torch autograd to differentiate: pass x, values and bias in `dtype`
    (leaves, so that their gradients are not rounded to another dtype). x is rounded as the layer multiplies it,
    its gradient passing unrounded."""
    xm = x + (multiplied(x, w.values.dtype).to(dtype) - x).detach()
    dense = torch.zeros(w.out_features * w.in_features, dtype=dtype).index_add(
        0, value_positions(w), values.flatten()).reshape(w.out_features, w.in_features)  # [N, K]
    return torch.nn.functional.linear(xm, dense, bias)


def assert_float_close(name, got, exact, same_precision):
    """|got - exact| <= 2 |fp32 torch - exact| (max over the tensor) + the rounding of got's dtype."""
    assert got.shape == exact.shape, f"{name}: shape {tuple(got.shape)}, expected {tuple(exact.shape)}"
    err_ref = (same_precision.double() - exact).abs().max().item() if exact.numel() else 0.0
    rounding = exact.abs() * (2.0 ** -8 if got.dtype == torch.bfloat16 else 0.0)
    excess = (got.double() - exact).abs() - rounding
    err = excess.max().item() if excess.numel() else 0.0
    assert err <= 2 * err_ref + 1e-7 * (exact.abs().max().item() if exact.numel() else 0), \
        f"{name}: error {err:.3e} past the output's rounding, fp32 torch's {err_ref:.3e}"


def check_autograd_against_dense(w: SparseWeight, apply, lead=(2, 5), seed: int = 0) -> None:
    """Gradients of x, the values (only the stored entries) and bias through apply(x, values, bias) (the family's
    apt_fast.functional entry point), x of shape [*lead, K], against torch autograd of the dense layer in fp64,
    within 2x the error of torch's fp32 autograd."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, w.in_features, generator=generator).requires_grad_()
    values = w.values.clone().requires_grad_()
    bias = torch.randn(w.out_features, generator=generator).requires_grad_()
    y = apply(x, values, bias)
    upstream = torch.randn(y.shape, generator=generator)
    y.backward(upstream)
    assert values.grad.dtype == w.values.dtype and x.grad.dtype == bias.grad.dtype == torch.float32
    dense = {}
    for dtype in (torch.float64, torch.float32):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (x, w.values, bias)]
        out = dense_layer(leaves[0], w, leaves[1], leaves[2], dtype)
        out.backward(upstream.to(dtype))
        dense[dtype] = (out.detach(), *(t.grad for t in leaves))
    for name, got, exact, fp32 in zip(("y", "grad x", "grad values", "grad bias"),
                                      (y.detach(), x.grad, values.grad, bias.grad), dense[torch.float64],
                                      dense[torch.float32]):
        assert_float_close(f"{name}, {w.values.dtype} values", got, exact, fp32)


def check_training_against_dense(w: SparseWeight, apply, steps: int = 3, seed: int = 0) -> None:
    """SGD steps through apply(x, values, bias) end where the same steps on the dense weight with a masked dW end
    in fp64, within twice where they end in fp32; entries outside the format's mask stay zero."""
    generator = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(6, w.in_features, generator=generator), torch.randn(6, w.out_features,
                                                                                 generator=generator))
               for _ in range(steps)]
    values, bias = w.values.clone().requires_grad_(), torch.zeros(w.out_features, requires_grad=True)
    optimizer = torch.optim.SGD([values, bias], lr=0.1)
    for x, target in batches:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(apply(x, values, bias), target).backward()
        optimizer.step()
    mask = w.mask()  # [N, K]
    dense_runs = {}
    for dtype in (torch.float64, torch.float32):
        dense = w.to_dense().to(dtype).requires_grad_()
        dense_bias = torch.zeros(w.out_features, dtype=dtype, requires_grad=True)
        dense_optimizer = torch.optim.SGD([dense, dense_bias], lr=0.1)
        for x, target in batches:
            dense_optimizer.zero_grad()
            torch.nn.functional.mse_loss(torch.nn.functional.linear(x.to(dtype), dense, dense_bias),
                                         target.to(dtype)).backward()
            dense.grad *= mask  # the masked dW
            dense_optimizer.step()
        dense_runs[dtype] = (dense.detach(), dense_bias.detach())
    trained = w.to_dense(values.detach())
    assert not trained[~mask].any()
    assert_float_close("trained weight", trained, dense_runs[torch.float64][0], dense_runs[torch.float32][0])
    assert_float_close("trained bias", bias.detach(), dense_runs[torch.float64][1], dense_runs[torch.float32][1])


@contextlib.contextmanager
def num_threads(threads: int):
    """torch's thread count (which the native kernels use) set to `threads`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def native_tier_fixture(ops, tiers, crossover: str):
    """A fixture parametrized over `tiers`: skips unless the native kernels of `ops` serve (require_native), then
    runs the test at the tier, the 'amx' tier with the family's AMX crossover `crossover` moved to one row."""

    @pytest.fixture(params=tiers)
    def tier(request):
        require_native(*ops)
        with at_kernel_tier(request.param, crossover):
            yield request.param

    return tier
