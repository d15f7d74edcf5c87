"""Plain-PyTorch reference of the block-sparse (block-CSR) linear layer: the packed format, the kernels' arithmetic,
forward and backward.

A weight W [N, K] cut into blocks (bn, bk), with N % bn == 0 and K % bk == 0, keeps some blocks whole:
    block_row_offsets  int64 [N / bn + 1]   kept blocks in the block rows before each one (0 first, blocks last)
    block_columns      int32 [blocks]       each kept block's block-column index, ascending within a block row
    values             [blocks, bn, bk]     the kept blocks (float32 or bfloat16; entries a finer mask pruned are 0)
The layer y [..., N] = x [..., K] . W^T + bias, in x's dtype (float32 or bfloat16):
    float32 values:  fp32 products and sums (F.linear on the dense masked weight, up to summation order);
    bfloat16 values: x rounded to bf16, exact products, fp32 sums (torch's bf16 matmul).
The backward: grad_x = grad_y . W, and grad_values, dW on the kept blocks only: for each kept block,
grad_y[:, rows]^T . x[:, columns] (x rounded to bf16 for bfloat16 values).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

BLOCKS = ((16, 16), (32, 32), (1, 16))
VALUE_DTYPES = (torch.float32, torch.bfloat16)


def check_block(block, out_features: int, in_features: int) -> Tuple[int, int]:
    """block as a (bn, bk) tuple that tiles [out_features, in_features], else ValueError naming `block`."""
    try:
        bn, bk = (int(b) for b in block)
    except (TypeError, ValueError):
        raise ValueError(f"block must be a pair (rows, columns), got {block!r}") from None
    if (bn, bk) not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(map(str, BLOCKS))}, got {(bn, bk)}")
    if out_features % bn or in_features % bk:
        raise ValueError(f"block {(bn, bk)} must tile the weight [{out_features}, {in_features}]: out_features must "
                         f"be a multiple of {bn} and in_features of {bk}, got {out_features} and {in_features}")
    return bn, bk


def check_structure(block_row_offsets: Tensor, block_columns: Tensor, out_features: int, in_features: int,
                    bn: int, bk: int) -> None:
    """Offsets start at 0, never decrease and end at the number of blocks; columns lie in [0, K / bk) and ascend
    strictly within a block row. ValueError naming the tensor, the expected and the given value."""
    block_rows, block_cols = out_features // bn, in_features // bk
    offsets, columns = block_row_offsets.long().cpu(), block_columns.long().cpu()
    if tuple(offsets.shape) != (block_rows + 1,):
        raise ValueError(f"block_row_offsets must have shape ({block_rows + 1},), got {tuple(offsets.shape)}")
    steps = offsets[1:] - offsets[:-1]
    if offsets[0] != 0 or offsets[-1] != columns.numel() or (steps < 0).any():
        raise ValueError(f"block_row_offsets must rise from 0 to the number of blocks {columns.numel()}, got "
                         f"{offsets[0].item()} .. {offsets[-1].item()}"
                         + (" with a decrease" if (steps < 0).any() else ""))
    if columns.numel() and (columns.min() < 0 or columns.max() >= block_cols):
        raise ValueError(f"block_columns must be in [0, {block_cols}), got values in [{columns.min().item()}, "
                         f"{columns.max().item()}]")
    row_of = torch.repeat_interleave(torch.arange(block_rows), steps)
    same_row = row_of[1:] == row_of[:-1]
    if (same_row & (columns[1:] <= columns[:-1])).any():
        row = int(row_of[1:][same_row & (columns[1:] <= columns[:-1])][0])
        raise ValueError(f"block_columns must ascend strictly within a block row, got "
                         f"{columns[offsets[row]:offsets[row + 1]].tolist()} in block row {row}")


def block_rows_of(block_row_offsets: Tensor) -> Tensor:
    """[blocks] int64: the block row of each kept block."""
    steps = block_row_offsets[1:] - block_row_offsets[:-1]
    return torch.repeat_interleave(torch.arange(steps.numel(), device=block_row_offsets.device), steps)


# --- the packed format ------------------------------------------------------------------------------------------

def kept_blocks(mask: Tensor, bn: int, bk: int) -> Tensor:
    """mask [N, K] bool -> [N / bn, K / bk] bool: the blocks with any kept entry."""
    rows, cols = mask.shape
    return mask.reshape(rows // bn, bn, cols // bk, bk).any(3).any(1)


def pack(weight: Tensor, mask: Tensor, bn: int, bk: int, dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor]:
    """weight [N, K], mask [N, K] bool -> (values [blocks, bn, bk] in dtype, block_row_offsets, block_columns):
    every block with a kept entry, its entries outside the mask zeroed."""
    rows, cols = weight.shape
    keep = kept_blocks(mask, bn, bk)  # [N / bn, K / bk]
    tiles = (weight.float() * mask).reshape(rows // bn, bn, cols // bk, bk).permute(0, 2, 1, 3)  # [R, C, bn, bk]
    block_row, block_col = keep.nonzero(as_tuple=True)  # row-major: ascending columns within a row
    values = tiles[block_row, block_col].to(dtype).contiguous()
    offsets = torch.zeros(rows // bn + 1, dtype=torch.int64, device=weight.device)
    offsets[1:] = keep.sum(1).cumsum(0)
    return values, offsets, block_col.to(torch.int32).contiguous()


def to_dense(values: Tensor, block_row_offsets: Tensor, block_columns: Tensor, out_features: int,
             in_features: int) -> Tensor:
    """[N, K] fp32 with zeros outside the kept blocks."""
    bn, bk = values.shape[1:]
    tiles = torch.zeros(out_features // bn, in_features // bk, bn, bk, dtype=torch.float32, device=values.device)
    tiles[block_rows_of(block_row_offsets), block_columns.long()] = values.float()
    return tiles.permute(0, 2, 1, 3).reshape(out_features, in_features)


def mask_of(block_row_offsets: Tensor, block_columns: Tensor, out_features: int, in_features: int, bn: int,
            bk: int) -> Tensor:
    """[N, K] bool: the entries of the kept blocks."""
    blocks = torch.zeros(out_features // bn, in_features // bk, dtype=torch.bool, device=block_columns.device)
    blocks[block_rows_of(block_row_offsets), block_columns.long()] = True
    return blocks.repeat_interleave(bn, 0).repeat_interleave(bk, 1)


# --- the layer ----------------------------------------------------------------------------------------------------

def _checked_dense(values: Tensor, block_row_offsets: Tensor, block_columns: Tensor, out_features: int,
                   in_features: int) -> Tensor:
    bn, bk = values.shape[1:]
    check_structure(block_row_offsets, block_columns, out_features, in_features, bn, bk)
    return to_dense(values, block_row_offsets, block_columns, out_features, in_features)


def _activations(x: Tensor, values: Tensor) -> Tensor:
    rows = x.reshape(-1, x.shape[-1])  # [M, K]
    return rows.bfloat16().float() if values.dtype == torch.bfloat16 else rows.float()


def block_linear_ref(x: Tensor, values: Tensor, block_row_offsets: Tensor, block_columns: Tensor,
                     bias: Tensor | None, out_features: int) -> Tensor:
    """x [..., K] fp32|bf16 -> y [..., N] in x's dtype."""
    w = _checked_dense(values, block_row_offsets, block_columns, out_features, x.shape[-1])  # [N, K]
    y = _activations(x, values) @ w.T
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], out_features)


def block_linear_backward_ref(grad_out: Tensor, x: Tensor, values: Tensor, block_row_offsets: Tensor,
                              block_columns: Tensor, need_grad_x: bool,
                              need_grad_values: bool) -> Tuple[Tensor, Tensor]:
    """(grad_x [..., K] in x's dtype, grad_values [blocks, bn, bk] in values' dtype); a gradient not asked for is an
    empty tensor."""
    out_features, in_features = grad_out.shape[-1], x.shape[-1]
    g = grad_out.reshape(-1, out_features).float()  # [M, N]
    grad_x = grad_values = x.new_empty(0)
    if need_grad_x:
        w = _checked_dense(values, block_row_offsets, block_columns, out_features, in_features)
        grad_x = (g @ w).to(x.dtype).reshape(x.shape)
    if need_grad_values:
        bn, bk = values.shape[1:]
        check_structure(block_row_offsets, block_columns, out_features, in_features, bn, bk)
        dense = (g.T @ _activations(x, values)).reshape(out_features // bn, bn, in_features // bk, bk)
        grad_values = dense.permute(0, 2, 1, 3)[block_rows_of(block_row_offsets), block_columns.long()]
        grad_values = grad_values.to(values.dtype).reshape(values.shape)
    return grad_x, grad_values
