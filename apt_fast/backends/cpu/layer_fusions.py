"""CPU kernels of the layer-fusion ops: hand data pointers to apt_fast._C. The ops check the arguments first.

Rows are made contiguous (a copy only if they are not); weight and bias go to the kernels as float32 (they are
[width] vectors), and the weight/bias gradients come back in their dtype.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ..._native import native
from ..registry import register_kernel

_DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}


def _fp32(vector: torch.Tensor) -> torch.Tensor:  # [width]; keep it in a variable while its pointer is in use
    return vector.to(torch.float32).contiguous()


@register_kernel("add_layer_norm_fwd", "CPU")
def add_layer_norm_fwd(
    x: torch.Tensor,  # [N, D] fp32|bf16
    residual: torch.Tensor,  # [N, D]
    weight: torch.Tensor,  # [D]
    bias: torch.Tensor,  # [D]
    eps: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, residual, weight32, bias32 = x.contiguous(), residual.contiguous(), _fp32(weight), _fp32(bias)
    rows, width = x.shape
    out = torch.empty_like(x)  # [N, D]
    mean = torch.empty(rows, dtype=torch.float32)  # [N]
    rstd = torch.empty(rows, dtype=torch.float32)  # [N]
    native().add_layer_norm_fwd(x.data_ptr(), residual.data_ptr(), weight32.data_ptr(), bias32.data_ptr(),
                                _DTYPE_CODES[x.dtype], rows, width, eps, out.data_ptr(), mean.data_ptr(),
                                rstd.data_ptr(), torch.get_num_threads())
    return out, mean, rstd


@register_kernel("add_layer_norm_bwd", "CPU")
def add_layer_norm_bwd(
    grad_out: torch.Tensor,  # [N, D] x.dtype
    x: torch.Tensor,  # [N, D]
    residual: torch.Tensor,  # [N, D]
    weight: torch.Tensor,  # [D]
    bias: torch.Tensor,  # [D]
    mean: torch.Tensor,  # [N] fp32
    rstd: torch.Tensor,  # [N] fp32
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_out, x, residual = grad_out.contiguous(), x.contiguous(), residual.contiguous()
    mean, rstd, weight32, bias32 = mean.contiguous(), rstd.contiguous(), _fp32(weight), _fp32(bias)
    rows, width = x.shape
    grad_sum = torch.empty_like(x)  # [N, D]
    grad_weight = torch.empty(width, dtype=torch.float32)  # [D]
    grad_bias = torch.empty(width, dtype=torch.float32)  # [D]
    native().add_layer_norm_bwd(grad_out.data_ptr(), x.data_ptr(), residual.data_ptr(), weight32.data_ptr(),
                                bias32.data_ptr(), _DTYPE_CODES[x.dtype], rows, width, mean.data_ptr(),
                                rstd.data_ptr(), grad_sum.data_ptr(), grad_weight.data_ptr(), grad_bias.data_ptr(),
                                torch.get_num_threads())
    return grad_sum, grad_weight.to(weight.dtype), grad_bias.to(bias.dtype)


@register_kernel("bias_gelu_fwd", "CPU")
def bias_gelu_fwd(
    x: torch.Tensor,  # [N, F] fp32|bf16
    bias: torch.Tensor,  # [F]
) -> torch.Tensor:  # [N, F]
    x, bias32 = x.contiguous(), _fp32(bias)
    rows, width = x.shape
    out = torch.empty_like(x)
    native().bias_gelu_fwd(x.data_ptr(), bias32.data_ptr(), _DTYPE_CODES[x.dtype], rows, width, out.data_ptr(),
                           torch.get_num_threads())
    return out


@register_kernel("bias_gelu_bwd", "CPU")
def bias_gelu_bwd(
    grad_out: torch.Tensor,  # [N, F] x.dtype
    x: torch.Tensor,  # [N, F]
    bias: torch.Tensor,  # [F]
) -> Tuple[torch.Tensor, torch.Tensor]:
    grad_out, x, bias32 = grad_out.contiguous(), x.contiguous(), _fp32(bias)
    rows, width = x.shape
    grad_x = torch.empty_like(x)  # [N, F]
    grad_bias = torch.empty(width, dtype=torch.float32)  # [F]
    native().bias_gelu_bwd(grad_out.data_ptr(), x.data_ptr(), bias32.data_ptr(), _DTYPE_CODES[x.dtype], rows,
                           width, grad_x.data_ptr(), grad_bias.data_ptr(), torch.get_num_threads())
    return grad_x, grad_bias.to(bias.dtype)
