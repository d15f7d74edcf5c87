"""autograd.Functions of the quantized linear layers: gradients for the activations (grad_y . dequantize(W); the
activations' own quantization passes the gradient straight through) and the bias. The weights are frozen."""

from __future__ import annotations

from typing import Optional

import torch


def _bias_grad(grad_out: torch.Tensor, needed: bool) -> Optional[torch.Tensor]:
    return grad_out.reshape(-1, grad_out.shape[-1]).float().sum(0) if needed else None


class Int8LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, compensation: torch.Tensor, scales: torch.Tensor,
                bias: Optional[torch.Tensor], out_features: int, group_size: int, activation_bits: int) -> torch.Tensor:
        ctx.save_for_backward(weight, scales)
        ctx.settings = (x.shape[-1], group_size)
        return torch.ops.apt_fast.int8_linear(x, weight, compensation, scales, bias, out_features, group_size,
                                              activation_bits)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weight, scales = ctx.saved_tensors
        in_features, group_size = ctx.settings
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.apt_fast.quantized_linear_grad_input(
                grad_out, weight, scales, in_features, group_size, 0
            )
        return grad_x, None, None, None, _bias_grad(grad_out, ctx.needs_input_grad[4]), None, None, None


class Fp8LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor, bias: Optional[torch.Tensor],
                out_features: int, group_size: int, fp8_format: int) -> torch.Tensor:
        ctx.save_for_backward(weight, scales)
        ctx.settings = (x.shape[-1], group_size, fp8_format)
        return torch.ops.apt_fast.fp8_linear(x, weight, scales, bias, out_features, group_size, fp8_format)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weight, scales = ctx.saved_tensors
        in_features, group_size, fp8_format = ctx.settings
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.apt_fast.quantized_linear_grad_input(grad_out, weight, scales, in_features, group_size,
                                                                   fp8_format)
        return grad_x, None, None, _bias_grad(grad_out, ctx.needs_input_grad[3]), None, None, None
