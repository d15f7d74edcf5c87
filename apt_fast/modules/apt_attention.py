"""FusedAPTAttention: APT's autopoietic attention backed by apt_fast.functional.apt_attention.

It holds the very Parameters (and submodules) of the attention it replaces, registered under the same
names and in the same order, so state_dict keys, optimizers and hooks are unaffected.
"""

from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor, nn

from ..functional import apt_attention

# The submodules and parameters an APT attention owns, in upstream's state_dict order.
APT_CHILDREN = ("q_proj", "k_proj", "v_proj", "out_proj", "sr_conv1", "sr_layernorm", "sr_conv2")


class FusedAPTAttention(nn.Module):
    """Drop-in replacement of an APT ``AutopoieticAttention`` (apt_fast's or upstream's class).

    forward(query [B, T, D], key [B, S, D], value [B, S, D], attn_mask=None, key_padding_mask=None,
    need_weights=True) -> (out [B, T, D], None). The head-averaged attention weights are not formed
    (no [B, H, T, S] tensor exists); the APT layers discard them. ``sr_layernorm`` is kept for the
    checkpoint layout and, as upstream, never used.
    """

    def __init__(self, source: nn.Module, *, num_heads: int, epsilon: float, dropout: float,
                 use_autopoietic: bool):
        super().__init__()
        self.tau = source.tau
        for name in APT_CHILDREN:
            if hasattr(source, name):
                setattr(self, name, getattr(source, name))
        self.embed_dim = self.q_proj.in_features
        width = self.q_proj.out_features  # H·d: D, or less after structured head pruning
        if width % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must divide the attention width ({width})")
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.epsilon = epsilon
        self.dropout = dropout
        self.use_autopoietic = use_autopoietic
        self.__dict__["replaced"] = source  # kept for unpatch, deliberately not a submodule

    def _split_heads(self, x: Tensor) -> Tensor:  # [B, L, D] -> [B, H, L, d]
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, need_weights: bool = True) -> Tuple[Tensor, None]:
        q = self._split_heads(self.q_proj(query))  # [B, H, T, d]
        k = self._split_heads(self.k_proj(key))  # [B, H, S, d]
        v = self._split_heads(self.v_proj(value))  # [B, H, S, d]
        out = apt_attention(q, k, v, self.sr_conv1.weight, self.sr_conv1.bias, self.sr_conv2.weight,
                            self.sr_conv2.bias, self.tau, epsilon=self.epsilon, attn_mask=attn_mask,
                            key_padding_mask=key_padding_mask, use_autopoietic=self.use_autopoietic,
                            dropout_p=self.dropout if self.training else 0.0)  # [B, H, T, d]
        batch, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)), None

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, epsilon={self.epsilon}, "
                f"dropout={self.dropout}, use_autopoietic={self.use_autopoietic}")
