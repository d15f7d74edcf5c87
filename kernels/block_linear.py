"""Triton kernels of the block-sparse (block-CSR) linear layer (semantics and format:
apt_fast/reference/block_linear.py): values [blocks, bn, bk] fp32|bf16, block_row_offsets int64 [N / bn + 1],
block_columns int32 [blocks] (ascending within a block row), (bn, bk) in {(16, 16), (32, 32), (1, 16)}.

  forward:      one program per (row block of x, block row): it walks its kept blocks and multiplies each with the
                x columns it covers, tl.dot for bn >= 16 (fp32: IEEE fp32; bf16: x rounded to bf16, bf16 tensor-core
                dots on a GPU, fp32 dots under the interpreter), a broadcast product for (1, 16) blocks (a dot needs
                16 rows).
  grad_x:       one program per (row block, block column c): grad_y . W over the output rows; BLOCK_R block rows at
                a time (32 rows of W), each finds its block in column c, if any, by a binary search of its ascending
                columns, and the found blocks form one [BLOCK_R bn, bk] tile for an IEEE fp32 tl.dot.
  grad_values:  one program per kept block: its block row by a binary search of block_row_offsets, then
                grad_y[:, rows]^T . x[:, columns] over all rows of x (x as the forward multiplies it).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .rounding import rounded_for
from .sparse_values import VALUE_CODES, as_rows, multiplied

BLOCK_M = 16
TILE_ROWS = 32  # rows of W per grad_x step


@triton.jit
def _block_linear_fwd_kernel(x_ptr, values_ptr, block_row_offsets_ptr, block_columns_ptr, bias_ptr, y_ptr, M, N, K,
                             VALUES: tl.constexpr, HAS_BIAS: tl.constexpr, BF16_DOT: tl.constexpr,
                             BN: tl.constexpr, BK: tl.constexpr, BLOCK_M: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    block_row = tl.program_id(1)
    row_ok = rows < M
    outs = block_row * BN + tl.arange(0, BN)  # [BN]
    inner = tl.arange(0, BK)  # [BK]
    acc = tl.zeros([BLOCK_M, BN], dtype=tl.float32)
    first = tl.load(block_row_offsets_ptr + block_row)
    last = tl.load(block_row_offsets_ptr + block_row + 1)
    for b in range(first, last):
        cols = tl.load(block_columns_ptr + b) * BK + inner  # [BK]
        x = multiplied(tl.load(x_ptr + rows[:, None] * K + cols[None, :], mask=row_ok[:, None], other=0.0),
                       VALUES)  # [BLOCK_M, BK]
        v = tl.load(values_ptr + b * (BN * BK) + tl.arange(0, BN)[:, None] * BK + inner[None, :]).to(tl.float32)
        if BN == 1:
            acc += tl.sum(x * v, axis=1)[:, None]
        elif BF16_DOT:
            acc += tl.dot(x.to(tl.bfloat16), tl.trans(v.to(tl.bfloat16)))
        else:
            acc += tl.dot(x, tl.trans(v), input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(bias_ptr + outs).to(tl.float32)[None, :]
    tl.store(y_ptr + rows[:, None] * N + outs[None, :], rounded_for(acc, y_ptr), mask=row_ok[:, None])


@triton.jit
def _block_linear_bwd_grad_x_kernel(g_ptr, values_ptr, block_row_offsets_ptr, block_columns_ptr, grad_x_ptr, M, N, K,
                                    block_rows, search_steps, BN: tl.constexpr, BK: tl.constexpr,
                                    BLOCK_M: tl.constexpr, BLOCK_R: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    column = tl.program_id(1)
    row_ok = rows < M
    inner = tl.arange(0, BK)  # [BK]
    acc = tl.zeros([BLOCK_M, BK], dtype=tl.float32)
    for r0 in range(0, block_rows, BLOCK_R):
        block_row = r0 + tl.arange(0, BLOCK_R)  # [BLOCK_R]
        r_ok = block_row < block_rows
        lo = tl.load(block_row_offsets_ptr + block_row, mask=r_ok, other=0)  # [BLOCK_R] int64
        end = tl.load(block_row_offsets_ptr + block_row + 1, mask=r_ok, other=0)
        hi = end
        for _ in range(search_steps):  # lo -> the first block of the row whose column is >= column
            mid = (lo + hi) // 2
            active = lo < hi
            right = active & (tl.load(block_columns_ptr + mid, mask=active, other=0) < column)
            lo = tl.where(right, mid + 1, lo)
            hi = tl.where(active & ~right, mid, hi)
        found = (lo < end) & (tl.load(block_columns_ptr + lo, mask=lo < end, other=-1) == column)  # [BLOCK_R]
        if tl.sum(found.to(tl.int32), axis=0) > 0:
            tile = tl.load(values_ptr + lo[:, None, None] * (BN * BK) + tl.arange(0, BN)[None, :, None] * BK
                           + inner[None, None, :], mask=found[:, None, None], other=0.0)  # [BLOCK_R, BN, BK]
            outs = r0 * BN + tl.arange(0, BLOCK_R * BN)  # [BLOCK_R * BN]
            g = tl.load(g_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None] & (outs[None, :] < N),
                        other=0.0).to(tl.float32)  # [BLOCK_M, BLOCK_R * BN]
            acc += tl.dot(g, tl.reshape(tile.to(tl.float32), (BLOCK_R * BN, BK)), input_precision="ieee")
    cols = column * BK + inner  # [BK]
    tl.store(grad_x_ptr + rows[:, None] * K + cols[None, :], rounded_for(acc, grad_x_ptr), mask=row_ok[:, None])


@triton.jit
def _block_linear_bwd_grad_values_kernel(g_ptr, x_ptr, block_row_offsets_ptr, block_columns_ptr, grad_values_ptr, M,
                                         N, K, block_rows, search_steps, VALUES: tl.constexpr, BN: tl.constexpr,
                                         BK: tl.constexpr, BLOCK_M: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    lo = tl.full([], 0, tl.int64)  # the block row: the last r with block_row_offsets[r] <= b
    hi = tl.full([], 0, tl.int64) + block_rows - 1
    for _ in range(search_steps):
        mid = (lo + hi + 1) // 2
        up = tl.load(block_row_offsets_ptr + mid) <= b
        lo = tl.where(up, mid, lo)
        hi = tl.where(up, hi, mid - 1)
    outs = lo * BN + tl.arange(0, BN)  # [BN]
    cols = tl.load(block_columns_ptr + b) * BK + tl.arange(0, BK)  # [BK]
    acc = tl.zeros([BN, BK], dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)  # [BLOCK_M]
        row_ok = rows < M
        g = tl.load(g_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None], other=0.0).to(tl.float32)
        x = multiplied(tl.load(x_ptr + rows[:, None] * K + cols[None, :], mask=row_ok[:, None], other=0.0),
                       VALUES)  # [BLOCK_M, BK]
        if BN == 1:
            acc += tl.sum(g * x, axis=0)[None, :]
        else:
            acc += tl.dot(tl.trans(g), x, input_precision="ieee")
    tl.store(grad_values_ptr + b * (BN * BK) + tl.arange(0, BN)[:, None] * BK + tl.arange(0, BK)[None, :],
             rounded_for(acc, grad_values_ptr))


# --- launchers ------------------------------------------------------------------------------------------------

def block_linear_triton(x: torch.Tensor, values: torch.Tensor, block_row_offsets: torch.Tensor,
                        block_columns: torch.Tensor, bias: Optional[torch.Tensor], out_features: int) -> torch.Tensor:
    """x [..., K] fp32|bf16 -> y [..., N] in x's dtype."""
    rows = as_rows(x)  # [M, K]
    m, k = rows.shape
    bn, bk = values.shape[1:]
    y = torch.empty((m, out_features), dtype=x.dtype, device=x.device)
    if m:
        _block_linear_fwd_kernel[(triton.cdiv(m, BLOCK_M), out_features // bn)](
            rows, values.contiguous(), block_row_offsets.contiguous(), block_columns.contiguous(),
            bias if bias is not None else y, y, m, out_features, k, VALUES=VALUE_CODES[values.dtype],
            HAS_BIAS=bias is not None, BF16_DOT=x.is_cuda, BN=bn, BK=bk, BLOCK_M=BLOCK_M)
    return y.reshape(*x.shape[:-1], out_features)


def block_linear_backward_triton(grad_out: torch.Tensor, x: torch.Tensor, values: torch.Tensor,
                                 block_row_offsets: torch.Tensor, block_columns: torch.Tensor, need_grad_x: bool,
                                 need_grad_values: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """grad_out [..., N], x [..., K] -> (grad_x [..., K] in x's dtype, grad_values [blocks, bn, bk] in values'
    dtype); a gradient not asked for is an empty tensor."""
    grad_x = grad_values = x.new_empty(0)
    g, rows = as_rows(grad_out), as_rows(x)  # [M, N], [M, K]
    (m, n), k = g.shape, rows.shape[1]
    bn, bk = values.shape[1:]
    block_rows, block_cols = n // bn, k // bk
    values = values.contiguous()
    offsets, columns = block_row_offsets.contiguous(), block_columns.contiguous()
    if need_grad_x:
        grad_x = torch.empty((m, k), dtype=x.dtype, device=x.device)
        if m:
            _block_linear_bwd_grad_x_kernel[(triton.cdiv(m, BLOCK_M), block_cols)](
                g, values, offsets, columns, grad_x, m, n, k, block_rows, block_cols.bit_length(), BN=bn, BK=bk,
                BLOCK_M=BLOCK_M, BLOCK_R=TILE_ROWS // bn)
        grad_x = grad_x.reshape(x.shape)
    if need_grad_values:
        grad_values = torch.empty_like(values)
        if values.shape[0]:
            _block_linear_bwd_grad_values_kernel[(values.shape[0],)](
                g, rows, offsets, columns, grad_values, m, n, k, block_rows, block_rows.bit_length(),
                VALUES=VALUE_CODES[values.dtype], BN=bn, BK=bk, BLOCK_M=BLOCK_M)
    return grad_x, grad_values
