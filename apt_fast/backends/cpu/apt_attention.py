"""CPU kernels of apt_fast::apt_head_mean_fwd / _bwd and apt_attention_fwd / _bwd (apt_fast._C). The ops check
the arguments first.

fp32 and bf16 q, k, v are read as they are (bf16: bf16 products with fp32 accumulation, fp32 clamps and
softmax); fp16 is computed in fp32. The [B, T, S] maps M, F, dM and dF are float32 whatever q's dtype (the
statistics stay fp32), and so are the masks the kernels read."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..._native import native
from ..registry import register_kernel
from .views import attention_target, broadcast_view, dims, dtype_code, head_view, kernel_rows


def map_rows(x: Tensor) -> Tensor:
    """A [B, T, S] map (float32 at the ops) as the kernels read it: fp32, contiguous."""
    return x.float().contiguous()


def _apt_masks(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]):
    """(additive fp32 key padding [B, S] or None, fp32 attn_mask or None, kernel views of both)."""
    key_pad = None
    if key_padding_mask is not None:
        key_pad = torch.zeros(key_padding_mask.shape, dtype=torch.float32).masked_fill_(key_padding_mask,
                                                                                        float("-inf"))
    mask32 = attn_mask.float() if attn_mask is not None else None
    views = (key_pad.data_ptr() if key_pad is not None else 0, broadcast_view(mask32, attention_target(q, k)))
    return key_pad, mask32, views


@register_kernel("apt_head_mean_fwd", "CPU")
def apt_head_mean_fwd(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]) -> Tensor:
    qk, kk = kernel_rows(q), kernel_rows(k)
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    mean = torch.empty((q.shape[0], q.shape[2], k.shape[2]), dtype=torch.float32)  # [B, T, S]
    native().apt_head_mean_fwd(dims(q, k), dtype_code(qk), head_view(qk), head_view(kk), q.shape[-1] ** -0.5,
                               pad_view, mask_view, mean.data_ptr(), torch.get_num_threads())
    return mean


@register_kernel("apt_head_mean_bwd", "CPU")
def apt_head_mean_bwd(grad_mean: Tensor, q: Tensor, k: Tensor, attn_mask: Optional[Tensor],
                      key_padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    qk, kk = kernel_rows(q), kernel_rows(k)
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    grad_k = map_rows(grad_mean)  # [B, T, S]
    dq, dk = torch.empty_like(qk), torch.empty_like(kk)
    native().apt_head_mean_bwd(dims(q, k), dtype_code(qk), head_view(qk), head_view(kk), q.shape[-1] ** -0.5,
                               pad_view, mask_view, grad_k.data_ptr(), head_view(dq), head_view(dk),
                               torch.get_num_threads())
    return dq.to(q.dtype), dk.to(k.dtype)


@register_kernel("apt_attention_fwd", "CPU")
def apt_attention_fwd(q: Tensor, k: Tensor, v: Tensor, f: Tensor, m: Tensor, attn_mask: Optional[Tensor],
                      key_padding_mask: Optional[Tensor], dropout_p: float, seed: int) -> Tuple[Tensor, Tensor]:
    qk, kk, vk = kernel_rows(q), kernel_rows(k), kernel_rows(v)
    fk, mk = map_rows(f), map_rows(m)  # [B, T, S]
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    out = torch.empty_like(qk)
    lse = torch.empty(q.shape[:3], dtype=torch.float32)
    native().apt_attention_fwd(dims(q, k), dtype_code(qk), head_view(qk), head_view(kk), head_view(vk),
                               q.shape[-1] ** -0.5, pad_view, mask_view, fk.data_ptr(), mk.data_ptr(), dropout_p,
                               seed, head_view(out), lse.data_ptr(), torch.get_num_threads())
    return out.to(q.dtype), lse


@register_kernel("apt_attention_bwd", "CPU")
def apt_attention_bwd(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, f: Tensor, m: Tensor,
                      attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor], out: Tensor, lse: Tensor,
                      dropout_p: float, seed: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    qk, kk, vk = kernel_rows(q), kernel_rows(k), kernel_rows(v)
    fk, mk = map_rows(f), map_rows(m)  # [B, T, S]
    out_k, lse32, grad_k = kernel_rows(out), lse.float().contiguous(), kernel_rows(grad_out)
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    dq, dk, dv = torch.empty_like(qk), torch.empty_like(kk), torch.empty_like(vk)
    df = torch.empty(f.shape, dtype=torch.float32)  # [B, T, S]
    native().apt_attention_bwd(dims(q, k), dtype_code(qk), head_view(qk), head_view(kk), head_view(vk),
                               q.shape[-1] ** -0.5, pad_view, mask_view, fk.data_ptr(), mk.data_ptr(), dropout_p,
                               seed, head_view(out_k), lse32.data_ptr(), head_view(grad_k), head_view(dq),
                               head_view(dk), head_view(dv), df.data_ptr(), torch.get_num_threads())
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), df.to(f.dtype)
