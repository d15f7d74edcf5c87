"""The Triton kernels of the quantized linear layers (apt_fast.kernels.quantized_linear) against the reference.

Without CUDA they run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 is set before the kernel
module is imported), so shapes are small. int8 is exact: the interpreter's integer dots and the reference's
sums agree bit for bit, and so does the fp32 epilogue. FP8 is checked against fp64 within 2x the error of an
fp32 product of the same operands; under the interpreter the FP8 GEMM multiplies in fp32 (it cannot multiply
bf16), on a GPU in bf16 tensor cores, which only a GPU run can check. The FP8 conversion is bit-exact.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from quantized_helpers import fp8_weights, int8_weights

from apt_fast.backends.triton import quantized_linear as triton_backend
from apt_fast.kernels.quantized_linear import (
    fp8_linear_triton,
    fp8_quantize_triton,
    int8_linear_triton,
    quantized_linear_grad_input_triton,
)
from apt_fast.reference import quantized_linear as ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def within_twice_fp32(got, exact, fp32, label):
    err = (got.double().cpu() - exact.double()).abs().max().item()
    ref_err = (fp32.double().cpu() - exact.double()).abs().max().item()
    assert err <= 2 * ref_err + 1e-6 * exact.abs().max().item(), f"{label}: {err:.3e} > 2 x {ref_err:.3e}"


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("shape", [(5, 40, 96, 32), (3, 33, 70, 70)])
def test_int8_bit_identical_to_reference(bits, shape):
    m, n, k, g = shape
    q, scales = int8_weights(n, k, g)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(1)) * 3
    bias = torch.randn(n, generator=torch.Generator().manual_seed(2))
    got = int8_linear_triton(x.to(DEVICE), q.to(DEVICE), scales.to(DEVICE), bias.to(DEVICE), n, g, bits)
    want = ref.int8_linear_ref(x, q, scales, bias, g, bits)
    if DEVICE == "cpu":
        assert torch.equal(got, want), f"{(got - want).abs().max().item()}"
    else:  # a GPU's fp32 division may round the activation scale differently
        within_twice_fp32(got, want, want, "int8 on GPU")


@pytest.mark.parametrize("fp8_format", [1, 2], ids=["e4m3", "e5m2"])
def test_fp8_linear_and_backward(fp8_format):
    codes, scales = fp8_weights(40, 96, 32, fp8_format)
    x = torch.randn(5, 96, generator=torch.Generator().manual_seed(3)) * 3
    got = fp8_linear_triton(x.to(DEVICE), codes.to(DEVICE), scales.to(DEVICE), None, 40, 32, fp8_format)
    exact = ref.fp8_linear_ref(x, codes, scales, None, 32, fp8_format, compute_dtype=torch.float64)
    within_twice_fp32(got, exact, ref.fp8_linear_ref(x, codes, scales, None, 32, fp8_format), "fp8_linear")
    grad = torch.randn(5, 40, generator=torch.Generator().manual_seed(4))
    w = ref.dequantize(codes, scales, fp8_format)
    got = quantized_linear_grad_input_triton(grad.to(DEVICE), codes.to(DEVICE), scales.to(DEVICE), 96, 32, fp8_format)
    within_twice_fp32(got, grad.double() @ w.double(), grad @ w, "grad_input")


@pytest.mark.parametrize("fp8_format", [1, 2], ids=["e4m3", "e5m2"])
@pytest.mark.parametrize("saturate", [True, False])
def test_fp8_quantize_bit_exact(fp8_format, saturate):
    x = torch.randn(7, 64, generator=torch.Generator().manual_seed(5)) * torch.logspace(-8, 5, 64)
    x[0, :4] = torch.tensor([1e6, -1e6, float("inf"), float("nan")])
    scales = torch.rand(7, 2, generator=torch.Generator().manual_seed(6)) + 0.5
    got = fp8_quantize_triton(x.to(DEVICE), scales.to(DEVICE), fp8_format, saturate).cpu()
    want = ref.fp8_quantize_ref(x, scales, fp8_format, saturate)
    dtype = ref.fp8_dtype(fp8_format)
    both_nan = got.view(dtype).float().isnan() & want.view(dtype).float().isnan()
    assert bool(((got == want) | both_nan).all())


def test_backend_unpacks_cpu_panels():
    """The CUDA entry points take either layout: a packed (CPU) weight is unpacked first."""
    from quantized_helpers import packed_int8

    from apt_fast import _native

    if not _native.is_available():
        pytest.skip("packing CPU panels needs apt_fast._C")

    q, scales = int8_weights(40, 96, 32)
    panels, compensation, packed_scales = packed_int8(q, scales, 32)
    x = torch.randn(3, 96)
    got = triton_backend.int8_linear(x, panels, compensation, packed_scales, None, 40, 32, 8)
    assert torch.equal(got, ref.int8_linear_ref(x, q, scales, None, 32, 8))
