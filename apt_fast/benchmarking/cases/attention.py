"""Attention benchmarks (fp32, torch.get_num_threads() threads, baseline and candidate in one run):

* flash_attention with a learnable bias vs torch's math SDPA with the same bias, forward + backward
  (target time <= 0.5x), and causal without bias vs torch's own CPU flash SDPA (target <= 1.0x);
  B=1, H=8, d=64, L=1024 and 2048.
* apt_attention (projected q/k/v in, gradients for q/k/v, tau, sr convs) vs the plain-PyTorch reference,
  B=2, T=S=512, D=512, 8 heads, forward + backward (target time <= 0.1x, peak memory <= 1/4).
* the APT model (B=4, T=S=128, D=256, 4 heads, 2+2 layers, d_ff 1024, vocab 1000, dropout 0, no
  gradient hooks): patched vs unpatched, forward and training step (target <= 0.2x); and patched vs the
  unpatched model with use_autopoietic=False (target <= 1.3x).
"""

from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ... import functional as AF
from ...patching import patch
from ..harness import BenchCase


def _assert_close(name: str, expected: torch.Tensor, actual: torch.Tensor, rtol: float) -> None:
    scale = expected.abs().max().clamp_min(1e-30)
    err = ((actual.double() - expected.double()).abs().max() / scale).item()
    if err > rtol:
        raise AssertionError(f"{name} disagrees with the baseline: max relative difference {err:.3e} > {rtol:.0e}")


def _check_all(rtol: float, baseline, candidate) -> None:
    for i, (b, c) in enumerate(zip(baseline, candidate)):
        _assert_close(f"output {i}", b, c, rtol)


def _fwd_bwd(fn, args):
    """Forward, backward with a fixed upstream gradient; returns the output and the leaves' gradients."""
    *leaves, grad_out = args
    out = fn(*leaves)
    out.backward(grad_out)
    return (out.detach(), *[x.grad for x in leaves if x.requires_grad])


def _leaves(inputs):
    *tensors, grad_out = inputs
    return (*[x.detach().clone().requires_grad_(x.is_floating_point()) for x in tensors], grad_out)


# --- flash_attention ------------------------------------------------------------------------------

def _flash_inputs(length: int, with_bias: bool, quick: bool):
    gen = torch.Generator().manual_seed(0)
    shape = (1, 8, length, 64)
    q, k, v, grad_out = (torch.randn(*shape, generator=gen) for _ in range(4))
    bias = [torch.randn(1, 8, length, length, generator=gen)] if with_bias else []
    return (q, k, v, *bias, grad_out)


def _sdpa_math_bias(q, k, v, bias):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def _sdpa_causal(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _flash_case(length: int, causal: bool) -> BenchCase:
    kind = "causal" if causal else "bias"
    return BenchCase(
        name=f"flash_attention_{kind}_fwd_bwd[L={length}]",
        family="attention",
        shape=lambda inputs: f"B=1 H=8 L={inputs[0].shape[2]} d=64 fp32 {kind}",
        make_inputs=partial(_flash_inputs, length, not causal),
        prepare=_leaves,
        baseline=partial(_fwd_bwd, _sdpa_causal if causal else _sdpa_math_bias),
        candidate=partial(_fwd_bwd, partial(AF.flash_attention, causal=True) if causal else AF.flash_attention),
        check=partial(_check_all, 1e-4),
        baseline_name="torch CPU flash SDPA (is_causal)" if causal else "torch math SDPA with bias",
        target="time <= 1.0" if causal else "time <= 0.5",
        quick=length <= 1024,
    )


# --- apt_attention --------------------------------------------------------------------------------

def _apt_inputs(batch: int, length: int, width: int, heads: int, quick: bool):
    from ...models.apt.attention import AutopoieticAttention

    torch.manual_seed(0)
    module = AutopoieticAttention(width, heads, epsilon=0.08, init_tau=1.3, sr_ratio=4)
    d = width // heads
    gen = torch.Generator().manual_seed(1)
    q, k, v, grad_out = (torch.randn(batch, heads, length, d, generator=gen) for _ in range(4))
    sr = [module.sr_conv1.weight, module.sr_conv1.bias, module.sr_conv2.weight, module.sr_conv2.bias, module.tau]
    return (q, k, v, *[p.detach() for p in sr], grad_out)


def _apt_reference(*args):
    from ...reference.apt_attention import autopoietic_attention_ref

    return autopoietic_attention_ref(*args, epsilon=0.08)[0]


def _apt_fused(*args):
    return AF.apt_attention(*args, epsilon=0.08)


def _apt_case(batch: int, length: int, width: int, heads: int) -> BenchCase:
    return BenchCase(
        name=f"apt_attention_fwd_bwd[B={batch},T=S={length},D={width},H={heads}]",
        family="attention",
        shape=lambda inputs: f"B={batch} H={heads} T=S={length} D={width} fp32",
        make_inputs=partial(_apt_inputs, batch, length, width, heads),
        prepare=_leaves,
        baseline=partial(_fwd_bwd, _apt_reference),
        candidate=partial(_fwd_bwd, _apt_fused),
        check=partial(_check_all, 1e-3),  # the sr/tau gradients are O(1/S) sums of cancelling terms
        baseline_name="reference autopoietic_attention_ref + autograd",
        target="time <= 0.1, mem <= 0.25",
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
    src = torch.randint(3, 1000, (4, 128), generator=gen)
    tgt = torch.randint(3, 1000, (4, 128), generator=gen)
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
    logits = model.train()(src_tokens=src, tgt_tokens=tgt)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
    loss.backward()
    return (loss.detach(), model.encoder_layers[0].self_attn.q_proj.weight.grad)


def _model_case(step: str, baseline_autopoietic: bool) -> BenchCase:
    against = "unpatched" if baseline_autopoietic else "use_autopoietic=False"
    check = partial(_check_all, 1e-4) if baseline_autopoietic else (lambda baseline, candidate: None)
    return BenchCase(
        name=f"apt_model_{step}[patched vs {against}]",
        family="attention",
        shape=lambda inputs: "B=4 T=S=128 D=256 H=4 2+2 layers d_ff=1024 V=1000 fp32",
        make_inputs=partial(_model_inputs, baseline_autopoietic),
        prepare=_model_prepare,
        baseline=partial(_forward if step == "forward" else _train_step, 0),
        candidate=partial(_forward if step == "forward" else _train_step, 1),
        check=check,  # against use_autopoietic=False the numbers differ by design
        baseline_name=f"reference APTModel ({against})",
        target="time <= 0.2" if baseline_autopoietic else "time <= 1.3",
        quick=True,
    )


CASES = [
    _flash_case(1024, causal=False),
    _flash_case(2048, causal=False),
    _flash_case(1024, causal=True),
    _flash_case(2048, causal=True),
    _apt_case(2, 512, 512, 8),
    _model_case("forward", True),
    _model_case("train_step", True),
    _model_case("forward", False),
    _model_case("train_step", False),
]
