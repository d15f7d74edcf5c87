"""The native layer-fusion kernels (C++, at every vector tier the CPU has) and the reference, forward and backward,
against float64, within 2x the error of torch's own ops in the same dtype (layer_fusions_checks.py), on odd shapes,
in float32 and bfloat16."""

import pytest
import torch
from layer_fusions_checks import (
    GELU_SHAPES,
    NORM_SHAPES,
    assert_as_accurate_as_torch,
    inputs,
    torch_add_layer_norm,
    torch_bias_gelu,
)
from native_kernels import require_native
from simd_tiers import VECTOR_TIERS, at_tier

from apt_fast.reference.layer_fusions import (
    add_layer_norm_bwd_ref,
    add_layer_norm_fwd_ref,
    bias_gelu_bwd_ref,
    bias_gelu_fwd_ref,
)

DTYPES = (torch.float32, torch.bfloat16)


def _norm_by_op(x, residual, weight, bias):
    return torch.ops.apt_fast.add_layer_norm_fwd(x, residual, weight, bias, 1e-5)[0]


def _norm_case(shape, seed=0):
    x, residual, grad_out = inputs(shape, 3, seed)
    weight, bias = inputs((shape[1],), 2, seed + 1, scale=1.0)
    return (x, residual, weight, bias), grad_out


def _gelu_case(shape, seed=0):
    x, grad_out = inputs(shape, 2, seed)
    (bias,) = inputs((shape[1],), 1, seed + 1, scale=1.0)
    return (x, bias), grad_out


@pytest.fixture(params=VECTOR_TIERS)
def tier(request):
    require_native("add_layer_norm_fwd", "add_layer_norm_bwd", "bias_gelu_fwd", "bias_gelu_bwd")
    with at_tier(request.param) as name:
        yield name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", NORM_SHAPES)
def test_add_layer_norm_native(tier, shape, dtype):
    from apt_fast.functional import add_layer_norm

    tensors, grad_out = _norm_case(shape)
    assert_as_accurate_as_torch(f"add_layer_norm[{tier}]", add_layer_norm, torch_add_layer_norm, tensors, grad_out,
                                dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GELU_SHAPES)
def test_bias_gelu_native(tier, shape, dtype):
    from apt_fast.functional import bias_gelu

    tensors, grad_out = _gelu_case(shape)
    assert_as_accurate_as_torch(f"bias_gelu[{tier}]", bias_gelu, torch_bias_gelu, tensors, grad_out, dtype)


def test_gelu_far_tails(tier):
    """Large |x|: GELU(x) -> x above, -> 0 (not NaN, not a sign flip) below, accurate in the negative tail (erfc,
    not 1 + erf); the slope -> 1 and -> 0."""
    x = torch.tensor([[-60.0, -20.0, -9.0, -5.0, 0.0, 5.0, 9.0, 20.0, 60.0]])  # [1, 9]
    bias = torch.zeros(9)
    out = torch.ops.apt_fast.bias_gelu_fwd(x, bias)
    exact = 0.5 * x.double() * torch.erfc(-x.double() / 2 ** 0.5)  # F.gelu in float64 gives 0 from x = -8.3 on
    assert torch.allclose(out.double(), exact, rtol=1e-6, atol=1e-30), (out, exact)
    grad_x, _ = torch.ops.apt_fast.bias_gelu_bwd(torch.ones_like(x), x, bias)
    assert grad_x[0, 0] == 0.0 and grad_x[0, -1] == 1.0 and abs(grad_x[0, 4].item() - 0.5) < 1e-6, grad_x


def test_results_do_not_depend_on_the_thread_count(tier):
    (x, residual, weight, bias), grad_out = _norm_case((97, 40))
    x, residual, weight, bias, grad_out = (t.float() for t in (x, residual, weight, bias, grad_out))
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            _, mean, rstd = torch.ops.apt_fast.add_layer_norm_fwd(x, residual, weight, bias, 1e-5)
            results.append(torch.ops.apt_fast.add_layer_norm_bwd(grad_out, x, residual, weight, bias, mean, rstd))
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(a, b) for a, b in zip(*results))


@pytest.mark.parametrize("dtype", DTYPES)
def test_references_against_torch(dtype):
    """The references, the oracle of the Triton tests and the fallback, by the same rule."""
    def norm_ref(x, residual, weight, bias):
        return _NormRef.apply(x, residual, weight, bias)

    def gelu_ref(x, bias):
        return _GeluRef.apply(x, bias)

    tensors, grad_out = _norm_case((13, 97))
    assert_as_accurate_as_torch("add_layer_norm_ref", norm_ref, torch_add_layer_norm, tensors, grad_out, dtype)
    tensors, grad_out = _gelu_case((5, 129))
    assert_as_accurate_as_torch("bias_gelu_ref", gelu_ref, torch_bias_gelu, tensors, grad_out, dtype)


class _NormRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, weight, bias):
        out, mean, rstd = add_layer_norm_fwd_ref(x, residual, weight, bias, 1e-5)
        ctx.save_for_backward(x, residual, weight, bias, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grad_sum, grad_weight, grad_bias = add_layer_norm_bwd_ref(grad_out, *ctx.saved_tensors)
        return grad_sum, grad_sum, grad_weight, grad_bias


class _GeluRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias):
        ctx.save_for_backward(x, bias)
        return bias_gelu_fwd_ref(x, bias)

    @staticmethod
    def backward(ctx, grad_out):
        return bias_gelu_bwd_ref(grad_out, *ctx.saved_tensors)
