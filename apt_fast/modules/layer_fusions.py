"""Post-LN encoder and decoder layers whose residual adds + LayerNorms and FFN bias + GELU run as apt_fast's
fused ops (apt_fast.functional.add_layer_norm, bias_gelu).

Each holds the very submodules of the layer it replaces, registered under the same names and in the same order
(so state_dict keys, Parameters, optimizers and the submodules' hooks are unaffected), and computes the same
function: x <- LN1(x + drop(SelfAttn(x))) [; y <- LN2(y + drop(CrossAttn(y, memory)))] ; out <- LN(x + drop(FFN(x))),
FFN(x) = linear2(dropout(act(linear1 x))). The FFN's bias + GELU is fused when linear1 is a plain nn.Linear
without hooks and the activation is F.gelu; otherwise linear1 and the activation run as they are.
"""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from ..functional.layer_fusions import add_layer_norm, bias_gelu


def _fusable_linear(linear: nn.Module) -> bool:
    return (type(linear) is nn.Linear and linear.bias is not None and not linear._forward_pre_hooks
            and not linear._forward_hooks)


class _FusedPostLNLayer(nn.Module):
    def __init__(self, source: nn.Module):
        super().__init__()
        for name, child in source.named_children():
            setattr(self, name, child)
        self.activation = source.activation
        self.__dict__["replaced"] = source  # kept for unpatch, deliberately not a submodule

    def add_norm(self, sublayer: Tensor, residual: Tensor, norm: nn.LayerNorm) -> Tensor:  # [B, L, D]
        """norm(residual + sublayer), in one pass."""
        return add_layer_norm(sublayer, residual, norm.weight, norm.bias, norm.eps)

    def feed_forward(self, x: Tensor) -> Tensor:  # [B, L, D] -> [B, L, D]
        linear1 = self.linear1
        if self.activation is F.gelu and _fusable_linear(linear1):
            hidden = bias_gelu(F.linear(x, linear1.weight), linear1.bias)  # [B, L, d_ff]
        else:
            hidden = self.activation(linear1(x))
        return self.linear2(self.dropout(hidden))


class FusedPostLNEncoderLayer(_FusedPostLNLayer):
    """Drop-in replacement of an APT encoder layer (self_attn, FFN, norm1/norm2, dropout1/dropout2)."""

    def forward(
        self,
        src: Tensor,  # [B, S, D]
        src_mask: Optional[Tensor] = None,  # [S, S] | [B, S, S] | [B, H|1, S, S]
        src_key_padding_mask: Optional[Tensor] = None,  # [B, S] bool
    ) -> Tensor:  # [B, S, D]
        attn, _ = self.self_attn(src, src, src, attn_mask=src_mask, key_padding_mask=src_key_padding_mask)
        x = self.add_norm(self.dropout1(attn), src, self.norm1)
        return self.add_norm(self.dropout2(self.feed_forward(x)), x, self.norm2)


class FusedPostLNDecoderLayer(_FusedPostLNLayer):
    """Drop-in replacement of an APT decoder layer (self_attn, multihead_attn, FFN, norm1-3, dropout1-3)."""

    def forward(
        self,
        tgt: Tensor,  # [B, T, D]
        memory: Tensor,  # [B, S, D]
        tgt_mask: Optional[Tensor] = None,  # [T, T] | [B, T, T] | [B, H|1, T, T]
        memory_mask: Optional[Tensor] = None,  # [T, S] | [B, T, S] | [B, H|1, T, S]
        tgt_key_padding_mask: Optional[Tensor] = None,  # [B, T] bool
        memory_key_padding_mask: Optional[Tensor] = None,  # [B, S] bool
    ) -> Tensor:  # [B, T, D]
        attn, _ = self.self_attn(tgt, tgt, tgt, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask)
        y = self.add_norm(self.dropout1(attn), tgt, self.norm1)
        attn, _ = self.multihead_attn(y, memory, memory, attn_mask=memory_mask,
                                      key_padding_mask=memory_key_padding_mask)
        y = self.add_norm(self.dropout2(attn), y, self.norm2)
        return self.add_norm(self.dropout3(self.feed_forward(y)), y, self.norm3)
