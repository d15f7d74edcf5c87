"""autograd.Function of the bitmap sparse linear layer: gradients to x (grad_y . W through the sparse weight), to
the packed values (grad_y^T . x at the kept entries only; int8 values are frozen) and to the bias, the first two
from one apt_fast::bitmap_linear_backward call."""

from __future__ import annotations

from typing import Optional

import torch


class BitmapLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, values: torch.Tensor, bias: Optional[torch.Tensor], bitmap: torch.Tensor,
                row_offsets: torch.Tensor, scales: Optional[torch.Tensor], out_features: int) -> torch.Tensor:
        ctx.save_for_backward(x, values, bitmap, row_offsets, scales)
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return torch.ops.apt_fast.bitmap_linear(x, bitmap, row_offsets, values, scales, bias, out_features)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, values, bitmap, row_offsets, scales = ctx.saved_tensors
        need_x, need_values, need_bias = ctx.needs_input_grad[:3]
        grad_x = grad_values = grad_bias = None
        if need_x or need_values:
            grad_x, grad_values = torch.ops.apt_fast.bitmap_linear_backward(grad_y, x, bitmap, row_offsets, values,
                                                                            scales, need_x, need_values)
            grad_x, grad_values = (grad_x if need_x else None), (grad_values if need_values else None)
        if need_bias:
            grad_bias = grad_y.reshape(-1, grad_y.shape[-1]).float().sum(0).to(ctx.bias_dtype)
        return grad_x, grad_values, grad_bias, None, None, None, None
