"""Plain-PyTorch reference of flash attention with an additive bias, a causal flag and a bool mask.

    logits = scale · q kᵀ + bias                         # [B, H, T, S], bias broadcast
    logits[~mask] = -inf;  causal: logits[i, j] = -inf for j > i (top-left aligned, like SDPA)
    P = softmax(logits) (a row with no visible key gives P = 0, out = 0, lse = -inf)
    out = (P ⊙ Z) · v, Z the dropout keep factors of reference/dropout_hash.py    # [B, H, T, d]
    lse = logsumexp(logits)                                                         # [B, H, T] fp32

The backward returns dq, dk, dv and d(bias) summed over the broadcast dims back to the bias's own
shape. This is the oracle of the C++ and Triton kernels; it materialises [B, H, T, S].
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .dropout_hash import dropout_keep_factors


def flash_attention_logits(
    q: Tensor,  # [B, H, T, d]
    k: Tensor,  # [B, H, S, d]
    bias: Optional[Tensor],  # broadcastable to [B, H, T, S]
    mask: Optional[Tensor],  # bool, broadcastable to [B, H, T, S]; True = attend
    causal: bool,
    scale: float,
) -> Tensor:  # [B, H, T, S]
    logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    if causal:
        t, s = logits.shape[-2:]
        visible = torch.ones(t, s, dtype=torch.bool, device=q.device).tril()  # [T, S]
        logits = logits.masked_fill(~visible, float("-inf"))
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits


def flash_attention_probs(logits: Tensor) -> Tuple[Tensor, Tensor]:  # P [B, H, T, S], lse [B, H, T]
    """Row softmax with empty rows (all -inf) giving P = 0 and lse = -inf instead of NaN."""
    lse = torch.logsumexp(logits, dim=-1)  # [B, H, T]
    empty = torch.isneginf(lse)[..., None]
    probs = torch.exp(logits - torch.where(empty, torch.zeros_like(lse[..., None]), lse[..., None]))
    return probs.masked_fill(empty, 0.0), lse


def flash_attention_fwd_ref(
    q: Tensor,  # [B, H, T, d]
    k: Tensor,  # [B, H, S, d]
    v: Tensor,  # [B, H, S, d]
    bias: Optional[Tensor] = None,  # broadcastable to [B, H, T, S]
    mask: Optional[Tensor] = None,  # bool, broadcastable to [B, H, T, S]
    causal: bool = False,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
    seed: int = 0,
) -> Tuple[Tensor, Tensor]:  # out [B, H, T, d], lse [B, H, T] fp32
    """Forward of the reference; dropout keeps element (b, h, t, s) by the kernels' hash of `seed`."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    probs, lse = flash_attention_probs(flash_attention_logits(q, k, bias, mask, causal, scale))
    if dropout_p > 0.0:
        probs = probs * dropout_keep_factors(seed, probs.shape, dropout_p, probs.device).to(probs.dtype)
    return probs @ v, lse.float()


def flash_attention_bwd_ref(
    grad_out: Tensor,  # [B, H, T, d]
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
    causal: bool = False,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
    seed: int = 0,
) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:  # dq, dk, dv, dbias (bias's shape) or None
    """Gradients of the reference forward by autograd on a recomputation (same dropout draw), laid out as the
    op's fake and native kernels give them: dq, dk, dv as torch.empty_like(q, k, v) (autograd gives dk of
    q @ k^T transposed), dbias contiguous."""
    with torch.enable_grad():
        leaves = [x.detach().requires_grad_(True) for x in (q, k, v)]
        bias_leaf = bias.detach().requires_grad_(True) if bias is not None else None
        out, _ = flash_attention_fwd_ref(*leaves, bias_leaf, mask, causal, scale, dropout_p, seed)
        inputs = leaves + ([bias_leaf] if bias_leaf is not None else [])
        grads = torch.autograd.grad(out, inputs, grad_out, allow_unused=True)
    dq, dk, dv = (torch.empty_like(x).copy_(g) for x, g in zip((q, k, v), grads))
    return dq, dk, dv, (grads[3].contiguous() if bias is not None else None)
