"""Rounding helpers shared by the Triton kernels: bf16 rounding done in fp32 bit arithmetic, exact under the
interpreter too (whose fp32 -> bf16 cast truncates instead of rounding to nearest)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def bf16_round(x):
    """x rounded to the nearest bf16 (ties to even), kept in fp32."""
    bits = x.to(tl.int32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536  # -65536 = 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def rounded_for(y, ptr):
    """fp32 y in the element type of ptr, rounded to nearest even: bf16 through bf16_round, whose results the
    cast keeps exactly."""
    if ptr.dtype.element_ty == tl.bfloat16:
        y = bf16_round(y)
    return y.to(ptr.dtype.element_ty)
