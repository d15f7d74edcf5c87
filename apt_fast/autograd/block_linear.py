"""autograd.Function of the block-sparse linear layer: gradients for x (grad_y . W through the kept blocks), for
the kept blocks' values only and for the bias, through apt_fast::block_linear_backward in one call."""

from __future__ import annotations

from typing import Optional

import torch

from .nm_linear import bias_grad


class BlockLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, values: torch.Tensor, block_row_offsets: torch.Tensor,
                block_columns: torch.Tensor, bias: Optional[torch.Tensor], out_features: int) -> torch.Tensor:
        ctx.save_for_backward(x, values, block_row_offsets, block_columns, bias)
        return torch.ops.apt_fast.block_linear(x, values, block_row_offsets, block_columns, bias, out_features)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, values, block_row_offsets, block_columns, bias = ctx.saved_tensors
        need_x, need_values = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = grad_values = None
        if need_x or need_values:
            grad_x, grad_values = torch.ops.apt_fast.block_linear_backward(
                grad_out, x, values, block_row_offsets, block_columns, need_x, need_values)
        return (grad_x if need_x else None, grad_values if need_values else None, None, None,
                bias_grad(grad_out, bias, ctx.needs_input_grad[4]), None)
