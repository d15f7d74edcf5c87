"""APT attention benchmarks (torch.get_num_threads() threads, baseline and candidate in one run):

* apt_attention (projected q/k/v in, gradients for q/k/v, tau, sr convs), B=2, T=S=512, D=512, 8 heads, forward +
  backward: fp32 vs the plain-PyTorch reference (target >= 10x faster, peak memory <= 1/4); and bf16 q/k/v (float32
  sr convs and tau, as under autocast) vs apt_fast's own fp32 path on the same bf16-representable inputs (target
  time <= 0.6x).
* the APT model's forward (B=4, T=S=128, D=256, 4 heads, 2+2 layers, d_ff 1024, vocab 1000, dropout 0, no
  gradient hooks): patched vs unpatched (target time <= 0.2x) and vs the unpatched model with use_autopoietic=False
  (target time <= 1.3x). Its training step, with AdamW: cases/training.py.

bf16 vs fp32 check: a bf16 head mean M takes upstream's half-precision statistics (no quantiles; tau does not
enter, so it gets a zero gradient), so bf16 differs from fp32 by design, not only by rounding. Measured (max
|difference| / max |fp32|): out 4.2%, dv 4.3%, dq 16%, dk 20%; the sr-conv and tau gradients are not compared.
"""

from __future__ import annotations

import copy
from functools import partial

import torch

from ... import functional as AF
from ...patching import patch
from ..harness import BenchCase
from ..targets import Targets
from .common import assert_close, check_all, fwd_bwd, leaves
from .training import SMALL

# --- apt_attention --------------------------------------------------------------------------------

def _op_inputs(batch: int, length: int, width: int, heads: int, quick: bool):
    from ...models.apt.attention import AutopoieticAttention

    torch.manual_seed(0)
    module = AutopoieticAttention(width, heads, epsilon=0.08, init_tau=1.3, sr_ratio=4)
    d = width // heads
    gen = torch.Generator().manual_seed(1)
    q, k, v, grad_out = (torch.randn(batch, heads, length, d, generator=gen) for _ in range(4))  # [B, H, T, d]
    sr = [module.sr_conv1.weight, module.sr_conv1.bias, module.sr_conv2.weight, module.sr_conv2.bias, module.tau]
    return (q, k, v, *[p.detach() for p in sr], grad_out)


def _reference(*args):
    from ...reference.apt_attention import autopoietic_attention_ref

    return autopoietic_attention_ref(*args, epsilon=0.08)[0]


def _fused(*args):
    return AF.apt_attention(*args, epsilon=0.08)


def _op_case(batch: int, length: int, width: int, heads: int) -> BenchCase:
    return BenchCase(
        name=f"apt_attention_fwd_bwd[B={batch},T=S={length},D={width},H={heads}]",
        family="apt_attention",
        shape=lambda inputs: f"B={batch} H={heads} T=S={length} D={width} fp32",
        make_inputs=partial(_op_inputs, batch, length, width, heads),
        prepare=leaves,
        baseline=partial(fwd_bwd, _reference),
        candidate=partial(fwd_bwd, _fused),
        check=partial(check_all, 1e-3),  # the sr/tau gradients are O(1/S) sums of cancelling terms
        baseline_name="reference autopoietic_attention_ref + autograd",
        targets=Targets(min_speedup=10, max_mem_ratio=0.25),
        quick=True,
    )


def _mixed_inputs(batch: int, length: int, width: int, heads: int, quick: bool):
    """q, k, v, grad_out rounded to bf16 (both sides see the same values), and the sr-conv/tau parameters."""
    q, k, v, *sr, grad_out = _op_inputs(batch, length, width, heads, quick)
    return [x.bfloat16() for x in (q, k, v, grad_out)], sr


def _mixed_prepare(inputs):
    """(fp32 leaves, bf16 leaves): q, k, v in that dtype, the sr convs and tau in float32, then grad_out."""
    (q, k, v, grad_out), sr = inputs
    sides = []
    for dtype in (torch.float32, torch.bfloat16):
        tensors = [x.to(dtype, copy=True) for x in (q, k, v)] + [p.clone() for p in sr]
        sides.append((*[x.requires_grad_() for x in tensors], grad_out.to(dtype)))
    return sides


def _check_bf16_vs_fp32(baseline, candidate) -> None:
    for name, rtol, b, c in zip(("out", "dq", "dk", "dv"), (0.1, 0.5, 0.5, 0.1), baseline, candidate):
        assert_close(name, b, c, rtol)  # ~2.5x the measured differences (module docstring)


def _bf16_op_case(batch: int, length: int, width: int, heads: int) -> BenchCase:
    return BenchCase(
        name=f"apt_attention_fwd_bwd[B={batch},T=S={length},D={width},H={heads},bf16]",
        family="apt_attention",
        shape=lambda inputs: f"B={batch} H={heads} T=S={length} D={width} bf16 (sr convs, tau fp32)",
        make_inputs=partial(_mixed_inputs, batch, length, width, heads),
        prepare=_mixed_prepare,
        baseline=lambda sides: fwd_bwd(_fused, sides[0]),
        candidate=lambda sides: fwd_bwd(_fused, sides[1]),
        check=_check_bf16_vs_fp32,
        baseline_name="apt_fast apt_attention fp32",
        targets=Targets(max_time_ratio=0.6),
        quick=True,
    )


# --- the APT model --------------------------------------------------------------------------------

def _model_inputs(baseline_autopoietic: bool, quick: bool):
    from ...models.apt import APTConfig, APTModel

    torch.manual_seed(0)
    reference = APTModel(APTConfig(**SMALL.config))
    fused = copy.deepcopy(reference)
    patch(fused)
    if not baseline_autopoietic:
        reference = APTModel(APTConfig(**SMALL.config, use_autopoietic=False))
        reference.load_state_dict(fused.state_dict())
    gen = torch.Generator().manual_seed(1)
    vocab = SMALL.config["vocab_size"]
    src = torch.randint(3, vocab, (SMALL.batch, SMALL.length), generator=gen)  # [B, S]
    tgt = torch.randint(3, vocab, (SMALL.batch, SMALL.length), generator=gen)  # [B, T]
    return reference, fused, src, tgt


def _forward(which: int, args):
    model, src, tgt = args[which], args[2], args[3]
    with torch.no_grad():
        return (model.eval()(src_tokens=src, tgt_tokens=tgt),)


def _model_case(baseline_autopoietic: bool) -> BenchCase:
    against = "unpatched" if baseline_autopoietic else "use_autopoietic=False"
    check = partial(check_all, 1e-4) if baseline_autopoietic else (lambda baseline, candidate: None)
    return BenchCase(
        name=f"apt_model_forward[patched vs {against}]",
        family="apt_attention",
        shape=lambda inputs: SMALL.describe("fp32"),
        make_inputs=partial(_model_inputs, baseline_autopoietic),
        prepare=lambda inputs: inputs,
        baseline=partial(_forward, 0),
        candidate=partial(_forward, 1),
        check=check,  # against use_autopoietic=False the numbers differ by design
        baseline_name=f"reference APTModel ({against})",
        targets=Targets(max_time_ratio=0.2 if baseline_autopoietic else 1.3),
        quick=True,
    )


CASES = [
    _op_case(2, 512, 512, 8),
    _bf16_op_case(2, 512, 512, 8),
    _model_case(True),
    _model_case(False),
]
