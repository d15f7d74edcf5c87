"""Plain-PyTorch reference of the quantized linear layers: the quantizers, the exact arithmetic of the kernels,
the FP8 conversion and the panel layouts of csrc/quantized_linear/quantized_linear.h (to unpack them).

Weights are quantized symmetrically per output channel, or per group of `group_size` consecutive inputs:
    scale = amax / 127 (int8) or amax / largest code (FP8),   q = round-half-even(w / scale)
Activations of the int8 kernels are quantized inside the kernel per row and per group of the weights' group_size
inputs (so an outlier input only coarsens its own group):
    8 bits (W8A8 dynamic):    q = round(x * (127 / amax)) in [-127, 127],       scale amax / 127
    16 bits (weight-only):    q = round(x * (32767 / amax)) in [-32767, 32767], scale amax / 32767,
                              multiplied as a signed high byte h = floor(q / 256) and a low byte l = q - 256 h
and the int8 layer is, in this order of fp32 operations (so the kernels match it bit for bit):
    y = sum_g (float(S_g) * w_scale[:, g]) * a_scale[:, g] + bias,   S_g the exact int32 sum of group g
    (16 bits: float(S_g) is float(H_g) * 256 + float(L_g)).
The FP8 layer rounds activations to bf16 and sums exact products in fp32:
    y = sum_g scale[:, g] * (bf16(x) . value(code)_g) + bias.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

PANEL = 16       # channels per panel
PAD_N = 32       # panel rows are padded to a multiple of this many channels
PAD_K = 64       # and to a multiple of this many inputs
FP8_FORMATS = {"e4m3": (1, torch.float8_e4m3fn, 448.0), "e5m2": (2, torch.float8_e5m2, 57344.0)}
FP8_CODES = {code: name for name, (code, _, _) in FP8_FORMATS.items()}  # the ops' fp8_format argument
INT8_CODE = 0    # weight_format of quantized_linear_grad_input for int8 weights


def padded(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def groups_of(in_features: int, group_size: int) -> int:
    return in_features // group_size


def fp8_dtype(fp8_format: int) -> torch.dtype:
    return FP8_FORMATS[FP8_CODES[fp8_format]][1]


# --- quantizers ----------------------------------------------------------------------------------------------

def group_amax(w: Tensor, group_size: int) -> Tensor:  # w [N, K] -> [N, K / group_size]
    return w.float().reshape(w.shape[0], -1, group_size).abs().amax(-1)


def quantize_int8_weight(w: Tensor, group_size: int) -> Tuple[Tensor, Tensor]:
    """w [N, K] -> (q [N, K] int8 in [-127, 127], scales [N, K / group_size] fp32)."""
    scales = group_amax(w, group_size) / 127.0
    safe = torch.where(scales > 0, scales, torch.ones_like(scales)).repeat_interleave(group_size, dim=1)
    q = torch.round(w.float() / safe).clamp(-127, 127).to(torch.int8)
    return q, scales


def fp8_quantize_ref(x: Tensor, scales: Tensor, fp8_format: int, saturate: bool) -> Tensor:
    """codes [R, C] uint8 = FP8(x / scale) with one scale per group of columns, as Tensor.to(float8_*) rounds.
    saturate: finite values past the largest code become it; else e4m3fn gives NaN (it has no infinity) and e5m2
    inf. (torch 2.13's own CPU conversion saturates e4m3fn and overflows e5m2.)"""
    _, dtype, largest = FP8_FORMATS[FP8_CODES[fp8_format]]
    group_size = x.shape[1] // scales.shape[1]
    v = x.float() / scales.float().repeat_interleave(group_size, dim=1)
    if saturate:
        v = torch.where(v.isnan(), v, v.clamp(-largest, largest))
    codes = v.to(dtype).view(torch.uint8)
    if not saturate and dtype == torch.float8_e4m3fn:  # torch saturates: make overflow NaN, keeping the sign
        overflow = v.abs() > 464.0  # past the midpoint between 448 and the next code (which would be NaN)
        codes = torch.where(overflow, codes | 0x7F, codes)
    return codes


def quantize_fp8_weight(w: Tensor, fp8_format: int, group_size: int, per_tensor: bool) -> Tuple[Tensor, Tensor]:
    """w [N, K] -> (codes [N, K] uint8, scales [N, K / group_size] fp32); per_tensor: one scale for all."""
    largest = FP8_FORMATS[FP8_CODES[fp8_format]][2]
    amax = group_amax(w, group_size)
    if per_tensor:
        amax = amax.max().expand_as(amax).contiguous()
    scales = torch.where(amax > 0, amax / largest, torch.ones_like(amax))
    return fp8_quantize_ref(w, scales, fp8_format, saturate=True), scales


def quantize_rows_ref(x: Tensor, bits: int, group_size: int) -> Tuple[Tensor, Tensor]:
    """x [M, K] -> (q [M, K] integer-valued fp32, scales [M, K / group_size]): the kernels' activation quantization."""
    limit = 127.0 if bits == 8 else 32767.0
    xf = x.float().reshape(x.shape[0], -1, group_size)  # [M, groups, group_size]
    amax = xf.abs().amax(-1, keepdim=True)
    # limit / amax as a tensor division: torch's scalar / tensor is not correctly rounded, the kernels' is
    inv = torch.where(amax > 0, torch.full_like(amax, limit) / amax, torch.zeros_like(amax))
    q = torch.round(xf * inv).clamp(-limit, limit)
    return q.reshape(x.shape[0], -1), (amax / limit).squeeze(-1)


def dequantize(q: Tensor, scales: Tensor, weight_format: int) -> Tensor:
    """q [N, K] (int8, or FP8 bytes / dtype) and scales [N, groups] -> fp32 [N, K]."""
    values = q.float() if weight_format == INT8_CODE else q.view(torch.uint8).view(fp8_dtype(weight_format)).float()
    return values * scales.float().repeat_interleave(q.shape[1] // scales.shape[1], dim=1)


# --- the layers --------------------------------------------------------------------------------------------------

def int8_linear_ref(x: Tensor, q: Tensor, scales: Tensor, bias: Optional[Tensor], group_size: int,
                    activation_bits: int) -> Tensor:
    """x [..., K] fp32|bf16, q [N, K] int8, scales [N, groups] -> y [..., N] in x's dtype (the kernels' numbers)."""
    rows = x.reshape(-1, x.shape[-1])
    qa, a_scale = quantize_rows_ref(rows, activation_bits, group_size)
    halves = [qa] if activation_bits == 8 else [torch.floor(qa / 256), qa - 256 * torch.floor(qa / 256)]
    y = torch.zeros(rows.shape[0], q.shape[0], dtype=torch.float32, device=x.device)
    for g in range(scales.shape[1]):
        cols = slice(g * group_size, (g + 1) * group_size)
        sums = [(h[:, cols].double() @ q[:, cols].double().T).float() for h in halves]  # exact integers
        exact = sums[0] if activation_bits == 8 else sums[0] * 256.0 + sums[1]
        y = y + (exact * scales[:, g].float()) * a_scale[:, g:g + 1]
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], q.shape[0])


def fp8_linear_ref(x: Tensor, codes: Tensor, scales: Tensor, bias: Optional[Tensor], group_size: int,
                   fp8_format: int, compute_dtype: torch.dtype = torch.float32) -> Tensor:
    """x [..., K], codes [N, K] FP8 bytes, scales [N, groups] -> y [..., N] in x's dtype: bf16(x) times the exact
    code values, summed per group in compute_dtype, then scaled (the kernels' sums, up to summation order)."""
    rows = x.reshape(-1, x.shape[-1]).bfloat16().to(compute_dtype)
    values = codes.view(torch.uint8).view(fp8_dtype(fp8_format)).to(compute_dtype)
    y = torch.zeros(rows.shape[0], codes.shape[0], dtype=compute_dtype, device=x.device)
    for g in range(scales.shape[1]):
        cols = slice(g * group_size, (g + 1) * group_size)
        y = y + (rows[:, cols] @ values[:, cols].T) * scales[:, g].to(compute_dtype)
    if bias is not None:
        y = y + bias.to(compute_dtype)
    return y.to(x.dtype).reshape(*x.shape[:-1], codes.shape[0])


def quantized_linear_grad_input_ref(grad_out: Tensor, q: Tensor, scales: Tensor, weight_format: int) -> Tensor:
    """grad_x [..., K] = grad_out [..., N] . dequantize(q, scales) (the weight is frozen; activations pass straight
    through their quantization)."""
    w = dequantize(q, scales, weight_format)
    return (grad_out.reshape(-1, grad_out.shape[-1]).float() @ w).to(grad_out.dtype).reshape(
        *grad_out.shape[:-1], w.shape[1])


# --- the CPU panel layouts (csrc/quantized_linear/quantized_linear.h), for unpacking -----------------------------

def unpack_int8_panels(panels: Tensor, n: int, k: int) -> Tensor:
    """Int8Panels [Np * Kp] -> q [n, k]: panel p, row r = k // 4, channel c, byte k % 4."""
    np_, kp = padded(n, PAD_N), padded(k, PAD_K)
    q = panels.reshape(np_ // PANEL, kp // 4, PANEL, 4).permute(0, 2, 1, 3).reshape(np_, kp)
    return q[:n, :k].contiguous()


def unpack_code_panels(panels: Tensor, n: int, k: int) -> Tensor:
    """CodePanels [Np * Kp] -> codes [n, k]: 64-byte row r holds, in 8-byte piece (q, t), channels 4q..4q+3 of
    inputs 4r + 2t and 4r + 2t + 1."""
    np_, kp = padded(n, PAD_N), padded(k, PAD_K)
    pieces = panels.reshape(np_ // PANEL, kp // 4, 4, 2, 4, 2)  # [panel, r, q, t, channel in piece, input in pair]
    codes = pieces.permute(0, 2, 4, 1, 3, 5).reshape(np_, kp)
    return codes[:n, :k].contiguous()


def unpack_scales(packed: Tensor, n: int) -> Tensor:
    """[groups, Np] -> [n, groups]."""
    return packed[:, :n].T.contiguous()
