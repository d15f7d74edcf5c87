"""The block-CSR format: the weight cut into (bn, bk) blocks, (16, 16), (32, 32) or (1, 16), of which the kept
ones are stored whole, with each block row's offset and each block's column (layout and arithmetic:
apt_fast.reference.block_linear). The kernels run a dense micro-kernel on every kept block, so compute-bound
shapes speed up about as much as the blocks shrink."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from ...functional.block_linear import block_linear
from ...reference import block_linear as ref
from .base import SparseWeight, check_pack_arguments, check_tensor, dtype_name, sparse_format

DTYPES = {dtype_name(dtype): dtype for dtype in ref.VALUE_DTYPES}


@sparse_format("block")
@dataclass(frozen=True, eq=False)
class BlockWeight(SparseWeight):
    block_row_offsets: Tensor  # [N / bn + 1] int64
    block_columns: Tensor  # [blocks] int32
    block: Tuple[int, int] = (32, 32)

    def options(self) -> dict:
        return {**super().options(), "block": list(self.block)}

    @classmethod
    def pack(cls, weight: Tensor, mask: Tensor, dtype: torch.dtype = torch.float32, block=(32, 32),
             **options) -> "BlockWeight":
        """weight [N, K] and a mask: every (bn, bk) block with a kept entry is stored (the mask's other entries in
        it as zeros); block must tile the weight."""
        if options:
            raise ValueError(f"the block format takes the option block, got {', '.join(sorted(options))}")
        check_pack_arguments(weight, mask, dtype, ref.VALUE_DTYPES)
        bn, bk = ref.check_block(block, *weight.shape)
        values, offsets, columns = ref.pack(weight.detach(), mask, bn, bk, dtype)
        return cls(weight.shape[0], weight.shape[1], values, offsets, columns, (bn, bk))

    @classmethod
    def from_state(cls, out_features: int, in_features: int, options: dict, values: Tensor,
                   structure: Dict[str, Tensor]) -> "BlockWeight":
        if options.get("format") != "block":
            raise ValueError(f"options['format'] must be 'block', got {options.get('format')!r}")
        if options.get("dtype") not in DTYPES:
            raise ValueError(f"options['dtype'] must be one of {', '.join(map(repr, DTYPES))}, got "
                             f"{options.get('dtype')!r}")
        bn, bk = ref.check_block(options.get("block", ()), out_features, in_features)
        if set(structure) != {"block_row_offsets", "block_columns"}:
            raise ValueError(f"structure must hold block_columns, block_row_offsets, got "
                             f"{', '.join(sorted(structure)) or 'nothing'}")
        offsets, columns = structure["block_row_offsets"], structure["block_columns"]
        check_tensor("block_row_offsets", offsets, (out_features // bn + 1,), (torch.int64,))
        if not isinstance(columns, Tensor) or columns.dim() != 1:
            raise ValueError(f"block_columns must be a 1-D tensor [blocks], got "
                             f"{tuple(columns.shape) if isinstance(columns, Tensor) else type(columns).__name__}")
        check_tensor("block_columns", columns, tuple(columns.shape), (torch.int32,))
        ref.check_structure(offsets, columns, out_features, in_features, bn, bk)
        check_tensor("values", values, (columns.shape[0], bn, bk), (DTYPES[options["dtype"]],))
        return cls(out_features, in_features, values, offsets, columns, (bn, bk))

    def mask(self) -> Tensor:
        """Every entry of the kept blocks (the format keeps no finer mask: entries it zeroed may train)."""
        return ref.mask_of(self.block_row_offsets, self.block_columns, self.out_features, self.in_features,
                           *self.block)

    def to_dense(self, values: Optional[Tensor] = None) -> Tensor:
        values = self.values if values is None else values
        return ref.to_dense(values, self.block_row_offsets, self.block_columns, self.out_features, self.in_features)

    def linear(self, x: Tensor, values: Tensor, bias: Optional[Tensor]) -> Tensor:
        return block_linear(x, values, self.block_row_offsets, self.block_columns, bias)
