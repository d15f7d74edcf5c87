"""CPU kernels of apt_fast::apt_stats_fwd / _bwd (apt_fast._C). The ops check the arguments first."""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..._native import native
from ...ops.apt_stats import STATS_SIZE
from ...reference.apt_attention import QUANTILE_MAX_NUMEL, autopoietic_scale
from ..registry import register_kernel
from .views import broadcast_view

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


@register_kernel("apt_stats_fwd", "CPU")
def apt_stats_fwd(m: Tensor, attn_mask: Optional[Tensor], w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, tau: Tensor,
                  epsilon: float) -> Tuple[Tensor, Tensor, Tensor]:
    alive, views = _stats_views(m, attn_mask, (w1, b1, w2, b2, tau), epsilon)
    f, r0 = torch.empty(m.shape, dtype=torch.float32), torch.empty(m.shape, dtype=torch.float32)  # [B, T, S]
    stats = torch.empty((m.shape[0], STATS_SIZE), dtype=torch.float64)  # [B, STATS_SIZE]
    native().apt_stats_fwd(*views, f.data_ptr(), r0.data_ptr(), stats.data_ptr(), torch.get_num_threads())
    return f.to(m.dtype), r0.to(m.dtype), stats


@register_kernel("apt_stats_bwd", "CPU")
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
