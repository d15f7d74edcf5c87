"""Plain-PyTorch reference of the APT autopoietic attention (APT_SPEC.md §2).

This is the specification and the test oracle for every fused kernel: readable, vectorised over batch
and heads (no Python loop, no host sync), never optimised beyond that. It reproduces upstream's
numbers, quirks included:

* key padding is applied once, before the transform, and is never re-applied (padded keys keep a
  small probability);
* an attention mask is added twice (before and after the transform); a bool mask adds +1.0 where
  True, and any non-zero mask entry forces the per-element temperature to 1;
* the re-added float ``-inf`` becomes exactly ``-30`` (a soft mask);
* the statistics are pooled over the whole [T, S] matrix of each batch element, future rows included,
  so the attention is not causal even under a causal mask;
* ``torch.quantile`` raises for more than 2**24 elements and for half dtypes; upstream then skips the
  adaptive temperature (``Φ' = clamp(Φ, -10, 10)``), and so does this reference;
* with a single key (S = 1) T13 divides by ``-ln(1) = -0.0``: the forward is fine (r = 0.8) but the
  backward of that division is NaN, which reaches the q/k gradients (upstream's DBC-DAC gradient hooks
  then turn it into 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# torch.quantile refuses inputs with more elements than this (upstream falls back, T15-fallback).
QUANTILE_MAX_NUMEL = 2**24
_QUANTILE_DTYPES = (torch.float32, torch.float64)


def autopoietic_scale(epsilon: float) -> float:
    """e = clamp(fl32(epsilon), 0.05, 0.8), the float32 value as a Python float (spec T3)."""
    return float(torch.tensor(epsilon, dtype=torch.float32).clamp(0.05, 0.8))


def expand_attn_mask(
    attn_mask: Tensor | None,  # [T, S] | [B, T, S] | [B, H|1, T, S]; float (additive) or bool
    batch: int,
    dtype: torch.dtype,
) -> Tensor | None:
    """Return the mask as an additive 4D tensor [B|1, H|1, T, S] in ``dtype`` (spec §2.1 step 3).

    A bool mask becomes 0/1, so True *adds* +1.0 (upstream's behaviour, not a hard mask). A 3D or 4D
    mask must have B rows: upstream indexes ``m[b, 0]`` and raises IndexError otherwise.
    """
    if attn_mask is None:
        return None
    if attn_mask.dim() == 2:
        mask = attn_mask[None, None]
    elif attn_mask.dim() == 3:
        mask = attn_mask[:, None]
    elif attn_mask.dim() == 4:
        mask = attn_mask
    else:
        raise ValueError(f"attn_mask must be 2D, 3D or 4D, got shape {tuple(attn_mask.shape)}")
    if attn_mask.dim() > 2 and mask.shape[0] != batch:
        raise ValueError(
            f"a {attn_mask.dim()}D attn_mask must have batch size {batch} in dim 0, "
            f"got shape {tuple(attn_mask.shape)}"
        )
    return mask.to(dtype)


def attention_scores(
    q,  # [B, H, T, d] projected queries (not yet scaled)
    k,  # [B, H, S, d]
    attn_mask: Tensor | None = None,  # [B|1, H|1, T, S] additive, from expand_attn_mask
    key_padding_mask: Tensor | None = None,  # [B, S] bool, True = padded
) -> Tensor:  # [B, H, T, S]
    """Pre-transform scores s = (Q·d^-1/2)Kᵀ, padded keys set to -inf, then + mask (spec §2.1)."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [B, H, T, S]
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be torch.bool, got {key_padding_mask.dtype}")
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    if attn_mask is not None:
        scores = scores + 1.0 * attn_mask
    return scores


def _mean_ts(x: Tensor) -> Tensor:  # [B, T, S] -> [B, 1, 1]
    return x.mean(dim=(-2, -1), keepdim=True)


def _sr_modulation(
    x,  # [B, T, S] scaled head-mean scores X
    sr_conv1_weight,  # [Hd, 1, 1, 1]
    sr_conv1_bias,  # [Hd]
    sr_conv2_weight,  # [1, Hd, 1, 1]
    sr_conv2_bias,  # [1]
) -> Tensor:  # [B, T, S]
    """T4: the per-element 1x1-conv MLP a = clamp(w2·relu(clamp(w1·X + b1, -5, 5)) + b2, -5, 5).

    relu(clamp(z, -5, 5)) equals clamp(z, 0, 5) in value but not in gradient (none at z = 0); it is
    kept as upstream wrote it. sr_layernorm is never applied.
    """
    hidden = F.conv2d(x[:, None], sr_conv1_weight, sr_conv1_bias)  # [B, Hd, T, S]
    hidden = torch.relu(hidden.clamp(-5.0, 5.0))
    return F.conv2d(hidden, sr_conv2_weight, sr_conv2_bias)[:, 0].clamp(-5.0, 5.0)  # [B, T, S]


def _adaptive_temperature(
    phi,  # [B, T, S]
    tau,  # [1]
) -> Tensor:  # [B, T, S]
    """T15: Φ' = clamp(Φ / t*, -15, 15) with t* from tau and the inter-quartile range of Φ.

    torch.quantile along the last dim of [B, T·S] runs the same sort / float32-rank / lerp code per
    row as upstream's call on each flattened Φ_b, so ties and rank rounding match bit for bit.
    When upstream's torch.quantile would raise (T·S > 2**24 or a half dtype), the fallback
    Φ' = clamp(Φ, -10, 10) applies and tau gets no gradient.
    """
    batch, t, s = phi.shape
    if t * s > QUANTILE_MAX_NUMEL or phi.dtype not in _QUANTILE_DTYPES:
        return phi.clamp(-10.0, 10.0)
    levels = torch.tensor([0.75, 0.25], dtype=phi.dtype, device=phi.device)
    q75, q25 = torch.quantile(phi.reshape(batch, t * s), levels, dim=-1)  # [B] each
    width = (q75 - q25).clamp(0.5, 5.0)[:, None, None]  # [B, 1, 1]
    beta = tau.clamp(1.0, 1.5)
    temperature = (beta * (1.0 + 0.1 * torch.log1p(width))).clamp(1.0, 2.0)  # [B, 1, 1]
    return (phi / temperature).clamp(-15.0, 15.0)


def shared_map_ref(
    m,  # [B, T, S] head mean M (T2)
    attn_mask: Tensor | None,  # [B|1, H|1, T, S] additive, from expand_attn_mask
    sr_conv1_weight,  # [Hd, 1, 1, 1]
    sr_conv1_bias,  # [Hd]
    sr_conv2_weight,  # [1, Hd, 1, 1]
    sr_conv2_bias,  # [1]
    tau,  # [1]
    epsilon: float,
) -> Tensor:  # [B, T, S] F of T16, the map shared by the heads
    """T3-T16 of APT_SPEC.md §2.2: the per-batch statistics that turn M into F.

    Every per-batch-element statistic of upstream (norms, means, variances, max|M|, quantiles) is a
    reduction over the last two dims with keepdim, so broadcasting replaces upstream's loop over b.
    """
    dtype = m.dtype
    n_keys = m.shape[-1]
    x = (m.clamp(-8.0, 8.0) * autopoietic_scale(epsilon)).clamp(-10.0, 10.0)  # T3
    a = _sr_modulation(x, sr_conv1_weight, sr_conv1_bias, sr_conv2_weight, sr_conv2_bias)  # T4
    tau_t = (1.0 + 0.05 * (50.0 * a)).clamp(0.5, 1.5)  # T5
    if attn_mask is not None:
        # Any non-zero mask entry of head 0 (-inf, -5.0, a True bool) forces τ_T = 1.
        tau_t = tau_t.masked_fill(attn_mask[:, 0] != 0, 1.0)
    gate = torch.sigmoid(tau_t)  # T6
    # T7: fuzzy membership Fm = softmax(3·E), E the per-element entropy of softmax(clamp(M)).
    # Upstream's nan_to_num(Fm, nan=1/S) is inert (Fm is always finite) and left out.
    p = torch.softmax(m.clamp(-10.0, 10.0), dim=-1)
    entropy = -p * torch.log(p + 1e-6)
    fm = torch.softmax(3.0 * entropy, dim=-1)
    r0 = gate * fm  # T8
    # T9: energy balance.
    m_norm = torch.linalg.vector_norm(m, dim=(-2, -1), keepdim=True)  # [B, 1, 1]
    r0_norm = torch.linalg.vector_norm(r0, dim=(-2, -1), keepdim=True)
    r = ((m_norm + 1e-4) / (r0_norm + 1e-4)).clamp(0.8, 1.2) * r0
    # T10: std matching (population variances over T·S, floored at 0.01).
    mu_r, mu_m = _mean_ts(r), _mean_ts(m)
    var_r = _mean_ts((r - mu_r) ** 2).clamp(min=0.01)
    var_m = _mean_ts((m - mu_m) ** 2).clamp(min=0.01)
    g = (torch.sqrt(var_m) / torch.sqrt(var_r)).clamp(0.8, 1.2)
    # T11: range factor; any masked entry makes max|M| >= 10, hence c = 0.3 / ln 11.
    rho = m.abs().amax(dim=(-2, -1), keepdim=True).clamp(1.0, 10.0)
    c = (0.3 * (1.0 / torch.log(1.0 + rho))).clamp(0.1, 0.5)
    u = mu_r + (c * g) * (r - mu_r)  # T12
    # T13: residual ratio. Upstream divides a 0-dim mean(E) by the 0-dim float32 -ln(fl32(1/S)), which
    # promotes half dtypes to float32 (S = 1 gives -0.0, η = +inf, r = 0.8).
    max_entropy = -torch.log(torch.tensor(1.0 / n_keys, dtype=torch.float32, device=m.device))
    eta = _mean_ts(entropy).to(torch.promote_types(dtype, torch.float32)) / max_entropy
    ratio = 0.4 + eta.clamp(0.0, 0.4)
    # T14: Φ = (1-r)·U + r·M; each product is rounded to the activation dtype, as upstream's 0-dim r does.
    phi = ((1.0 - ratio) * u).to(dtype) + (ratio * m).to(dtype)
    phi_t = _adaptive_temperature(phi, tau)  # T15
    # T16: abnormal check, per batch element, without a host sync.
    abnormal = (~torch.isfinite(phi_t)).to(dtype).mean(dim=(-2, -1), keepdim=True) > 0.2
    return torch.where(abnormal, m, torch.nan_to_num(phi_t, nan=0.0)).clamp(-10.0, 10.0)


def autopoietic_transform_ref(
    scores,  # [B, H, T, S] from attention_scores (padded = -inf, mask added once)
    attn_mask: Tensor | None,  # [B|1, H|1, T, S] additive, from expand_attn_mask
    sr_conv1_weight,  # [Hd, 1, 1, 1]
    sr_conv1_bias,  # [Hd]
    sr_conv2_weight,  # [1, Hd, 1, 1]
    sr_conv2_bias,  # [1]
    tau,  # [1]
    epsilon: float,
) -> Tensor:  # [B, H, T, S] logits for the row softmax
    """The autopoietic transform T1-T19 of APT_SPEC.md §2.2, for all batch elements at once."""
    # T1: sanitise each head; masked / padded entries become exactly -10.
    heads = torch.nan_to_num(scores, nan=0.0, posinf=10.0, neginf=-10.0).clamp(-15.0, 15.0)
    m = heads.mean(dim=1)  # [B, T, S]  T2: head mean M
    f = shared_map_ref(m, attn_mask, sr_conv1_weight, sr_conv1_bias, sr_conv2_weight, sr_conv2_bias, tau,
                       epsilon)  # T3-T16
    # T17: shared bias plus 0.2x each head's own deviation from the mean.
    out = (f[:, None] + 0.2 * (heads - m[:, None])).clamp(-15.0, 15.0)  # [B, H, T, S]
    if attn_mask is not None:
        out = out + 1.0 * attn_mask  # T18: the mask is added a second time
    # T19: nan_to_num(nan=0) maps ±inf to ±max, so a re-added -inf ends at exactly -30.
    return torch.nan_to_num(out, nan=0.0).clamp(-30.0, 30.0)


def autopoietic_attention_ref(
    q,  # [B, H, T, d] projected queries (not yet scaled)
    k,  # [B, H, S, d] projected keys
    v,  # [B, H, S, d] projected values
    sr_conv1_weight,  # [Hd, 1, 1, 1]
    sr_conv1_bias,  # [Hd]
    sr_conv2_weight,  # [1, Hd, 1, 1]
    sr_conv2_bias,  # [1]
    tau,  # [1]
    *,
    epsilon: float,
    attn_mask: Tensor | None = None,  # [T, S] | [B, T, S] | [B, H|1, T, S]; float or bool
    key_padding_mask: Tensor | None = None,  # [B, S] bool, True = padded
    use_autopoietic: bool = True,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:  # out [B, H, T, d], probs [B, H, T, S] (after dropout)
    """Autopoietic attention per head, from projected Q/K/V to P·V (APT_SPEC.md §2.1-2.3).

    ``use_autopoietic=False`` is upstream's plain path: softmax of the masked scores, no clamps and no
    second mask add, so a fully masked row gives NaN. ``dropout_p`` applies to the probabilities
    (pass 0.0 in eval mode).
    """
    mask = expand_attn_mask(attn_mask, q.shape[0], q.dtype)  # [B|1, H|1, T, S]
    scores = attention_scores(q, k, mask, key_padding_mask)  # [B, H, T, S]
    if use_autopoietic:
        scores = autopoietic_transform_ref(
            scores, mask, sr_conv1_weight, sr_conv1_bias, sr_conv2_weight, sr_conv2_bias, tau, epsilon
        )
    probs = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v, probs
