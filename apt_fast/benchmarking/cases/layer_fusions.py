"""Layer-fusion benchmarks (torch.get_num_threads() threads, baseline and candidate in one run), forward + backward
on the FFN/residual shapes of the APT benchmark model's training step (B=4, T=128: 512 rows):

* add_layer_norm (x + residual, LayerNorm, D=256) vs ``F.layer_norm(x + residual)`` with autograd;
* bias_gelu (x + bias, exact GELU, F=1024) vs ``F.gelu(x + bias)`` with autograd.

Target: time <= 1.0x (no slower than torch's two kernels); the patch leaves these modules alone by default
because the measured gain on the whole step is within noise (README, "Training").
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from ... import functional as AF
from ..harness import BenchCase
from ..targets import Targets
from .common import check_all, fwd_bwd, leaves

ROWS = 512  # B=4 x T=128


def _add_layer_norm_inputs(width: int, quick: bool):
    gen = torch.Generator().manual_seed(0)
    x, residual, grad_out = (torch.randn(ROWS, width, generator=gen) for _ in range(3))  # [rows, D]
    weight, bias = 1 + 0.1 * torch.randn(width, generator=gen), 0.1 * torch.randn(width, generator=gen)  # [D]
    return (x, residual, weight, bias, grad_out)


def _torch_add_layer_norm(x, residual, weight, bias):
    return F.layer_norm(x + residual, (x.shape[-1],), weight, bias)


def _bias_gelu_inputs(width: int, quick: bool):
    gen = torch.Generator().manual_seed(0)
    x, grad_out = (torch.randn(ROWS, width, generator=gen) for _ in range(2))  # [rows, F]
    return (x, 0.1 * torch.randn(width, generator=gen), grad_out)


def _torch_bias_gelu(x, bias):
    return F.gelu(x + bias)


def _case(op: str, width: int, make_inputs, baseline, candidate) -> BenchCase:
    return BenchCase(
        name=f"{op}_fwd_bwd[rows={ROWS},width={width}]",
        family="layer_fusions",
        shape=lambda inputs: f"[{ROWS}, {width}] fp32",
        make_inputs=partial(make_inputs, width),
        prepare=leaves,
        baseline=partial(fwd_bwd, baseline),
        candidate=partial(fwd_bwd, candidate),
        check=partial(check_all, 1e-4),  # fp32 sums in another order: measured <= 3e-6 relative
        baseline_name=f"torch {baseline.__name__[len('_torch_'):]} + autograd",
        targets=Targets(max_time_ratio=1.0),
        quick=True,
    )


CASES = [
    _case("add_layer_norm", 256, _add_layer_norm_inputs, _torch_add_layer_norm, AF.add_layer_norm),
    _case("bias_gelu", 1024, _bias_gelu_inputs, _torch_bias_gelu, AF.bias_gelu),
]
