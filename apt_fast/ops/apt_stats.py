"""Ops for the per-batch statistics stage of APT attention (APT_SPEC.md §2.2 T3-T16):

  apt_stats_fwd   M [B, T, S] -> F [B, T, S], plus what the native backward reads: R0 = G·Fm [B, T, S] and
                  STATS_SIZE float64 scalars per batch element
  apt_stats_bwd   dF -> dM and the gradients of sr_conv1/2 (weight, bias) and tau

Semantics: apt_fast.reference.apt_attention.shared_map_ref. The reference kernels leave r0 and stats as
zeros (their backward recomputes by autograd); only a backend's own forward output may feed its backward.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reference.apt_attention import shared_map_ref
from ..reference.apt_attention_ops import grads_by_autograd
from ..validation import check_dtype, check_ndim, check_same_device
from .flash_attention import ATTENTION_DTYPES, check_broadcast, check_same_dtype
from .library import define_op

# Per-batch scalars saved by the native forward (csrc/apt_attention/apt_stats.h, kStatsSize).
STATS_SIZE = 38

PARAMS = "Tensor sr_conv1_weight, Tensor sr_conv1_bias, Tensor sr_conv2_weight, Tensor sr_conv2_bias, Tensor tau"
STATS_FWD = f"(Tensor m, Tensor? attn_mask, {PARAMS}, float epsilon) -> (Tensor, Tensor, Tensor)"
STATS_BWD = (f"(Tensor grad_f, Tensor m, Tensor? attn_mask, {PARAMS}, float epsilon, Tensor r0, Tensor stats) -> "
             "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")


def check_stats_args(m: Tensor, attn_mask: Optional[Tensor], w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
                     tau: Tensor) -> None:
    """m [B, T, S] (float32 from the fused attention, whatever q's dtype); attn_mask additive and the sr convs
    1 -> Hd -> 1 and tau in an attention dtype (fp32, bf16 or fp16: a bf16 model's mask and parameters meet the
    fp32 M; the kernel reads them in fp32 and returns the parameters' gradients in their own dtype) or m's;
    attn_mask broadcastable to [B, H, T, S]."""
    check_dtype("m", m, ATTENTION_DTYPES + (torch.float64,))
    check_ndim("m", m, 3, "[batch, queries, keys]")
    side_dtypes = tuple(dict.fromkeys(ATTENTION_DTYPES + (m.dtype,)))
    if attn_mask is not None:
        check_dtype("attn_mask", attn_mask, side_dtypes)
        check_ndim("attn_mask", attn_mask, 4, "[B|1, H|1, T, S]")
        check_broadcast("attn_mask", attn_mask, (m.shape[0], attn_mask.shape[1], *m.shape[1:]), m)
    hidden = w1.numel()
    shapes = (("sr_conv1_weight", w1, (hidden, 1, 1, 1)), ("sr_conv1_bias", b1, (hidden,)),
              ("sr_conv2_weight", w2, (1, hidden, 1, 1)), ("sr_conv2_bias", b2, (1,)), ("tau", tau, (1,)))
    for name, x, shape in shapes:
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {tuple(x.shape)}")
        check_dtype(name, x, side_dtypes)
        check_same_device(name, x, "m", m)


def _params_like_m(params: Tuple[Tensor, ...], m: Tensor) -> Tuple[Tensor, ...]:
    """The reference computes in m's dtype: parameters of another dtype are cast to it."""
    return tuple(p.to(m.dtype) for p in params)


def _fwd_reference(m, attn_mask, w1, b1, w2, b2, tau, epsilon):
    f = shared_map_ref(m, attn_mask, *_params_like_m((w1, b1, w2, b2, tau), m), epsilon)
    return f, torch.zeros_like(m), m.new_zeros((m.shape[0], STATS_SIZE), dtype=torch.float64)


def _fwd_fake(m, attn_mask, w1, b1, w2, b2, tau, epsilon):
    return torch.empty_like(m), torch.empty_like(m), m.new_empty((m.shape[0], STATS_SIZE), dtype=torch.float64)


def _bwd_reference(grad_f, m, attn_mask, w1, b1, w2, b2, tau, epsilon, r0, stats):
    params = (w1, b1, w2, b2, tau)
    inputs = (m, attn_mask, *_params_like_m(params, m), epsilon)
    grad_m, *grads = grads_by_autograd(shared_map_ref, grad_f, inputs, (0, 2, 3, 4, 5, 6))
    return (grad_m, *[g.to(p.dtype) for g, p in zip(grads, params)])


def _bwd_fake(grad_f, m, attn_mask, w1, b1, w2, b2, tau, epsilon, r0, stats):
    return tuple(torch.empty_like(x) for x in (m, w1, b1, w2, b2, tau))


def _check_fwd(m, attn_mask, w1, b1, w2, b2, tau, epsilon) -> None:
    check_stats_args(m, attn_mask, w1, b1, w2, b2, tau)


def _check_bwd(grad_f, m, attn_mask, w1, b1, w2, b2, tau, epsilon, r0, stats) -> None:
    check_stats_args(m, attn_mask, w1, b1, w2, b2, tau)
    for name, x in (("grad_f", grad_f), ("r0", r0)):
        check_same_dtype(name, x, "m", m)
        if tuple(x.shape) != tuple(m.shape):
            raise ValueError(f"{name} must have m's shape {tuple(m.shape)}, got {tuple(x.shape)}")
    check_dtype("stats", stats, (torch.float64,))
    if tuple(stats.shape) != (m.shape[0], STATS_SIZE):
        raise ValueError(f"stats must have shape [{m.shape[0]}, {STATS_SIZE}], got {tuple(stats.shape)}")


define_op("apt_stats_fwd", STATS_FWD, _fwd_reference, _fwd_fake, check=_check_fwd)
define_op("apt_stats_bwd", STATS_BWD, _bwd_reference, _bwd_fake, check=_check_bwd)
