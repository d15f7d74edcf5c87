"""CUDA kernels of apt_fast::apt_head_mean_fwd / _bwd and apt_attention_fwd / _bwd: the Triton launchers of
apt_fast.kernels, imported on first use (triton is optional). The ops check the arguments first."""

from __future__ import annotations

from ..registry import register_kernel


@register_kernel("apt_head_mean_fwd", "CUDA")
def apt_head_mean_fwd(q, k, attn_mask, key_padding_mask):
    from ...kernels.apt_attention import apt_head_mean_fwd_triton

    return apt_head_mean_fwd_triton(q, k, attn_mask, key_padding_mask)


@register_kernel("apt_head_mean_bwd", "CUDA")
def apt_head_mean_bwd(grad_mean, q, k, attn_mask, key_padding_mask):
    from ...kernels.apt_attention import apt_head_mean_bwd_triton

    return apt_head_mean_bwd_triton(grad_mean, q, k, attn_mask, key_padding_mask)


@register_kernel("apt_attention_fwd", "CUDA")
def apt_attention_fwd(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed):
    from ...kernels.apt_attention import apt_attention_fwd_triton

    return apt_attention_fwd_triton(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed)


@register_kernel("apt_attention_bwd", "CUDA")
def apt_attention_bwd(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed):
    from ...kernels.apt_attention import apt_attention_bwd_triton

    return apt_attention_bwd_triton(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed)
