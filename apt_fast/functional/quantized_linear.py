"""F-style entry points of the quantized linear layers, on row-major quantized weights (as files hold them).

On the CPU these pack the weight on every call; a layer used more than once should be an Int8Linear /
Fp8Linear (apt_fast.modules), which packs once.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..autograd.quantized_linear import Fp8LinearFunction, Int8LinearFunction
from ..reference.quantized_linear import FP8_FORMATS
from ..validation import check_choice, check_ndim


def _group_size(weight: torch.Tensor, scales: torch.Tensor) -> int:
    check_ndim("weight", weight, 2, "[out_features, in_features]")
    check_ndim("scales", scales, 2, "[out_features, groups]")
    if scales.shape[1] < 1 or weight.shape[1] % scales.shape[1] != 0:
        raise ValueError(f"scales must have a number of groups dividing in_features {weight.shape[1]}, got shape "
                         f"{tuple(scales.shape)}")
    return weight.shape[1] // scales.shape[1]


def int8_linear(
    x: torch.Tensor,  # [..., K] fp32|bf16
    weight: torch.Tensor,  # [N, K] int8 in [-127, 127]
    scales: torch.Tensor,  # [N, groups] fp32
    bias: Optional[torch.Tensor] = None,  # [N] fp32
    *,
    activation_bits: int = 8,
) -> torch.Tensor:  # [..., N] in x's dtype
    """y = x . (weight * scales)^T + bias with int8 arithmetic: the activations are quantized per row inside the
    kernel to 8 bits (W8A8 dynamic) or 16 bits (weight-only int8); see apt_fast.reference.quantized_linear."""
    group_size = _group_size(weight, scales)
    empty = torch.empty(0, dtype=torch.int32, device=weight.device)
    return Int8LinearFunction.apply(x, weight, empty, scales, bias, weight.shape[0], group_size, activation_bits)


def fp8_linear(
    x: torch.Tensor,  # [..., K] fp32|bf16
    weight: torch.Tensor,  # [N, K] float8_e4m3fn | float8_e5m2 (or their bytes as uint8, with fp8_format)
    scales: torch.Tensor,  # [N, groups] fp32
    bias: Optional[torch.Tensor] = None,  # [N] fp32
    *,
    fp8_format: Optional[str] = None,  # 'e4m3' | 'e5m2'; read from weight's dtype when it is a float8 dtype
) -> torch.Tensor:  # [..., N] in x's dtype
    """y = bf16(x) . (value(weight) * scales)^T + bias, products exact and summed in fp32."""
    by_dtype = {dtype: name for name, (_, dtype, _) in FP8_FORMATS.items()}
    name = by_dtype.get(weight.dtype, fp8_format)
    if name is None:
        raise ValueError(f"weight must be float8_e4m3fn or float8_e5m2 (or uint8 with fp8_format), got {weight.dtype}")
    check_choice("fp8_format", name, FP8_FORMATS)
    group_size = _group_size(weight, scales)
    return Fp8LinearFunction.apply(x, weight.view(torch.uint8), scales, bias, weight.shape[0], group_size,
                                   FP8_FORMATS[name][0])
