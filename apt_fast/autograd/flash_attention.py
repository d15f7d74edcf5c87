"""autograd.Function of apt_fast::flash_attention_fwd / _bwd."""

from __future__ import annotations

from typing import Optional

import torch

from ..reference.dropout_hash import draw_seed


class FlashAttentionFunction(torch.autograd.Function):
    """Flash attention with an additive bias; gradients for q, k, v and the bias (in its own shape).

    The dropout seed is drawn from torch's generator once per forward; the backward regenerates the mask.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor],
                mask: Optional[torch.Tensor], causal: bool, scale: float, dropout_p: float) -> torch.Tensor:
        seed = draw_seed() if dropout_p > 0.0 else 0
        out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, mask, causal, scale, dropout_p, seed)
        ctx.save_for_backward(q, k, v, bias, mask, out, lse)
        ctx.settings = (causal, scale, dropout_p, seed)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v, bias, mask, out, lse = ctx.saved_tensors
        causal, scale, dropout_p, seed = ctx.settings
        bias_grad = bias is not None and ctx.needs_input_grad[3]
        dq, dk, dv, dbias = torch.ops.apt_fast.flash_attention_bwd(
            grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias_grad)
        return dq, dk, dv, (dbias if bias_grad else None), None, None, None, None
