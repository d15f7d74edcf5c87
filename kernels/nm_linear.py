"""Triton kernels of the N:M sparse linear layer (semantics and format: apt_fast/reference/nm_linear.py): values
[N, K n / m] fp32|bf16|int8, indices uint8 [N, ceil(K n / m * log2(m) / 8)] (each kept value's position inside
its group of m inputs, log2(m) bits, one LSB-first bit stream per row), scales fp32 [N] for int8.

Kept value j of row r (slot i = j % n of group j // n) multiplies input (j // n) m + position(r, j), its position
read from bits [j log2(m), (j + 1) log2(m)) of the row's stream (3-bit positions may straddle two bytes). The
kernels walk BLOCK_G groups at a time, one slot i after the other, so every tensor is a power-of-two tile for any n.

  forward:      one program per (row block of x, block of output rows): decode the positions, gather the x
                columns they name ([BLOCK_M, BLOCK_N, BLOCK_G]) and sum their products with the values (fp32: fp32
                products; bf16: x rounded to bf16, exact products, fp32 sums; int8: x rows quantized by
                int8_linear's row kernel, exact int32 sums, then y = (float(S) * scales[n]) * a_scale[m] + bias[n]).
                A gather, not a dot: decode (M small) reads n/m of the weight bytes, which is where N:M pays.
  grad_x:       one program per (row block, block of groups): grad_y . W over all output rows, each W tile decoded
                into a dense [BLOCK_N, BLOCK_G m] tile (int8 dequantized) for an IEEE fp32 tl.dot.
  grad_values:  one program per (block of output rows, block of groups): for each kept value, grad_y[:, r] times
                the x column it multiplies, summed over all rows of x; nothing is computed for pruned weights.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .quantized_linear import quantize_rows_triton
from .rounding import rounded_for
from .sparse_values import INT8, VALUE_CODES, as_rows, multiplied

BLOCK_M, BLOCK_N, BLOCK_G = 16, 32, 16


@triton.jit
def kept_positions(indices_ptr, outs, slots, ok, index_bytes, BITS: tl.constexpr):
    """[BLOCK_N, BLOCK_G] int32: the position inside its group of kept value slots[g] of row outs[r]."""
    bit = slots[None, :] * BITS  # [1, BLOCK_G]
    byte = bit >> 3
    row = indices_ptr + outs[:, None] * index_bytes  # [BLOCK_N, 1]
    stream = tl.load(row + byte, mask=ok, other=0).to(tl.int32)  # [BLOCK_N, BLOCK_G]
    if BITS > 2:  # a 3-bit position may continue in the next byte
        stream = stream | (tl.load(row + byte + 1, mask=ok & (byte + 1 < index_bytes), other=0).to(tl.int32) << 8)
    return (stream >> (bit & 7)) & ((1 << BITS) - 1)


@triton.jit
def _nm_linear_fwd_kernel(x_ptr, a_scale_ptr, values_ptr, indices_ptr, scales_ptr, bias_ptr, y_ptr, M, N, K, kept,
                          index_bytes, VALUES: tl.constexpr, HAS_BIAS: tl.constexpr, KEEP: tl.constexpr,
                          GROUP: tl.constexpr, BITS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_G: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    outs = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    row_ok, out_ok = rows < M, outs < N
    groups = K // GROUP
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32 if VALUES == INT8 else tl.float32)
    for g0 in range(0, groups, BLOCK_G):
        grp = g0 + tl.arange(0, BLOCK_G)  # [BLOCK_G]
        ok = out_ok[:, None] & (grp < groups)[None, :]  # [BLOCK_N, BLOCK_G]
        for i in tl.static_range(KEEP):
            slots = grp * KEEP + i  # [BLOCK_G]
            v = tl.load(values_ptr + outs[:, None] * kept + slots[None, :], mask=ok, other=0)  # [BLOCK_N, BLOCK_G]
            cols = grp[None, :] * GROUP + kept_positions(indices_ptr, outs, slots, ok, index_bytes, BITS)
            x = tl.load(x_ptr + rows[:, None, None] * K + cols[None, :, :],
                        mask=row_ok[:, None, None] & ok[None, :, :], other=0)  # [BLOCK_M, BLOCK_N, BLOCK_G]
            if VALUES == INT8:
                acc += tl.sum(x.to(tl.int32) * v.to(tl.int32)[None, :, :], axis=2)
            else:
                acc += tl.sum(multiplied(x, VALUES) * v.to(tl.float32)[None, :, :], axis=2)
    if VALUES == INT8:
        scale = tl.load(scales_ptr + outs, mask=out_ok, other=0.0)  # [BLOCK_N]
        a_scale = tl.load(a_scale_ptr + rows, mask=row_ok, other=0.0)  # [BLOCK_M]
        y = (acc.to(tl.float32) * scale[None, :]) * a_scale[:, None]
    else:
        y = acc
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + outs, mask=out_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rows[:, None] * N + outs[None, :], rounded_for(y, y_ptr), mask=row_ok[:, None] & out_ok[None, :])


@triton.jit
def _nm_linear_bwd_grad_x_kernel(g_ptr, values_ptr, indices_ptr, scales_ptr, grad_x_ptr, M, N, K, kept, index_bytes,
                                 IS_INT8: tl.constexpr, KEEP: tl.constexpr, GROUP: tl.constexpr, BITS: tl.constexpr,
                                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    grp = tl.program_id(1) * BLOCK_G + tl.arange(0, BLOCK_G)  # [BLOCK_G]
    row_ok, grp_ok = rows < M, grp < K // GROUP
    places = tl.arange(0, GROUP)  # [GROUP]
    acc = tl.zeros([BLOCK_M, BLOCK_G * GROUP], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        outs = n0 + tl.arange(0, BLOCK_N)  # [BLOCK_N]
        out_ok = outs < N
        ok = out_ok[:, None] & grp_ok[None, :]  # [BLOCK_N, BLOCK_G]
        tile = tl.zeros([BLOCK_N, BLOCK_G, GROUP], dtype=tl.float32)
        for i in tl.static_range(KEEP):
            slots = grp * KEEP + i  # [BLOCK_G]
            v = tl.load(values_ptr + outs[:, None] * kept + slots[None, :], mask=ok, other=0).to(tl.float32)
            if IS_INT8:
                v = v * tl.load(scales_ptr + outs, mask=out_ok, other=0.0)[:, None]
            position = kept_positions(indices_ptr, outs, slots, ok, index_bytes, BITS)  # [BLOCK_N, BLOCK_G]
            tile += tl.where(position[:, :, None] == places[None, None, :], v[:, :, None], 0.0)
        g = tl.load(g_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None] & out_ok[None, :],
                    other=0.0).to(tl.float32)  # [BLOCK_M, BLOCK_N]
        acc += tl.dot(g, tl.reshape(tile, (BLOCK_N, BLOCK_G * GROUP)), input_precision="ieee")
    cols = tl.program_id(1) * BLOCK_G * GROUP + tl.arange(0, BLOCK_G * GROUP)  # [BLOCK_G * GROUP]
    tl.store(grad_x_ptr + rows[:, None] * K + cols[None, :], rounded_for(acc, grad_x_ptr),
             mask=row_ok[:, None] & (cols[None, :] < K))


@triton.jit
def _nm_linear_bwd_grad_values_kernel(g_ptr, x_ptr, indices_ptr, grad_values_ptr, M, N, K, kept, index_bytes,
                                      VALUES: tl.constexpr, KEEP: tl.constexpr, GROUP: tl.constexpr,
                                      BITS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                      BLOCK_G: tl.constexpr):
    outs = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    grp = tl.program_id(1) * BLOCK_G + tl.arange(0, BLOCK_G)  # [BLOCK_G]
    out_ok = outs < N
    ok = out_ok[:, None] & (grp < K // GROUP)[None, :]  # [BLOCK_N, BLOCK_G]
    for i in tl.static_range(KEEP):
        slots = grp * KEEP + i  # [BLOCK_G]
        cols = grp[None, :] * GROUP + kept_positions(indices_ptr, outs, slots, ok, index_bytes, BITS)
        acc = tl.zeros([BLOCK_N, BLOCK_G], dtype=tl.float32)
        for m0 in range(0, M, BLOCK_M):
            rows = m0 + tl.arange(0, BLOCK_M)  # [BLOCK_M]
            row_ok = rows < M
            g = tl.load(g_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None] & out_ok[None, :],
                        other=0.0).to(tl.float32)  # [BLOCK_M, BLOCK_N]
            x = tl.load(x_ptr + rows[:, None, None] * K + cols[None, :, :],
                        mask=row_ok[:, None, None] & ok[None, :, :], other=0.0)  # [BLOCK_M, BLOCK_N, BLOCK_G]
            acc += tl.sum(g[:, :, None] * multiplied(x, VALUES), axis=0)
        tl.store(grad_values_ptr + outs[:, None] * kept + slots[None, :], rounded_for(acc, grad_values_ptr),
                 mask=ok)


# --- launchers ------------------------------------------------------------------------------------------------

def _pattern(n: int, m: int) -> dict:
    return {"KEEP": n, "GROUP": m, "BITS": m.bit_length() - 1}


def nm_linear_triton(x: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, scales: Optional[torch.Tensor],
                     bias: Optional[torch.Tensor], out_features: int, n: int, m: int) -> torch.Tensor:
    """x [..., K] fp32|bf16 -> y [..., N] in x's dtype."""
    rows = as_rows(x)  # [M, K]
    rows_count, k = rows.shape
    y = torch.empty((rows_count, out_features), dtype=x.dtype, device=x.device)
    if rows_count:
        a_scale = rows.new_empty(0, dtype=torch.float32)
        if values.dtype == torch.int8:
            rows, _, a_scale = quantize_rows_triton(rows, 8, k)  # [M, K] int8, [M, 1]
        block_m = min(BLOCK_M, triton.next_power_of_2(rows_count))  # a decode GEMV gathers for its one row only
        _nm_linear_fwd_kernel[(triton.cdiv(rows_count, block_m), triton.cdiv(out_features, BLOCK_N))](
            rows, a_scale, values.contiguous(), indices.contiguous(),
            scales.contiguous() if scales is not None else a_scale, bias if bias is not None else a_scale, y,
            rows_count, out_features, k, values.shape[1], indices.shape[1], VALUES=VALUE_CODES[values.dtype],
            HAS_BIAS=bias is not None, **_pattern(n, m), BLOCK_M=block_m, BLOCK_N=BLOCK_N, BLOCK_G=BLOCK_G)
    return y.reshape(*x.shape[:-1], out_features)


def nm_linear_backward_triton(grad_out: torch.Tensor, x: torch.Tensor, values: torch.Tensor, indices: torch.Tensor,
                              scales: Optional[torch.Tensor], n: int, m: int, need_grad_x: bool,
                              need_grad_values: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """grad_out [..., N], x [..., K] -> (grad_x [..., K] in x's dtype, grad_values [N, K n / m] in values' dtype);
    a gradient not asked for is an empty tensor."""
    grad_x = grad_values = x.new_empty(0)
    g, rows = as_rows(grad_out), as_rows(x)  # [M, N], [M, K]
    (rows_count, out_features), k = g.shape, rows.shape[1]
    values, indices = values.contiguous(), indices.contiguous()
    groups = k // m
    if need_grad_x:
        grad_x = torch.empty((rows_count, k), dtype=x.dtype, device=x.device)
        if rows_count:
            _nm_linear_bwd_grad_x_kernel[(triton.cdiv(rows_count, BLOCK_M), triton.cdiv(groups, BLOCK_G))](
                g, values, indices, scales.contiguous() if scales is not None else g, grad_x, rows_count,
                out_features, k, values.shape[1], indices.shape[1], IS_INT8=values.dtype == torch.int8,
                **_pattern(n, m), BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_G=BLOCK_G)
        grad_x = grad_x.reshape(x.shape)
    if need_grad_values:
        grad_values = torch.empty_like(values)
        _nm_linear_bwd_grad_values_kernel[(triton.cdiv(out_features, BLOCK_N), triton.cdiv(groups, BLOCK_G))](
            g, rows, indices, grad_values, rows_count, out_features, k, values.shape[1], indices.shape[1],
            VALUES=VALUE_CODES[values.dtype], **_pattern(n, m), BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_G=BLOCK_G)
    return grad_x, grad_values
