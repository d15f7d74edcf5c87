"""Plain-PyTorch reference of the N:M sparse linear layer: the packed format, the kernels' arithmetic, forward and
backward.

A weight W [N, K] keeps exactly n of every m consecutive inputs of each row (m in {4, 8}, 1 <= n < m; a group
with fewer nonzeros keeps some zeros), K a multiple of m:
    values   [N, K n / m]   the kept weights of each row in column order (float32, bfloat16, or int8 with scales)
    indices  uint8 [N, ceil(K n / m * log2(m) / 8)]   each kept value's position inside its group, log2(m) bits,
             ascending within a group, packed LSB-first as one bit stream per row (bits past the last are zero)
    scales   float32 [N] (int8 values only): symmetric per output channel, amax / 127.
The layer y [..., N] = x [..., K] . W^T + bias, in x's dtype (float32 or bfloat16):
    float32 values:  fp32 products and sums (F.linear on the dense masked weight, up to summation order);
    bfloat16 values: x rounded to bf16, exact products, fp32 sums (torch's bf16 matmul);
    int8 values:     x quantized per row exactly as int8_linear with activation_bits=8 does (q = round(x * 127 /
                     amax), scale amax / 127), exact int32 sums S, then y = (float(S) * scales[n]) * a_scale[m] + bias.
The backward: grad_x = grad_y . W (W dequantized for int8), and grad_values, the masked dW: for each kept (n, k),
sum_m grad_y[m, n] x[m, k] (x rounded to bf16 for bfloat16 values, as the forward used it); int8 values are
frozen and have none.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .quantized_linear import quantize_int8_weight, quantize_rows_ref

GROUP_SIZES = (4, 8)                     # m
VALUE_DTYPES = (torch.float32, torch.bfloat16, torch.int8)


def index_bits(m: int) -> int:
    """Bits of one position inside a group of m: log2(m)."""
    return m.bit_length() - 1


def kept_per_row(in_features: int, n: int, m: int) -> int:
    return in_features // m * n


def index_bytes_per_row(in_features: int, n: int, m: int) -> int:
    return (kept_per_row(in_features, n, m) * index_bits(m) + 7) // 8


def check_pattern(n: int, m: int) -> None:
    if m not in GROUP_SIZES:
        raise ValueError(f"m must be 4 or 8, got {m}")
    if not 1 <= n < m:
        raise ValueError(f"n must be in [1, {m}) for m={m}, got {n}")


def check_in_features(in_features: int, m: int) -> None:
    if in_features < 1 or in_features % m != 0:
        raise ValueError(f"in_features must be a positive multiple of m={m}, got {in_features}")


# --- the packed format ------------------------------------------------------------------------------------------

def pack_positions(positions: Tensor, m: int) -> Tensor:
    """positions [N, kept] (0 .. m-1) -> indices uint8 [N, ceil(kept * log2(m) / 8)], LSB-first bit streams."""
    bits = index_bits(m)
    rows, kept = positions.shape
    shifts = torch.arange(bits, device=positions.device)
    stream = ((positions.long()[..., None] >> shifts) & 1).reshape(rows, kept * bits)  # [N, kept * bits]
    padding = (-stream.shape[1]) % 8
    stream = torch.nn.functional.pad(stream, (0, padding)).reshape(rows, -1, 8)
    return (stream << torch.arange(8, device=positions.device)).sum(-1).to(torch.uint8)


def unpack_positions(indices: Tensor, in_features: int, n: int, m: int) -> Tensor:
    """indices uint8 [N, bytes] -> positions [N, K n / m] int64 (each kept value's place inside its group)."""
    bits, kept = index_bits(m), kept_per_row(in_features, n, m)
    stream = (indices.long()[..., None] >> torch.arange(8, device=indices.device)) & 1  # [N, bytes, 8]
    stream = stream.reshape(indices.shape[0], -1)[:, :kept * bits].reshape(indices.shape[0], kept, bits)
    return (stream << torch.arange(bits, device=indices.device)).sum(-1)


def kept_columns(indices: Tensor, in_features: int, n: int, m: int) -> Tensor:
    """[N, K n / m] int64: the input column of each kept value."""
    positions = unpack_positions(indices, in_features, n, m)
    group = torch.arange(positions.shape[1], device=indices.device) // n
    return group * m + positions


def check_positions(positions: Tensor, n: int) -> None:
    """Positions ascend strictly within every group (so no column is kept twice), else ValueError naming the first
    offending row and group."""
    groups = positions.reshape(positions.shape[0], -1, n)
    bad = (groups[..., 1:] <= groups[..., :-1]).any(-1)  # [N, groups]
    if bad.any():
        row, group = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"indices must give ascending positions within each group of n={n} kept values, got "
                         f"{groups[row, group].tolist()} in row {row}, group {group}")


def choose_positions(mask: Tensor, n: int, m: int) -> Tensor:
    """mask [N, K] bool with at most n kept per group of m -> positions [N, K n / m] int64, ascending per group: the
    kept entries, then the lowest unkept positions where a group keeps fewer than n (their values are zero)."""
    rows, in_features = mask.shape
    groups = mask.reshape(rows, in_features // m, m)
    counts = groups.sum(-1)
    if (counts > n).any():
        row, group = (int(i) for i in (counts > n).nonzero()[0])
        raise ValueError(f"mask must keep at most n={n} of every m={m} consecutive inputs, got "
                         f"{int(counts[row, group])} in row {row}, inputs {group * m}..{group * m + m - 1}")
    # kept positions first (key 0 + position), then the unkept ones (key m + position): the first n, re-sorted.
    place = torch.arange(m, device=mask.device)
    key = torch.where(groups, place, place + m)
    chosen = key.sort(-1).values[..., :n] % m  # [N, groups, n]
    return chosen.sort(-1).values.reshape(rows, -1)


def pack(weight: Tensor, mask: Tensor, n: int, m: int,
         dtype: torch.dtype) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """weight [N, K] and its n:m mask [N, K] bool -> (values [N, K n / m] in dtype, indices uint8, scales [N] fp32
    for int8 else None). int8: per output channel of the masked weight, q = round(w / (amax / 127))."""
    check_pattern(n, m)
    check_in_features(weight.shape[1], m)
    positions = choose_positions(mask, n, m)
    group = torch.arange(positions.shape[1], device=weight.device) // n
    columns = group * m + positions
    kept = torch.gather(weight.float() * mask, 1, columns)  # [N, K n / m]
    scales = None
    if dtype == torch.int8:
        values, scales = quantize_int8_weight(kept, kept.shape[1])
        scales = scales.reshape(-1)
    else:
        values = kept.to(dtype)
    return values.contiguous(), pack_positions(positions, m), scales


def dequantized_values(values: Tensor, scales: Optional[Tensor]) -> Tensor:
    """values [N, kept] -> fp32 (int8 times its per-channel scale)."""
    return values.float() * scales.float()[:, None] if values.dtype == torch.int8 else values.float()


def to_dense(values: Tensor, indices: Tensor, scales: Optional[Tensor], in_features: int, n: int, m: int) -> Tensor:
    """[N, K] fp32 with zeros where pruned (int8 dequantized)."""
    dense = torch.zeros(values.shape[0], in_features, dtype=torch.float32, device=values.device)
    return dense.scatter_(1, kept_columns(indices, in_features, n, m), dequantized_values(values, scales))


def mask_of(indices: Tensor, out_features: int, in_features: int, n: int, m: int) -> Tensor:
    """[N, K] bool: the positions the format keeps."""
    mask = torch.zeros(out_features, in_features, dtype=torch.bool, device=indices.device)
    return mask.scatter_(1, kept_columns(indices, in_features, n, m), True)


# --- the layer ----------------------------------------------------------------------------------------------------

def _dense_of_checked(values: Tensor, indices: Tensor, scales: Optional[Tensor], in_features: int, n: int,
                      m: int) -> Tensor:
    check_positions(unpack_positions(indices, in_features, n, m), n)
    return to_dense(values, indices, scales, in_features, n, m)


def nm_linear_ref(x: Tensor, values: Tensor, indices: Tensor, scales: Optional[Tensor], bias: Optional[Tensor],
                  n: int, m: int) -> Tensor:
    """x [..., K] fp32|bf16 -> y [..., N] in x's dtype (the module docstring gives the arithmetic per value dtype)."""
    in_features = x.shape[-1]
    rows = x.reshape(-1, in_features)  # [M, K]
    if values.dtype == torch.int8:
        q = _dense_of_checked(values, indices, torch.ones_like(scales), in_features, n, m)  # [N, K] integers
        qa, a_scale = quantize_rows_ref(rows, 8, in_features)  # [M, K], [M, 1]
        exact = (qa.double() @ q.double().T).float()  # [M, N] exact int32 sums
        y = (exact * scales.float()) * a_scale
    else:
        w = _dense_of_checked(values, indices, None, in_features, n, m)  # [N, K]
        xf = rows.bfloat16().float() if values.dtype == torch.bfloat16 else rows.float()
        y = xf @ w.T
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], values.shape[0])


def nm_linear_backward_ref(grad_out: Tensor, x: Tensor, values: Tensor, indices: Tensor, scales: Optional[Tensor],
                           n: int, m: int, need_grad_x: bool, need_grad_values: bool) -> Tuple[Tensor, Tensor]:
    """(grad_x [..., K] in x's dtype, grad_values [N, K n / m] in values' dtype); a gradient not asked for is an
    empty tensor. int8 values are frozen: asking for their gradient is a ValueError."""
    if need_grad_values and values.dtype == torch.int8:
        raise ValueError("need_grad_values must be False for int8 values (they are frozen), got True")
    in_features = x.shape[-1]
    g = grad_out.reshape(-1, grad_out.shape[-1]).float()  # [M, N]
    grad_x = grad_values = x.new_empty(0)
    if need_grad_x:
        w = _dense_of_checked(values, indices, scales, in_features, n, m)  # [N, K]
        grad_x = (g @ w).to(x.dtype).reshape(x.shape)
    if need_grad_values:
        rows = x.reshape(-1, in_features)
        xf = rows.bfloat16().float() if values.dtype == torch.bfloat16 else rows.float()  # [M, K]
        columns = kept_columns(indices, in_features, n, m)  # [N, kept]
        check_positions(unpack_positions(indices, in_features, n, m), n)
        grad_values = torch.gather(g.T @ xf, 1, columns).to(values.dtype)
    return grad_x, grad_values
