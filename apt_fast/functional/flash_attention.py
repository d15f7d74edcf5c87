"""F-style entry point of flash attention with a learnable additive bias."""

from __future__ import annotations

from typing import Optional

import torch

from ..autograd.flash_attention import FlashAttentionFunction


def flash_attention(
    q: torch.Tensor,  # [B, H, T, d] fp32|bf16|fp16
    k: torch.Tensor,  # [B, H, S, d]
    v: torch.Tensor,  # [B, H, S, d]
    bias: Optional[torch.Tensor] = None,  # broadcastable to [B, H, T, S]; may require grad
    *,
    mask: Optional[torch.Tensor] = None,  # bool, broadcastable to [B, H, T, S]; True = attend
    causal: bool = False,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:  # [B, H, T, d]
    """softmax(scale · q kᵀ + bias, masked) · v without materialising [B, H, T, S].

    Like F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=causal), but the bias may
    require grad (its gradient comes back in the bias's own, possibly broadcast, shape) and may be
    combined with causal and a bool mask. scale defaults to head_dim ** -0.5. A row with no visible key
    outputs 0 (SDPA gives NaN). Dropout (dropout_p > 0) acts on the probabilities, drawn from torch's
    generator.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return FlashAttentionFunction.apply(q, k, v, bias, mask, causal, scale, float(dropout_p))
