"""CPU kernels of apt_fast::nm_linear and nm_linear_backward (apt_fast._C, csrc/nm_linear). The ops check the
arguments first; the kernels read the packed format as it is."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..._native import native
from ..registry import register_kernel

DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
VALUE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.int8: 2}


def rows_of(x: Tensor) -> Tensor:
    """x [..., K] as [M, K] with unit stride along K (copying only if needed)."""
    rows = x.reshape(-1, x.shape[-1])
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def pointer(tensor: Optional[Tensor]) -> int:
    return tensor.data_ptr() if tensor is not None else 0


def fp32_bias(bias: Optional[Tensor]) -> Optional[Tensor]:
    return bias.float().contiguous() if bias is not None else None


@register_kernel("nm_linear", "CPU")
def nm_linear(x: Tensor, values: Tensor, indices: Tensor, scales: Optional[Tensor], bias: Optional[Tensor],
              out_features: int, n: int, m: int) -> Tensor:
    rows, k = rows_of(x), x.shape[-1]
    values, indices = values.contiguous(), indices.contiguous()
    scales = scales.contiguous() if scales is not None else None
    bias = fp32_bias(bias)
    y = torch.empty((rows.shape[0], out_features), dtype=x.dtype)  # [M, N]
    native().nm_linear(rows.shape[0], rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype], out_features, k, n, m,
                       VALUE_CODES[values.dtype], values.data_ptr(), indices.data_ptr(), pointer(scales),
                       pointer(bias), y.data_ptr(), out_features, torch.get_num_threads())
    return y.reshape(*x.shape[:-1], out_features)


@register_kernel("nm_linear_backward", "CPU")
def nm_linear_backward(grad_out: Tensor, x: Tensor, values: Tensor, indices: Tensor, scales: Optional[Tensor],
                       n: int, m: int, need_grad_x: bool, need_grad_values: bool):
    rows, grad = rows_of(x), rows_of(grad_out)
    k, out_features = x.shape[-1], values.shape[0]
    values, indices = values.contiguous(), indices.contiguous()
    scales = scales.contiguous() if scales is not None else None
    grad_x = torch.empty((rows.shape[0], k), dtype=torch.float32) if need_grad_x else None  # [M, K]
    grad_values = torch.empty(values.shape, dtype=torch.float32) if need_grad_values else None  # [N, kept]
    if need_grad_x or need_grad_values:
        native().nm_linear_backward(rows.shape[0], grad.data_ptr(), grad.stride(0), DTYPE_CODES[grad.dtype],
                                    rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype], out_features, k, n, m,
                                    VALUE_CODES[values.dtype], values.data_ptr(), indices.data_ptr(),
                                    pointer(scales), pointer(grad_x), pointer(grad_values), torch.get_num_threads())
    grad_x = grad_x.to(x.dtype).reshape(x.shape) if need_grad_x else x.new_empty(0)
    grad_values = grad_values.to(values.dtype) if need_grad_values else x.new_empty(0)
    return grad_x, grad_values
