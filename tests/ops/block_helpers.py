"""Shared pieces of the block_linear tests: random block masks with an empty and a full block row, and weights
packed in the block format."""

from __future__ import annotations

import torch

from apt_fast.sparsity.formats.block import BlockWeight


def block_mask(rows: int, k: int, block=(16, 16), density: float = 0.3, seed: int = 0,
               odd_rows: bool = True) -> torch.Tensor:
    """[rows, k] bool keeping about `density` of the blocks whole; odd_rows: block row 0 keeps no block and block
    row 1 every block (when there are at least 3 block rows)."""
    bn, bk = block
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.rand(rows // bn, k // bk, generator=generator) < density
    if odd_rows and rows // bn >= 3:
        blocks[0] = False
        blocks[1] = True
    return blocks.repeat_interleave(bn, 0).repeat_interleave(bk, 1)


def block_weight(rows: int, k: int, block=(16, 16), density: float = 0.3, dtype: torch.dtype = torch.float32,
                 seed: int = 0, odd_rows: bool = True) -> BlockWeight:
    generator = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(rows, k, generator=generator)
    return BlockWeight.pack(weight, block_mask(rows, k, block, density, seed, odd_rows), dtype, block=block)


def op_arguments(w: BlockWeight):
    """(values, block_row_offsets, block_columns) as the ops take them."""
    return w.values, w.block_row_offsets, w.block_columns


def seven_block_weight() -> BlockWeight:
    """A (16, 16)-block [48, 64] fp32 weight whose structure the bad-input tests edit: 7 blocks, block rows
    [0, 4, 7, 7], columns [0, 1, 2, 3 | 0, 2, 3] (block row 2 empty)."""
    blocks = torch.tensor([[True, True, True, True], [True, False, True, True], [False, False, False, False]])
    mask = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)  # [48, 64]
    return BlockWeight.pack(torch.randn(48, 64, generator=torch.Generator().manual_seed(0)), mask, block=(16, 16))


def offsets(*values) -> torch.Tensor:
    """block_row_offsets as written."""
    return torch.tensor(values, dtype=torch.int64)


def columns(*values) -> torch.Tensor:
    """block_columns as written."""
    return torch.tensor(values, dtype=torch.int32)
