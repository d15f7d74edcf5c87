"""flash_attention on bf16 q, k, v: the kernels multiply bf16 operands with fp32 accumulation (AMX tiles, AVX-512
vdpbf16ps, or fp32 on the lower tiers) and keep softmax and lse in fp32. Odd shapes and head dims, bias broadcasts,
masks, causal, dropout, every tier the CPU has, forward and backward, output dtypes, and no fp32 copy of q, k, v.

Accuracy (flash-attention's rule): the kernel's error against the fp64 reference is at most 2x the error of the
reference itself run in bf16 (torch's bf16 path for the same op), plus a floor of half a bf16 ulp at the output's
largest magnitude: rounding the exact result to bf16 alone costs that much, while the bf16 reference's
error can happen to be smaller on a few elements (e.g. a tile whose gradient is exactly zero)."""

import pytest
import torch
from attention_helpers import assert_bf16_accuracy, max_err, randn, record_fp32_copies_of_heads
from native_kernels import FLASH_ATTENTION_OPS, native_kernels_fixture
from simd_tiers import ALL_TIERS, at_tier

import apt_fast.functional as AF
from apt_fast.reference.flash_attention import flash_attention_bwd_ref, flash_attention_fwd_ref

served_natively = native_kernels_fixture(*FLASH_ATTENTION_OPS)

# (B, H, T, S, d): T != S, none a multiple of 16 where it can be avoided; d = 8, 40, 64, 72, 128.
SHAPES = [(1, 2, 45, 37, 8), (2, 3, 97, 31, 40), (1, 2, 70, 130, 64), (1, 2, 66, 129, 72), (1, 1, 33, 50, 128)]
BIAS_SHAPES = [None, "full", (3, 97, 31), (2, 1, 1, 31), (31,), (97, 1)]
NAMES = ("out", "dq", "dk", "dv", "dbias")


def make_case(shape, bias_shape, mask_shape, seed=0):
    b, h, t, s, d = shape
    q, k, v = (randn(b, h, n, d, seed=seed + i, dtype=torch.bfloat16) for i, n in enumerate((t, s, s)))
    bias = None
    if bias_shape is not None:
        full = (b, h, t, s) if bias_shape == "full" else bias_shape
        bias = randn(*full, seed=seed + 7, scale=2.0, dtype=torch.bfloat16)
    mask = None
    if mask_shape is not None:
        mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(seed)) > 0.3
        mask[..., 0, :] = False  # a fully masked query row
    grad_out = randn(b, h, t, d, seed=seed + 9, dtype=torch.bfloat16)
    return q, k, v, bias, mask, grad_out


def compare_ops(shape, bias_shape="full", mask_shape=None, causal=False, dropout_p=0.0, seed=0):
    """The ops forward and backward against the reference in bf16 and in fp64 (same dropout draw)."""
    q, k, v, bias, mask, grad_out = make_case(shape, bias_shape, mask_shape, seed)
    scale = shape[-1] ** -0.5
    out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, mask, causal, scale, dropout_p, 5)
    grads = torch.ops.apt_fast.flash_attention_bwd(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p,
                                                   5, bias is not None)
    assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
    assert all(g.dtype == torch.bfloat16 for g in grads[:3])
    got = (out, *grads)
    refs = {}
    for dtype in (torch.bfloat16, torch.float64):
        args = [x.to(dtype) if x is not None else None for x in (q, k, v, bias)]
        refs[dtype] = (flash_attention_fwd_ref(*args, mask, causal, scale, dropout_p, 5)[0],
                       *flash_attention_bwd_ref(grad_out.to(dtype), *args, mask, causal, scale, dropout_p, 5))
    for name, g, r16, r64 in zip(NAMES, got, refs[torch.bfloat16], refs[torch.float64]):
        if name == "dbias" and bias is None:
            continue
        if name == "dbias":
            assert g.dtype == bias.dtype and g.shape == bias.shape
        assert_bf16_accuracy(name, g, r16, r64)


@pytest.mark.parametrize("tier", ALL_TIERS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shapes_every_tier(tier, shape):
    with at_tier(tier):
        compare_ops(shape, bias_shape="full")


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_causal_mask_broadcast_bias_every_tier(tier):
    with at_tier(tier):
        compare_ops((2, 3, 97, 75, 40), bias_shape=(3, 97, 75), mask_shape=(97, 75), causal=True)


@pytest.mark.parametrize("bias_shape", BIAS_SHAPES, ids=str)
def test_bias_broadcasts(bias_shape):
    compare_ops((2, 3, 97, 31, 72), bias_shape=bias_shape)


@pytest.mark.parametrize("mask_shape", [(2, 1, 97, 31), (2, 3, 97, 31)], ids=str)
def test_bool_mask(mask_shape):
    compare_ops((2, 3, 97, 31, 64), bias_shape=(3, 97, 31), mask_shape=mask_shape)


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_dropout_every_tier(tier):
    """The kernel keeps the reference's exact dropout draw, so the same accuracy rule holds with dropout."""
    with at_tier(tier):
        compare_ops((2, 2, 37, 45, 40), bias_shape=(2, 37, 45), causal=True, dropout_p=0.3)


def test_functional_autograd():
    """apt_fast.functional.flash_attention on bf16 leaves: bf16 gradients for q, k, v and the bias."""
    q, k, v, bias, _, grad_out = make_case((1, 2, 50, 61, 64), "full", None)
    leaves = [x.clone().requires_grad_() for x in (q, k, v, bias)]
    out = AF.flash_attention(*leaves, causal=True)
    out.backward(grad_out)
    assert out.dtype == torch.bfloat16
    assert all(x.grad.dtype == torch.bfloat16 and x.grad.shape == x.shape for x in leaves)
    ref = flash_attention_fwd_ref(*[x.double() for x in (q, k, v, bias)], None, True, 64**-0.5)[0]
    ref16 = flash_attention_fwd_ref(q, k, v, bias, None, True, 64**-0.5)[0]
    assert_bf16_accuracy("out", out.detach(), ref16, ref)


def test_no_fp32_copy_of_qkv(monkeypatch):
    """bf16 q, k, v, out and grad_out reach the kernels as they are: neither the fp32 row helper nor .float() /
    .to(float32) is applied to any [B, H, L, d] tensor on the way (the fp32 maps of other ops are not such)."""
    b, h, t, s, d = 1, 2, 33, 47, 40
    q, k, v, bias, mask, grad_out = make_case((b, h, t, s, d), "full", (t, s))
    converted = record_fp32_copies_of_heads(monkeypatch, h, d)
    out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, mask, True, 0.2, 0.1, 3)
    torch.ops.apt_fast.flash_attention_bwd(grad_out, q, k, v, bias, mask, out, lse, True, 0.2, 0.1, 3, True)
    assert converted == []


def test_fp16_is_computed_in_fp32():
    """fp16 goes through the fp32 kernels and comes back in fp16, as accurate as the fp16 reference."""
    b, h, t, s, d = 1, 2, 33, 47, 40
    q, k, v = (randn(b, h, n, d, seed=i, dtype=torch.float16) for i, n in enumerate((t, s, s)))
    out = AF.flash_attention(q, k, v, causal=True)
    assert out.dtype == torch.float16
    ref64 = flash_attention_fwd_ref(q.double(), k.double(), v.double(), None, None, True, d**-0.5)[0]
    ref16 = flash_attention_fwd_ref(q.float(), k.float(), v.float(), None, None, True, d**-0.5)[0].half()
    assert max_err(out, ref64) <= 2 * max_err(ref16, ref64) + 1e-6


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_non_contiguous_inputs_every_tier(tier):
    """q, k, v as strided views of one [B, T, 3, H, d] tensor (row stride 3 H d) and a column-major bias."""
    b, h, t, d = 2, 3, 41, 40
    qkv = randn(b, t, 3, h, d, seed=0, dtype=torch.bfloat16)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, T, d] views
    bias = randn(t, t, seed=1, dtype=torch.bfloat16).t()  # [T, S] column-major
    with at_tier(tier):
        out = AF.flash_attention(q, k, v, bias, causal=True)
    refs = [flash_attention_fwd_ref(q.to(dt), k.to(dt), v.to(dt), bias.to(dt), None, True, d**-0.5)[0]
            for dt in (torch.bfloat16, torch.float64)]
    assert_bf16_accuracy("out", out, *refs)
