"""AutopoieticAttention: upstream's attention module with its parameter names, init and numerics.

The math lives in :mod:`apt_fast.reference.apt_attention` (the oracle for fused kernels); this module
owns the parameters and the head split/merge around it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from apt_fast.reference.apt_attention import autopoietic_attention_ref


class AutopoieticAttention(nn.Module):
    """Multi-head attention with the autopoietic transform of APT_SPEC.md §2 (batch-first).

    Parameters (upstream names, in state_dict order): ``tau`` [1], ``q_proj``/``k_proj``/``v_proj``
    (Linear D→H·d with bias), ``out_proj`` (Linear H·d→D with bias), ``sr_conv1`` (Conv2d 1→Hd, 1x1),
    ``sr_layernorm`` (LayerNorm(Hd), kept for checkpoint compatibility but never used, so it never gets a
    gradient) and ``sr_conv2`` (Conv2d Hd→1, 1x1), where Hd = max(16, D // sr_ratio). The head width d is
    ``head_dim``, by default D // H (upstream: H·d = D); structured head pruning leaves fewer heads of the
    same width, H·d < D.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        head_dim: int | None = None,
        dropout: float = 0.0,
        epsilon: float = 1e-6,
        init_tau: float = 1.0,
        sr_ratio: int = 4,
        use_autopoietic: bool = True,
    ):
        super().__init__()
        if head_dim is None and embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads if head_dim is None else head_dim
        inner = num_heads * self.head_dim
        self.dropout = dropout
        self.epsilon = epsilon
        self.use_autopoietic = use_autopoietic
        hidden = max(16, embed_dim // sr_ratio)
        self.tau = nn.Parameter(torch.full((1,), float(init_tau)))
        self.q_proj = nn.Linear(embed_dim, inner)
        self.k_proj = nn.Linear(embed_dim, inner)
        self.v_proj = nn.Linear(embed_dim, inner)
        self.out_proj = nn.Linear(inner, embed_dim)
        self.sr_conv1 = nn.Conv2d(1, hidden, kernel_size=1)
        self.sr_layernorm = nn.LayerNorm(hidden)
        self.sr_conv2 = nn.Conv2d(hidden, 1, kernel_size=1)
        self.init_tau = float(init_tau)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Upstream init: xavier_uniform weights and zero biases for the projections and both convs."""
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj, self.sr_conv1, self.sr_conv2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.sr_layernorm.reset_parameters()
        with torch.no_grad():
            self.tau.fill_(self.init_tau)

    def _split_heads(self, x: Tensor) -> Tensor:  # [B, L, D] -> [B, H, L, d]
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: Tensor,  # [B, T, D]
        key: Tensor,  # [B, S, D]
        value: Tensor,  # [B, S, D]
        attn_mask: Tensor | None = None,  # [T, S] | [B, T, S] | [B, H|1, T, S]; float or bool (+1 where True)
        key_padding_mask: Tensor | None = None,  # [B, S] bool, True = padded
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:  # out [B, T, D], head-averaged probabilities [B, T, S]
        """Return ``(out_proj(P·V), mean_h P_h)``; the weights are taken after dropout, like upstream."""
        q = self._split_heads(self.q_proj(query))  # [B, H, T, d]
        k = self._split_heads(self.k_proj(key))  # [B, H, S, d]
        v = self._split_heads(self.v_proj(value))  # [B, H, S, d]
        out, probs = autopoietic_attention_ref(
            q,
            k,
            v,
            self.sr_conv1.weight,
            self.sr_conv1.bias,
            self.sr_conv2.weight,
            self.sr_conv2.bias,
            self.tau,
            epsilon=self.epsilon,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            use_autopoietic=self.use_autopoietic,
            dropout_p=self.dropout if self.training else 0.0,
        )
        batch, _, length, _ = out.shape
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))  # [B, T, D]
        return out, (probs.mean(dim=1) if need_weights else None)
