"""apt_fast::fp8_linear on the CPU against the fp64 reference (bf16-rounded activations times the exact FP8
values): within 2x the error of torch's own bf16 path for the same product (flash-attention's rule) on every
tier, AMX included; e4m3 and e5m2; per-channel and per-block scales; bias; bf16 in and out; the backward."""

import pytest
import torch
from native_kernels import QUANTIZED_LINEAR_OPS, native_kernels_fixture
from quantized_helpers import fp8_weights, packed_fp8
from simd_tiers import ALL_TIERS, at_kernel_tier

from apt_fast.reference import quantized_linear as ref

served_natively = native_kernels_fixture(*QUANTIZED_LINEAR_OPS)

SHAPES = [(1, 64, 64, 64), (3, 70, 100, 100), (5, 96, 256, 128), (17, 33, 128, 128), (40, 130, 384, 128),
          (64, 256, 1024, 1024)]
FORMATS = {"e4m3": 1, "e5m2": 2}


def check_against_fp64(got, x, codes, scales, bias, group_size, fp8_format, label):
    """err(kernel) <= 2 x err(torch's bf16 matmul of the same operands) + 1e-6 x max |y|, both against fp64."""
    exact = ref.fp8_linear_ref(x.float(), codes, scales, bias, group_size, fp8_format, compute_dtype=torch.float64)
    w = ref.dequantize(codes, scales, fp8_format)
    torch_bf16 = (x.bfloat16() @ w.bfloat16().T).double() + (bias.double() if bias is not None else 0)
    scale = exact.abs().max().item()
    err = (got.double() - exact.double()).abs().max().item()
    ref_err = (torch_bf16 - exact.double()).abs().max().item()
    if got.dtype == torch.bfloat16:  # the output's own rounding
        ref_err = max(ref_err, (exact.bfloat16().double() - exact.double()).abs().max().item())
    assert err <= 2 * ref_err + 1e-6 * scale, f"{label}: error {err:.3e} > 2 x torch bf16's {ref_err:.3e}"


@pytest.mark.parametrize("tier", ALL_TIERS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}x{k}g{g}" for m, n, k, g in SHAPES])
def test_every_tier_against_fp64(tier, fmt, shape):
    m, n, k, g = shape
    codes, scales = fp8_weights(n, k, g, FORMATS[fmt])
    weight, packed_scales = packed_fp8(codes, scales, g)
    generator = torch.Generator().manual_seed(2)
    for dtype in (torch.float32, torch.bfloat16):
        x = (torch.randn(m, k, generator=generator) * 3).to(dtype)
        bias = torch.randn(n, generator=generator) if m % 2 else None
        with at_kernel_tier(tier, "amx_min_rows"):
            got = torch.ops.apt_fast.fp8_linear(x, weight, packed_scales, bias, n, g, FORMATS[fmt])
        assert got.dtype == dtype and got.shape == (m, n)
        check_against_fp64(got, x, codes, scales, bias, g, FORMATS[fmt], f"{tier} {fmt} {dtype}")


def test_special_codes_decode_exactly():
    """Every byte of both formats (subnormals, zero, -0, the largest, e5m2 inf, NaN) multiplies as its value."""
    for fmt, code in FORMATS.items():
        codes = torch.arange(256, dtype=torch.int64).to(torch.uint8).reshape(8, 32)
        finite = ~codes.view(ref.fp8_dtype(code)).float().isnan() & ~codes.view(ref.fp8_dtype(code)).float().isinf()
        codes = torch.where(finite, codes, torch.zeros_like(codes))  # no NaN/inf: one of them poisons a whole row
        scales = torch.ones(8, 1)
        weight, packed_scales = packed_fp8(codes, scales, 32)
        eye = torch.eye(32)
        got = torch.ops.apt_fast.fp8_linear(eye, weight, packed_scales, None, 8, 32, code)  # column j = code (., j)
        assert torch.equal(got.T, codes.view(ref.fp8_dtype(code)).float()), fmt


def test_backward_against_fp64():
    codes, scales = fp8_weights(70, 256, 128, 1)
    weight, packed_scales = packed_fp8(codes, scales, 128)
    grad = torch.randn(5, 70)
    got = torch.ops.apt_fast.quantized_linear_grad_input(grad, weight, packed_scales, 256, 128, 1)
    w = ref.dequantize(codes, scales, 1)
    exact, fp32 = grad.double() @ w.double(), grad @ w
    err, ref_err = (got.double() - exact).abs().max().item(), (fp32.double() - exact).abs().max().item()
    assert err <= 2 * ref_err + 1e-6 * exact.abs().max().item(), f"error {err:.3e}, fp32 reference {ref_err:.3e}"


def test_bad_format_is_named():
    codes, scales = fp8_weights(32, 64, 64, 1)
    with pytest.raises(ValueError, match="fp8_format must be 1 \\(e4m3\\) or 2 \\(e5m2\\), got 3"):
        torch.ops.apt_fast.fp8_linear(torch.randn(1, 64), codes, scales, None, 32, 64, 3)
