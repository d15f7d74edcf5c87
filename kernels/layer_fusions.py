"""Triton kernels of the layer fusions (semantics: apt_fast/reference/layer_fusions.py).

add_layer_norm: one program per row in the forward (the row fits one block of the next power of two of the
width); the backward gives each program ROWS rows and writes its partial weight/bias gradient sums, which the
launcher adds up in float32. bias_gelu: programs over (row block, column block); the backward writes the
partial bias-gradient sums of its row block the same way. Everything is computed in float32, stored in x's dtype.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import triton
import triton.language as tl

ROWS = 16  # rows per program in the backward passes and in bias_gelu
BLOCK_F = 256  # bias_gelu's column block
INV_SQRT_2 = tl.constexpr(1.0 / math.sqrt(2.0))
INV_SQRT_2PI = tl.constexpr(1.0 / math.sqrt(2.0 * math.pi))


@triton.jit
def _add_layer_norm_fwd_kernel(x, residual, weight, bias, out, mean, rstd, D, eps, BLOCK_D: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    mask = cols < D
    s = (tl.load(x + row * D + cols, mask=mask, other=0.0).to(tl.float32)
         + tl.load(residual + row * D + cols, mask=mask, other=0.0).to(tl.float32))  # [BLOCK_D]
    mu = tl.sum(s, axis=0) / D
    centred = tl.where(mask, s - mu, 0.0)  # [BLOCK_D]
    inv_std = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=0) / D + eps)
    w = tl.load(weight + cols, mask=mask, other=0.0).to(tl.float32)  # [BLOCK_D]
    b = tl.load(bias + cols, mask=mask, other=0.0).to(tl.float32)  # [BLOCK_D]
    tl.store(out + row * D + cols, (centred * inv_std * w + b).to(out.dtype.element_ty), mask=mask)
    tl.store(mean + row, mu)
    tl.store(rstd + row, inv_std)


@triton.jit
def _add_layer_norm_bwd_kernel(grad_out, x, residual, weight, mean, rstd, grad_sum, partial_weight, partial_bias,
                               N, D, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    mask = cols < D
    w = tl.load(weight + cols, mask=mask, other=0.0).to(tl.float32)  # [BLOCK_D]
    dweight = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias = tl.zeros([BLOCK_D], dtype=tl.float32)
    for i in range(0, ROWS):
        row = pid * ROWS + i
        if row < N:
            g = tl.load(grad_out + row * D + cols, mask=mask, other=0.0).to(tl.float32)  # [BLOCK_D]
            s = (tl.load(x + row * D + cols, mask=mask, other=0.0).to(tl.float32)
                 + tl.load(residual + row * D + cols, mask=mask, other=0.0).to(tl.float32))  # [BLOCK_D]
            inv_std = tl.load(rstd + row)
            xhat = tl.where(mask, (s - tl.load(mean + row)) * inv_std, 0.0)  # [BLOCK_D]
            wg = g * w  # [BLOCK_D]
            c1 = tl.sum(wg, axis=0) / D
            c2 = tl.sum(wg * xhat, axis=0) / D
            ds = inv_std * (wg - c1 - xhat * c2)  # [BLOCK_D]
            tl.store(grad_sum + row * D + cols, ds.to(grad_sum.dtype.element_ty), mask=mask)
            dweight += g * xhat
            dbias += g
    tl.store(partial_weight + pid * D + cols, dweight, mask=mask)
    tl.store(partial_bias + pid * D + cols, dbias, mask=mask)


@triton.jit
def _normal_cdf(v):
    return 0.5 * (1.0 + tl.math.erf(v * INV_SQRT_2))


@triton.jit
def _bias_gelu_fwd_kernel(x, bias, out, N, F, ROWS: tl.constexpr, BLOCK_F: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)  # [ROWS]
    cols = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)  # [BLOCK_F]
    mask = (rows[:, None] < N) & (cols[None, :] < F)  # [ROWS, BLOCK_F]
    offs = rows[:, None] * F + cols[None, :]  # [ROWS, BLOCK_F]
    v = (tl.load(x + offs, mask=mask, other=0.0).to(tl.float32)
         + tl.load(bias + cols, mask=cols < F, other=0.0).to(tl.float32)[None, :])  # [ROWS, BLOCK_F]
    tl.store(out + offs, (v * _normal_cdf(v)).to(out.dtype.element_ty), mask=mask)


@triton.jit
def _bias_gelu_bwd_kernel(grad_out, x, bias, grad_x, partial_bias, N, F, ROWS: tl.constexpr, BLOCK_F: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)  # [ROWS]
    cols = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)  # [BLOCK_F]
    mask = (rows[:, None] < N) & (cols[None, :] < F)  # [ROWS, BLOCK_F]
    offs = rows[:, None] * F + cols[None, :]  # [ROWS, BLOCK_F]
    v = (tl.load(x + offs, mask=mask, other=0.0).to(tl.float32)
         + tl.load(bias + cols, mask=cols < F, other=0.0).to(tl.float32)[None, :])  # [ROWS, BLOCK_F]
    slope = _normal_cdf(v) + v * tl.exp(-0.5 * v * v) * INV_SQRT_2PI  # [ROWS, BLOCK_F]
    grad = tl.where(mask, tl.load(grad_out + offs, mask=mask, other=0.0).to(tl.float32) * slope, 0.0)
    tl.store(grad_x + offs, grad.to(grad_x.dtype.element_ty), mask=mask)
    tl.store(partial_bias + tl.program_id(0) * F + cols, tl.sum(grad, axis=0), mask=cols < F)


def _block(width: int) -> int:
    return triton.next_power_of_2(max(width, 1))


def add_layer_norm_fwd_triton(
    x: torch.Tensor,  # [N, D] fp32|bf16
    residual: torch.Tensor,  # [N, D]
    weight: torch.Tensor,  # [D]
    bias: torch.Tensor,  # [D]
    eps: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, residual = x.contiguous(), residual.contiguous()
    rows, width = x.shape
    out = torch.empty_like(x)  # [N, D]
    mean = torch.empty(rows, dtype=torch.float32, device=x.device)  # [N]
    rstd = torch.empty(rows, dtype=torch.float32, device=x.device)  # [N]
    if rows > 0:
        _add_layer_norm_fwd_kernel[(rows,)](x, residual, weight.contiguous(), bias.contiguous(), out, mean, rstd,
                                            width, eps, BLOCK_D=_block(width))
    return out, mean, rstd


def add_layer_norm_bwd_triton(
    grad_out: torch.Tensor,  # [N, D] x.dtype
    x: torch.Tensor,  # [N, D]
    residual: torch.Tensor,  # [N, D]
    weight: torch.Tensor,  # [D]
    bias: torch.Tensor,  # [D]
    mean: torch.Tensor,  # [N] fp32
    rstd: torch.Tensor,  # [N] fp32
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_out, x, residual = grad_out.contiguous(), x.contiguous(), residual.contiguous()
    rows, width = x.shape
    programs = triton.cdiv(rows, ROWS)
    grad_sum = torch.empty_like(x)  # [N, D]
    partial_weight = torch.zeros(programs, width, dtype=torch.float32, device=x.device)  # [P, D]
    partial_bias = torch.zeros(programs, width, dtype=torch.float32, device=x.device)  # [P, D]
    if rows > 0:
        _add_layer_norm_bwd_kernel[(programs,)](grad_out, x, residual, weight.contiguous(), mean.contiguous(),
                                                rstd.contiguous(), grad_sum, partial_weight, partial_bias, rows,
                                                width, ROWS=ROWS, BLOCK_D=_block(width))
    return grad_sum, partial_weight.sum(dim=0).to(weight.dtype), partial_bias.sum(dim=0).to(bias.dtype)


def bias_gelu_fwd_triton(
    x: torch.Tensor,  # [N, F] fp32|bf16
    bias: torch.Tensor,  # [F]
) -> torch.Tensor:  # [N, F]
    x = x.contiguous()
    rows, width = x.shape
    out = torch.empty_like(x)
    if rows > 0:
        grid = (triton.cdiv(rows, ROWS), triton.cdiv(width, BLOCK_F))
        _bias_gelu_fwd_kernel[grid](x, bias.contiguous(), out, rows, width, ROWS=ROWS, BLOCK_F=BLOCK_F)
    return out


def bias_gelu_bwd_triton(
    grad_out: torch.Tensor,  # [N, F] x.dtype
    x: torch.Tensor,  # [N, F]
    bias: torch.Tensor,  # [F]
) -> Tuple[torch.Tensor, torch.Tensor]:
    grad_out, x = grad_out.contiguous(), x.contiguous()
    rows, width = x.shape
    row_blocks = triton.cdiv(rows, ROWS)
    grad_x = torch.empty_like(x)  # [N, F]
    partial_bias = torch.zeros(row_blocks, width, dtype=torch.float32, device=x.device)  # [P, F]
    if rows > 0:
        grid = (row_blocks, triton.cdiv(width, BLOCK_F))
        _bias_gelu_bwd_kernel[grid](grad_out, x, bias.contiguous(), grad_x, partial_bias, rows, width, ROWS=ROWS,
                                    BLOCK_F=BLOCK_F)
    return grad_x, partial_bias.sum(dim=0).to(bias.dtype)
