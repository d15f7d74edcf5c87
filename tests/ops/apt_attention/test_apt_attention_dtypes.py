"""APT attention's dtypes at the op layer: mixed dtypes between q, k, v, the masks, outputs and gradients are
refused with both tensors and both dtypes named, in every stage op, forward and backward; the [B, T, S] maps M, F
and their gradients are float32 whatever q's dtype; the statistics take float32 sr-conv/tau parameters with a
bf16/fp16 M and return their gradients in float32; fp16 runs; the patched attention works under torch.autocast."""

import copy

import pytest
import torch
from attention_helpers import max_err, randn

import apt_fast
import apt_fast.functional as AF
from apt_fast.models.apt.attention import AutopoieticAttention
from apt_fast.ops.apt_stats import STATS_SIZE

B, H, T, S, D = 2, 2, 9, 7, 8
F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
EPSILON = 0.08
ops = torch.ops.apt_fast


def qkv(dtypes=(F32, F32, F32)):
    return [randn(B, H, n, D, seed=i, dtype=dt) for i, (n, dt) in enumerate(zip((T, S, S), dtypes))]


def sr_params(dtype=F32):
    torch.manual_seed(0)
    module = AutopoieticAttention(H * D, H, epsilon=EPSILON, init_tau=1.2, sr_ratio=4)
    return [p.detach().to(dtype) for p in (module.sr_conv1.weight, module.sr_conv1.bias, module.sr_conv2.weight,
                                           module.sr_conv2.bias, module.tau)]


def maps(dtype, n=2):
    return [randn(B, T, S, seed=20 + i, dtype=dtype) for i in range(n)]


def stage_call(stage, q, k, v, f=None, m=None, attn_mask=None, grad_out=None, out=None):
    """Calls one stage op with q/k/v and the [B, T, S] maps (float32 unless given)."""
    f, m = (f if f is not None else maps(F32)[0]), (m if m is not None else maps(F32)[1])
    grad_out = grad_out if grad_out is not None else torch.zeros_like(q)
    out = out if out is not None else torch.zeros_like(q)
    lse = torch.zeros(q.shape[:3])
    if stage == "head_mean_fwd":
        return ops.apt_head_mean_fwd(q, k, attn_mask, None)
    if stage == "head_mean_bwd":
        return ops.apt_head_mean_bwd(m, q, k, attn_mask, None)
    if stage == "attention_fwd":
        return ops.apt_attention_fwd(q, k, v, f, m, attn_mask, None, 0.0, 0)
    return ops.apt_attention_bwd(grad_out, q, k, v, f, m, attn_mask, None, out, lse, 0.0, 0)


STAGES = ["head_mean_fwd", "head_mean_bwd", "attention_fwd", "attention_bwd"]


@pytest.mark.parametrize("dtypes, message", [
    ((F32, BF16, BF16), "q and k must have the same dtype, got q float32 and k bfloat16"),
    ((BF16, F16, F16), "q and k must have the same dtype, got q bfloat16 and k float16"),
], ids=str)
@pytest.mark.parametrize("stage", STAGES)
def test_mixed_q_k_name_both(stage, dtypes, message):
    q, k, v = qkv(dtypes)
    with pytest.raises(ValueError) as info:
        stage_call(stage, q, k, v)
    assert str(info.value) == message


@pytest.mark.parametrize("stage", ["attention_fwd", "attention_bwd"])
def test_mixed_k_v_name_both(stage):
    q, k, v = qkv((BF16, BF16, F32))
    with pytest.raises(ValueError) as info:
        stage_call(stage, q, k, v)
    assert str(info.value) == "k and v must have the same dtype, got k bfloat16 and v float32"


@pytest.mark.parametrize("stage, change, message", [
    ("head_mean_fwd", dict(attn_mask=torch.zeros(1, 1, T, S)),
     "q and attn_mask must have the same dtype, got q bfloat16 and attn_mask float32"),
    ("head_mean_bwd", dict(m=torch.zeros(B, T, S, dtype=BF16)),
     "grad_mean must be float32 (APT's [B, T, S] maps stay fp32 whatever q's dtype), got grad_mean bfloat16 with "
     "q bfloat16"),
    ("attention_fwd", dict(f=torch.zeros(B, T, S, dtype=BF16)),
     "f must be float32 (APT's [B, T, S] maps stay fp32 whatever q's dtype), got f bfloat16 with q bfloat16"),
    ("attention_fwd", dict(m=torch.zeros(B, T, S, dtype=F16)),
     "m must be float32 (APT's [B, T, S] maps stay fp32 whatever q's dtype), got m float16 with q bfloat16"),
    ("attention_bwd", dict(attn_mask=torch.zeros(1, 1, T, S)),
     "q and attn_mask must have the same dtype, got q bfloat16 and attn_mask float32"),
    ("attention_bwd", dict(grad_out=torch.zeros(B, H, T, D)),
     "q and grad_out must have the same dtype, got q bfloat16 and grad_out float32"),
    ("attention_bwd", dict(out=torch.zeros(B, H, T, D, dtype=F16)),
     "q and out must have the same dtype, got q bfloat16 and out float16"),
], ids=str)
def test_maps_masks_outputs_of_another_dtype_name_both(stage, change, message):
    q, k, v = qkv((BF16,) * 3)
    with pytest.raises(ValueError) as info:
        stage_call(stage, q, k, v, **change)
    assert str(info.value) == message


def stats_bwd(m, params, grad_f=None, r0=None, attn_mask=None):
    grad_f = grad_f if grad_f is not None else torch.zeros_like(m)
    r0 = r0 if r0 is not None else torch.zeros_like(m)
    stats = torch.zeros(B, STATS_SIZE, dtype=torch.float64)
    return ops.apt_stats_bwd(grad_f, m, attn_mask, *params, EPSILON, r0, stats)


@pytest.mark.parametrize("call, message", [
    (lambda m, p: ops.apt_stats_fwd(m, torch.zeros(1, 1, T, S, dtype=torch.float64), *p, EPSILON),
     "attn_mask must be float32 or bfloat16 or float16, got float64"),
    (lambda m, p: ops.apt_stats_fwd(m, None, p[0].to(torch.int32), *p[1:], EPSILON),
     "sr_conv1_weight must be float32 or bfloat16 or float16, got int32"),
    (lambda m, p: stats_bwd(m, (*p[:4], p[4].double())), "tau must be float32 or bfloat16 or float16, got float64"),
    (lambda m, p: stats_bwd(m, p, grad_f=torch.zeros(B, T, S)),
     "m and grad_f must have the same dtype, got m bfloat16 and grad_f float32"),
    (lambda m, p: stats_bwd(m, p, r0=torch.zeros(B, T, S, dtype=F16)),
     "m and r0 must have the same dtype, got m bfloat16 and r0 float16"),
], ids=["fwd attn_mask", "fwd sr_conv1_weight", "bwd tau", "bwd grad_f", "bwd r0"])
def test_statistics_name_both_dtypes(call, message):
    with pytest.raises(ValueError) as info:
        call(maps(BF16, 1)[0], sr_params())
    assert str(info.value) == message


@pytest.mark.parametrize("m_dtype", [BF16, F16], ids=str)
def test_statistics_take_float32_parameters_with_half_m(m_dtype):
    """Autocast's case: F in m's dtype, dM in m's dtype, the parameters' gradients in float32, and the numbers
    those of the parameters rounded to m's dtype within 2 ulps of m's dtype (the kernel reads them in fp32)."""
    m, params = maps(m_dtype, 1)[0], sr_params()
    f, r0, stats = ops.apt_stats_fwd(m, None, *params, EPSILON)
    f_rounded, _, _ = ops.apt_stats_fwd(m, None, *[p.to(m_dtype) for p in params], EPSILON)
    assert f.dtype == m_dtype and r0.dtype == m_dtype
    ulp = torch.finfo(m_dtype).eps
    assert max_err(f, f_rounded) <= 2 * ulp * f_rounded.abs().max().item()
    grads = ops.apt_stats_bwd(torch.ones_like(f), m, None, *params, EPSILON, r0, stats)
    assert grads[0].dtype == m_dtype and all(g.dtype == F32 for g in grads[1:])
    assert all(torch.isfinite(g).all() for g in grads)


def test_fp16_runs_and_returns_fp16():
    """fp16 q/k/v (computed in float32 on the CPU, in fp16 with fp32 accumulation in the Triton kernels): out and
    every gradient fp16, finite, and within 2x the error of the whole reference module in fp16 against float64."""
    from apt_fast.reference.apt_attention import autopoietic_attention_ref

    q, k, v = qkv((F16,) * 3)
    grad_out = randn(B, H, T, D, seed=9, dtype=F16)

    def run(fn, dtype):
        leaves = [x.to(dtype).requires_grad_() for x in (q, k, v, *sr_params())]
        out = fn(*leaves, epsilon=EPSILON)
        out = out[0] if isinstance(out, tuple) else out
        return (out, *torch.autograd.grad(out, leaves[:3], grad_out.to(dtype)))

    got, ref16, ref64 = run(AF.apt_attention, F16), run(autopoietic_attention_ref, F16), \
        run(autopoietic_attention_ref, torch.float64)
    for name, a, r, r64 in zip(("out", "dq", "dk", "dv"), got, ref16, ref64):
        assert a.dtype == F16 and torch.isfinite(a).all(), name
        assert max_err(a, r64) <= 2 * max_err(r, r64) + 1e-3, name


def test_patched_attention_under_autocast_bf16():
    """A patched AutopoieticAttention under torch.autocast("cpu", bfloat16): bf16 q/k/v from the projections,
    float32 sr convs and tau; out bf16 and every parameter gradient float32. Against the unpatched module in
    float64, each is within 2x the error of the unpatched module under the same autocast (the sr-conv gradients,
    O(1/S) sums of cancelling terms: 8x, as test_apt_attention_op). The patched module keeps M and the statistics
    in float32, so it takes fp32's quantile path and trains tau, where the unpatched module under autocast gets a
    bf16 M, skips the quantiles (torch.quantile refuses bf16) and leaves tau without a gradient: measured over three
    seeds, the patched errors are 0.02-1.4x the unpatched ones, and tau's gradient is within 0.07-0.9% of float64's
    (held to 2^-6, four bf16 roundings)."""
    torch.manual_seed(0)
    upstream = AutopoieticAttention(32, 4, epsilon=EPSILON, init_tau=1.2, sr_ratio=4)
    holder = torch.nn.Sequential(copy.deepcopy(upstream))
    apt_fast.patch(holder)
    x, memory, grad_out = randn(2, 33, 32, seed=1), randn(2, 41, 32, seed=2), randn(2, 33, 32, seed=3)

    def run(module, dtype, autocast):
        module = copy.deepcopy(module).to(dtype)
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            out = module(x.to(dtype), memory.to(dtype), memory.to(dtype))[0]
        out.backward(grad_out.to(out.dtype))
        return {"out": out.detach(), **{name: p.grad for name, p in module.named_parameters() if p.grad is not None}}

    got, ref, ref64 = run(holder[0], F32, True), run(upstream, F32, True), run(upstream, torch.float64, False)
    assert got["out"].dtype == BF16
    assert set(got) == set(ref64) and set(ref) == set(got) - {"tau"}
    assert got["tau"].dtype == F32
    assert max_err(got["tau"], ref64["tau"]) <= 2.0 ** -6 * ref64["tau"].abs().item()
    for name, value in ref.items():
        assert name == "out" or got[name].dtype == F32, name
        slack = 8 if name.startswith("sr_conv") else 2
        assert max_err(got[name], ref64[name]) <= slack * max_err(value, ref64[name]), name
