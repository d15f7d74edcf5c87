"""F-style entry points of the layer fusions: residual add + LayerNorm and bias + exact GELU, over the last dim."""

from __future__ import annotations

import torch

from ..autograd.layer_fusions import AddLayerNormFunction, BiasGeluFunction


def _rows(x: torch.Tensor) -> torch.Tensor:  # [..., W] -> [rows, W]
    if x.dim() == 0:
        raise ValueError("x must have at least 1 dimension (the normalised width), got a 0-D tensor")
    return x.reshape(-1, x.shape[-1])


def add_layer_norm(
    x: torch.Tensor,  # [..., D] fp32|bf16
    residual: torch.Tensor,  # [..., D], x's shape
    weight: torch.Tensor,  # [D]
    bias: torch.Tensor,  # [D]
    eps: float = 1e-5,
) -> torch.Tensor:  # [..., D]
    """``F.layer_norm(x + residual, (D,), weight, bias, eps)`` in one pass, forward and backward.

    x and residual of different floating dtypes are computed in the wider one (as ``x + residual`` would be).
    """
    if x.shape != residual.shape:
        raise ValueError(f"residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")
    if x.dtype != residual.dtype:
        common = torch.promote_types(x.dtype, residual.dtype)
        x, residual = x.to(common), residual.to(common)
    out = AddLayerNormFunction.apply(_rows(x), _rows(residual), weight, bias, float(eps))  # [rows, D]
    return out.view(x.shape)


def bias_gelu(
    x: torch.Tensor,  # [..., F] fp32|bf16
    bias: torch.Tensor,  # [F]
) -> torch.Tensor:  # [..., F]
    """``F.gelu(x + bias)`` (the exact, erf form) in one pass, forward and backward; the result in x's dtype."""
    return BiasGeluFunction.apply(_rows(x), bias).view(x.shape)
