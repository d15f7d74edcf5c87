"""flash_attention benchmarks (torch.get_num_threads() threads, baseline and candidate in one run), forward +
backward, B=1, H=8, d=64, L=1024 and 2048, in fp32 and in bf16 (baselines in the same dtype):

* with a learnable bias vs torch's math SDPA with the same bias (target time <= 0.5x in fp32, <= 0.3x in bf16);
* causal without bias vs torch's own CPU flash SDPA (sdpa_kernel(FLASH_ATTENTION); target time <= 1.0x in fp32,
  <= 0.8x in bf16).

The outputs (out, dq, dk, dv, d(bias)) are checked against the baseline's: fp32 to 1e-4 of each one's max; bf16 to
BF16_RTOL, two implementations rounding differently in bf16 (measured at L=1024, max |difference| / max |baseline|:
out 0.20-0.28%, dq 0.30-0.41%, dk 0.62-0.66%, dv 0.38-0.68%, d(bias) 0.49%; each side against torch in fp32 up
to 0.65%).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ... import functional as AF
from ..harness import BenchCase
from ..targets import Targets
from .common import check_all, fwd_bwd, leaves

BF16_RTOL = 0.02  # ~3x the largest bf16 difference measured (module docstring)


def _inputs(length: int, with_bias: bool, dtype: torch.dtype, quick: bool):
    gen = torch.Generator().manual_seed(0)
    shape = (1, 8, length, 64)
    q, k, v, grad_out = (torch.randn(*shape, generator=gen).to(dtype) for _ in range(4))  # [B, H, L, d]
    bias = [torch.randn(1, 8, length, length, generator=gen).to(dtype)] if with_bias else []  # [B, H, L, L]
    return (q, k, v, *bias, grad_out)


def _sdpa_math_bias(q, k, v, bias):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def _sdpa_flash_causal(q, k, v):
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _case(length: int, causal: bool, dtype: torch.dtype = torch.float32) -> BenchCase:
    kind = "causal" if causal else "bias"
    bf16 = dtype == torch.bfloat16
    precision = "bf16" if bf16 else "fp32"
    target = (0.8 if bf16 else 1.0) if causal else (0.3 if bf16 else 0.5)
    return BenchCase(
        name=f"flash_attention_{kind}_fwd_bwd[L={length}{',bf16' if bf16 else ''}]",
        family="flash_attention",
        shape=lambda inputs: f"B=1 H=8 L={inputs[0].shape[2]} d=64 {precision} {kind}",
        make_inputs=partial(_inputs, length, not causal, dtype),
        prepare=leaves,
        baseline=partial(fwd_bwd, _sdpa_flash_causal if causal else _sdpa_math_bias),
        candidate=partial(fwd_bwd, partial(AF.flash_attention, causal=True) if causal else AF.flash_attention),
        check=partial(check_all, BF16_RTOL if bf16 else 1e-4),
        baseline_name=(f"torch CPU flash SDPA (is_causal) {precision}" if causal
                       else f"torch math SDPA with bias {precision}"),
        targets=Targets(max_time_ratio=target),
        quick=length <= 1024,
    )


CASES = [_case(length, causal, dtype) for dtype in (torch.float32, torch.bfloat16) for causal in (False, True)
         for length in (1024, 2048)]
