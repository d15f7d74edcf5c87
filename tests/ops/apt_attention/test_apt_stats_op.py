"""The APT statistics ops (T3-T16, apt_stats_fwd / _bwd) against apt_fast.reference's shared_map_ref: F and
every gradient (M, sr_conv1/2, tau) at float64 within 2x the float32 reference's own error, through masks,
saturated clamps, the quantile-free fallback and the abnormal case; the quartiles' order statistics exactly
as torch.quantile picks them (ties, tiny n); every SIMD level; opcheck."""

import pytest
import torch
from attention_helpers import max_err, randn
from native_kernels import native_kernels_fixture

from apt_fast import _native
from apt_fast.models.apt.attention import AutopoieticAttention
from apt_fast.ops.apt_stats import STATS_SIZE
from apt_fast.reference.apt_attention import expand_attn_mask, shared_map_ref

# Every test here runs the native CPU kernels through torch.ops.apt_fast: skipped, with the reason, where they
# cannot serve (no apt_fast._C, APT_FAST_BACKEND=reference), failed where another implementation is registered.
served_natively = native_kernels_fixture("apt_stats_fwd", "apt_stats_bwd")

EPSILON = 0.08
NAMES = ("f", "dm", "sr_conv1.weight", "sr_conv1.bias", "sr_conv2.weight", "sr_conv2.bias", "tau")
# Indices into the saved per-batch scalars (csrc/apt_stats.h).
ALPHA, RATIO, DELTA, MODE, TEMP = 23, 18, 24, 25, 26
QUANTILE_INDICES = slice(34, 38)  # q25 lo, hi, q75 lo, hi


def sr_params(hidden=16, seed=0, tau=1.2):
    torch.manual_seed(seed)
    module = AutopoieticAttention(4 * hidden, 1, epsilon=EPSILON, init_tau=tau, sr_ratio=4)
    with torch.no_grad():
        module.sr_conv1.weight.mul_(8.0)  # knots inside the range of X, some units saturated
        module.sr_conv1.bias.uniform_(-2.0, 2.0, generator=torch.Generator().manual_seed(seed))
        module.sr_conv2.weight.mul_(4.0)
        module.sr_conv2.bias.fill_(0.05)
    return [p.detach() for p in (module.sr_conv1.weight, module.sr_conv1.bias, module.sr_conv2.weight,
                                 module.sr_conv2.bias, module.tau)]


def head_mean_like(b, t, s, seed, scale=2.0, mask=None):
    m = randn(b, t, s, seed=seed, scale=scale).clamp(-15.0, 15.0)
    if mask is not None:  # masked cells are exactly -10, as the head mean makes them
        m = torch.where(torch.isinf(mask[:, 0]).expand_as(m), torch.full_like(m, -10.0), m)
    return m


def fused(m, mask, params, grad_f):
    leaves = [x.clone().requires_grad_() for x in (m, *params)]
    f, r0, stats = torch.ops.apt_fast.apt_stats_fwd(leaves[0], mask, *leaves[1:], EPSILON)
    grads = torch.ops.apt_fast.apt_stats_bwd(grad_f, leaves[0], mask, *leaves[1:], EPSILON, r0, stats)
    return (f, *grads)


def reference(m, mask, params, grad_f, dtype):
    leaves = [x.detach().to(dtype).requires_grad_() for x in (m, *params)]
    f = shared_map_ref(leaves[0], None if mask is None else mask.to(dtype), *leaves[1:], EPSILON)
    return (f, *torch.autograd.grad(f, leaves, grad_f.to(dtype), materialize_grads=True))


def split_ties(grads, tied):
    """dM outside the tied (masked) cells, and its sum over them per batch element: the quartiles' gradient
    goes to one of several equal Φ there, torch's choice among ties being unspecified (the head mean's
    backward then drops dM at masked cells anyway)."""
    dm = grads[1]
    return (grads[0], dm.masked_fill(tied, 0.0), (dm * tied).sum((1, 2)), *grads[2:])


def compare(m, mask, params, grad_f, slack=2.0):
    got = fused(m, mask, params, grad_f)
    ref32 = reference(m, mask, params, grad_f, torch.float32)
    ref64 = reference(m, mask, params, grad_f, torch.float64)
    if mask is not None and torch.isinf(mask).any():
        tied = torch.isinf(mask[:, 0]).expand_as(m)
        got, ref32, ref64 = (split_ties(x, tied) for x in (got, ref32, ref64))
        names = (*NAMES[:2], "dm over masked cells", *NAMES[2:])
    else:
        names = NAMES
    for name, a, r, e in zip(names, got, ref32, ref64):
        assert torch.equal(a.isnan(), e.isnan()), f"{name}: NaN in different places"  # S = 1: upstream's NaN
        a, r, e = (x.nan_to_num() for x in (a, r, e))
        err, ref_err, scale = max_err(a, e), max_err(r, e), e.abs().max().item()
        allowed = slack * ref_err + 1e-6 * max(scale, 1.0)
        assert err <= allowed, (f"{name}: error {err:.2e} > {allowed:.2e} = {slack} x the fp32 reference's "
                                f"{ref_err:.2e} + 1e-6 x max(max {scale:.2e}, 1)")


@pytest.mark.parametrize("b, t, s", [(2, 37, 45), (1, 1, 9), (3, 16, 1), (1, 64, 130)])
def test_against_reference(b, t, s):
    compare(head_mean_like(b, t, s, seed=1), None, sr_params(), randn(b, t, s, seed=2))


@pytest.mark.parametrize("kind", ["float_causal", "bool", "finite_heads"])
def test_masks(kind):
    b, t = 2, 33
    gen = torch.Generator().manual_seed(3)
    mask = {"float_causal": torch.triu(torch.full((t, t), float("-inf")), 1),
            "bool": torch.rand(t, t, generator=gen) > 0.7,
            "finite_heads": torch.where(torch.rand(b, 3, t, t, generator=gen) > 0.8, -5.0, 0.0)}[kind]
    mask = expand_attn_mask(mask, b, torch.float32)
    compare(head_mean_like(b, t, t, seed=4, mask=mask), mask, sr_params(), randn(b, t, t, seed=5))


@pytest.mark.parametrize("tau, scale", [(0.7, 2.0), (1.7, 2.0), (1.2, 0.05), (1.2, 14.0)])
def test_saturated_clamps(tau, scale):
    """beta, t*, the variance floors, max|M| and the width clamp on either side of their bounds."""
    b, t, s = 2, 24, 40
    compare(head_mean_like(b, t, s, seed=6, scale=scale), None, sr_params(tau=tau), randn(b, t, s, seed=7))


def test_half_dtype_falls_back_without_quantiles():
    b, t, s = 2, 12, 20
    m, params = head_mean_like(b, t, s, seed=8).bfloat16(), [p.bfloat16() for p in sr_params()]
    f, _, stats = torch.ops.apt_fast.apt_stats_fwd(m, None, *params, EPSILON)
    assert (stats[:, MODE] == 1).all()
    want = shared_map_ref(m, None, *params, EPSILON)  # upstream's fallback too, all in bf16
    assert max_err(f, want) <= 2 * 2.0**-8 * want.abs().max().item()  # within two bf16 ulps


def test_abnormal_when_tau_is_nan():
    """T16: F = clamp(M, -10, 10); dM is NaN, as upstream's 0 * NaN through the unused branch (the kernel makes
    the parameter gradients NaN too; upstream's are NaN or 0 depending on which clamps pass)."""
    b, t, s = 2, 8, 8
    m, params, grad_f = head_mean_like(b, t, s, seed=9, scale=4.0), sr_params(), randn(b, t, s, seed=10)
    params[-1] = torch.full((1,), float("nan"))
    got = fused(m, None, params, grad_f)
    ref = reference(m, None, params, grad_f, torch.float64)
    assert max_err(got[0], ref[0]) == 0.0
    assert got[1].isnan().all() and ref[1].isnan().all()
    assert all(g.isnan().all() for g in got[2:])


@pytest.mark.parametrize("b, t, s, ties", [(2, 30, 50, False), (1, 1, 1, False), (1, 1, 2, False), (1, 1, 3, False),
                                           (2, 31, 31, True), (1, 1, 5, True)])
def test_quartiles_are_torch_quantiles_order_statistics(b, t, s, ties):
    """Φ rebuilt from the saved scalars (the kernel's own float32 arithmetic) has torch.quantile's order
    statistics at the saved indices, and t* is computed from them."""
    mask = None
    if ties:  # masked cells: equal Φ within each row
        mask = expand_attn_mask(torch.triu(torch.full((t, s), float("-inf")), 1), b, torch.float32)
    m, params = head_mean_like(b, t, s, seed=11, mask=mask), sr_params()
    _, r0, stats = torch.ops.apt_fast.apt_stats_fwd(m, mask, *params, EPSILON)
    coef = stats.float()[:, :, None, None]  # [B, STATS_SIZE, 1, 1]
    phi = ((coef[:, ALPHA] * r0 + coef[:, RATIO] * m) + coef[:, DELTA]).reshape(b, -1)
    for i in range(b):
        flat = phi[i]
        ordered = flat.sort().values
        for q, (lo, hi) in ((0.25, (0, 1)), (0.75, (2, 3))):
            rank = torch.tensor(q, dtype=torch.float32) * (flat.numel() - 1)
            idx = stats[i, QUANTILE_INDICES].long()
            assert flat[idx[lo]] == ordered[int(rank.floor())] and flat[idx[hi]] == ordered[int(rank.ceil())]
        q25, q75 = torch.quantile(flat, torch.tensor([0.25, 0.75]))
        width = (q75.double() - q25.double()).clamp(0.5, 5.0)
        temp = (params[-1].double().clamp(1.0, 1.5) * (1 + 0.1 * torch.log1p(width))).clamp(1.0, 2.0)
        assert abs(stats[i, TEMP].item() - temp.item()) < 1e-12


def test_every_simd_tier(simd_tier):
    b, t, s = 2, 19, 23
    mask = expand_attn_mask(torch.rand(t, s, generator=torch.Generator().manual_seed(0)) > 0.7, b, torch.float32)
    compare(head_mean_like(b, t, s, seed=12), mask, sr_params(), randn(b, t, s, seed=13))


def test_saved_scalars_size_matches_native():
    assert _native.native().apt_stats_size == STATS_SIZE


def test_opcheck():
    b, t, s = 2, 6, 5
    mask = expand_attn_mask(torch.triu(torch.full((t, s), float("-inf")), 1), b, torch.float32)
    m, params = head_mean_like(b, t, s, seed=14, mask=mask), sr_params()
    f, r0, stats = torch.ops.apt_fast.apt_stats_fwd(m, mask, *params, EPSILON)
    utils = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(torch.ops.apt_fast.apt_stats_fwd.default, (m, mask, *params, EPSILON), test_utils=utils)
    torch.library.opcheck(torch.ops.apt_fast.apt_stats_bwd.default,
                          (torch.randn_like(f), m, mask, *params, EPSILON, r0, stats), test_utils=utils)


def test_bad_input():
    m, params = torch.zeros(2, 4, 5), sr_params()
    with pytest.raises(ValueError, match=r"tau must have shape \[1\], got \(2,\)"):
        torch.ops.apt_fast.apt_stats_fwd(m, None, *params[:-1], torch.ones(2), EPSILON)
    with pytest.raises(ValueError, match=r"m must be 3-D"):
        torch.ops.apt_fast.apt_stats_fwd(m[0], None, *params, EPSILON)
