"""Ops apt_fast::flash_attention_fwd / _bwd: attention with an additive bias that gets a gradient.

Semantics: apt_fast/reference/flash_attention.py. define_op runs the argument check before every kernel.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reference.flash_attention import flash_attention_bwd_ref, flash_attention_fwd_ref
from ..validation import check_dtype, check_in_range, check_ndim, check_same_device
from .library import define_op

ATTENTION_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

FWD_SCHEMA = (
    "(Tensor q, Tensor k, Tensor v, Tensor? bias, Tensor? mask, bool causal, float scale, float dropout_p, "
    "int seed) -> (Tensor, Tensor)"
)
BWD_SCHEMA = (
    "(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor? bias, Tensor? mask, Tensor out, Tensor lse, "
    "bool causal, float scale, float dropout_p, int seed, bool bias_grad) -> (Tensor, Tensor, Tensor, Tensor)"
)


def dtype_name(x: Tensor) -> str:
    return str(x.dtype).replace("torch.", "")


def check_same_dtype(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    """x must have ref's dtype: the error names both tensors and both dtypes."""
    if x.dtype != ref.dtype:
        raise ValueError(f"{ref_name} and {name} must have the same dtype, got {ref_name} {dtype_name(ref)} and "
                         f"{name} {dtype_name(x)}")


def check_fp32_or_like(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    """x may be ref's dtype or float32: an fp32 parameter (a learnable bias) meeting bf16/fp16 activations under
    autocast. The kernels read it in fp32 and return its gradient in its own dtype."""
    if x.dtype not in (ref.dtype, torch.float32):
        raise ValueError(f"{name} must be float32 or {ref_name}'s dtype {dtype_name(ref)}, got {name} "
                         f"{dtype_name(x)}")


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """q [B, H, T, d], k and v [B, H, S, d]: same dtype (fp32, bf16 or fp16), device, batch, heads and head dim."""
    check_dtype("q", q, ATTENTION_DTYPES)
    check_ndim("q", q, 4, "[batch, heads, queries, head_dim]")
    check_same_dtype("k", k, "q", q)
    check_same_dtype("v", v, "k", k)
    for name, x in (("k", k), ("v", v)):
        check_ndim(name, x, 4, "[batch, heads, keys, head_dim]")
        check_same_device(name, x, "q", q)
    b, h, _, d = q.shape
    if k.shape[0] != b or k.shape[1] != h or k.shape[3] != d:
        raise ValueError(f"k must have shape [{b}, {h}, S, {d}] to match q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    if d == 0:
        raise ValueError("q must have a non-zero head_dim, got 0")


def check_broadcast(name: str, x: Tensor, target: Tuple[int, ...], ref: Tensor) -> None:
    """x must be broadcastable to `target` ([B, H, T, S]) and live on ref's device."""
    check_same_device(name, x, "q", ref)
    shape = tuple(x.shape)
    ok = len(shape) <= len(target) and all(n in (1, t) for n, t in zip(shape[::-1], target[::-1]))
    if not ok:
        raise ValueError(f"{name} must be broadcastable to [B, H, T, S] = {list(target)}, got shape {shape}")


def check_like_q(name: str, x: Tensor, q: Tensor) -> None:
    """x (an output or its gradient) must have q's dtype, shape and device."""
    check_same_dtype(name, x, "q", q)
    if tuple(x.shape) != tuple(q.shape):
        raise ValueError(f"{name} must have q's shape {tuple(q.shape)}, got {tuple(x.shape)}")
    check_same_device(name, x, "q", q)


def check_flash_attention_args(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
                               dropout_p: float) -> None:
    check_qkv(q, k, v)
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if bias is not None:
        check_fp32_or_like("bias", bias, "q", q)
        check_broadcast("bias", bias, target, q)
    if mask is not None:
        check_dtype("mask", mask, (torch.bool,))
        check_broadcast("mask", mask, target, q)
    check_in_range("dropout_p", dropout_p, 0.0, 1.0, high_open=True)


def _check_fwd(q, k, v, bias, mask, causal, scale, dropout_p, seed) -> None:
    check_flash_attention_args(q, k, v, bias, mask, dropout_p)


def _check_bwd(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias_grad) -> None:
    check_flash_attention_args(q, k, v, bias, mask, dropout_p)
    check_like_q("grad_out", grad_out, q)
    check_like_q("out", out, q)


def _bias_like_q(bias: Optional[Tensor], q: Tensor) -> Optional[Tensor]:
    """The reference computes in q's dtype: an fp32 bias meeting bf16/fp16 q is cast to it."""
    return bias.to(q.dtype) if bias is not None else None


def _fwd_reference(q, k, v, bias, mask, causal, scale, dropout_p, seed) -> Tuple[Tensor, Tensor]:
    return flash_attention_fwd_ref(q, k, v, _bias_like_q(bias, q), mask, causal, scale, dropout_p, seed)


def _fwd_fake(q, k, v, bias, mask, causal, scale, dropout_p, seed) -> Tuple[Tensor, Tensor]:
    return torch.empty_like(q), q.new_empty(q.shape[:3], dtype=torch.float32)


def empty_bias_grad(bias: Optional[Tensor], wanted: bool, like: Tensor) -> Tensor:
    """The fourth output of the backward when there is no bias gradient: an empty tensor."""
    return (like.new_empty(0) if bias is None or not wanted
            else torch.empty_like(bias, memory_format=torch.contiguous_format))


def _bwd_reference(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias_grad):
    dq, dk, dv, dbias = flash_attention_bwd_ref(grad_out, q, k, v, _bias_like_q(bias, q), mask, causal, scale,
                                                dropout_p, seed)
    return dq, dk, dv, (dbias.to(bias.dtype) if bias is not None and bias_grad else q.new_empty(0))


def _bwd_fake(grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias_grad):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), empty_bias_grad(bias, bias_grad, q)


define_op("flash_attention_fwd", FWD_SCHEMA, _fwd_reference, _fwd_fake, check=_check_fwd)
define_op("flash_attention_bwd", BWD_SCHEMA, _bwd_reference, _bwd_fake, check=_check_bwd)
