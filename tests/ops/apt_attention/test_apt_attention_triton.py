"""The Triton kernels of APT attention's stages (apt_fast.kernels.apt_attention) against the fp64 reference
(apt_fast/reference/apt_attention_ops.py).

Without CUDA the kernels run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 must be set before
the kernel module is imported, hence the order below), so shapes are small and odd and the tiles are forced to
16 x 16. Both stages run forward and backward with random upstream gradients, for every mask kind (additive 2D,
3D with -inf, per-head 4D, bool as 0/1, key padding alone and with a causal mask), with scores, F and masks
large enough that the T1, T17 and T19 clamps fire, with dropout (the reference's exact draw), fp16 and through
the backend's entry points. The kernels' results are compared by flash-attention's rule: the error against the
fp64 reference is within 2x the fp32 (or fp16) reference's own error, plus 2e-6 of the result's scale.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from attention_helpers import assert_within_reference_error, max_err, randn, triton_slack

from apt_fast.backends.triton import apt_attention as triton_attention
from apt_fast.kernels.apt_attention import (
    apt_attention_bwd_triton,
    apt_attention_fwd_triton,
    apt_head_mean_bwd_triton,
    apt_head_mean_fwd_triton,
)
from apt_fast.reference.apt_attention import expand_attn_mask
from apt_fast.reference.apt_attention_ops import apt_attention_core_ref, apt_head_mean_ref, grads_by_autograd

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BLOCKS = dict(block_m=16, block_n=16)
B, H, T, S, D = 2, 2, 20, 23, 12
MASK_KINDS = ("float_2d", "finite_3d_with_neg_inf", "bool_4d_heads", "key_padding", "key_padding_and_causal")


def masks(kind, dtype, b=B, h=H, t=T, s=S):
    """(attn_mask as expand_attn_mask makes it [B|1, H|1, T, S] in dtype, key padding mask [B, S]) of a kind."""
    gen = torch.Generator().manual_seed(5)
    key_pad = torch.zeros(b, s, dtype=torch.bool)
    key_pad[-1, -5:] = True
    key_pad[0, :3] = True
    key_pad[0, s // 2] = True
    raw = {
        "none": None,
        "float_2d": torch.randn(t, s, generator=gen) * 20.0,  # |mask| up to ~60: T19's clamp fires
        "finite_3d_with_neg_inf": torch.where(torch.rand(b, t, s, generator=gen) > 0.8, -5.0, 0.0),
        "bool_4d_heads": torch.rand(b, h, t, s, generator=gen) > 0.6,
        "key_padding": None,
        "key_padding_and_causal": torch.full((t, s), float("-inf")).triu(1),
    }[kind]
    if kind == "finite_3d_with_neg_inf":
        raw[0, 4, :] = float("-inf")  # a query row that sees no key through the mask
    attn_mask = expand_attn_mask(raw, b, dtype)
    return (attn_mask.to(DEVICE) if attn_mask is not None else None,
            key_pad.to(DEVICE) if kind.startswith("key_padding") else None)


def stage_inputs(dtype, q_scale=3.0, f_scale=8.0, b=B, h=H, t=T, s=S, d=D):
    """q, k (scores of std ~q_scale², so T1's clamp at ±15 fires), v, F (T17's clamp fires), dM, dO."""
    q, k = randn(b, h, t, d, seed=1, scale=q_scale), randn(b, h, s, d, seed=2, scale=q_scale)
    v, f = randn(b, h, s, d, seed=3), randn(b, t, s, seed=4, scale=f_scale)
    grad_mean, grad_out = randn(b, t, s, seed=6), randn(b, h, t, d, seed=7)
    return [x.to(DEVICE, dtype) for x in (q, k, v, f, grad_mean, grad_out)]


def as_ref(xs, dtype):
    return [x.cpu().to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else
            (x.cpu() if isinstance(x, torch.Tensor) else x) for x in xs]


def check(name, got, ref, ref64):
    """flash-attention's rule (slack 2; 5 for bf16 under the interpreter: attention_helpers.triton_slack), with an
    absolute floor of 2e-6 of the result's scale. Returns the kernel's error.

    The floor matters for dV and dF: the backward recomputes P = exp(logits - lse) from an fp32 lse, and APT's
    logits reach ±30, so P carries a relative error of about |lse|·2^-24 ≈ 2e-6 that the reference's softmax
    has not.
    """
    err, ref_err, scale = max_err(got.cpu(), ref64), max_err(ref, ref64), ref64.abs().max().item()
    slack = triton_slack(got.dtype)
    assert got.shape == ref64.shape and got.dtype == ref.dtype, name
    allowed = slack * ref_err + 2e-6 * max(scale, 1.0)
    assert err <= allowed, (f"{name}: kernel error {err:.3e} > {allowed:.3e} = {slack} x the same-precision "
                            f"reference's {ref_err:.3e} + 2e-6 x max(max {scale:.2e}, 1)")
    return err


def check_head_mean(q, k, grad_mean, attn_mask, key_pad, dtype):
    mean = apt_head_mean_fwd_triton(q, k, attn_mask, key_pad, **BLOCKS)  # [B, T, S]
    dq, dk = apt_head_mean_bwd_triton(grad_mean, q, k, attn_mask, key_pad, **BLOCKS)
    results = {}
    for precision in (dtype, torch.float64):
        inputs = as_ref((q, k, attn_mask, key_pad), precision)
        results[precision] = (apt_head_mean_ref(*inputs),
                              *grads_by_autograd(apt_head_mean_ref, as_ref([grad_mean], precision)[0], inputs, (0, 1)))
    for name, got, ref, ref64 in zip(("M", "dq", "dk"), (mean, dq, dk), results[dtype], results[torch.float64]):
        check(f"head mean {name}", got, ref, ref64)
    return mean


def check_attention(q, k, v, f, m, attn_mask, key_pad, grad_out, dtype, dropout_p=0.0, seed=0):
    out, lse = apt_attention_fwd_triton(q, k, v, f, m, attn_mask, key_pad, dropout_p, seed, **BLOCKS)
    grads = apt_attention_bwd_triton(grad_out, q, k, v, f, m, attn_mask, key_pad, out, lse, dropout_p, seed, **BLOCKS)
    results, ref_lse = {}, {}
    for precision in (dtype, torch.float64):
        inputs = as_ref((q, k, v, f, m, attn_mask, key_pad, dropout_p, seed), precision)
        ref_out, ref_lse[precision] = apt_attention_core_ref(*inputs)
        results[precision] = (ref_out, *grads_by_autograd(apt_attention_core_ref, as_ref([grad_out], precision)[0],
                                                          inputs, (0, 1, 2, 3)))
    # lse is float32 whatever the inputs: flash-attention's rule against the float32 reference, 1e-6 floor.
    lse32 = apt_attention_core_ref(*as_ref((q, k, v, f, m, attn_mask, key_pad, dropout_p, seed), torch.float32))[1]
    assert lse.dtype == torch.float32
    assert_within_reference_error("attention lse", lse.cpu(), lse32, ref_lse[torch.float64])
    for name, got, ref, ref64 in zip(("out", "dq", "dk", "dv", "dF"), (out, *grads), results[dtype],
                                     results[torch.float64]):
        check(f"attention {name}", got, ref, ref64)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_both_stages_every_mask_kind(kind):
    # Two batches where the masks differ per batch element, else one (the interpreter is slow).
    b = 2 if kind in ("bool_4d_heads", "key_padding_and_causal") else 1
    q, k, v, f, grad_mean, grad_out = stage_inputs(torch.float32, b=b)
    attn_mask, key_pad = masks(kind, torch.float32, b=b)
    mean = check_head_mean(q, k, grad_mean, attn_mask, key_pad, torch.float32)
    check_attention(q, k, v, f, mean, attn_mask, key_pad, grad_out, torch.float32)


@pytest.mark.parametrize("shape,kind", [((1, 3, 5, 33, 8), "float_2d"), ((1, 1, 33, 7, 16), "none")], ids=str)
def test_odd_shapes_cross_attention(shape, kind):
    b, h, t, s, d = shape
    q, k, v, f, grad_mean, grad_out = stage_inputs(torch.float32, b=b, h=h, t=t, s=s, d=d)
    attn_mask, key_pad = masks(kind, torch.float32, b=b, h=h, t=t, s=s)
    mean = check_head_mean(q, k, grad_mean, attn_mask, key_pad, torch.float32)
    check_attention(q, k, v, f, mean, attn_mask, key_pad, grad_out, torch.float32)


def test_clamps_fire():
    """The inputs of the tests above reach every clamp: T1 (|s| > 15), T17 (|F + 0.2 (A - M)| > 15), T19 (|o| > 30)."""
    q, k, _, f, _, _ = stage_inputs(torch.float64)
    attn_mask, _ = masks("float_2d", torch.float64)
    scores = (q * D ** -0.5) @ k.transpose(-2, -1) + attn_mask
    a = scores.clamp(-15, 15)
    o_in = f[:, None] + 0.2 * (a - a.mean(1, keepdim=True))
    o = o_in.clamp(-15, 15) + attn_mask
    for name, x, bound in (("T1", scores, 15), ("T17", o_in, 15), ("T19", o, 30)):
        assert (x.abs() > bound).float().mean() > 0.01, name


def test_dropout_same_draw_as_reference():
    q, k, v, f, _, grad_out = stage_inputs(torch.float32, b=1)
    attn_mask, key_pad = masks("key_padding_and_causal", torch.float32, b=1)
    m = randn(1, T, S, seed=8).to(DEVICE)
    check_attention(q, k, v, f, m, attn_mask, key_pad, grad_out, torch.float32, dropout_p=0.3, seed=2**40 + 3)


@pytest.mark.parametrize("kind", ["finite_3d_with_neg_inf", "float_2d", "key_padding_and_causal"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision(dtype, kind):
    """Both stages in fp16 and bf16 against the reference run in that dtype (under the interpreter the bf16 dots
    take fp32 operands widened from bf16: see kernels/flash_attention.py)."""
    q, k, v, f, grad_mean, grad_out = stage_inputs(dtype, q_scale=2.0, b=1)
    attn_mask, key_pad = masks(kind, dtype, b=1)
    mean = check_head_mean(q, k, grad_mean, attn_mask, key_pad, dtype)
    check_attention(q, k, v, f, mean, attn_mask, key_pad, grad_out, dtype)


def test_backend_entry_points_check_and_fill_the_contract():
    q, k, v, f, grad_mean, grad_out = stage_inputs(torch.float32, b=1, h=2, t=5, s=7, d=8)
    with pytest.raises(ValueError, match="key_padding_mask"):
        triton_attention.apt_head_mean_fwd(q, k, None, torch.zeros(1, 6, dtype=torch.bool, device=DEVICE))
    mean = triton_attention.apt_head_mean_fwd(q, k, None, None)
    dq, dk = triton_attention.apt_head_mean_bwd(grad_mean, q, k, None, None)
    out, lse = triton_attention.apt_attention_fwd(q, k, v, f, mean, None, None, 0.0, 0)
    grads = triton_attention.apt_attention_bwd(grad_out, q, k, v, f, mean, None, None, out, lse, 0.0, 0)
    assert (mean.shape, dq.shape, dk.shape) == ((1, 5, 7), q.shape, k.shape)
    assert (out.shape, lse.shape, lse.dtype) == (q.shape, (1, 2, 5), torch.float32)
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape, f.shape]
