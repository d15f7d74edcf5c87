"""What the sparse linear kernels (bitmap_linear, nm_linear, block_linear) share: a constexpr code for the
values' dtype, x as the layer multiplies it, and the row view the launchers hand to the kernels."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .rounding import bf16_round

FP32 = tl.constexpr(0)
BF16 = tl.constexpr(1)
INT8 = tl.constexpr(2)
VALUE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.int8: 2}


@triton.jit
def multiplied(x, VALUES: tl.constexpr):
    """x as the layer multiplies it, in fp32: rounded to bf16 against bf16 values (products then exact)."""
    x = x.to(tl.float32)
    if VALUES == BF16:
        x = bf16_round(x)
    return x


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """[..., C] -> [rows, C], contiguous."""
    return t.reshape(-1, t.shape[-1]).contiguous()
