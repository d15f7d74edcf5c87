"""CPU kernels of apt_fast::block_linear and block_linear_backward (apt_fast._C, csrc/block_linear). The ops check
shapes and dtypes first; the kernel checks the offsets, then the columns, and reads the blocks as they are."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..._native import native
from ..registry import register_kernel
from .nm_linear import DTYPE_CODES, fp32_bias, pointer, rows_of

VALUE_CODES = {torch.float32: 0, torch.bfloat16: 1}


def _weight_arguments(values: Tensor, block_row_offsets: Tensor, block_columns: Tensor, out_features: int,
                      in_features: int):
    """(n, k, bn, bk, values code, blocks, values, offsets, columns pointers) and the contiguous tensors they keep
    alive."""
    values, offsets, columns = values.contiguous(), block_row_offsets.contiguous(), block_columns.contiguous()
    blocks, bn, bk = values.shape
    arguments = (out_features, in_features, bn, bk, VALUE_CODES[values.dtype], blocks, values.data_ptr(),
                 offsets.data_ptr(), columns.data_ptr())
    return arguments, (values, offsets, columns)


@register_kernel("block_linear", "CPU")
def block_linear(x: Tensor, values: Tensor, block_row_offsets: Tensor, block_columns: Tensor,
                 bias: Optional[Tensor], out_features: int) -> Tensor:
    rows, k = rows_of(x), x.shape[-1]
    weight, _alive = _weight_arguments(values, block_row_offsets, block_columns, out_features, k)
    bias = fp32_bias(bias)
    y = torch.empty((rows.shape[0], out_features), dtype=x.dtype)  # [M, N]
    native().block_linear(rows.shape[0], rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype], *weight,
                          pointer(bias), y.data_ptr(), out_features, torch.get_num_threads())
    return y.reshape(*x.shape[:-1], out_features)


@register_kernel("block_linear_backward", "CPU")
def block_linear_backward(grad_out: Tensor, x: Tensor, values: Tensor, block_row_offsets: Tensor,
                          block_columns: Tensor, need_grad_x: bool, need_grad_values: bool):
    rows, grad = rows_of(x), rows_of(grad_out)
    k, out_features = x.shape[-1], grad_out.shape[-1]
    weight, _alive = _weight_arguments(values, block_row_offsets, block_columns, out_features, k)
    grad_x = torch.empty((rows.shape[0], k), dtype=torch.float32) if need_grad_x else None  # [M, K]
    grad_values = torch.empty(values.shape, dtype=torch.float32) if need_grad_values else None  # [blocks, bn, bk]
    if need_grad_x or need_grad_values:
        native().block_linear_backward(rows.shape[0], grad.data_ptr(), grad.stride(0), DTYPE_CODES[grad.dtype],
                                       rows.data_ptr(), rows.stride(0), DTYPE_CODES[x.dtype], *weight,
                                       pointer(grad_x), pointer(grad_values), torch.get_num_threads())
    grad_x = grad_x.to(x.dtype).reshape(x.shape) if need_grad_x else x.new_empty(0)
    grad_values = grad_values.to(values.dtype) if need_grad_values else x.new_empty(0)
    return grad_x, grad_values
