"""autograd.Function of APT attention: the head-mean, statistics and attention stage ops chained."""

from __future__ import annotations

from typing import Optional

import torch

from ..reference.dropout_hash import draw_seed


class AptAttentionFunction(torch.autograd.Function):
    """APT attention from projected q, k, v (APT_SPEC.md §2.1-2.3) as three stage ops, none [B, H, T, S]:

      M = apt_head_mean_fwd(q, k)                      [B, T, S]  T1-T2
      F, R0, stats = apt_stats_fwd(M, sr convs, tau)   [B, T, S]  T3-T16
      out = apt_attention_fwd(q, k, v, F, M)           [B, H, T, d]  T17-T19, softmax, dropout, P·V

    Backward runs them in reverse: dF (and dq, dk, dv) from the attention; dM = stats' dM - 0.2 dF (M enters
    the attention only as F + 0.2 (A_h - M)) plus the sr/tau gradients; then the head mean's dq, dk are added.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sr_conv1_weight: torch.Tensor,
                sr_conv1_bias: torch.Tensor, sr_conv2_weight: torch.Tensor, sr_conv2_bias: torch.Tensor,
                tau: torch.Tensor, attn_mask: Optional[torch.Tensor], key_padding_mask: Optional[torch.Tensor],
                epsilon: float, dropout_p: float) -> torch.Tensor:
        ops = torch.ops.apt_fast
        params = (sr_conv1_weight, sr_conv1_bias, sr_conv2_weight, sr_conv2_bias, tau)
        seed = draw_seed() if dropout_p > 0.0 else 0
        m = ops.apt_head_mean_fwd(q, k, attn_mask, key_padding_mask)  # [B, T, S]
        f, r0, stats = ops.apt_stats_fwd(m, attn_mask, *params, epsilon)  # [B, T, S] x2, [B, STATS_SIZE]
        out, lse = ops.apt_attention_fwd(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed)
        ctx.save_for_backward(q, k, v, *params, attn_mask, key_padding_mask, m, f, r0, stats, out, lse)
        ctx.settings = (epsilon, dropout_p, seed)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        ops = torch.ops.apt_fast
        q, k, v, w1, b1, w2, b2, tau, attn_mask, key_padding_mask, m, f, r0, stats, out, lse = ctx.saved_tensors
        epsilon, dropout_p, seed = ctx.settings
        dq, dk, dv, df = ops.apt_attention_bwd(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse,
                                               dropout_p, seed)
        dm, dw1, db1, dw2, db2, dtau = ops.apt_stats_bwd(df, m, attn_mask, w1, b1, w2, b2, tau, epsilon, r0, stats)
        dq_mean, dk_mean = ops.apt_head_mean_bwd(dm.add_(df, alpha=-0.2), q, k, attn_mask, key_padding_mask)
        return dq.add_(dq_mean), dk.add_(dk_mean), dv, dw1, db1, dw2, db2, dtau, None, None, None, None
