"""apt_fast::int8_linear on the CPU: every tier the machine has (AMX included, forced down to small row counts)
gives the reference's numbers bit for bit (exact int32 sums, the same fp32 epilogue), over odd shapes, groups,
8- and 16-bit activations, fp32 and bf16, with and without bias; the backward; bad input."""

import pytest
import torch
from native_kernels import QUANTIZED_LINEAR_OPS, native_kernels_fixture
from quantized_helpers import int8_weights, packed_int8
from simd_tiers import ALL_TIERS, at_kernel_tier

from apt_fast.reference import quantized_linear as ref

served_natively = native_kernels_fixture(*QUANTIZED_LINEAR_OPS)

# (M, N, K, group_size)
SHAPES = [(1, 64, 64, 64), (3, 70, 100, 100), (5, 96, 256, 32), (17, 33, 128, 64), (40, 130, 384, 128),
          (33, 100, 96, 32), (64, 256, 1024, 1024), (1100, 64, 1024, 128)]  # the last: two AMX row chunks


def run(x, q, scales, bias, group_size, bits, packed=True):
    weight, compensation, s = packed_int8(q, scales, group_size) if packed else (q, torch.empty(0, dtype=torch.int32),
                                                                                  scales)
    return torch.ops.apt_fast.int8_linear(x, weight, compensation, s, bias, q.shape[0], group_size, bits)


@pytest.mark.parametrize("tier", ALL_TIERS)
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}x{k}g{g}" for m, n, k, g in SHAPES])
def test_bit_identical_to_reference_on_every_tier(tier, bits, shape):
    m, n, k, g = shape
    q, scales = int8_weights(n, k, g)
    generator = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.bfloat16):
        x = (torch.randn(m, k, generator=generator) * 3).to(dtype)
        bias = torch.randn(n, generator=generator) if m % 2 else None
        want = ref.int8_linear_ref(x, q, scales, bias, g, bits)
        with at_kernel_tier(tier, "amx_min_rows"):
            got = run(x, q, scales, bias, g, bits)
        diff = (got.float() - want.float()).abs().max().item()
        assert torch.equal(got, want), f"{tier}, {bits}-bit activations, {dtype}: differs from the reference by {diff}"


def test_row_major_weight_packed_on_the_fly_and_leading_dims():
    q, scales = int8_weights(48, 64, 32)
    x = torch.randn(2, 3, 64)
    got = run(x, q, scales, None, 32, 8, packed=False)
    assert got.shape == (2, 3, 48) and torch.equal(got, ref.int8_linear_ref(x, q, scales, None, 32, 8))


def test_zero_rows_and_all_zero_row():
    q, scales = int8_weights(32, 64, 64)
    assert run(torch.zeros(0, 64), q, scales, None, 64, 8).shape == (0, 32)
    bias = torch.arange(32.0)
    assert torch.equal(run(torch.zeros(2, 64), q, scales, bias, 64, 16), bias.expand(2, 32))


def test_backward_is_grad_y_times_the_dequantized_weight():
    q, scales = int8_weights(70, 100, 100)
    weight, compensation, s = packed_int8(q, scales, 100)
    grad = torch.randn(3, 70, dtype=torch.float64).float()
    got = torch.ops.apt_fast.quantized_linear_grad_input(grad, weight, s, 100, 100, 0)
    exact = grad.double() @ ref.dequantize(q, scales, 0).double()
    same_precision = grad @ ref.dequantize(q, scales, 0)
    err, ref_err = (got.double() - exact).abs().max().item(), (same_precision.double() - exact).abs().max().item()
    assert err <= 2 * ref_err + 1e-6 * exact.abs().max().item(), f"error {err:.3e}, fp32 reference {ref_err:.3e}"


@pytest.mark.parametrize("case, message", [
    (dict(bits=4), "activation_bits must be 8 or 16, got 4"),
    (dict(group_size=48), "group_size must divide in_features 96 and be a multiple of 32 \\(or 96\\), got 48"),
    (dict(x_dtype=torch.float16), "x must be float32 or bfloat16, got float16"),
    (dict(bias_shape=(5,)), "bias must have shape \\[64\\], got \\(5,\\)"),
    (dict(scale_shape=(64, 2)), "scales must have shape \\[64, 1\\], got \\(64, 2\\)"),
])
def test_bad_input_names_the_argument(case, message):
    q, scales = int8_weights(64, 96, 96)
    x = torch.randn(2, 96).to(case.get("x_dtype", torch.float32))
    scales = torch.ones(case["scale_shape"]) if "scale_shape" in case else scales
    bias = torch.zeros(case["bias_shape"]) if "bias_shape" in case else None
    with pytest.raises(ValueError, match=message):
        torch.ops.apt_fast.int8_linear(x, q, torch.empty(0, dtype=torch.int32), scales, bias, 64,
                                       case.get("group_size", 96), case.get("bits", 8))
