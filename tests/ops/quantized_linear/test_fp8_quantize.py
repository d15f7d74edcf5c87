"""apt_fast::fp8_quantize rounds exactly as torch does: bit-identical to Tensor.to(float8_*) on all 65536 bf16
values (as bf16 and as fp32) and on fp32 spread over 18 decades, on every vector tier. torch 2.13 saturates e4m3fn
(inf -> 448) and overflows e5m2 to inf; saturate=True resp. False is that, and the other setting matches the
reference (NaN for an e4m3fn overflow, clamping for e5m2)."""

import pytest
import torch
from native_kernels import QUANTIZED_LINEAR_OPS, native_kernels_fixture
from simd_tiers import VECTOR_TIERS, at_tier

from apt_fast.reference import quantized_linear as ref

served_natively = native_kernels_fixture(*QUANTIZED_LINEAR_OPS)

TORCH_SATURATES = {1: True, 2: False}  # fp8_format -> what torch's own conversion does


def inputs():
    every_bf16 = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).reshape(256, 256)
    generator = torch.Generator().manual_seed(0)
    spread = torch.randn(256, 1024, generator=generator) * torch.logspace(-12, 6, 1024)
    edges = torch.tensor([[448.0, 464.0, 464.5, 479.9, 480.0, 57344.0, 61439.0, 61440.0, 2.0**-10, 2.0**-9 * 1.5,
                           2.0**-17, -0.0, float("inf"), -float("inf"), float("nan"), 1e-45]])
    return {"bf16": every_bf16, "bf16 as fp32": every_bf16.float(), "fp32": spread, "edges": edges}


def same_codes(a, b, dtype):
    """Equal bytes, NaN codes compared as NaN (any sign and payload)."""
    both_nan = a.view(dtype).float().isnan() & b.view(dtype).float().isnan()
    return bool(((a == b) | both_nan).all())


@pytest.mark.parametrize("tier", VECTOR_TIERS)
@pytest.mark.parametrize("fp8_format", [1, 2], ids=["e4m3", "e5m2"])
def test_bit_identical_to_torch(tier, fp8_format):
    dtype = ref.fp8_dtype(fp8_format)
    with at_tier(tier):
        for name, x in inputs().items():
            ones = torch.ones(x.shape[0], 1)
            got = torch.ops.apt_fast.fp8_quantize(x, ones, fp8_format, TORCH_SATURATES[fp8_format])
            want = x.to(dtype).view(torch.uint8)
            assert same_codes(got, want, dtype), f"{name}: {(got != want).sum().item()} codes differ from torch"
            other = torch.ops.apt_fast.fp8_quantize(x, ones, fp8_format, not TORCH_SATURATES[fp8_format])
            expected = ref.fp8_quantize_ref(x, ones, fp8_format, not TORCH_SATURATES[fp8_format])
            assert same_codes(other, expected, dtype), f"{name} (other saturation): differs from the reference"


def test_group_scales_divide_before_rounding():
    x = torch.randn(6, 256) * 100
    scales = torch.rand(6, 2) + 0.5
    got = torch.ops.apt_fast.fp8_quantize(x, scales, 1, True)
    want = (x / scales.repeat_interleave(128, dim=1)).to(torch.float8_e4m3fn).view(torch.uint8)
    assert torch.equal(got, want)
