"""CPU kernels of apt_fast::bitmap_linear and bitmap_linear_backward (apt_fast._C, csrc/bitmap_linear/). The ops
check the arguments first."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..._native import native
from ..registry import register_kernel

DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
VALUE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.int8: 2}


def _rows(t: Tensor) -> Tensor:
    """t [..., C] as [M, C] with unit stride along C (copying only if needed)."""
    rows = t.reshape(-1, t.shape[-1])
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def _pointer(t: Optional[Tensor]) -> int:
    return t.data_ptr() if t is not None else 0


def _weight(bitmap: Tensor, row_offsets: Tensor, values: Tensor, scales: Optional[Tensor], k: int):
    """The weight arguments of the native calls (keep the contiguous tensors alive while they run)."""
    tensors = [t.contiguous() if t is not None else None for t in (bitmap, row_offsets, values, scales)]
    pointers = (bitmap.shape[0], k, *(_pointer(t) for t in tensors[:3]), VALUE_CODES[values.dtype],
                _pointer(tensors[3]))
    return pointers, tensors


@register_kernel("bitmap_linear", "CPU")
def bitmap_linear(x: Tensor, bitmap: Tensor, row_offsets: Tensor, values: Tensor, scales: Optional[Tensor],
                  bias: Optional[Tensor], out_features: int) -> Tensor:
    rows, k = _rows(x), x.shape[-1]
    weight, _alive = _weight(bitmap, row_offsets, values, scales, k)
    bias = bias.float().contiguous() if bias is not None else None
    y = torch.empty((rows.shape[0], out_features), dtype=x.dtype)  # [M, N]
    native().bitmap_linear(*weight, rows.shape[0], rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype],
                           _pointer(bias), y.data_ptr(), out_features, torch.get_num_threads())
    return y.reshape(*x.shape[:-1], out_features)


@register_kernel("bitmap_linear_backward", "CPU")
def bitmap_linear_backward(grad_y: Tensor, x: Tensor, bitmap: Tensor, row_offsets: Tensor, values: Tensor,
                           scales: Optional[Tensor], need_grad_x: bool,
                           need_grad_values: bool) -> Tuple[Tensor, Tensor]:
    k = x.shape[-1]
    g, rows = _rows(grad_y), _rows(x)
    weight, _alive = _weight(bitmap, row_offsets, values, scales, k)
    grad_x = torch.empty(x.shape if need_grad_x else (0,), dtype=grad_y.dtype)  # [..., K]
    grad_values = torch.empty(values.shape if need_grad_values else (0,), dtype=values.dtype)  # [nnz]
    native().bitmap_linear_backward(*weight, g.shape[0], g.data_ptr(), g.stride(0), DTYPE_CODES[grad_y.dtype],
                                    rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype],
                                    grad_x.data_ptr() if need_grad_x else 0,
                                    grad_values.data_ptr() if need_grad_values else 0, torch.get_num_threads())
    return grad_x, grad_values
