"""Plain-PyTorch references of the two [B, H, T, S] stages of APT attention that apt_fast fuses
(APT_SPEC.md §2.5), cut out of apt_fast.reference.apt_attention:

* ``apt_head_mean_ref``: M = mean_h A_h, A_h the sanitised per-head scores (T1, T2);
* ``apt_attention_core_ref``: the per-head logits clamp(nan_to_num(clamp(F + 0.2 (A_h - M), ±15) + mask),
  ±30) (T17-T19) from the shared map F (T16) and M, then softmax, dropout and P·V.

Between them, the per-batch statistics (T3-T16) turn M into F. The masks are the additive 4D mask
of expand_attn_mask and the bool key padding mask [B, S].
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .apt_attention import attention_scores
from .dropout_hash import dropout_keep_factors


def sanitized_head_scores(
    q: Tensor,  # [B, H, T, d]
    k: Tensor,  # [B, H, S, d]
    attn_mask: Optional[Tensor],  # [B|1, H|1, T, S] additive
    key_padding_mask: Optional[Tensor],  # [B, S] bool
) -> Tensor:  # [B, H, T, S]
    """A_h = clamp(nan_to_num(s_h, nan=0, posinf=10, neginf=-10), -15, 15) (T1)."""
    scores = attention_scores(q, k, attn_mask, key_padding_mask)
    return torch.nan_to_num(scores, nan=0.0, posinf=10.0, neginf=-10.0).clamp(-15.0, 15.0)


def apt_head_mean_ref(q: Tensor, k: Tensor, attn_mask: Optional[Tensor],
                      key_padding_mask: Optional[Tensor]) -> Tensor:  # [B, T, S] float32
    """M in float32 whatever q's dtype: the statistics that read it stay in fp32 (with bf16 q, the scores are
    bf16 products and their head mean is taken in fp32)."""
    return sanitized_head_scores(q, k, attn_mask, key_padding_mask).float().mean(dim=1)


def apt_logits_ref(
    heads: Tensor,  # [B, H, T, S] A_h
    f: Tensor,  # [B, T, S]
    m: Tensor,  # [B, T, S]
    attn_mask: Optional[Tensor],  # [B|1, H|1, T, S] additive
) -> Tensor:  # [B, H, T, S]
    """T17-T19."""
    out = (f[:, None] + 0.2 * (heads - m[:, None])).clamp(-15.0, 15.0)
    if attn_mask is not None:
        out = out + 1.0 * attn_mask
    return torch.nan_to_num(out, nan=0.0).clamp(-30.0, 30.0)


def apt_attention_core_ref(
    q: Tensor,  # [B, H, T, d]
    k: Tensor,  # [B, H, S, d]
    v: Tensor,  # [B, H, S, d]
    f: Tensor,  # [B, T, S] float32 shared bias F (T16)
    m: Tensor,  # [B, T, S] float32 head mean M (T2)
    attn_mask: Optional[Tensor],  # [B|1, H|1, T, S] additive
    key_padding_mask: Optional[Tensor],  # [B, S] bool
    dropout_p: float = 0.0,
    seed: int = 0,
) -> Tuple[Tensor, Tensor]:  # out [B, H, T, d], lse [B, H, T] fp32
    """softmax(T17-T19 logits) with the kernels' hashed dropout, times V; and the logits' logsumexp."""
    logits = apt_logits_ref(sanitized_head_scores(q, k, attn_mask, key_padding_mask), f, m, attn_mask)
    probs = torch.softmax(logits, dim=-1)
    if dropout_p > 0.0:
        probs = probs * dropout_keep_factors(seed, probs.shape, dropout_p, probs.device).to(probs.dtype)
    return probs.to(v.dtype) @ v, torch.logsumexp(logits, dim=-1).float()


def grads_by_autograd(fn, grad_output: Tensor, inputs, differentiable):
    """Gradients of fn(*inputs) wrt the `differentiable` positions, by autograd on a recomputation (zeros for
    inputs the output does not depend on), each laid out as torch.empty_like(its input), like the ops' fake
    and native kernels (autograd gives k's gradient of q @ k^T transposed, for one)."""
    with torch.enable_grad():
        leaves = [x.detach().requires_grad_(True) if i in differentiable else x for i, x in enumerate(inputs)]
        out = fn(*leaves)
        out = out[0] if isinstance(out, tuple) else out
        grads = torch.autograd.grad(out, [leaves[i] for i in differentiable], grad_output, materialize_grads=True)
    return tuple(torch.empty_like(inputs[i]).copy_(g) for i, g in zip(differentiable, grads))
