"""functional.apt_attention (head-mean kernel, [B, T, S] statistics, final fused attention) against the
reference autopoietic_attention_ref in float64: odd shapes, self and cross attention, every mask kind, key
padding, clamps firing, gradients for q/k/v, tau and the sr convs; the two stage ops at every SIMD level;
dropout; opcheck; torch.compile; bad input."""

import pytest
import torch
from attention_helpers import assert_within_reference_error, max_err, randn
from native_kernels import APT_ATTENTION_OPS, native_kernels_fixture

import apt_fast.functional as AF
from apt_fast.models.apt.attention import AutopoieticAttention
from apt_fast.reference.apt_attention import autopoietic_attention_ref, expand_attn_mask
from apt_fast.reference.apt_attention_ops import apt_attention_core_ref, apt_head_mean_ref, grads_by_autograd

# Every test here runs the native CPU kernels through torch.ops.apt_fast: skipped, with the reason, where they
# cannot serve (no apt_fast._C, APT_FAST_BACKEND=reference), failed where another implementation is registered.
served_natively = native_kernels_fixture(*APT_ATTENTION_OPS)

NAMES = ("out", "dq", "dk", "dv", "sr_conv1.weight", "sr_conv1.bias", "sr_conv2.weight", "sr_conv2.bias", "tau")


def assert_like_the_reference(name, got, ref32, ref64):
    """flash-attention's rule with a floor of 2e-6 of the result's scale (as the Triton kernels' tests): the
    backward recomputes P = exp(logits - lse) from a float32 lse, and APT's logits reach +-30, so P carries a
    relative error of about |lse| 2^-24 ~ 2e-6 that the reference's softmax has not."""
    assert_within_reference_error(name, got, ref32, ref64, atol=2e-6 * max(ref64.abs().max().item(), 1.0))


def cast(xs, dtype):
    """The floating tensors of xs in dtype (masks and other arguments as they are)."""
    return [x.detach().to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in xs]


def sr_params(width, seed=0):
    torch.manual_seed(seed)
    module = AutopoieticAttention(width, 1, epsilon=0.08, init_tau=1.2, sr_ratio=4)
    with torch.no_grad():
        module.sr_conv1.bias.uniform_(-1.0, 1.0)
        module.sr_conv2.bias.fill_(0.1)
    return [module.sr_conv1.weight, module.sr_conv1.bias, module.sr_conv2.weight, module.sr_conv2.bias, module.tau]


def run(fn, q, k, v, params, grad_out, dtype, **kw):
    leaves = [x.detach().to(dtype).requires_grad_() for x in (q, k, v, *params)]
    mask = kw.pop("attn_mask", None)
    if mask is not None and mask.is_floating_point():
        mask = mask.to(dtype)
    out = fn(*leaves, epsilon=0.08, attn_mask=mask, **kw)
    out = out[0] if isinstance(out, tuple) else out
    return (out, *torch.autograd.grad(out, leaves, grad_out.to(dtype)))


def compare(b, h, t, s, d, q_scale=1.0, **kw):
    q, k, v = (randn(b, h, t, d, seed=1, scale=q_scale), randn(b, h, s, d, seed=2, scale=q_scale),
               randn(b, h, s, d, seed=3))
    params = sr_params(h * d)
    grad_out = randn(b, h, t, d, seed=4)
    got = run(AF.apt_attention, q, k, v, params, grad_out, torch.float32, **dict(kw))
    ref32 = run(autopoietic_attention_ref, q, k, v, params, grad_out, torch.float32, **dict(kw))
    ref64 = run(autopoietic_attention_ref, q, k, v, params, grad_out, torch.float64, **dict(kw))
    for name, a, r, e in zip(NAMES, got, ref32, ref64):
        err, ref_err, scale = max_err(a, e), max_err(r, e), e.abs().max().item()
        # q/k/v/out: flash-attention's 2x rule. The sr and tau gradients are O(1/S) sums of cancelling terms:
        # 1e-4 of their own max (plus 8x the fp32 reference's error).
        allowed = 2 * ref_err + 2e-6 * max(scale, 1.0) if name in NAMES[:4] else 8 * ref_err + 1e-4 * scale
        assert err <= allowed + 1e-12, (f"{name}: error {err:.2e} > {allowed:.2e} (fp32 reference's error "
                                        f"{ref_err:.2e}, max {scale:.2e})")


@pytest.mark.parametrize("b, h, t, s, d", [(2, 3, 97, 31, 13), (1, 8, 40, 40, 8), (2, 1, 5, 70, 7), (1, 2, 1, 9, 4)])
def test_shapes_cross_and_self(b, h, t, s, d):
    compare(b, h, t, s, d)


def test_clamps_fire():
    compare(2, 2, 33, 41, 16, q_scale=4.0)


def causal(t):
    return torch.triu(torch.full((t, t), float("-inf")), 1)


@pytest.mark.parametrize("mask_kind", ["float_causal_2d", "bool_2d", "finite_3d", "bool_4d_heads", "kpm_only",
                                       "kpm_and_causal"])
def test_masks(mask_kind):
    b, h, t = 2, 3, 29
    gen = torch.Generator().manual_seed(5)
    kpm = torch.zeros(b, t, dtype=torch.bool)
    kpm[1, -4:] = True
    masks = {
        "float_causal_2d": dict(attn_mask=causal(t)),
        "bool_2d": dict(attn_mask=torch.rand(t, t, generator=gen) > 0.7),
        "finite_3d": dict(attn_mask=torch.where(torch.rand(b, t, t, generator=gen) > 0.8, -5.0, 0.0)),
        "bool_4d_heads": dict(attn_mask=torch.rand(b, h, t, t, generator=gen) > 0.6),
        "kpm_only": dict(key_padding_mask=kpm),
        "kpm_and_causal": dict(attn_mask=causal(t), key_padding_mask=kpm),
    }
    compare(b, h, t, t, 8, q_scale=2.0, **masks[mask_kind])


def test_stage_ops_at_every_simd_tier(simd_tier):
    b, h, t, s, d = 2, 2, 37, 45, 12
    q, k, v = randn(b, h, t, d, seed=1, scale=3.0), randn(b, h, s, d, seed=2, scale=3.0), randn(b, h, s, d, seed=3)
    mask = expand_attn_mask(torch.rand(t, s, generator=torch.Generator().manual_seed(0)) > 0.7, b, torch.float32)
    kpm = torch.zeros(b, s, dtype=torch.bool)
    kpm[0, :5] = True
    f, grad_m, grad_out = randn(b, t, s, seed=6, scale=3.0), randn(b, t, s, seed=7), randn(b, h, t, d, seed=8)
    m = torch.ops.apt_fast.apt_head_mean_fwd(q, k, mask, kpm)
    dq, dk = torch.ops.apt_fast.apt_head_mean_bwd(grad_m, q, k, mask, kpm)
    out, lse = torch.ops.apt_fast.apt_attention_fwd(q, k, v, f, m, mask, kpm, 0.0, 0)
    grads = torch.ops.apt_fast.apt_attention_bwd(grad_out, q, k, v, f, m, mask, kpm, out, lse, 0.0, 0)
    ref = {}
    for dtype in (torch.float32, torch.float64):
        head_mean_args = cast((q, k, mask, kpm), dtype)
        ref_m = apt_head_mean_ref(*head_mean_args)
        ref_dq, ref_dk = grads_by_autograd(apt_head_mean_ref, grad_m.to(dtype), head_mean_args, (0, 1))
        args = cast((q, k, v, f, m, mask, kpm, 0.0, 0), dtype)  # the kernel's own M, as its attention stage gets
        ref_out, ref_lse = apt_attention_core_ref(*args)
        ref[dtype] = (ref_m, ref_dq, ref_dk, ref_out, ref_lse,
                      *grads_by_autograd(apt_attention_core_ref, grad_out.to(dtype), args, (0, 1, 2, 3)))
    names = ("M", "head mean dq", "head mean dk", "out", "lse", "dq", "dk", "dv", "dF")
    for name, got, r32, r64 in zip(names, (m, dq, dk, out, lse, *grads), ref[torch.float32], ref[torch.float64]):
        if name in names[:3]:  # the head mean: no softmax, flash-attention's rule with its 1e-6 floor
            assert_within_reference_error(name, got, r32, r64)
        else:
            assert_like_the_reference(name, got, r32, r64)


def test_dropout_same_draw_as_reference_stage_and_statistics():
    b, h, t, s, d = 1, 2, 16, 300, 4
    q, k, v = randn(b, h, t, d, seed=1), randn(b, h, s, d, seed=2), randn(b, h, s, d, seed=3)
    f, m = randn(b, t, s, seed=4), randn(b, t, s, seed=5)
    out, _ = torch.ops.apt_fast.apt_attention_fwd(q, k, v, f, m, None, None, 0.2, 77)
    assert_like_the_reference("out with dropout", out,
                              *[apt_attention_core_ref(*cast((q, k, v, f, m, None, None, 0.2, 77), dtype))[0]
                                for dtype in (torch.float32, torch.float64)])
    params = sr_params(h * d)
    runs = torch.stack([AF.apt_attention(q, k, v, *params, epsilon=0.08, dropout_p=0.2) for _ in range(100)])
    plain = AF.apt_attention(q, k, v, *params, epsilon=0.08)
    assert (runs.mean(0) - plain).abs().max() < 0.05  # inverted dropout is unbiased


def test_opcheck():
    b, h, t, s, d = 2, 2, 6, 5, 4
    q, k, v = randn(b, h, t, d, seed=1), randn(b, h, s, d, seed=2), randn(b, h, s, d, seed=3)
    mask = expand_attn_mask(causal(6)[:, :5], b, torch.float32)
    kpm = torch.zeros(b, s, dtype=torch.bool)
    kpm[1, 0] = True
    f, m = randn(b, t, s, seed=4), torch.ops.apt_fast.apt_head_mean_fwd(q, k, mask, kpm)
    out, lse = torch.ops.apt_fast.apt_attention_fwd(q, k, v, f, m, mask, kpm, 0.0, 0)
    utils = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    ops = torch.ops.apt_fast
    torch.library.opcheck(ops.apt_head_mean_fwd.default, (q, k, mask, kpm), test_utils=utils)
    torch.library.opcheck(ops.apt_head_mean_bwd.default, (torch.randn_like(m), q, k, mask, kpm), test_utils=utils)
    torch.library.opcheck(ops.apt_attention_fwd.default, (q, k, v, f, m, mask, kpm, 0.0, 0), test_utils=utils)
    torch.library.opcheck(ops.apt_attention_bwd.default,
                          (torch.randn_like(out), q, k, v, f, m, mask, kpm, out, lse, 0.0, 0), test_utils=utils)


def test_torch_compile_fullgraph():
    b, h, t, d = 1, 2, 12, 4
    q, k, v = randn(b, h, t, d, seed=1), randn(b, h, t, d, seed=2), randn(b, h, t, d, seed=3)
    params = sr_params(h * d)

    def step(q):
        return AF.apt_attention(q * 1.5, k, v, *params, epsilon=0.08, attn_mask=causal(t)).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    q1, q2 = q.clone().requires_grad_(), q.clone().requires_grad_()
    compiled(q1).backward()
    step(q2).backward()
    torch.testing.assert_close(q1.grad, q2.grad)


def test_non_contiguous_inputs_match():
    b, h, t, d = 2, 3, 21, 8
    qkv = randn(b, t, 3, h, d, seed=0, scale=2.0)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, T, d] strided views
    params = sr_params(h * d)
    got = AF.apt_attention(q, k, v, *params, epsilon=0.08)
    want = [autopoietic_attention_ref(*cast((q.contiguous(), k.contiguous(), v.contiguous(), *params), dtype),
                                      epsilon=0.08)[0] for dtype in (torch.float32, torch.float64)]
    assert_like_the_reference("out", got, *want)


@pytest.mark.parametrize("change, message", [
    (dict(key_padding_mask=torch.zeros(2, 5)), "key_padding_mask must be bool, got float32"),
    (dict(key_padding_mask=torch.zeros(2, 4, dtype=torch.bool)),
     "key_padding_mask must have shape [B, S] = [2, 5], got (2, 4)"),
    (dict(attn_mask=torch.zeros(5)), "attn_mask must be 2D, 3D or 4D, got shape (5,)"),
    (dict(attn_mask=torch.zeros(3, 5, 5)), "a 3D attn_mask must have batch size 2 in dim 0, got shape (3, 5, 5)"),
    (dict(attn_mask=torch.zeros(5, 4)),
     "attn_mask must be broadcastable to [B, H, T, S] = [2, 2, 5, 5], got shape (1, 1, 5, 4)"),
])
def test_bad_input(change, message):
    q = torch.zeros(2, 2, 5, 4)
    with pytest.raises(ValueError) as info:
        AF.apt_attention(q, q, q, *sr_params(8), epsilon=0.08, **change)
    assert str(info.value) == message


def test_module_rejects_heads_that_do_not_divide_the_width():
    from apt_fast.modules import FusedAPTAttention

    with pytest.raises(ValueError, match=r"num_heads \(3\) must divide the attention width \(8\)"):
        FusedAPTAttention(AutopoieticAttention(8, 2), num_heads=3, epsilon=0.08, dropout=0.0, use_autopoietic=True)
