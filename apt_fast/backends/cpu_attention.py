"""CPU kernels of the attention ops: validate, bring tensors to fp32 with unit stride along the last
dim (copying only if needed), then hand (data_ptr, strides...) views to apt_fast._C."""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from .._native import native
from ..ops.apt_attention import check_apt_attention_args, check_head_mean_args
from ..ops.apt_stats import STATS_SIZE
from ..reference.apt_attention import QUANTILE_MAX_NUMEL, autopoietic_scale
from ..ops.flash_attention import check_flash_attention_args

NO_VIEW = (0, 0, 0, 0, 0)


def as_fp32_rows(x: Tensor) -> Tensor:
    """fp32 with unit stride along the last dim; other strides kept (no copy when already so)."""
    x = x.float()
    return x if x.stride(-1) == 1 else x.contiguous()


def head_view(x: Tensor) -> Tuple[int, int, int, int]:  # x [B, H, L, d] fp32, unit stride along d
    return (x.data_ptr(), x.stride(0), x.stride(1), x.stride(2))


def broadcast_view(x: Optional[Tensor], target: Tuple[int, int, int, int]) -> Tuple[int, ...]:
    """(data_ptr, strides of x broadcast to target [B, H, T, S]) with stride 0 along broadcast dims."""
    if x is None:
        return NO_VIEW
    expanded = x.reshape((1,) * (4 - x.dim()) + tuple(x.shape)).expand(target)
    return (x.data_ptr(), *expanded.stride())


def dims(q: Tensor, k: Tensor) -> Tuple[int, int, int, int, int]:
    return (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3])


def attention_target(q: Tensor, k: Tensor) -> Tuple[int, int, int, int]:
    return (q.shape[0], q.shape[1], q.shape[2], k.shape[2])


def bias_grad_buffer(bias: Tensor, target: Tuple[int, int, int, int]) -> Tuple[Tensor, Tuple[int, ...]]:
    """An fp32 buffer of the bias's own shape (the kernel zeroes it when it accumulates into it) and its
    broadcast view."""
    grad = torch.empty(bias.shape, dtype=torch.float32)
    return grad, broadcast_view(grad, target)


def flash_attention_fwd(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
                        causal: bool, scale: float, dropout_p: float, seed: int) -> Tuple[Tensor, Tensor]:
    check_flash_attention_args(q, k, v, bias, mask, dropout_p)
    target = attention_target(q, k)
    q32, k32, v32 = as_fp32_rows(q), as_fp32_rows(k), as_fp32_rows(v)
    bias32 = bias.float() if bias is not None else None
    out = torch.empty_like(q32)  # [B, H, T, d] in q's layout
    lse = torch.empty(target[:3], dtype=torch.float32)  # [B, H, T]
    native().flash_attention_fwd(dims(q, k), head_view(q32), head_view(k32), head_view(v32),
                                 broadcast_view(bias32, target), broadcast_view(mask, target), causal, scale,
                                 dropout_p, seed, head_view(out), lse.data_ptr(), torch.get_num_threads())
    return out.to(q.dtype), lse


def flash_attention_bwd(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                        mask: Optional[Tensor], out: Tensor, lse: Tensor, causal: bool, scale: float,
                        dropout_p: float, seed: int, bias_grad: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    check_flash_attention_args(q, k, v, bias, mask, dropout_p)
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


def _apt_masks(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]):
    """(additive fp32 key padding [B, S] or None, fp32 attn_mask or None, kernel views of both)."""
    key_pad = None
    if key_padding_mask is not None:
        key_pad = torch.zeros(key_padding_mask.shape, dtype=torch.float32).masked_fill_(key_padding_mask,
                                                                                        float("-inf"))
    mask32 = attn_mask.float() if attn_mask is not None else None
    views = (key_pad.data_ptr() if key_pad is not None else 0, broadcast_view(mask32, attention_target(q, k)))
    return key_pad, mask32, views


def apt_head_mean_fwd(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]) -> Tensor:
    check_head_mean_args(q, k, attn_mask, key_padding_mask)
    q32, k32 = as_fp32_rows(q), as_fp32_rows(k)
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    mean = torch.empty((q.shape[0], q.shape[2], k.shape[2]), dtype=torch.float32)  # [B, T, S]
    native().apt_head_mean_fwd(dims(q, k), head_view(q32), head_view(k32), q.shape[-1] ** -0.5, pad_view, mask_view,
                               mean.data_ptr(), torch.get_num_threads())
    return mean.to(q.dtype)


def apt_head_mean_bwd(grad_mean: Tensor, q: Tensor, k: Tensor, attn_mask: Optional[Tensor],
                      key_padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    check_head_mean_args(q, k, attn_mask, key_padding_mask)
    q32, k32 = as_fp32_rows(q), as_fp32_rows(k)
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    grad32 = grad_mean.float().contiguous()
    dq, dk = torch.empty_like(q32), torch.empty_like(k32)
    native().apt_head_mean_bwd(dims(q, k), head_view(q32), head_view(k32), q.shape[-1] ** -0.5, pad_view, mask_view,
                               grad32.data_ptr(), head_view(dq), head_view(dk), torch.get_num_threads())
    return dq.to(q.dtype), dk.to(k.dtype)


def apt_attention_fwd(q: Tensor, k: Tensor, v: Tensor, f: Tensor, m: Tensor, attn_mask: Optional[Tensor],
                      key_padding_mask: Optional[Tensor], dropout_p: float, seed: int) -> Tuple[Tensor, Tensor]:
    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)
    q32, k32, v32 = as_fp32_rows(q), as_fp32_rows(k), as_fp32_rows(v)
    f32, m32 = f.float().contiguous(), m.float().contiguous()
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    out = torch.empty_like(q32)
    lse = torch.empty(q.shape[:3], dtype=torch.float32)
    native().apt_attention_fwd(dims(q, k), head_view(q32), head_view(k32), head_view(v32), q.shape[-1] ** -0.5,
                               pad_view, mask_view, f32.data_ptr(), m32.data_ptr(), dropout_p, seed, head_view(out),
                               lse.data_ptr(), torch.get_num_threads())
    return out.to(q.dtype), lse


def apt_attention_bwd(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, f: Tensor, m: Tensor,
                      attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor], out: Tensor, lse: Tensor,
                      dropout_p: float, seed: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)
    q32, k32, v32 = as_fp32_rows(q), as_fp32_rows(k), as_fp32_rows(v)
    f32, m32 = f.float().contiguous(), m.float().contiguous()
    out32, lse32, grad32 = as_fp32_rows(out), lse.float().contiguous(), as_fp32_rows(grad_out)
    key_pad, mask32, (pad_view, mask_view) = _apt_masks(q, k, attn_mask, key_padding_mask)
    dq, dk, dv = torch.empty_like(q32), torch.empty_like(k32), torch.empty_like(v32)
    df = torch.empty_like(f32)
    native().apt_attention_bwd(dims(q, k), head_view(q32), head_view(k32), head_view(v32), q.shape[-1] ** -0.5,
                               pad_view, mask_view, f32.data_ptr(), m32.data_ptr(), dropout_p, seed, head_view(out32),
                               lse32.data_ptr(), head_view(grad32), head_view(dq), head_view(dk), head_view(dv),
                               df.data_ptr(), torch.get_num_threads())
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), df.to(f.dtype)


_scale_of = functools.lru_cache(maxsize=64)(autopoietic_scale)


def _stats_views(m: Tensor, attn_mask: Optional[Tensor], params: Tuple[Tensor, ...], epsilon: float):
    """(fp32 tensors to keep alive, and the kernel's sizes, params, mask, scale and quantile arguments).

    params = (sr_conv1_weight, sr_conv1_bias, sr_conv2_weight, sr_conv2_bias, tau); the mask's head 0 is read.
    The arguments were checked by the op (ops.apt_stats registers check_stats_args).
    """
    batch, t, s = m.shape
    m32 = m.float().contiguous()
    p32 = [x.detach().float().contiguous() for x in params]
    mask32 = attn_mask[:, :1].float() if attn_mask is not None else None
    sizes = (batch, t, s, params[0].numel())
    pointers = (m32.data_ptr(), *[x.data_ptr() for x in p32])
    quantile = t * s <= QUANTILE_MAX_NUMEL and m.dtype in (torch.float32, torch.float64)
    views = (sizes, pointers, broadcast_view(mask32, (batch, 1, t, s)), _scale_of(float(epsilon)), quantile)
    return (m32, p32, mask32), views


def apt_stats_fwd(m: Tensor, attn_mask: Optional[Tensor], w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, tau: Tensor,
                  epsilon: float) -> Tuple[Tensor, Tensor, Tensor]:
    alive, views = _stats_views(m, attn_mask, (w1, b1, w2, b2, tau), epsilon)
    f, r0 = torch.empty(m.shape, dtype=torch.float32), torch.empty(m.shape, dtype=torch.float32)  # [B, T, S]
    stats = torch.empty((m.shape[0], STATS_SIZE), dtype=torch.float64)  # [B, STATS_SIZE]
    native().apt_stats_fwd(*views, f.data_ptr(), r0.data_ptr(), stats.data_ptr(), torch.get_num_threads())
    return f.to(m.dtype), r0.to(m.dtype), stats


def apt_stats_bwd(grad_f: Tensor, m: Tensor, attn_mask: Optional[Tensor], w1: Tensor, b1: Tensor, w2: Tensor,
                  b2: Tensor, tau: Tensor, epsilon: float, r0: Tensor,
                  stats: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    params = (w1, b1, w2, b2, tau)
    alive, views = _stats_views(m, attn_mask, params, epsilon)
    r32, stats64, grad32 = r0.float().contiguous(), stats.double().contiguous(), grad_f.float().contiguous()
    grad_m = torch.empty(m.shape, dtype=torch.float32)  # [B, T, S]
    hidden = w1.numel()
    grad_params = torch.empty(3 * hidden + 2, dtype=torch.float32)  # [dw1 | db1 | dw2 | db2 | dtau]
    native().apt_stats_bwd(*views, r32.data_ptr(), stats64.data_ptr(), grad32.data_ptr(), grad_m.data_ptr(),
                           grad_params.data_ptr(), torch.get_num_threads())
    parts = grad_params.split((hidden, hidden, hidden, 1, 1))
    return (grad_m.to(m.dtype), *[g.reshape(p.shape).to(p.dtype, copy=True) for g, p in zip(parts, params)])
