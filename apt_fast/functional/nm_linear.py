"""F-style entry point of the N:M sparse linear layer, on the packed format of apt_fast/reference/nm_linear.py
(apt_fast.sparsity.formats.nm packs a pruned weight into it)."""

from __future__ import annotations

from typing import Optional

import torch

from ..autograd.nm_linear import NMLinearFunction


def nm_linear(
    x: torch.Tensor,  # [..., K] fp32|bf16
    values: torch.Tensor,  # [N, K n / m] fp32|bf16|int8: the kept weights
    indices: torch.Tensor,  # [N, ceil(K n / m * log2(m) / 8)] uint8: their positions in each group of m
    bias: Optional[torch.Tensor] = None,  # [N] fp32|bf16
    *,
    scales: Optional[torch.Tensor] = None,  # [N] fp32, for int8 values only
    n: int = 2,
    m: int = 4,
) -> torch.Tensor:  # [..., N] in x's dtype
    """y = x . W^T + bias with W kept n of every m inputs; differentiable in x, the float values (on the kept
    entries only) and bias."""
    return NMLinearFunction.apply(x, values, indices, scales, bias, n, m)
