"""Building blocks of the APT model: positional encoding and post-LN encoder/decoder layers (spec §3.1-3.2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import AutopoieticAttention
from .configuration_apt import APTConfig


def sinusoidal_table(length: int, d_model: int, device=None) -> Tensor:  # [1, length, D] float32
    """PE[p, 2i] = sin(p·ω_i), PE[p, 2i+1] = cos(p·ω_i), ω_i = exp(2i·(-ln 10000 / D)), all in float32."""
    position = torch.arange(length, dtype=torch.float32, device=device)[:, None]  # [L, 1]
    omega = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model, device=device)
    table[:, 0::2] = torch.sin(position * omega)
    table[:, 1::2] = torch.cos(position * omega)
    return table[None]


class PositionalEncoding(nn.Module):
    """x + PE[:T] then dropout; ``pe`` [1, max_seq_len, D] is a persistent buffer (it is in checkpoints).

    No sqrt(D) scaling of the embeddings. Sequences longer than max_seq_len get the table computed on
    the fly with the same float32 formula.
    """

    def __init__(self, d_model: int, max_seq_len: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoidal_table(max_seq_len, d_model), persistent=True)

    def forward(self, x: Tensor) -> Tensor:  # [B, T, D] -> [B, T, D]
        length = x.shape[1]
        if length <= self.pe.shape[1]:
            pe = self.pe[:, :length]
        else:
            pe = sinusoidal_table(length, x.shape[2], device=x.device)
        return self.dropout(x + pe.to(x.dtype))


def _attention(config: APTConfig) -> AutopoieticAttention:
    return AutopoieticAttention(
        config.d_model,
        config.num_heads,
        head_dim=config.attention_head_dim,
        dropout=config.dropout,
        epsilon=config.epsilon,
        init_tau=config.init_tau,
        sr_ratio=config.sr_ratio,
        use_autopoietic=config.use_autopoietic,
    )


class _FeedForwardLayer(nn.Module):
    """Base of both layers: the FFN linear2(dropout(act(linear1 x))), act = exact GELU for "gelu", else ReLU.

    Subclasses call ``_add_feed_forward`` after creating their attention modules, so that ``linear1`` /
    ``linear2`` follow the attentions in the state_dict, as upstream's keys do.
    """

    def _add_feed_forward(self, config: APTConfig) -> None:
        self.linear1 = nn.Linear(config.d_model, config.d_ff)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.d_ff, config.d_model)
        self.activation = F.gelu if config.activation == "gelu" else F.relu

    def feed_forward(self, x: Tensor) -> Tensor:  # [B, L, D] -> [B, L, D]
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class APTEncoderLayer(_FeedForwardLayer):
    """Post-LN: x <- LN1(x + drop(SelfAttn(x))); x <- LN2(x + drop(FFN(x)))."""

    def __init__(self, config: APTConfig):
        super().__init__()
        self.self_attn = _attention(config)
        self._add_feed_forward(config)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)

    def forward(
        self,
        src: Tensor,  # [B, S, D]
        src_mask: Tensor | None = None,  # [S, S] | [B, S, S] | [B, H|1, S, S]
        src_key_padding_mask: Tensor | None = None,  # [B, S] bool
    ) -> Tensor:  # [B, S, D]
        attn, _ = self.self_attn(src, src, src, attn_mask=src_mask, key_padding_mask=src_key_padding_mask)
        x = self.norm1(src + self.dropout1(attn))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))


class APTDecoderLayer(_FeedForwardLayer):
    """Post-LN: self-attention, cross-attention on the memory, FFN; each followed by add & LayerNorm."""

    def __init__(self, config: APTConfig):
        super().__init__()
        self.self_attn = _attention(config)
        self.multihead_attn = _attention(config)
        self._add_feed_forward(config)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.norm3 = nn.LayerNorm(config.d_model)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.dropout3 = nn.Dropout(config.dropout)

    def forward(
        self,
        tgt: Tensor,  # [B, T, D]
        memory: Tensor,  # [B, S, D]
        tgt_mask: Tensor | None = None,  # [T, T] | [B, T, T] | [B, H|1, T, T]
        memory_mask: Tensor | None = None,  # [T, S] | [B, T, S] | [B, H|1, T, S]
        tgt_key_padding_mask: Tensor | None = None,  # [B, T] bool
        memory_key_padding_mask: Tensor | None = None,  # [B, S] bool
    ) -> Tensor:  # [B, T, D]
        attn, _ = self.self_attn(tgt, tgt, tgt, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask)
        y = self.norm1(tgt + self.dropout1(attn))
        attn, _ = self.multihead_attn(
            y, memory, memory, attn_mask=memory_mask, key_padding_mask=memory_key_padding_mask
        )
        y = self.norm2(y + self.dropout2(attn))
        return self.norm3(y + self.dropout3(self.feed_forward(y)))
