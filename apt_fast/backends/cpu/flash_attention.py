"""CPU kernels of apt_fast::flash_attention_fwd / _bwd (apt_fast._C). The op checks the arguments first.

fp32 and bf16 q, k, v are read as they are (bf16: bf16 products with fp32 accumulation and softmax); fp16 is
computed in fp32. The bias is read in its own dtype when it is fp32 or bf16; its gradient comes back in it."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..._native import native
from ..registry import register_kernel
from .views import NO_VIEW, attention_target, broadcast_view, dims, dtype_code, head_view, kernel_rows


def bias_grad_buffer(bias: Tensor, target: Tuple[int, int, int, int]) -> Tuple[Tensor, Tuple[int, ...], int]:
    """Where the kernel writes the bias gradient: (buffer, its view, its dtype code). A bf16 bias of the full
    [B, H, T, S] (no broadcast) gets a bf16 [B, H, T, S] buffer, each element stored once; any other bias an fp32
    buffer of its own shape (summed into where the bias is broadcast; zeroed by the kernel)."""
    if bias.dtype == torch.bfloat16 and bias.numel() == math.prod(target):
        grad = torch.empty(target, dtype=torch.bfloat16)
        return grad, (grad.data_ptr(), *grad.stride()), dtype_code(grad)
    grad = torch.empty(bias.shape, dtype=torch.float32)
    return grad, broadcast_view(grad, target), dtype_code(grad)


def bias_view(bias: Optional[Tensor], target: Tuple[int, int, int, int]) -> Tuple[Optional[Tensor], Tuple, int]:
    """(the bias as the kernel reads it (kept alive by the caller), its broadcast view, its dtype code)."""
    if bias is None:
        return None, NO_VIEW, 0
    kernel_bias = bias if bias.dtype == torch.bfloat16 else bias.float()
    return kernel_bias, broadcast_view(kernel_bias, target), dtype_code(kernel_bias)


@register_kernel("flash_attention_fwd", "CPU")
def flash_attention_fwd(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
                        causal: bool, scale: float, dropout_p: float, seed: int) -> Tuple[Tensor, Tensor]:
    target = attention_target(q, k)
    qk, kk, vk = kernel_rows(q), kernel_rows(k), kernel_rows(v)
    kernel_bias, bias_v, bias_code = bias_view(bias, target)
    out = torch.empty_like(qk)  # [B, H, T, d] in q's layout
    lse = torch.empty(target[:3], dtype=torch.float32)  # [B, H, T]
    native().flash_attention_fwd(dims(q, k), dtype_code(qk), head_view(qk), head_view(kk), head_view(vk), bias_v,
                                 bias_code, broadcast_view(mask, target), causal, scale, dropout_p, seed,
                                 head_view(out), lse.data_ptr(), torch.get_num_threads())
    return out.to(q.dtype), lse


@register_kernel("flash_attention_bwd", "CPU")
def flash_attention_bwd(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                        mask: Optional[Tensor], out: Tensor, lse: Tensor, causal: bool, scale: float,
                        dropout_p: float, seed: int, bias_grad: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    target = attention_target(q, k)
    qk, kk, vk = kernel_rows(q), kernel_rows(k), kernel_rows(v)
    kernel_bias, bias_v, bias_code = bias_view(bias, target)
    dq, dk, dv = torch.empty_like(qk), torch.empty_like(kk), torch.empty_like(vk)
    wanted = bias is not None and bias_grad
    dbias, dbias_view, dbias_code = bias_grad_buffer(bias, target) if wanted else (None, NO_VIEW, 0)
    out_k, lse32, grad_k = kernel_rows(out), lse.float().contiguous(), kernel_rows(grad_out)  # kept alive
    native().flash_attention_bwd(dims(q, k), dtype_code(qk), head_view(qk), head_view(kk), head_view(vk), bias_v,
                                 bias_code, broadcast_view(mask, target), causal, scale, dropout_p, seed,
                                 head_view(out_k), lse32.data_ptr(), head_view(grad_k), head_view(dq), head_view(dk),
                                 head_view(dv), dbias_view, dbias_code, torch.get_num_threads())
    dbias = dbias.view(bias.shape).to(bias.dtype) if dbias is not None else q.new_empty(0)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dbias
