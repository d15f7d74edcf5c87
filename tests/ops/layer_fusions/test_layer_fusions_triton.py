"""The Triton layer-fusion kernels against float64, by the rule of layer_fusions_checks.py (2x torch's own error in
the same dtype, plus the floor), forward and backward, on odd shapes.

Without CUDA the kernels run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 must be set before the
kernel module is imported, hence the order below). The kernels have no dot products, so the interpreter runs their
bfloat16 loads and stores too; what it cannot show is the GPU's approximate erf/exp.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from layer_fusions_checks import (
    assert_as_accurate_as_torch,
    inputs,
    torch_add_layer_norm,
    torch_bias_gelu,
)

from apt_fast.kernels.layer_fusions import (
    add_layer_norm_bwd_triton,
    add_layer_norm_fwd_triton,
    bias_gelu_bwd_triton,
    bias_gelu_fwd_triton,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = (torch.float32, torch.bfloat16)


class _Norm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, weight, bias):
        out, mean, rstd = add_layer_norm_fwd_triton(x, residual, weight, bias, 1e-5)
        ctx.save_for_backward(x, residual, weight, bias, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grad_sum, grad_weight, grad_bias = add_layer_norm_bwd_triton(grad_out, *ctx.saved_tensors)
        return grad_sum, grad_sum, grad_weight, grad_bias


class _Gelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias):
        ctx.save_for_backward(x, bias)
        return bias_gelu_fwd_triton(x, bias)

    @staticmethod
    def backward(ctx, grad_out):
        return bias_gelu_bwd_triton(grad_out, *ctx.saved_tensors)


def _on_device(fn):
    """fn on DEVICE, the result back on the CPU (the checks run torch's ops on the CPU)."""
    def run(*tensors):
        return fn(*(t.to(DEVICE) for t in tensors)).cpu()
    return run


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 33), (40, 256), (1, 5), (19, 300)])  # rows beyond one program's ROWS
def test_add_layer_norm_triton(shape, dtype):
    x, residual, grad_out = inputs(shape, 3)
    weight, bias = inputs((shape[1],), 2, seed=1, scale=1.0)
    assert_as_accurate_as_torch("add_layer_norm[triton]", _on_device(_Norm.apply), torch_add_layer_norm,
                                (x, residual, weight, bias), grad_out, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 37), (33, 300), (1, 3)])  # several row and column blocks
def test_bias_gelu_triton(shape, dtype):
    x, grad_out = inputs(shape, 2)
    (bias,) = inputs((shape[1],), 1, seed=1, scale=1.0)
    assert_as_accurate_as_torch("bias_gelu[triton]", _on_device(_Gelu.apply), torch_bias_gelu, (x, bias), grad_out,
                                dtype)
