"""autograd.Functions of the layer fusions: residual add + LayerNorm, and bias + exact GELU, on [rows, width]."""

from __future__ import annotations

import torch


class AddLayerNormFunction(torch.autograd.Function):
    """LayerNorm(x + residual) * weight + bias; x and residual get the same gradient (that of their sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                eps: float) -> torch.Tensor:
        out, mean, rstd = torch.ops.apt_fast.add_layer_norm_fwd(x, residual, weight, bias, eps)
        ctx.save_for_backward(x, residual, weight, bias, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, residual, weight, bias, mean, rstd = ctx.saved_tensors
        grad_sum, grad_weight, grad_bias = torch.ops.apt_fast.add_layer_norm_bwd(grad_out, x, residual, weight, bias,
                                                                                  mean, rstd)
        return grad_sum, grad_sum, grad_weight, grad_bias, None


class BiasGeluFunction(torch.autograd.Function):
    """GELU(x + bias), exact; keeps x (not x + bias) for the backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, bias)
        return torch.ops.apt_fast.bias_gelu_fwd(x, bias)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, bias = ctx.saved_tensors
        return torch.ops.apt_fast.bias_gelu_bwd(grad_out, x, bias)
