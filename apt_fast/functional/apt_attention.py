"""F-style entry point of APT's autopoietic attention (APT_SPEC.md §2.1-2.3), fused."""

from __future__ import annotations

from typing import Optional

import torch

from ..autograd.apt_attention import AptAttentionFunction
from ..reference.apt_attention import expand_attn_mask
from .flash_attention import flash_attention


def apt_attention(
    q: torch.Tensor,  # [B, H, T, d] projected queries (not yet scaled)
    k: torch.Tensor,  # [B, H, S, d] projected keys
    v: torch.Tensor,  # [B, H, S, d] projected values
    sr_conv1_weight: torch.Tensor,  # [Hd, 1, 1, 1]
    sr_conv1_bias: torch.Tensor,  # [Hd]
    sr_conv2_weight: torch.Tensor,  # [1, Hd, 1, 1]
    sr_conv2_bias: torch.Tensor,  # [1]
    tau: torch.Tensor,  # [1]
    *,
    epsilon: float,
    attn_mask: Optional[torch.Tensor] = None,  # [T, S] | [B, T, S] | [B, H|1, T, S]; float or bool (+1 where True)
    key_padding_mask: Optional[torch.Tensor] = None,  # [B, S] bool, True = padded
    use_autopoietic: bool = True,
    dropout_p: float = 0.0,
) -> torch.Tensor:  # [B, H, T, d]
    """APT's autopoietic attention per head (APT_SPEC.md §2.1-2.3), fused: the same numbers as
    apt_fast.reference.apt_attention.autopoietic_attention_ref without any [B, H, T, S] tensor.

    Three stages, none of them [B, H, T, S] (see AptAttentionFunction): the head mean M (kernel), the per-batch
    statistics M -> F on [B, T, S] maps (kernel), and a flash-style attention over F + 0.2 (A_h - M) with every
    clamp applied on the fly (kernel). use_autopoietic=False is plain masked softmax attention
    (flash_attention), except that a fully masked row gives 0 where upstream gives NaN. Dropout acts on the
    probabilities, drawn from torch's generator (a different draw from the reference's F.dropout).
    """
    if key_padding_mask is not None and key_padding_mask.dtype != torch.bool:
        raise ValueError(f"key_padding_mask must be bool, got {str(key_padding_mask.dtype).replace('torch.', '')}")
    mask = expand_attn_mask(attn_mask, q.shape[0], q.dtype)  # [B|1, H|1, T, S] additive
    if not use_autopoietic:
        keep = ~key_padding_mask[:, None, None, :] if key_padding_mask is not None else None
        return flash_attention(q, k, v, mask, mask=keep, dropout_p=dropout_p)
    return AptAttentionFunction.apply(q, k, v, sr_conv1_weight, sr_conv1_bias, sr_conv2_weight, sr_conv2_bias, tau,
                                      mask, key_padding_mask, float(epsilon), float(dropout_p))
