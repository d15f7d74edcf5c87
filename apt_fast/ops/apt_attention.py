"""Ops for the fused [B, H, T, S] stages of APT attention (APT_SPEC.md §2.5):

  apt_head_mean_fwd / _bwd   M = mean_h clamp(nan_to_num(s_h), ±15)             [B, T, S]
  apt_attention_fwd / _bwd   softmax(T17-T19 logits from F, M and each head) · V  -> out, lse

The [B, T, S] maps M, F and their gradients are float32 whatever q's dtype (fp32, bf16 or fp16): the statistics
between the stages stay in fp32, so bf16 attention keeps fp32's quantile path and trains tau.

Semantics: apt_fast/reference/apt_attention_ops.py. apt_fast.functional.apt_attention chains them with
the per-batch statistics in between. define_op runs the argument checks below before every kernel.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..reference.apt_attention_ops import apt_attention_core_ref, apt_head_mean_ref, grads_by_autograd
from ..validation import check_dtype, check_in_range, check_same_device
from .flash_attention import check_broadcast, check_like_q, check_qkv, check_same_dtype, dtype_name
from .library import define_op

MASKS = "Tensor? attn_mask, Tensor? key_padding_mask"
HEAD_MEAN_FWD = f"(Tensor q, Tensor k, {MASKS}) -> Tensor"
HEAD_MEAN_BWD = f"(Tensor grad_mean, Tensor q, Tensor k, {MASKS}) -> (Tensor, Tensor)"
ATTENTION_FWD = (f"(Tensor q, Tensor k, Tensor v, Tensor f, Tensor m, {MASKS}, float dropout_p, int seed) "
                 "-> (Tensor, Tensor)")
ATTENTION_BWD = (f"(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor f, Tensor m, {MASKS}, "
                 "Tensor out, Tensor lse, float dropout_p, int seed) -> (Tensor, Tensor, Tensor, Tensor)")


def check_apt_masks(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]) -> None:
    """attn_mask: additive, q's dtype (apt_fast.functional.apt_attention casts it), broadcastable to [B, H, T, S];
    key_padding_mask: bool [B, S]."""
    b, h, t, _ = q.shape
    s = k.shape[2]
    if attn_mask is not None:
        check_same_dtype("attn_mask", attn_mask, "q", q)
        check_broadcast("attn_mask", attn_mask, (b, h, t, s), q)
    if key_padding_mask is not None:
        check_dtype("key_padding_mask", key_padding_mask, (torch.bool,))
        check_same_device("key_padding_mask", key_padding_mask, "q", q)
        if tuple(key_padding_mask.shape) != (b, s):
            raise ValueError(f"key_padding_mask must have shape [B, S] = [{b}, {s}], "
                             f"got {tuple(key_padding_mask.shape)}")


def check_shared_map(name: str, x: Tensor, q: Tensor, k: Tensor) -> None:
    """x [B, T, S] float32 (the maps between the stages stay fp32 whatever q's dtype)."""
    shape = (q.shape[0], q.shape[2], k.shape[2])
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} must have shape [B, T, S] = {list(shape)}, got {tuple(x.shape)}")
    if x.dtype != torch.float32:
        raise ValueError(f"{name} must be float32 (APT's [B, T, S] maps stay fp32 whatever q's dtype), got {name} "
                         f"{dtype_name(x)} with q {dtype_name(q)}")
    check_same_device(name, x, "q", q)


def check_head_mean_args(q, k, attn_mask, key_padding_mask) -> None:
    check_qkv(q, k, k)
    check_apt_masks(q, k, attn_mask, key_padding_mask)


def check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p) -> None:
    check_qkv(q, k, v)
    check_apt_masks(q, k, attn_mask, key_padding_mask)
    check_shared_map("f", f, q, k)
    check_shared_map("m", m, q, k)
    check_in_range("dropout_p", dropout_p, 0.0, 1.0, high_open=True)


def _check_head_mean_fwd(q, k, attn_mask, key_padding_mask) -> None:
    check_head_mean_args(q, k, attn_mask, key_padding_mask)


def _check_head_mean_bwd(grad_mean, q, k, attn_mask, key_padding_mask) -> None:
    check_head_mean_args(q, k, attn_mask, key_padding_mask)
    check_shared_map("grad_mean", grad_mean, q, k)


def _check_attention_fwd(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed) -> None:
    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)


def _check_attention_bwd(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed) -> None:
    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)
    check_like_q("grad_out", grad_out, q)
    check_like_q("out", out, q)


def _head_mean_fwd_fake(q, k, attn_mask, key_padding_mask):
    return q.new_empty((q.shape[0], q.shape[2], k.shape[2]), dtype=torch.float32)


def _head_mean_bwd_reference(grad_mean, q, k, attn_mask, key_padding_mask):
    return tuple(grads_by_autograd(apt_head_mean_ref, grad_mean, (q, k, attn_mask, key_padding_mask), (0, 1)))


def _head_mean_bwd_fake(grad_mean, q, k, attn_mask, key_padding_mask):
    return torch.empty_like(q), torch.empty_like(k)


def _attention_fwd_fake(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed):
    return torch.empty_like(q), q.new_empty(q.shape[:3], dtype=torch.float32)


def _attention_bwd_reference(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed):
    inputs = (q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed)
    dq, dk, dv, df = grads_by_autograd(apt_attention_core_ref, grad_out, inputs, (0, 1, 2, 3))
    return dq, dk, dv, df


def _attention_bwd_fake(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(f)


define_op("apt_head_mean_fwd", HEAD_MEAN_FWD, apt_head_mean_ref, _head_mean_fwd_fake, check=_check_head_mean_fwd)
define_op("apt_head_mean_bwd", HEAD_MEAN_BWD, _head_mean_bwd_reference, _head_mean_bwd_fake,
          check=_check_head_mean_bwd)
define_op("apt_attention_fwd", ATTENTION_FWD, apt_attention_core_ref, _attention_fwd_fake, check=_check_attention_fwd)
define_op("apt_attention_bwd", ATTENTION_BWD, _attention_bwd_reference, _attention_bwd_fake,
          check=_check_attention_bwd)
