"""Triton kernels of the quantized linear layers (semantics: apt_fast/reference/quantized_linear.py), on the
row-major weight layout ([N, K] int8 or FP8 bytes, scales [N, groups]).

  int8_linear:   a row kernel quantizes each activation row per group (amax, then 8 bits, or 16 bits as a signed
                 high byte and a low byte stored as l - 128), then a tiled int8 x int8 -> int32 GEMM sums each group
                 exactly (16 bits: S_l = dot(l - 128, w) + 128 sum(w)) and applies the fp32 epilogue in the
                 reference's order: y += (float(S) * w_scale) * a_scale per group, then + bias.
  fp8_linear:    FP8 bytes decoded to their exact values by bit arithmetic, activations rounded to bf16 the same
                 way; products exact, summed in fp32 per group (bf16 tensor-core dots on a GPU, fp32 dots under
                 the interpreter, which cannot multiply bf16).
  grad_input:    grad_x = grad_y . dequantize(W), the weight decoded tile by tile.
  fp8_quantize:  c10's fp32 -> FP8 rounding in integer arithmetic, elementwise.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .rounding import bf16_round

INT8_CODE = tl.constexpr(0)
E4M3 = tl.constexpr(1)


@triton.jit
def _fp8_values(codes, FORMAT: tl.constexpr):
    """Exact fp32 values of FP8 bytes (uint8 tensor): e4m3fn (FORMAT 1, 0x7F is NaN) or e5m2 (2)."""
    c = codes.to(tl.int32)
    sign = (c & 0x80) << 24
    magnitude = c & 0x7F
    if FORMAT == E4M3:
        exponent, mantissa = magnitude >> 3, magnitude & 7
        normal = (sign | ((exponent + 120) << 23) | (mantissa << 20)).to(tl.float32, bitcast=True)
        subnormal = mantissa.to(tl.float32) * 0.001953125  # m * 2^-9
        value = tl.where(exponent == 0, tl.where(sign != 0, -subnormal, subnormal), normal)
        value = tl.where(magnitude == 0x7F, float("nan"), value)
    else:
        exponent, mantissa = magnitude >> 2, magnitude & 3
        normal = (sign | ((exponent + 112) << 23) | (mantissa << 21)).to(tl.float32, bitcast=True)
        subnormal = mantissa.to(tl.float32) * 0.0000152587890625  # m * 2^-16
        value = tl.where(exponent == 0, tl.where(sign != 0, -subnormal, subnormal), normal)
        value = tl.where(exponent == 31, tl.where(mantissa == 0, float("inf"), float("nan")), value)
        value = tl.where((exponent == 31) & (mantissa == 0) & (sign != 0), float("-inf"), value)
    return value


@triton.jit
def _rint(v):
    """Round half to even (the CPU kernels' nearbyint), for |v| < 2^22: the 1.5 * 2^23 trick."""
    magic = 12582912.0
    return (v + magic) - magic


@triton.jit
def _quantize_rows_kernel(x_ptr, high_ptr, low_ptr, scale_ptr, K, stride_x, group_size, groups, BITS: tl.constexpr,
                          BLOCK_K: tl.constexpr):
    """One program per (row, group): high [M, K] int8 (8 bits: q; 16 bits: floor(q / 256)), low [M, K] int8
    (l - 128), scale [M, groups]."""
    row, g = tl.program_id(0), tl.program_id(1)
    cols = tl.arange(0, BLOCK_K)  # [BLOCK_K]
    limit = 127.0 if BITS == 8 else 32767.0
    start, end = g * group_size, (g + 1) * group_size
    amax = tl.zeros([BLOCK_K], dtype=tl.float32)
    for k0 in range(start, end, BLOCK_K):
        x = tl.load(x_ptr + row * stride_x + k0 + cols, mask=k0 + cols < end, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.abs(x))
    amax_group = tl.max(amax, axis=0)
    inv = tl.where(amax_group > 0, limit / amax_group, 0.0)
    tl.store(scale_ptr + row * groups + g, amax_group / limit)
    for k0 in range(start, end, BLOCK_K):
        offs = k0 + cols
        x = tl.load(x_ptr + row * stride_x + offs, mask=offs < end, other=0.0).to(tl.float32)
        qi = tl.minimum(tl.maximum(_rint(x * inv), -limit), limit).to(tl.int32)
        if BITS == 8:
            tl.store(high_ptr + row * K + offs, qi.to(tl.int8), mask=offs < end)
        else:
            h = qi >> 8
            tl.store(high_ptr + row * K + offs, h.to(tl.int8), mask=offs < end)
            tl.store(low_ptr + row * K + offs, (qi - 256 * h - 128).to(tl.int8), mask=offs < end)


@triton.jit
def _int8_linear_kernel(high_ptr, low_ptr, a_scale_ptr, w_ptr, scales_ptr, bias_ptr, y_ptr, M, N, K, group_size,
                        groups, HALVES: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    ks = tl.arange(0, BLOCK_K)  # [BLOCK_K]
    y = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for g in range(0, groups):
        acc_h = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
        acc_l = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
        weight_sum = tl.zeros([BLOCK_N], dtype=tl.int32)
        for start in range(g * group_size, (g + 1) * group_size, BLOCK_K):
            k = start + ks
            k_ok = k < (g + 1) * group_size
            a_mask = (rows[:, None] < M) & k_ok[None, :]
            w = tl.load(w_ptr + cols[:, None] * K + k[None, :], mask=(cols[:, None] < N) & k_ok[None, :], other=0)
            a = tl.load(high_ptr + rows[:, None] * K + k[None, :], mask=a_mask, other=0)  # [BLOCK_M, BLOCK_K] int8
            acc_h += tl.dot(a, tl.trans(w), out_dtype=tl.int32)
            if HALVES == 2:
                low = tl.load(low_ptr + rows[:, None] * K + k[None, :], mask=a_mask, other=0)
                acc_l += tl.dot(low, tl.trans(w), out_dtype=tl.int32)
                weight_sum += tl.sum(w.to(tl.int32), axis=1)
        scale = tl.load(scales_ptr + cols * groups + g, mask=cols < N, other=0.0)  # [BLOCK_N]
        a_scale = tl.load(a_scale_ptr + rows * groups + g, mask=rows < M, other=0.0)  # [BLOCK_M]
        total = acc_h.to(tl.float32)
        if HALVES == 2:
            total = total * 256.0 + (acc_l + 128 * weight_sum[None, :]).to(tl.float32)
        y = y + (total * scale[None, :]) * a_scale[:, None]
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + cols, mask=cols < N, other=0.0)[None, :]
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], y.to(y_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def _fp8_linear_kernel(x_ptr, codes_ptr, scales_ptr, bias_ptr, y_ptr, M, N, K, stride_x, group_size, groups,
                       FORMAT: tl.constexpr, HAS_BIAS: tl.constexpr, BF16_DOT: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    ks = tl.arange(0, BLOCK_K)  # [BLOCK_K]
    total = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for g in range(0, groups):
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for start in range(g * group_size, (g + 1) * group_size, BLOCK_K):
            k = start + ks
            k_ok = k < (g + 1) * group_size
            x = tl.load(x_ptr + rows[:, None] * stride_x + k[None, :], mask=(rows[:, None] < M) & k_ok[None, :],
                        other=0.0).to(tl.float32)
            codes = tl.load(codes_ptr + cols[:, None] * K + k[None, :], mask=(cols[:, None] < N) & k_ok[None, :],
                            other=0)
            x = bf16_round(x)
            w = _fp8_values(codes, FORMAT)  # [BLOCK_N, BLOCK_K], exact
            if BF16_DOT:
                acc += tl.dot(x.to(tl.bfloat16), tl.trans(w.to(tl.bfloat16)))
            else:
                acc += tl.dot(x, tl.trans(w), input_precision="ieee")
        scale = tl.load(scales_ptr + cols * groups + g, mask=cols < N, other=0.0)  # [BLOCK_N]
        total = total + acc * scale[None, :]
    if HAS_BIAS:
        total = total + tl.load(bias_ptr + cols, mask=cols < N, other=0.0)[None, :]
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], total.to(y_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def _grad_input_kernel(g_ptr, w_ptr, scales_ptr, out_ptr, M, N, K, group_size, groups, FORMAT: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    ks = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)  # [BLOCK_K]
    ns = tl.arange(0, BLOCK_N)  # [BLOCK_N]
    acc = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        n = start + ns
        g = tl.load(g_ptr + rows[:, None] * N + n[None, :], mask=(rows[:, None] < M) & (n[None, :] < N),
                    other=0.0).to(tl.float32)  # [BLOCK_M, BLOCK_N]
        w_mask = (n[:, None] < N) & (ks[None, :] < K)
        raw = tl.load(w_ptr + n[:, None] * K + ks[None, :], mask=w_mask, other=0)  # [BLOCK_N, BLOCK_K]
        values = raw.to(tl.float32) if FORMAT == INT8_CODE else _fp8_values(raw, FORMAT)
        scale = tl.load(scales_ptr + n[:, None] * groups + ks[None, :] // group_size, mask=w_mask, other=0.0)
        acc += tl.dot(g, values * scale, input_precision="ieee")
    tl.store(out_ptr + rows[:, None] * K + ks[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (ks[None, :] < K))


@triton.jit
def _fp8_quantize_kernel(x_ptr, scales_ptr, codes_ptr, R, C, stride_x, group_size, groups, FORMAT: tl.constexpr,
                         SATURATE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # [BLOCK] flat indices
    ok = offs < R * C
    r, c = offs // C, offs % C
    x = tl.load(x_ptr + r * stride_x + c, mask=ok, other=0.0).to(tl.float32)
    v = x / tl.load(scales_ptr + r * groups + c // group_size, mask=ok, other=1.0)
    largest = 448.0 if FORMAT == E4M3 else 57344.0
    if SATURATE:
        v = tl.where(v != v, v, tl.minimum(tl.maximum(v, -largest), largest))
    bits = v.to(tl.int32, bitcast=True)
    sign = (bits >> 24) & 0x80
    b = bits & 0x7FFFFFFF
    if FORMAT == E4M3:
        denorm = tl.full([BLOCK], 141 << 23, tl.int32)  # 2^14: adding it rounds a subnormal in fp32
        sub = (b.to(tl.float32, bitcast=True) + denorm.to(tl.float32, bitcast=True)).to(tl.int32, bitcast=True) - denorm
        rounded = (b + ((7 - 127) << 23) + 0x7FFFF + ((b >> 20) & 1)) >> 20
        code = tl.where(b >= (1087 << 20), 0x7F, tl.where(b < (121 << 23), sub, rounded))
    else:
        denorm = tl.full([BLOCK], 134 << 23, tl.int32)  # 2^7
        sub = (b.to(tl.float32, bitcast=True) + denorm.to(tl.float32, bitcast=True)).to(tl.int32, bitcast=True) - denorm
        rounded = (b + ((15 - 127) << 23) + 0xFFFFF + ((b >> 21) & 1)) >> 21
        code = tl.where(b >= (143 << 23), tl.where(b > (255 << 23), 0x7F, 0x7C),
                        tl.where(b < (113 << 23), sub, rounded))
    tl.store(codes_ptr + offs, ((code & 0x7F) | sign).to(tl.uint8), mask=ok)


# --- launchers ------------------------------------------------------------------------------------------------

def _block_k(group_size: int) -> int:
    return 32 if group_size % 64 else 64


def quantize_rows_triton(rows: torch.Tensor, activation_bits: int,
                         group_size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rows [M, K] fp32|bf16 (unit column stride) quantized per group as int8_linear does: (high [M, K] int8, low
    [M, K] int8 for 16 bits (else a [1, 1] placeholder), scale [M, K / group_size] fp32)."""
    m, k = rows.shape
    high = torch.empty((m, k), dtype=torch.int8, device=rows.device)
    low = torch.empty((m, k) if activation_bits == 16 else (1, 1), dtype=torch.int8, device=rows.device)
    groups = k // group_size
    a_scale = torch.empty((m, groups), dtype=torch.float32, device=rows.device)
    if m:
        _quantize_rows_kernel[(m, groups)](rows, high, low, a_scale, k, rows.stride(0), group_size, groups,
                                           BITS=activation_bits, BLOCK_K=min(1024, triton.next_power_of_2(group_size)))
    return high, low, a_scale


def int8_linear_triton(x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor, bias: Optional[torch.Tensor],
                       out_features: int, group_size: int, activation_bits: int) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1]).contiguous()  # [M, K]
    m, k = rows.shape
    high, low, a_scale = quantize_rows_triton(rows, activation_bits, group_size)
    y = torch.empty((m, out_features), dtype=x.dtype, device=x.device)
    block_m, block_n = 16, 32
    grid = (triton.cdiv(m, block_m), triton.cdiv(out_features, block_n))
    if m:
        _int8_linear_kernel[grid](high, low, a_scale, q.contiguous(), scales.contiguous(),
                                  bias if bias is not None else a_scale, y, m, out_features, k, group_size,
                                  k // group_size, HALVES=1 if activation_bits == 8 else 2, HAS_BIAS=bias is not None,
                                  BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=_block_k(group_size))
    return y.reshape(*x.shape[:-1], out_features)


def fp8_linear_triton(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, bias: Optional[torch.Tensor],
                      out_features: int, group_size: int, fp8_format: int) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1])
    rows = rows if rows.stride(-1) == 1 else rows.contiguous()
    m, k = rows.shape
    y = torch.empty((m, out_features), dtype=x.dtype, device=x.device)
    block_m, block_n = 16, 32
    if m:
        _fp8_linear_kernel[(triton.cdiv(m, block_m), triton.cdiv(out_features, block_n))](
            rows, codes.view(torch.uint8).contiguous(), scales.contiguous(), bias if bias is not None else scales, y,
            m, out_features, k, rows.stride(0), group_size, k // group_size, FORMAT=fp8_format,
            HAS_BIAS=bias is not None, BF16_DOT=x.is_cuda, BLOCK_M=block_m, BLOCK_N=block_n,
            BLOCK_K=_block_k(group_size))
    return y.reshape(*x.shape[:-1], out_features)


def quantized_linear_grad_input_triton(grad_out: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor,
                                       in_features: int, group_size: int, weight_format: int) -> torch.Tensor:
    g = grad_out.reshape(-1, grad_out.shape[-1]).contiguous()  # [M, N]
    m, n = g.shape
    out = torch.empty((m, in_features), dtype=grad_out.dtype, device=grad_out.device)
    block_m, block_n, block_k = 16, 32, 32
    if m:
        raw = weight if weight_format == 0 else weight.view(torch.uint8)
        _grad_input_kernel[(triton.cdiv(m, block_m), triton.cdiv(in_features, block_k))](
            g, raw.contiguous(), scales.contiguous(), out, m, n, in_features, group_size, in_features // group_size,
            FORMAT=weight_format, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return out.reshape(*grad_out.shape[:-1], in_features)


def fp8_quantize_triton(x: torch.Tensor, scales: torch.Tensor, fp8_format: int, saturate: bool) -> torch.Tensor:
    r, c = x.shape
    codes = torch.empty((r, c), dtype=torch.uint8, device=x.device)
    block = 1024
    if r * c:
        x = x if x.stride(-1) == 1 else x.contiguous()
        _fp8_quantize_kernel[(triton.cdiv(r * c, block),)](x, scales.contiguous(), codes, r, c, x.stride(0),
                                                           c // scales.shape[1], scales.shape[1], FORMAT=fp8_format,
                                                           SATURATE=saturate, BLOCK=block)
    return codes
