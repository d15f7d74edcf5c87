"""The vectorised autopoietic attention against a looped float64 transcription of APT_SPEC.md §2."""

from __future__ import annotations

import math

import pytest
import torch

from apt_fast.models.apt.attention import AutopoieticAttention
from apt_fast.reference.apt_attention import (
    attention_scores,
    autopoietic_attention_ref,
    autopoietic_transform_ref,
    expand_attn_mask,
)


def _looped_transform(s, m, w1, b1, w2, b2, tau, epsilon):
    """Spec §2.2 as written: one batch element at a time, one head at a time, host-side branches."""
    batch, heads, t, n = s.shape
    e = float(torch.tensor(epsilon, dtype=torch.float32).clamp(0.05, 0.8))
    out = torch.empty_like(s)
    for b in range(batch):
        a_h = [torch.clamp(torch.nan_to_num(s[b, h], nan=0.0, posinf=10.0, neginf=-10.0), -15, 15)
               for h in range(heads)]
        mean = sum(a_h) / heads  # T2
        x = torch.clamp(torch.clamp(mean, -8, 8) * e, -10, 10)  # T3
        hidden = [torch.relu(torch.clamp(w1[k] * x + b1[k], -5, 5)) for k in range(w1.shape[0])]  # T4
        a = torch.clamp(sum(w2[k] * hidden[k] for k in range(w1.shape[0])) + b2, -5, 5)
        tau_t = torch.clamp(1 + 0.05 * (50 * a), 0.5, 1.5)  # T5
        if m is not None:
            tau_t = torch.where(m[min(b, m.shape[0] - 1), 0].bool(), torch.ones_like(tau_t), tau_t)
        gate = torch.sigmoid(tau_t)  # T6
        p = torch.softmax(torch.clamp(mean, -10, 10), dim=-1)  # T7
        entropy = -p * torch.log(p + 1e-6)
        fm = torch.softmax(3 * entropy, dim=-1)
        r0 = gate * fm  # T8
        r = torch.clamp((torch.norm(mean) + 1e-4) / (torch.norm(r0) + 1e-4), 0.8, 1.2) * r0  # T9
        mu_r, mu_m = r.mean(), mean.mean()  # T10
        v_r = torch.clamp(((r - mu_r) ** 2).mean(), min=0.01)
        v_m = torch.clamp(((mean - mu_m) ** 2).mean(), min=0.01)
        g = torch.clamp(torch.sqrt(v_m) / torch.sqrt(v_r), 0.8, 1.2)
        rho = torch.clamp(mean.abs().max(), 1, 10)  # T11
        c = torch.clamp(0.3 * (1 / torch.log(1 + rho)), 0.1, 0.5)
        u = mu_r + (c * g) * (r - mu_r)  # T12
        eta = entropy.mean() / (-torch.log(torch.tensor(1.0 / n)))  # T13
        ratio = 0.4 + torch.clamp(eta, 0, 0.4)
        phi = (1 - ratio) * u + ratio * mean  # T14
        if t * n <= 2**24 and phi.dtype in (torch.float32, torch.float64):  # T15
            beta = torch.clamp(tau, 1, 1.5)
            q75, q25 = torch.quantile(phi.flatten(), 0.75), torch.quantile(phi.flatten(), 0.25)
            width = torch.clamp(q75 - q25, 0.5, 5)
            phi_t = torch.clamp(phi / torch.clamp(beta * (1 + 0.1 * torch.log1p(width)), 1, 2), -15, 15)
        else:
            phi_t = torch.clamp(phi, -10, 10)
        if (torch.isnan(phi_t) | torch.isinf(phi_t)).float().mean().item() > 0.2:  # T16
            f = torch.clamp(mean, -10, 10)
        else:
            f = torch.clamp(torch.nan_to_num(phi_t, nan=0.0), -10, 10)
        for h in range(heads):
            o = torch.clamp(f + 0.2 * (a_h[h] - mean), -15, 15)  # T17
            if m is not None:
                o = o + m[min(b, m.shape[0] - 1), min(h, m.shape[1] - 1)]  # T18
            out[b, h] = torch.clamp(torch.nan_to_num(o, nan=0.0), -30, 30)  # T19
    return out


def looped_attention(q, k, v, w1, b1, w2, b2, tau, *, epsilon, attn_mask=None, key_padding_mask=None):
    """§2.1 and §2.3 around the looped transform; masks broadcast to 4D as upstream does."""
    batch, heads, t, _ = q.shape
    s = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if key_padding_mask is not None:
        s = s.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    m = None
    if attn_mask is not None:
        m = attn_mask.to(q.dtype)
        m = {2: lambda x: x.expand(batch, heads, -1, -1),
             3: lambda x: x[:, None].expand(-1, heads, -1, -1)}.get(m.dim(), lambda x: x)(m)
        s = s + 1.0 * m
    logits = _looped_transform(s, m, w1.flatten(), b1, w2.flatten(), b2, tau, epsilon)
    return torch.softmax(logits, dim=-1) @ v


def _module(d_model, heads, *, t, s, qk_scale=1.0, seed=0):
    torch.manual_seed(seed)
    attn = AutopoieticAttention(d_model, heads, epsilon=0.3, init_tau=1.2)
    with torch.no_grad():
        attn.q_proj.weight.mul_(qk_scale)
        attn.k_proj.weight.mul_(qk_scale)
        attn.sr_conv1.weight.mul_(3.0)  # spread the sr-MLP so both its clamps are exercised
        attn.sr_conv2.bias.fill_(0.05)
    x_q, x_kv = torch.randn(2, t, d_model), torch.randn(2, s, d_model)
    return attn, x_q, x_kv


def _masks(kind, t, s):
    causal = torch.triu(torch.full((t, s), float("-inf")), diagonal=1)
    return {
        "none": None,
        "float2d": causal,
        "bool2d": causal.isinf(),
        "float3d": torch.stack([causal, torch.where(torch.rand(t, s) < 0.3, -5.0, 0.0)]),
        "bool3d": torch.rand(2, t, s) < 0.4,
    }[kind]


_PARAM_NAMES = ["q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight", "q_proj.bias", "tau",
                "sr_conv1.weight", "sr_conv1.bias", "sr_conv2.weight", "sr_conv2.bias"]


def _looped_module(attn, x_q, x_kv, attn_mask, kpm, grad_out, dtype):
    """The looped oracle on ``attn``'s weights cast to ``dtype``: output and parameter gradients."""
    p = {n: t.detach().to(dtype).requires_grad_() for n, t in attn.named_parameters()}

    def split(x, name):
        y = x.to(dtype) @ p[f"{name}.weight"].T + p[f"{name}.bias"]
        return y.view(x.shape[0], x.shape[1], attn.num_heads, attn.head_dim).transpose(1, 2)

    out = looped_attention(
        split(x_q, "q_proj"), split(x_kv, "k_proj"), split(x_kv, "v_proj"),
        p["sr_conv1.weight"], p["sr_conv1.bias"], p["sr_conv2.weight"], p["sr_conv2.bias"], p["tau"],
        epsilon=attn.epsilon, attn_mask=attn_mask, key_padding_mask=kpm,
    )
    out = out.transpose(1, 2).reshape(grad_out.shape) @ p["out_proj.weight"].T + p["out_proj.bias"]
    return out, torch.autograd.grad(out, [p[n] for n in _PARAM_NAMES], grad_out.to(dtype))


def _max_diff(a, b):
    return (a.double().nan_to_num() - b.double().nan_to_num()).abs().max().item()


def _compare(attn, x_q, x_kv, attn_mask, kpm):
    """Module (fp32, vectorised) vs the loop (fp64): output and every gradient within 1e-5 relative.

    Where upstream's own float32 rounding is larger (gradients that sum many cancelling terms, e.g.
    tau when the clamps fire), the allowance is twice the error of the same loop run in float32.
    """
    out = attn(x_q, x_kv, x_kv, attn_mask=attn_mask, key_padding_mask=kpm)[0]
    grad_out = torch.randn_like(out)
    params = dict(attn.named_parameters())
    grads = torch.autograd.grad(out, [params[n] for n in _PARAM_NAMES], grad_out)
    ref, ref_grads = _looped_module(attn, x_q, x_kv, attn_mask, kpm, grad_out, torch.float64)
    ref32, ref32_grads = _looped_module(attn, x_q, x_kv, attn_mask, kpm, grad_out, torch.float32)
    for name, got, want, want32 in zip(["out", *_PARAM_NAMES], [out, *grads], [ref, *ref_grads], [ref32, *ref32_grads]):
        # S = 1 makes T13 divide by -0.0, whose backward is NaN in both (upstream's hooks zero it later).
        assert torch.equal(got.isnan(), want.isnan()), name
        diff, loop32_diff, scale = _max_diff(got, want), _max_diff(want32, want), want.nan_to_num().abs().max().item()
        allowed = 1e-5 * scale + 2 * loop32_diff + 1e-12
        assert diff <= allowed, (f"{name}: max diff {diff:.2e} > {allowed:.2e} = 1e-5 x max |ref| {scale:.2e} "
                                 f"+ 2 x the fp32 loop's {loop32_diff:.2e}")


@pytest.mark.parametrize("heads", [1, 2, 3, 4, 8])
def test_matches_loop_over_heads_with_t_ne_s(heads):
    attn, x_q, x_kv = _module(48 if heads == 3 else 32, heads, t=5, s=7)
    _compare(attn, x_q, x_kv, None, None)


@pytest.mark.parametrize("mask_kind", ["float2d", "bool2d", "float3d", "bool3d"])
@pytest.mark.parametrize("padded", [False, True])
def test_matches_loop_with_masks_and_padding(mask_kind, padded):
    attn, x_q, x_kv = _module(32, 4, t=6, s=6, seed=1)
    kpm = torch.tensor([[False] * 4 + [True] * 2, [False] * 6]) if padded else None
    _compare(attn, x_q, x_kv, _masks(mask_kind, 6, 6), kpm)


def test_matches_loop_single_token():
    attn, x_q, x_kv = _module(32, 2, t=1, s=1, seed=2)
    _compare(attn, x_q, x_kv, None, None)


def test_matches_loop_when_every_clamp_fires():
    attn, x_q, x_kv = _module(32, 4, t=6, s=9, qk_scale=20.0, seed=3)
    kpm = torch.zeros(2, 9, dtype=torch.bool)
    kpm[1, -3:] = True
    scores = (attn.q_proj(x_q) @ attn.k_proj(x_kv).transpose(-2, -1)) * attn.head_dim**-0.5
    assert scores.abs().max() > 15, "the ±15 clamp of T1 must fire"
    _compare(attn, x_q, x_kv, None, kpm)


def test_plain_softmax_path():
    """use_autopoietic=False: masked softmax only; the mask is added once and a bool mask adds +1."""
    torch.manual_seed(4)
    q, k, v = (torch.randn(2, 3, n, 8) for n in (4, 5, 5))
    mask = torch.rand(4, 5) < 0.5
    kpm = torch.tensor([[False, False, False, False, True], [False] * 5])
    out, probs = autopoietic_attention_ref(q, k, v, None, None, None, None, None, epsilon=1e-6,
                                           attn_mask=mask, key_padding_mask=kpm, use_autopoietic=False)
    scores = (q / math.sqrt(8)) @ k.transpose(-2, -1) + mask.float()
    scores = scores.masked_fill(kpm[:, None, None, :], float("-inf"))
    torch.testing.assert_close(probs, torch.softmax(scores, -1))
    torch.testing.assert_close(out, torch.softmax(scores, -1) @ v)


def test_soft_mask_values():
    """A re-added float -inf ends at exactly -30 (a soft mask); padded keys are not re-masked."""
    attn, x_q, x_kv = _module(32, 2, t=4, s=4, seed=5)
    kpm = torch.tensor([[False, False, False, True], [False] * 4])
    causal = torch.triu(torch.full((4, 4), float("-inf")), diagonal=1)
    q, k = attn._split_heads(attn.q_proj(x_q)), attn._split_heads(attn.k_proj(x_kv))
    mask = expand_attn_mask(causal, 2, torch.float32)
    logits = autopoietic_transform_ref(
        attention_scores(q, k, mask, kpm), mask, attn.sr_conv1.weight, attn.sr_conv1.bias,
        attn.sr_conv2.weight, attn.sr_conv2.bias, attn.tau, attn.epsilon,
    )
    assert (logits[:, :, causal.isinf()] == -30.0).all()
    assert (logits[:, :, ~causal.isinf()].abs() <= 15.0).all()
    probs = torch.softmax(logits, dim=-1)
    assert ((probs[:, :, causal.isinf()] > 0) & (probs[:, :, causal.isinf()] < 1e-9)).all()
    assert (probs[0, :, 3, 3] > 1e-4).all(), "the padded key keeps a real probability"


def test_quantile_fallback_for_half_dtypes():
    """bf16 activations skip the adaptive temperature, so tau gets no gradient (T15-fallback)."""
    attn, x_q, x_kv = _module(32, 2, t=5, s=5, seed=6)
    attn = attn.to(torch.bfloat16)
    out, _ = attn(x_q.bfloat16(), x_kv.bfloat16(), x_kv.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert torch.autograd.grad(out.float().sum(), attn.tau, allow_unused=True)[0] is None


def test_mask_validation_errors():
    attn, x_q, x_kv = _module(32, 2, t=3, s=3)
    with pytest.raises(ValueError, match="key_padding_mask must be torch.bool"):
        attn(x_q, x_kv, x_kv, key_padding_mask=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"must have batch size 2 in dim 0, got shape \(1, 3, 3\)"):
        attn(x_q, x_kv, x_kv, attn_mask=torch.zeros(1, 3, 3))
