"""flash_attention benchmarks (fp32, torch.get_num_threads() threads, baseline and candidate in one run),
forward + backward, B=1, H=8, d=64, L=1024 and 2048:

* with a learnable bias vs torch's math SDPA with the same bias (target time <= 0.5x);
* causal without bias vs torch's own CPU flash SDPA (target time <= 1.0x).
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


def _inputs(length: int, with_bias: bool, quick: bool):
    gen = torch.Generator().manual_seed(0)
    shape = (1, 8, length, 64)
    q, k, v, grad_out = (torch.randn(*shape, generator=gen) for _ in range(4))  # [B, H, L, d]
    bias = [torch.randn(1, 8, length, length, generator=gen)] if with_bias else []  # [B, H, L, L]
    return (q, k, v, *bias, grad_out)


def _sdpa_math_bias(q, k, v, bias):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def _sdpa_causal(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _case(length: int, causal: bool) -> BenchCase:
    kind = "causal" if causal else "bias"
    return BenchCase(
        name=f"flash_attention_{kind}_fwd_bwd[L={length}]",
        family="flash_attention",
        shape=lambda inputs: f"B=1 H=8 L={inputs[0].shape[2]} d=64 fp32 {kind}",
        make_inputs=partial(_inputs, length, not causal),
        prepare=leaves,
        baseline=partial(fwd_bwd, _sdpa_causal if causal else _sdpa_math_bias),
        candidate=partial(fwd_bwd, partial(AF.flash_attention, causal=True) if causal else AF.flash_attention),
        check=partial(check_all, 1e-4),
        baseline_name="torch CPU flash SDPA (is_causal)" if causal else "torch math SDPA with bias",
        targets=Targets(max_time_ratio=1.0 if causal else 0.5),
        quick=length <= 1024,
    )


CASES = [_case(1024, causal=False), _case(2048, causal=False), _case(1024, causal=True), _case(2048, causal=True)]
