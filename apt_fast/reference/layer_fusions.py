"""Plain-PyTorch references of the layer fusions: the residual add + LayerNorm of a post-LN layer and the
FFN's bias + exact GELU, forward and backward, computed in float32 (float64 when given float64).

* ``add_layer_norm``: out = (s - mean) * rstd * weight + bias, s = x + residual, over the last dim, with the
  biased variance and rstd = 1 / sqrt(var + eps) (torch.nn.LayerNorm's definition); mean and rstd [N] are kept
  for the backward, which recomputes s.
* ``bias_gelu``: out = GELU(x + bias) = v * Phi(v), v = x + bias (F.gelu's exact form).

Outputs and input gradients come back in x's dtype, the weight and bias gradients in their own dtype.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def add_layer_norm_fwd_ref(
    x: Tensor,  # [N, D] fp32|bf16
    residual: Tensor,  # [N, D] x.dtype
    weight: Tensor,  # [D]
    bias: Tensor,  # [D]
    eps: float,
) -> Tuple[Tensor, Tensor, Tensor]:  # out [N, D] x.dtype, mean [N] fp32, rstd [N] fp32
    compute = _compute_dtype(x)
    total = x.to(compute) + residual.to(compute)  # [N, D]
    mean = total.mean(dim=-1)  # [N]
    rstd = torch.rsqrt(total.var(dim=-1, unbiased=False) + eps)  # [N]
    out = (total - mean[:, None]) * rstd[:, None] * weight.to(compute) + bias.to(compute)
    return out.to(x.dtype), mean, rstd


def add_layer_norm_bwd_ref(
    grad_out: Tensor,  # [N, D] x.dtype
    x: Tensor,  # [N, D]
    residual: Tensor,  # [N, D]
    weight: Tensor,  # [D]
    bias: Tensor,  # [D]
    mean: Tensor,  # [N] fp32
    rstd: Tensor,  # [N] fp32
) -> Tuple[Tensor, Tensor, Tensor]:  # grad of x + residual [N, D] x.dtype, grad_weight [D], grad_bias [D]
    compute = _compute_dtype(x)
    grad = grad_out.to(compute)  # [N, D]
    rstd = rstd.to(compute)[:, None]  # [N, 1]
    xhat = (x.to(compute) + residual.to(compute) - mean.to(compute)[:, None]) * rstd  # [N, D]
    weighted = grad * weight.to(compute)  # [N, D]
    grad_sum = rstd * (weighted - weighted.mean(dim=-1, keepdim=True)
                       - xhat * (weighted * xhat).mean(dim=-1, keepdim=True))
    return grad_sum.to(x.dtype), (grad * xhat).sum(dim=0).to(weight.dtype), grad.sum(dim=0).to(bias.dtype)


def _normal_cdf(v: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-v * (1.0 / math.sqrt(2.0)))


def bias_gelu_fwd_ref(
    x: Tensor,  # [N, F] fp32|bf16
    bias: Tensor,  # [F]
) -> Tensor:  # [N, F] x.dtype
    v = x.to(_compute_dtype(x)) + bias.to(_compute_dtype(x))  # [N, F]
    return (v * _normal_cdf(v)).to(x.dtype)


def bias_gelu_bwd_ref(
    grad_out: Tensor,  # [N, F] x.dtype
    x: Tensor,  # [N, F]
    bias: Tensor,  # [F]
) -> Tuple[Tensor, Tensor]:  # grad_x [N, F] x.dtype, grad_bias [F] bias.dtype
    compute = _compute_dtype(x)
    v = x.to(compute) + bias.to(compute)  # [N, F]
    density = torch.exp(-0.5 * v * v) * (1.0 / math.sqrt(2.0 * math.pi))
    grad = grad_out.to(compute) * (_normal_cdf(v) + v * density)  # [N, F]
    return grad.to(x.dtype), grad.sum(dim=0).to(bias.dtype)
