"""CUDA kernels of apt_fast::flash_attention_fwd / _bwd: the Triton launchers of apt_fast.kernels, imported on
first use (triton is optional). The ops check the arguments first."""

from __future__ import annotations

from ..registry import register_kernel


@register_kernel("flash_attention_fwd", "CUDA")
def flash_attention_fwd(q, k, v, bias, mask, causal, scale, dropout_p, seed):
    from ...kernels.flash_attention import flash_attention_fwd_triton

    return flash_attention_fwd_triton(q, k, v, bias, mask, causal, scale, dropout_p, seed)


@register_kernel("flash_attention_bwd", "CUDA")
def flash_attention_bwd(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias_grad):
    from ...kernels.flash_attention import flash_attention_bwd_triton

    return flash_attention_bwd_triton(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed,
                                      bias_grad)
