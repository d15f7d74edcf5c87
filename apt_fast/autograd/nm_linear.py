"""autograd.Function of the N:M sparse linear layer: gradients for x (grad_y . W through the sparse weight), for
the kept values only (the masked dW; int8 values are frozen) and for the bias, through apt_fast::nm_linear_backward
in one call."""

from __future__ import annotations

from typing import Optional

import torch


def bias_grad(grad_out: torch.Tensor, bias: Optional[torch.Tensor], needed: bool) -> Optional[torch.Tensor]:
    """grad_out [..., N] summed over every leading dim, in the bias's dtype."""
    if not needed:
        return None
    return grad_out.reshape(-1, grad_out.shape[-1]).float().sum(0).to(bias.dtype)


class NMLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, scales: Optional[torch.Tensor],
                bias: Optional[torch.Tensor], n: int, m: int) -> torch.Tensor:
        ctx.save_for_backward(x, values, indices, scales, bias)
        ctx.pattern = (n, m)
        return torch.ops.apt_fast.nm_linear(x, values, indices, scales, bias, values.shape[0], n, m)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, values, indices, scales, bias = ctx.saved_tensors
        n, m = ctx.pattern
        need_x, need_values = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = grad_values = None
        if need_x or need_values:
            grad_x, grad_values = torch.ops.apt_fast.nm_linear_backward(grad_out, x, values, indices, scales, n, m,
                                                                        need_x, need_values)
        return (grad_x if need_x else None, grad_values if need_values else None, None, None,
                bias_grad(grad_out, bias, ctx.needs_input_grad[4]), None, None)
