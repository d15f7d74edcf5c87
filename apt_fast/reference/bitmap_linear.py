"""Plain-PyTorch reference of the unstructured sparse linear layer on a bitmap weight: packing, unpacking and the
arithmetic of the bitmap_linear kernels (csrc/bitmap_linear/).

A pruned weight W [N, K] with keep-mask [N, K] is held as
    bitmap       int64 [N, ceil(K / 64)]   bit j of word w <-> column 64 w + j (bits past K are zero)
    row_offsets  int64 [N + 1]             kept weights in the rows before n; row_offsets[N] = nnz
    values       [nnz]                     the kept W[n, k] in row-major order: fp32, bf16 or int8
    scales       fp32 [N]                  int8 only: symmetric per output channel, amax / 127
and the layer y [..., N] = x [..., K] . W^T + bias computes, by the values' dtype:
    float32   fp32 products and sums (F.linear on the masked weight);
    bfloat16  x rounded to bf16, exact products, fp32 sums (torch's bf16 matmul);
    int8      x quantized per row to int8 as apt_fast::int8_linear with 8-bit activations does, exact int32 sums,
              y = (float(S) * w_scale[n]) * a_scale[m] + bias[n].
Output dtype = x's dtype. The backward gives grad_x = grad_y . W through the sparse weight and, for float values,
grad_values = (grad_y^T . x)[n, k] at the kept entries only (x as the forward multiplies it; int8 values are
frozen).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .quantized_linear import int8_linear_ref, quantize_int8_weight

WORD = 64  # columns per bitmap word
VALUE_DTYPES = (torch.float32, torch.bfloat16, torch.int8)


def words_of(in_features: int) -> int:
    return (in_features + WORD - 1) // WORD


def pack_bitmap(mask: Tensor) -> Tensor:
    """mask [N, K] bool -> bitmap int64 [N, ceil(K / 64)]."""
    n, k = mask.shape
    padded = torch.zeros(n, words_of(k) * WORD, dtype=torch.int64, device=mask.device)
    padded[:, :k] = mask.to(torch.int64)
    bits = torch.arange(WORD, dtype=torch.int64, device=mask.device)
    # distinct powers of two: the sum is their bitwise or (bit 63 makes the word negative, without overflow)
    return (padded.reshape(n, -1, WORD) << bits).sum(-1)


def unpack_bitmap(bitmap: Tensor, in_features: int) -> Tensor:
    """bitmap int64 [N, words] -> mask [N, in_features] bool."""
    bits = torch.arange(WORD, dtype=torch.int64, device=bitmap.device)
    mask = (bitmap.unsqueeze(-1) >> bits) & 1  # arithmetic shift: bit 63 of a negative word reads as 1
    return mask.reshape(bitmap.shape[0], -1)[:, :in_features].bool()


def row_offsets_of(mask: Tensor) -> Tensor:
    """mask [N, K] -> int64 [N + 1]: kept entries before each row."""
    counts = mask.sum(1, dtype=torch.int64)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def pack(weight: Tensor, mask: Tensor, dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """weight [N, K] float, mask [N, K] bool -> (bitmap, row_offsets, values [nnz] in dtype, scales [N] or None).
    int8: scales = amax of the kept weights / 127 per row, values = round-half-even(w / scale)."""
    scales = None
    kept = weight.float() * mask
    if dtype == torch.int8:
        q, scales = quantize_int8_weight(kept, weight.shape[1])  # [N, K], [N, 1]
        kept, scales = q, scales.squeeze(1).contiguous()
    return pack_bitmap(mask), row_offsets_of(mask), kept[mask].to(dtype), scales


def to_dense(bitmap: Tensor, values: Tensor, scales: Optional[Tensor], in_features: int) -> Tensor:
    """W [N, K] fp32 with zeros where pruned; int8 values dequantized with scales [N]."""
    mask = unpack_bitmap(bitmap, in_features)
    dense = torch.zeros(mask.shape, dtype=torch.float32, device=values.device)
    dense[mask] = values.float()
    return dense * scales.float().unsqueeze(1) if values.dtype == torch.int8 else dense


def _rows(t: Tensor) -> Tensor:
    return t.reshape(-1, t.shape[-1])


def _multiplied_x(x: Tensor, values: Tensor) -> Tensor:
    """x [M, K] as the layer multiplies it, fp32: rounded to bf16 against bf16 values."""
    return x.bfloat16().float() if values.dtype == torch.bfloat16 else x.float()


def bitmap_linear_ref(x: Tensor, bitmap: Tensor, row_offsets: Tensor, values: Tensor, scales: Optional[Tensor],
                      bias: Optional[Tensor], out_features: int) -> Tensor:
    """x [..., K] fp32|bf16 -> y [..., N] in x's dtype."""
    k = x.shape[-1]
    if values.dtype == torch.int8:
        q = torch.zeros(out_features, k, dtype=torch.int8, device=x.device)  # [N, K]
        q[unpack_bitmap(bitmap, k)] = values
        return int8_linear_ref(x, q, scales.float().unsqueeze(1), bias, k, 8)
    w = to_dense(bitmap, values, None, k)  # [N, K]
    y = _multiplied_x(_rows(x), values) @ w.T  # [M, N]
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], out_features)


def bitmap_linear_backward_ref(grad_y: Tensor, x: Tensor, bitmap: Tensor, row_offsets: Tensor, values: Tensor,
                               scales: Optional[Tensor], need_grad_x: bool,
                               need_grad_values: bool) -> Tuple[Tensor, Tensor]:
    """grad_y [..., N], x [..., K] -> (grad_x [..., K] in grad_y's dtype, grad_values [nnz] in values' dtype);
    a gradient not asked for is an empty tensor."""
    k = x.shape[-1]
    g = _rows(grad_y).float()  # [M, N]
    grad_x = grad_y.new_empty(0)
    grad_values = values.new_empty(0)
    if need_grad_x:
        w = to_dense(bitmap, values, scales, k)  # [N, K]
        grad_x = (g @ w).to(grad_y.dtype).reshape(*grad_y.shape[:-1], k)
    if need_grad_values:
        dense = g.T @ _multiplied_x(_rows(x), values)  # [N, K]
        grad_values = dense[unpack_bitmap(bitmap, k)].to(values.dtype)
    return grad_x, grad_values
