"""F-style entry point of the block-sparse linear layer, on the block-CSR format of
apt_fast/reference/block_linear.py (apt_fast.sparsity.formats.block packs a pruned weight into it)."""

from __future__ import annotations

from typing import Optional

import torch

from ..autograd.block_linear import BlockLinearFunction


def block_linear(
    x: torch.Tensor,  # [..., K] fp32|bf16
    values: torch.Tensor,  # [blocks, bn, bk] fp32|bf16: the kept blocks
    block_row_offsets: torch.Tensor,  # [N / bn + 1] int64
    block_columns: torch.Tensor,  # [blocks] int32
    bias: Optional[torch.Tensor] = None,  # [N] fp32|bf16
) -> torch.Tensor:  # [..., N] in x's dtype
    """y = x . W^T + bias with W kept as whole (bn, bk) blocks; differentiable in x, the kept blocks' values and
    bias."""
    out_features = (block_row_offsets.numel() - 1) * values.shape[1]
    return BlockLinearFunction.apply(x, values, block_row_offsets, block_columns, bias, out_features)
