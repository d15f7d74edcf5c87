"""APT attention benchmarks (fp32, torch.get_num_threads() threads, baseline and candidate in one run):

* apt_attention (projected q/k/v in, gradients for q/k/v, tau, sr convs) vs the plain-PyTorch reference,
  B=2, T=S=512, D=512, 8 heads, forward + backward (target >= 10x faster, peak memory <= 1/4).
* the APT model (B=4, T=S=128, D=256, 4 heads, 2+2 layers, d_ff 1024, vocab 1000, dropout 0, no
  gradient hooks): patched vs unpatched, forward and training step (target time <= 0.2x); and patched vs
  the unpatched model with use_autopoietic=False (target time <= 1.3x).
"""

from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn.functional as F

from ... import functional as AF
from ...patching import patch
from ..harness import BenchCase
from ..targets import Targets
from .common import check_all, fwd_bwd, leaves

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


# --- the APT model --------------------------------------------------------------------------------

MODEL = dict(vocab_size=1000, d_model=256, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=1024,
             dropout=0.0, use_dbc_dac=False)


def _model_inputs(baseline_autopoietic: bool, quick: bool):
    from ...models.apt import APTConfig, APTModel

    torch.manual_seed(0)
    reference = APTModel(APTConfig(**MODEL))
    fused = copy.deepcopy(reference)
    patch(fused)
    if not baseline_autopoietic:
        reference = APTModel(APTConfig(**MODEL, use_autopoietic=False))
        reference.load_state_dict(fused.state_dict())
    gen = torch.Generator().manual_seed(1)
    src = torch.randint(3, 1000, (4, 128), generator=gen)  # [B, S]
    tgt = torch.randint(3, 1000, (4, 128), generator=gen)  # [B, T]
    return reference, fused, src, tgt


def _model_prepare(inputs):
    reference, fused, src, tgt = inputs
    for model in (reference, fused):
        model.zero_grad(set_to_none=True)
    return inputs


def _forward(which: int, args):
    model, src, tgt = args[which], args[2], args[3]
    with torch.no_grad():
        return (model.eval()(src_tokens=src, tgt_tokens=tgt),)


def _train_step(which: int, args):
    model, src, tgt = args[which], args[2], args[3]
    logits = model.train()(src_tokens=src, tgt_tokens=tgt)  # [B, T, V]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
    loss.backward()
    return (loss.detach(), model.encoder_layers[0].self_attn.q_proj.weight.grad)


def _model_case(step: str, baseline_autopoietic: bool) -> BenchCase:
    against = "unpatched" if baseline_autopoietic else "use_autopoietic=False"
    check = partial(check_all, 1e-4) if baseline_autopoietic else (lambda baseline, candidate: None)
    return BenchCase(
        name=f"apt_model_{step}[patched vs {against}]",
        family="apt_attention",
        shape=lambda inputs: "B=4 T=S=128 D=256 H=4 2+2 layers d_ff=1024 V=1000 fp32",
        make_inputs=partial(_model_inputs, baseline_autopoietic),
        prepare=_model_prepare,
        baseline=partial(_forward if step == "forward" else _train_step, 0),
        candidate=partial(_forward if step == "forward" else _train_step, 1),
        check=check,  # against use_autopoietic=False the numbers differ by design
        baseline_name=f"reference APTModel ({against})",
        targets=Targets(max_time_ratio=0.2 if baseline_autopoietic else 1.3),
        quick=True,
    )


CASES = [
    _op_case(2, 512, 512, 8),
    _model_case("forward", True),
    _model_case("train_step", True),
    _model_case("forward", False),
    _model_case("train_step", False),
]
