"""APT's fused attention stages on bf16 q, k, v: the head mean (forward, backward) and the final attention
(forward, backward) multiply bf16 operands with fp32 accumulation (AMX tiles, AVX-512 vdpbf16ps, or fp32 on the
lower tiers); the clamps, softmax, lse, F and M stay fp32 in the kernels. Odd shapes and head dims, attention and
key-padding masks, clamps firing, dropout, every tier the CPU has, output dtypes, no fp32 copy of q, k, v.

Accuracy: each result's error against apt_fast.reference run in fp64 is at most 2x the error of the same reference
run in bf16 (torch's bf16 path for the same op), plus a floor of half a bf16 ulp at the result's largest magnitude:
rounding the exact result to bf16 alone costs that much, while the bf16 reference's error can happen to be
smaller on some elements."""

import pytest
import torch
from attention_helpers import assert_bf16_accuracy, randn, record_fp32_copies_of_heads
from native_kernels import APT_ATTENTION_OPS, native_kernels_fixture
from simd_tiers import ALL_TIERS, at_tier

from apt_fast.reference.apt_attention import expand_attn_mask
from apt_fast.reference.apt_attention_ops import apt_attention_core_ref, apt_head_mean_ref, grads_by_autograd

served_natively = native_kernels_fixture(*APT_ATTENTION_OPS)

# (B, H, T, S, d): T != S, odd lengths, d = 8, 40, 64, 72, 128.
SHAPES = [(1, 2, 45, 37, 8), (2, 3, 97, 31, 40), (1, 2, 70, 130, 64), (2, 2, 66, 129, 72), (1, 1, 33, 50, 128)]


def make_case(shape, masks: bool, seed=0, q_scale=2.0):
    """bf16 q, k, v (scaled so that T1's +-15 clamp fires) and dO; fp32 F and dM (the maps stay fp32); with masks,
    a bf16 causal additive mask plus noise [B, 1, T, S] and a key padding mask."""
    b, h, t, s, d = shape
    q, k = (randn(b, h, n, d, seed=seed + i, scale=q_scale, dtype=torch.bfloat16) for i, n in enumerate((t, s)))
    v = randn(b, h, s, d, seed=seed + 2, dtype=torch.bfloat16)
    attn_mask = key_padding = None
    if masks:
        causal = torch.triu(torch.full((t, s), float("-inf")), 1) + randn(t, s, seed=seed + 3)
        attn_mask = expand_attn_mask(causal, b, torch.bfloat16)  # [B, 1, T, S]
        key_padding = torch.zeros(b, s, dtype=torch.bool)
        key_padding[-1, 1::3] = True
    f = randn(b, t, s, seed=seed + 4, scale=3.0)  # [B, T, S] maps stay fp32
    grad_mean = randn(b, t, s, seed=seed + 5)
    grad_out = randn(b, h, t, d, seed=seed + 6, dtype=torch.bfloat16)
    return q, k, v, attn_mask, key_padding, f, grad_mean, grad_out


def cast(xs, dtype):
    """The reference's inputs in dtype; [B, T, S] maps (3D) stay at least fp32, as the ops keep them."""
    def to(x):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return x
        return x.to(torch.promote_types(dtype, torch.float32) if x.dim() == 3 else dtype)
    return [to(x) for x in xs]


def compare_ops(shape, masks=True, dropout_p=0.0, seed=0):
    q, k, v, attn_mask, key_padding, f, grad_mean, grad_out = make_case(shape, masks, seed)
    mean = torch.ops.apt_fast.apt_head_mean_fwd(q, k, attn_mask, key_padding)
    dq_mean, dk_mean = torch.ops.apt_fast.apt_head_mean_bwd(grad_mean, q, k, attn_mask, key_padding)
    out, lse = torch.ops.apt_fast.apt_attention_fwd(q, k, v, f, mean, attn_mask, key_padding, dropout_p, 9)
    grads = torch.ops.apt_fast.apt_attention_bwd(grad_out, q, k, v, f, mean, attn_mask, key_padding, out, lse,
                                                 dropout_p, 9)
    assert lse.dtype == torch.float32
    assert mean.dtype == grads[3].dtype == torch.float32  # M and dF
    assert all(x.dtype == torch.bfloat16 for x in (dq_mean, dk_mean, out, *grads[:3]))
    head_mean_inputs = (q, k, attn_mask, key_padding)
    core_inputs = (q, k, v, f, mean, attn_mask, key_padding, dropout_p, 9)  # the kernel's own M, as in the model
    refs = {}
    for dtype in (torch.bfloat16, torch.float64):
        hm = cast(head_mean_inputs, dtype)
        core = cast(core_inputs, dtype)
        grad_mean_ref = grad_mean.to(torch.promote_types(dtype, torch.float32))
        refs[dtype] = (apt_head_mean_ref(*hm), *grads_by_autograd(apt_head_mean_ref, grad_mean_ref, hm, (0, 1)),
                       apt_attention_core_ref(*core)[0],
                       *grads_by_autograd(apt_attention_core_ref, grad_out.to(dtype), core, (0, 1, 2, 3)))
    names = ("mean", "head mean dq", "head mean dk", "out", "dq", "dk", "dv", "df")
    for name, got, r16, r64 in zip(names, (mean, dq_mean, dk_mean, out, *grads), refs[torch.bfloat16],
                                   refs[torch.float64]):
        assert_bf16_accuracy(name, got, r16, r64)


@pytest.mark.parametrize("tier", ALL_TIERS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shapes_every_tier(tier, shape):
    with at_tier(tier):
        compare_ops(shape)


def test_without_masks():
    compare_ops((2, 3, 97, 31, 40), masks=False)


@pytest.mark.parametrize("tier", ALL_TIERS)
def test_dropout_every_tier(tier):
    """The kernel keeps the reference's exact dropout draw, so the same accuracy rule holds with dropout."""
    with at_tier(tier):
        compare_ops((2, 2, 37, 45, 40), dropout_p=0.3)


def test_no_fp32_copy_of_qkv(monkeypatch):
    """bf16 q, k, v, out and grad_out reach the kernels as they are: neither the fp32 row helper nor .float() /
    .to(float32) is applied to any [B, H, L, d] tensor (F, M, dM and the masks are [B, T, S] or [B, 1, T, S])."""
    b, h, t, s, d = 2, 3, 33, 47, 40
    q, k, v, attn_mask, key_padding, f, grad_mean, grad_out = make_case((b, h, t, s, d), True)
    converted = record_fp32_copies_of_heads(monkeypatch, h, d)
    mean = torch.ops.apt_fast.apt_head_mean_fwd(q, k, attn_mask, key_padding)
    torch.ops.apt_fast.apt_head_mean_bwd(grad_mean, q, k, attn_mask, key_padding)
    out, lse = torch.ops.apt_fast.apt_attention_fwd(q, k, v, f, mean, attn_mask, key_padding, 0.1, 3)
    torch.ops.apt_fast.apt_attention_bwd(grad_out, q, k, v, f, mean, attn_mask, key_padding, out, lse, 0.1, 3)
    assert converted == []
