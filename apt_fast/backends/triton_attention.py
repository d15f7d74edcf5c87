"""CUDA kernels of the attention ops: validate at the boundary, then launch the Triton kernels."""

from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor

from ..ops.apt_attention import check_apt_attention_args, check_head_mean_args
from ..ops.flash_attention import check_flash_attention_args


def flash_attention_fwd(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
                        causal: bool, scale: float, dropout_p: float, seed: int) -> Tuple[Tensor, Tensor]:
    check_flash_attention_args(q, k, v, bias, mask, dropout_p)
    from ..kernels.flash_attention import flash_attention_fwd_triton

    return flash_attention_fwd_triton(q, k, v, bias, mask, causal, scale, dropout_p, seed)


def flash_attention_bwd(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                        mask: Optional[Tensor], out: Tensor, lse: Tensor, causal: bool, scale: float,
                        dropout_p: float, seed: int, bias_grad: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    check_flash_attention_args(q, k, v, bias, mask, dropout_p)
    from ..kernels.flash_attention import flash_attention_bwd_triton

    return flash_attention_bwd_triton(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed,
                                      bias_grad)


def apt_head_mean_fwd(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor]) -> Tensor:
    check_head_mean_args(q, k, attn_mask, key_padding_mask)
    from ..kernels.apt_attention import apt_head_mean_fwd_triton

    return apt_head_mean_fwd_triton(q, k, attn_mask, key_padding_mask)


def apt_head_mean_bwd(grad_mean: Tensor, q: Tensor, k: Tensor, attn_mask: Optional[Tensor],
                      key_padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    check_head_mean_args(q, k, attn_mask, key_padding_mask)
    from ..kernels.apt_attention import apt_head_mean_bwd_triton

    return apt_head_mean_bwd_triton(grad_mean, q, k, attn_mask, key_padding_mask)


def apt_attention_fwd(q: Tensor, k: Tensor, v: Tensor, f: Tensor, m: Tensor, attn_mask: Optional[Tensor],
                      key_padding_mask: Optional[Tensor], dropout_p: float, seed: int) -> Tuple[Tensor, Tensor]:
    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)
    from ..kernels.apt_attention import apt_attention_fwd_triton

    return apt_attention_fwd_triton(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed)


def apt_attention_bwd(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, f: Tensor, m: Tensor,
                      attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor], out: Tensor, lse: Tensor,
                      dropout_p: float, seed: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    check_apt_attention_args(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p)
    from ..kernels.apt_attention import apt_attention_bwd_triton

    return apt_attention_bwd_triton(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse, dropout_p, seed)
