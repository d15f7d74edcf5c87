"""CPU kernels of apt_fast::flash_attention_fwd / _bwd (apt_fast._C). The op checks the arguments first."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..._native import native
from ..registry import register_kernel
from .views import NO_VIEW, as_fp32_rows, attention_target, broadcast_view, dims, head_view


def bias_grad_buffer(bias: Tensor, target: Tuple[int, int, int, int]) -> Tuple[Tensor, Tuple[int, ...]]:
    """An fp32 buffer of the bias's own shape (the kernel zeroes it when it accumulates into it) and its
    broadcast view."""
    grad = torch.empty(bias.shape, dtype=torch.float32)
    return grad, broadcast_view(grad, target)


@register_kernel("flash_attention_fwd", "CPU")
def flash_attention_fwd(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
                        causal: bool, scale: float, dropout_p: float, seed: int) -> Tuple[Tensor, Tensor]:
    target = attention_target(q, k)
    q32, k32, v32 = as_fp32_rows(q), as_fp32_rows(k), as_fp32_rows(v)
    bias32 = bias.float() if bias is not None else None
    out = torch.empty_like(q32)  # [B, H, T, d] in q's layout
    lse = torch.empty(target[:3], dtype=torch.float32)  # [B, H, T]
    native().flash_attention_fwd(dims(q, k), head_view(q32), head_view(k32), head_view(v32),
                                 broadcast_view(bias32, target), broadcast_view(mask, target), causal, scale,
                                 dropout_p, seed, head_view(out), lse.data_ptr(), torch.get_num_threads())
    return out.to(q.dtype), lse


@register_kernel("flash_attention_bwd", "CPU")
def flash_attention_bwd(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                        mask: Optional[Tensor], out: Tensor, lse: Tensor, causal: bool, scale: float,
                        dropout_p: float, seed: int, bias_grad: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    target = attention_target(q, k)
    q32, k32, v32 = as_fp32_rows(q), as_fp32_rows(k), as_fp32_rows(v)
    bias32 = bias.float() if bias is not None else None
    dq, dk, dv = torch.empty_like(q32), torch.empty_like(k32), torch.empty_like(v32)
    dbias, dbias_view = bias_grad_buffer(bias, target) if bias is not None and bias_grad else (None, NO_VIEW)
    out32, lse32, grad32 = as_fp32_rows(out), lse.float().contiguous(), as_fp32_rows(grad_out)  # kept alive
    native().flash_attention_bwd(dims(q, k), head_view(q32), head_view(k32), head_view(v32),
                                 broadcast_view(bias32, target), broadcast_view(mask, target), causal, scale,
                                 dropout_p, seed, head_view(out32), lse32.data_ptr(), head_view(grad32),
                                 head_view(dq), head_view(dk), head_view(dv), dbias_view, torch.get_num_threads())
    dbias = dbias.to(bias.dtype) if dbias is not None else q.new_empty(0)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dbias
