"""F-style entry point of the unstructured sparse linear layer on a bitmap weight (format and arithmetic:
apt_fast.reference.bitmap_linear; packing: apt_fast.sparsity.formats.bitmap)."""

from __future__ import annotations

from typing import Optional

import torch

from ..autograd.bitmap_linear import BitmapLinearFunction
from ..validation import check_ndim


def bitmap_linear(
    x: torch.Tensor,  # [..., K] fp32|bf16
    bitmap: torch.Tensor,  # [N, ceil(K / 64)] int64, bit j of word w <-> column 64 w + j
    row_offsets: torch.Tensor,  # [N + 1] int64
    values: torch.Tensor,  # [nnz] fp32|bf16|int8, the kept weights in row-major order
    bias: Optional[torch.Tensor] = None,  # [N] fp32|bf16
    *,
    scales: Optional[torch.Tensor] = None,  # [N] fp32, int8 values only
) -> torch.Tensor:  # [..., N] in x's dtype
    """y = x . W^T + bias with W the sparse weight; differentiable in x, values (float values) and bias."""
    check_ndim("bitmap", bitmap, 2, "[out_features, words]")
    return BitmapLinearFunction.apply(x, values, bias, bitmap, row_offsets, scales, bitmap.shape[0])
