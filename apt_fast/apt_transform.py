"""The per-batch statistics stage of fused APT attention: head mean M [B, T, S] -> shared map F [B, T, S]
(APT_SPEC.md §2.2 T3-T16), vectorised PyTorch on [B, T, S] maps with autograd through them.

It follows apt_fast.reference.apt_attention step by step, with two changes of method and none of
meaning: the sr-MLP is evaluated as the piecewise-linear function it is (apt_fast.sr_mlp) instead of a
[B, Hd, T, S] hidden layer, the two quantiles come from exact selections (torch.kthvalue) instead of a sort, and nothing [B, H, T, S] exists here (the per-head stages are the
apt_head_mean / apt_attention kernels).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .reference.apt_attention import QUANTILE_MAX_NUMEL, autopoietic_scale
from .sr_mlp import PiecewiseLinearSrMlp

_QUANTILE_DTYPES = (torch.float32, torch.float64)


def _mean_ts(x: Tensor) -> Tensor:  # [B, T, S] -> [B, 1, 1]
    return x.mean(dim=(-2, -1), keepdim=True)


def quantile_by_selection(x: Tensor, q: float) -> Tensor:  # x [B, n] -> [B]
    """torch.quantile(x, q, dim=-1) (linear interpolation) by two selections instead of a full sort.

    Bit-exact with torch.quantile: the rank q·(n-1) is computed in float32 as torch does (so it loses its
    fraction above 2**22), lo/hi are its floor and ceil, and the result is torch.lerp(v_lo, v_hi, rank - lo).
    The gradient goes to the two selected elements with weights (1 - w, w).
    """
    rank = torch.tensor(q, dtype=x.dtype) * (x.shape[-1] - 1)
    lo, hi = int(rank.floor()), int(rank.ceil())
    below = torch.kthvalue(x, lo + 1, dim=-1).values
    above = below if hi == lo else torch.kthvalue(x, hi + 1, dim=-1).values
    return torch.lerp(below, above, (rank - lo).to(x.device))


def _temperature_scaled(phi: Tensor, tau: Tensor) -> Tensor:  # [B, T, S]
    """T15 (and its fallback for more than 2**24 elements or half dtypes)."""
    batch, t, s = phi.shape
    if t * s > QUANTILE_MAX_NUMEL or phi.dtype not in _QUANTILE_DTYPES:
        return phi.clamp(-10.0, 10.0)
    flat = phi.reshape(batch, t * s)
    width = (quantile_by_selection(flat, 0.75) - quantile_by_selection(flat, 0.25)).clamp(0.5, 5.0)[:, None, None]
    temperature = (tau.clamp(1.0, 1.5) * (1.0 + 0.1 * torch.log1p(width))).clamp(1.0, 2.0)  # [B, 1, 1]
    return (phi / temperature).clamp(-15.0, 15.0)


def shared_bias(
    m: Tensor,  # [B, T, S] head mean M (T2)
    attn_mask: Optional[Tensor],  # [B|1, H|1, T, S] additive, from expand_attn_mask
    sr_conv1_weight: Tensor,  # [Hd, 1, 1, 1]
    sr_conv1_bias: Tensor,  # [Hd]
    sr_conv2_weight: Tensor,  # [1, Hd, 1, 1]
    sr_conv2_bias: Tensor,  # [1]
    tau: Tensor,  # [1]
    epsilon: float,
) -> Tensor:  # [B, T, S] F of T16
    """F = clamp(Φ / t*, -10, 10) (or clamp(M) when Φ' is abnormal), Φ from M by T3-T14."""
    dtype = m.dtype
    x = (m.clamp(-8.0, 8.0) * autopoietic_scale(epsilon)).clamp(-10.0, 10.0)  # T3
    a = PiecewiseLinearSrMlp.apply(x, sr_conv1_weight.reshape(-1), sr_conv1_bias, sr_conv2_weight.reshape(-1),
                                   sr_conv2_bias).clamp(-5.0, 5.0)  # T4
    tau_t = (1.0 + 0.05 * (50.0 * a)).clamp(0.5, 1.5)  # T5
    if attn_mask is not None:
        tau_t = tau_t.masked_fill(attn_mask[:, 0] != 0, 1.0)
    p = torch.softmax(m.clamp(-10.0, 10.0), dim=-1)  # T7
    entropy = -p * torch.log(p + 1e-6)
    r0 = torch.sigmoid(tau_t) * torch.softmax(3.0 * entropy, dim=-1)  # T6, T8
    m_norm = torch.linalg.vector_norm(m, dim=(-2, -1), keepdim=True)  # T9
    r0_norm = torch.linalg.vector_norm(r0, dim=(-2, -1), keepdim=True)
    r = ((m_norm + 1e-4) / (r0_norm + 1e-4)).clamp(0.8, 1.2) * r0
    mu_r, mu_m = _mean_ts(r), _mean_ts(m)  # T10
    var_r = _mean_ts((r - mu_r) ** 2).clamp(min=0.01)
    var_m = _mean_ts((m - mu_m) ** 2).clamp(min=0.01)
    g = (torch.sqrt(var_m) / torch.sqrt(var_r)).clamp(0.8, 1.2)
    rho = m.abs().amax(dim=(-2, -1), keepdim=True).clamp(1.0, 10.0)  # T11
    c = (0.3 * (1.0 / torch.log(1.0 + rho))).clamp(0.1, 0.5)
    u = mu_r + (c * g) * (r - mu_r)  # T12
    max_entropy = -torch.log(torch.tensor(1.0 / m.shape[-1], dtype=torch.float32, device=m.device))  # T13
    ratio = 0.4 + (_mean_ts(entropy).to(torch.promote_types(dtype, torch.float32)) / max_entropy).clamp(0.0, 0.4)
    phi = ((1.0 - ratio) * u).to(dtype) + (ratio * m).to(dtype)  # T14
    phi_t = _temperature_scaled(phi, tau)  # T15
    abnormal = (~torch.isfinite(phi_t)).to(dtype).mean(dim=(-2, -1), keepdim=True) > 0.2  # T16
    return torch.where(abnormal, m, torch.nan_to_num(phi_t, nan=0.0)).clamp(-10.0, 10.0)
