"""CUDA kernels of the attention ops: the ops' argument checks, then the Triton launchers of apt_fast.kernels,
imported on first use (triton is optional)."""

from __future__ import annotations

from ..ops.apt_attention import check_apt_attention_args, check_head_mean_args
from ..ops.flash_attention import check_flash_attention_args


def flash_attention_fwd(q, k, v, bias, mask, causal, scale, dropout_p, seed):
    from ..kernels.flash_attention import flash_attention_fwd_triton

    check_flash_attention_args(q, k, v, bias, mask, dropout_p)
    return flash_attention_fwd_triton(q, k, v, bias, mask, causal, scale, dropout_p, seed)


def flash_attention_bwd(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias_grad):
    from ..kernels.flash_attention import flash_attention_bwd_triton

    check_flash_attention_args(q, k, v, bias, mask, dropout_p)
    return flash_attention_bwd_triton(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed,
                                      bias_grad)


def apt_head_mean_fwd(q, k, attn_mask, key_padding_mask):
    from ..kernels.apt_attention import apt_head_mean_fwd_triton

    check_head_mean_args(q, k, attn_mask, key_padding_mask)
    return apt_head_mean_fwd_triton(q, k, attn_mask, key_padding_mask)


def apt_head_mean_bwd(grad_mean, q, k, attn_mask, key_padding_mask):
    from ..kernels.apt_attention import apt_head_mean_bwd_triton

    check_head_mean_args(q, k, attn_mask, key_padding_mask)
    return apt_head_mean_bwd_triton(grad_mean, q, k, attn_mask, key_padding_mask)


def apt_attention_fwd(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed):
    from ..kernels.apt_attention import apt_attention_fwd_triton

    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)
    return apt_attention_fwd_triton(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed)


def apt_attention_bwd(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed):
    from ..kernels.apt_attention import apt_attention_bwd_triton

    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)
    return apt_attention_bwd_triton(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed)
