"""Triton kernels of the unstructured sparse linear layer on a bitmap weight (semantics and format:
apt_fast/reference/bitmap_linear.py): bitmap int64 [N, ceil(K / 64)], row_offsets int64 [N + 1], values [nnz]
fp32|bf16|int8, scales fp32 [N] for int8.

A weight tile is one bitmap word (64 inputs) of BLOCK_N output rows. Its kept values are found by a popcount
prefix: W[n, 64 w + j] sits at values[start(n, w) + popcount(bits of word w below j)], where start(n, w) =
row_offsets[n] + popcount(words of row n before w); the tile is expanded to a dense [BLOCK_N, 64] tile for tl.dot.

  forward:       one program per (row block of x, block of output rows); it walks its rows' words in order,
                 carrying each row's running popcount as start. fp32 values: IEEE fp32 dots; bf16: x rounded to
                 bf16, exact products, fp32 sums (bf16 tensor-core dots on a GPU, fp32 dots under the interpreter,
                 which cannot multiply bf16); int8: x rows quantized by int8_linear's row kernel (8 bits, one group),
                 int8 dots summed exactly in int32, then y = (float(S) * scales[n]) * a_scale[m] + bias[n].
  word starts:   start(n, w) for every word [N, words], for the backward programs, which begin mid-row.
  grad_x:        one program per (row block, word): grad_y . W summed over all output rows, W decoded per tile
                 (int8 dequantized with its scale), IEEE fp32 dots.
  grad_values:   one program per (block of output rows, word): grad_y^T . x over all rows of x for the tile (x as
                 the forward multiplies it), stored at the kept entries only; a tile with no kept entry is skipped.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .quantized_linear import quantize_rows_triton
from .rounding import rounded_for
from .sparse_values import INT8, VALUE_CODES, as_rows, multiplied

BLOCK_M, BLOCK_N = 16, 32


@triton.jit
def word_bits(words):
    """words [BLOCK_N] int64 -> [BLOCK_N, 64] int64 0/1: bit j of each word (input 64 w + j)."""
    return (words[:, None] >> tl.arange(0, 64)[None, :]) & 1


@triton.jit
def kept_positions(bits, starts):
    """Where each set bit's value sits in values: its word's start plus the set bits below it."""
    return starts[:, None] + tl.cumsum(bits, axis=1) - bits


@triton.jit
def _bitmap_linear_fwd_kernel(x_ptr, a_scale_ptr, bitmap_ptr, row_offsets_ptr, values_ptr, scales_ptr, bias_ptr,
                              y_ptr, M, N, K, words, VALUES: tl.constexpr, HAS_BIAS: tl.constexpr,
                              BF16_DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    outs = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    row_ok, out_ok = rows < M, outs < N
    starts = tl.load(row_offsets_ptr + outs, mask=out_ok, other=0)  # [BLOCK_N] int64
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32 if VALUES == INT8 else tl.float32)
    for w in range(0, words):
        bits = word_bits(tl.load(bitmap_ptr + outs * words + w, mask=out_ok, other=0))  # [BLOCK_N, 64]
        tile = tl.load(values_ptr + kept_positions(bits, starts), mask=bits != 0, other=0)  # [BLOCK_N, 64]
        starts += tl.sum(bits, axis=1)
        cols = w * 64 + tl.arange(0, 64)  # [64]
        x = tl.load(x_ptr + rows[:, None] * K + cols[None, :], mask=row_ok[:, None] & (cols[None, :] < K),
                    other=0)  # [BLOCK_M, 64]
        if VALUES == INT8:
            acc += tl.dot(x, tl.trans(tile), out_dtype=tl.int32)
        elif BF16_DOT:
            acc += tl.dot(multiplied(x, VALUES).to(tl.bfloat16), tl.trans(tile.to(tl.bfloat16)))
        else:
            acc += tl.dot(multiplied(x, VALUES), tl.trans(tile.to(tl.float32)), input_precision="ieee")
    if VALUES == INT8:
        scale = tl.load(scales_ptr + outs, mask=out_ok, other=0.0)  # [BLOCK_N]
        a_scale = tl.load(a_scale_ptr + rows, mask=row_ok, other=0.0)  # [BLOCK_M]
        y = (acc.to(tl.float32) * scale[None, :]) * a_scale[:, None]
    else:
        y = acc
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + outs, mask=out_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rows[:, None] * N + outs[None, :], rounded_for(y, y_ptr),
             mask=row_ok[:, None] & out_ok[None, :])


@triton.jit
def _word_starts_kernel(bitmap_ptr, row_offsets_ptr, starts_ptr, N, words, BLOCK_N: tl.constexpr):
    outs = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    out_ok = outs < N
    starts = tl.load(row_offsets_ptr + outs, mask=out_ok, other=0)  # [BLOCK_N] int64
    for w in range(0, words):
        tl.store(starts_ptr + outs * words + w, starts, mask=out_ok)
        starts += tl.sum(word_bits(tl.load(bitmap_ptr + outs * words + w, mask=out_ok, other=0)), axis=1)


@triton.jit
def _bitmap_linear_bwd_grad_x_kernel(g_ptr, bitmap_ptr, starts_ptr, values_ptr, scales_ptr, grad_x_ptr, M, N, K,
                                     words, IS_INT8: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    w = tl.program_id(1)
    row_ok = rows < M
    acc = tl.zeros([BLOCK_M, 64], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        outs = n0 + tl.arange(0, BLOCK_N)  # [BLOCK_N]
        out_ok = outs < N
        bits = word_bits(tl.load(bitmap_ptr + outs * words + w, mask=out_ok, other=0))  # [BLOCK_N, 64]
        starts = tl.load(starts_ptr + outs * words + w, mask=out_ok, other=0)  # [BLOCK_N]
        tile = tl.load(values_ptr + kept_positions(bits, starts), mask=bits != 0, other=0).to(tl.float32)
        if IS_INT8:
            tile = tile * tl.load(scales_ptr + outs, mask=out_ok, other=0.0)[:, None]
        g = tl.load(g_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None] & out_ok[None, :],
                    other=0.0).to(tl.float32)  # [BLOCK_M, BLOCK_N]
        acc += tl.dot(g, tile, input_precision="ieee")
    cols = w * 64 + tl.arange(0, 64)  # [64]
    tl.store(grad_x_ptr + rows[:, None] * K + cols[None, :], rounded_for(acc, grad_x_ptr),
             mask=row_ok[:, None] & (cols[None, :] < K))


@triton.jit
def _bitmap_linear_bwd_grad_values_kernel(g_ptr, x_ptr, bitmap_ptr, starts_ptr, grad_values_ptr, M, N, K, words,
                                          VALUES: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    outs = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    w = tl.program_id(1)
    out_ok = outs < N
    bits = word_bits(tl.load(bitmap_ptr + outs * words + w, mask=out_ok, other=0))  # [BLOCK_N, 64]
    if tl.sum(tl.sum(bits, axis=1), axis=0) > 0:
        cols = w * 64 + tl.arange(0, 64)  # [64]
        acc = tl.zeros([BLOCK_N, 64], dtype=tl.float32)
        for m0 in range(0, M, BLOCK_M):
            rows = m0 + tl.arange(0, BLOCK_M)  # [BLOCK_M]
            row_ok = rows < M
            g = tl.load(g_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None] & out_ok[None, :],
                        other=0.0).to(tl.float32)  # [BLOCK_M, BLOCK_N]
            x = tl.load(x_ptr + rows[:, None] * K + cols[None, :], mask=row_ok[:, None] & (cols[None, :] < K),
                        other=0.0)  # [BLOCK_M, 64]
            acc += tl.dot(tl.trans(g), multiplied(x, VALUES), input_precision="ieee")
        starts = tl.load(starts_ptr + outs * words + w, mask=out_ok, other=0)  # [BLOCK_N]
        tl.store(grad_values_ptr + kept_positions(bits, starts), rounded_for(acc, grad_values_ptr),
                 mask=bits != 0)


# --- launchers ------------------------------------------------------------------------------------------------

def bitmap_linear_triton(x: torch.Tensor, bitmap: torch.Tensor, row_offsets: torch.Tensor, values: torch.Tensor,
                         scales: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                         out_features: int) -> torch.Tensor:
    """x [..., K] fp32|bf16 -> y [..., N] in x's dtype."""
    rows = as_rows(x)  # [M, K]
    m, k = rows.shape
    y = torch.empty((m, out_features), dtype=x.dtype, device=x.device)
    if m:
        a_scale = rows.new_empty(0, dtype=torch.float32)
        if values.dtype == torch.int8:
            rows, _, a_scale = quantize_rows_triton(rows, 8, k)  # [M, K] int8, [M, 1]
        grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(out_features, BLOCK_N))
        _bitmap_linear_fwd_kernel[grid](
            rows, a_scale, bitmap.contiguous(), row_offsets.contiguous(), values.contiguous(),
            scales.contiguous() if scales is not None else a_scale, bias if bias is not None else a_scale, y, m,
            out_features, k, bitmap.shape[1], VALUES=VALUE_CODES[values.dtype], HAS_BIAS=bias is not None,
            BF16_DOT=x.is_cuda, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N)
    return y.reshape(*x.shape[:-1], out_features)


def word_starts_triton(bitmap: torch.Tensor, row_offsets: torch.Tensor) -> torch.Tensor:
    """[N, words] int64: where each word's first kept value sits in values."""
    bitmap = bitmap.contiguous()
    n, words = bitmap.shape
    starts = torch.empty((n, words), dtype=torch.int64, device=bitmap.device)
    _word_starts_kernel[(triton.cdiv(n, BLOCK_N),)](bitmap, row_offsets.contiguous(), starts, n, words,
                                                    BLOCK_N=BLOCK_N)
    return starts


def bitmap_linear_backward_triton(grad_y: torch.Tensor, x: torch.Tensor, bitmap: torch.Tensor,
                                  row_offsets: torch.Tensor, values: torch.Tensor, scales: Optional[torch.Tensor],
                                  need_grad_x: bool, need_grad_values: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """grad_y [..., N], x [..., K] -> (grad_x [..., K] in grad_y's dtype, grad_values [nnz] in values' dtype); a
    gradient not asked for is an empty tensor."""
    grad_x, grad_values = grad_y.new_empty(0), values.new_empty(0)
    if not (need_grad_x or need_grad_values):
        return grad_x, grad_values
    g, rows = as_rows(grad_y), as_rows(x)  # [M, N], [M, K]
    (m, n), k = g.shape, rows.shape[1]
    bitmap = bitmap.contiguous()
    words = bitmap.shape[1]
    starts = word_starts_triton(bitmap, row_offsets)  # [N, words]
    values = values.contiguous()
    if need_grad_x:
        grad_x = torch.empty((m, k), dtype=grad_y.dtype, device=grad_y.device)
        if m:
            _bitmap_linear_bwd_grad_x_kernel[(triton.cdiv(m, BLOCK_M), words)](
                g, bitmap, starts, values, scales.contiguous() if scales is not None else starts, grad_x, m, n, k,
                words, IS_INT8=values.dtype == torch.int8, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N)
        grad_x = grad_x.reshape(*grad_y.shape[:-1], k)
    if need_grad_values:
        grad_values = torch.empty_like(values)
        _bitmap_linear_bwd_grad_values_kernel[(triton.cdiv(n, BLOCK_N), words)](
            g, rows, bitmap, starts, grad_values, m, n, k, words, VALUES=VALUE_CODES[values.dtype],
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N)
    return grad_x, grad_values
