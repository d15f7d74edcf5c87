"""Triton kernels of APT attention's two fused [B, H, T, S] stages (semantics:
apt_fast/reference/apt_attention_ops.py; APT_SPEC.md §2.5):

* head mean: M = mean_h A_h, A_h = clamp(nan_to_num(s_h, nan=0, posinf=10, neginf=-10), ±15) (T1), with
  s_h = (d^-1/2 q_h)·k_hᵀ, -inf at padded keys, + the additive attn_mask (spec §2.1). Forward: one program
  per (query block, key block, b) summing the heads' tiles. Backward: dS_h = dM / H where T1's clamp passes the
  gradient; one kernel accumulates dQ per (query block, b·h) over the key blocks, another dK per (key block,
  b·h) over the query blocks.
* final attention: softmax over the logits clamp(nan_to_num(clamp(F + 0.2 (A_h - M), ±15) + attn_mask), ±30)
  (T17-T19), dropout, times V. It is kernels/flash_attention.py's core with the modifier below, which
  computes the logits from each tile of raw scores with the clamps applied on the fly; its backward's bias
  gradient is dF (view 2 is F broadcast over heads, so the core's atomics sum dF over heads).

The modifier's views: 0 the attn_mask [B|1, H|1, T, S], 1 the key padding mask [B, S] as [B, 1, 1, S] (uint8),
2 F and 3 M [B, T, S] as [B, 1, T, S]; its flags say whether the attn_mask and the key padding mask exist.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .flash_attention import (
    attention_bwd,
    attention_fwd,
    broadcast_view,
    head_view,
    launch_config,
    load_tile,
    mma,
    scores_tile,
    slice_mod,
    slice_view,
    store_tile,
)

CLAMP_SCORES = tl.constexpr(15.0)  # T1 and T17
CLAMP_LOGITS = tl.constexpr(30.0)  # T19
HEAD_WEIGHT = tl.constexpr(0.2)  # T17: weight of each head's deviation from the mean


@triton.jit
def sanitize(x):
    """T1: clamp(nan_to_num(x, nan=0, posinf=10, neginf=-10), ±15)."""
    x = tl.where(x != x, 0.0, x)
    x = tl.where(x == float("inf"), 10.0, tl.where(x == float("-inf"), -10.0, x))
    return tl.minimum(tl.maximum(x, -CLAMP_SCORES), CLAMP_SCORES)


@triton.jit
def pass_within(g, x, lo, hi):
    """g where lo <= x <= hi (torch's clamp passes the gradient at both bounds), 0 elsewhere and at NaN."""
    return tl.where((x >= lo) & (x <= hi), g, 0.0)


@triton.jit
def masked_scores(s, rows, cols, ok, mod):
    """(x = s with -inf at padded keys, + attn_mask; the attn_mask tile, 0 without one) of a [BLOCK_M, BLOCK_N] tile."""
    attn_mask, key_pad, _, _, HAS_MASK, HAS_PAD = mod
    if HAS_PAD:
        s = tl.where(load_tile(key_pad, rows, cols, ok, 0) != 0, float("-inf"), s)
    added = tl.zeros_like(s)
    if HAS_MASK:
        added = load_tile(attn_mask, rows, cols, ok, 0.0).to(tl.float32)
    return s + added, added


@triton.jit
def _t17_input(x, rows, cols, ok, mod):
    """F + 0.2 (A_h - M): the input of T17's clamp."""
    _, _, f, m, _, _ = mod
    f_tile = load_tile(f, rows, cols, ok, 0.0).to(tl.float32)  # [BLOCK_M, BLOCK_N]
    m_tile = load_tile(m, rows, cols, ok, 0.0).to(tl.float32)  # [BLOCK_M, BLOCK_N]
    return f_tile + HEAD_WEIGHT * (sanitize(x) - m_tile)


@triton.jit
def apt_logits(s, rows, cols, ok, mod):
    """T17-T19 from a tile of raw scores s; saved for apt_grad: x, T17's clamp input and T19's nan_to_num input."""
    x, added = masked_scores(s, rows, cols, ok, mod)
    o_in = _t17_input(x, rows, cols, ok, mod)
    o = tl.minimum(tl.maximum(o_in, -CLAMP_SCORES), CLAMP_SCORES) + added
    return tl.minimum(tl.maximum(tl.where(o != o, 0.0, o), -CLAMP_LOGITS), CLAMP_LOGITS), (x, o_in, o)


@triton.jit
def apt_grad(dl, saved):
    """d logits -> (d s, dF): back through T19's clamp and nan_to_num, T17's clamp, and T1's for d s."""
    x, o_in, o = saved
    df = pass_within(pass_within(dl, o, -CLAMP_LOGITS, CLAMP_LOGITS), o_in, -CLAMP_SCORES, CLAMP_SCORES)
    return pass_within(HEAD_WEIGHT * df, x, -CLAMP_SCORES, CLAMP_SCORES), df


@triton.jit
def _apt_head_mean_fwd_kernel(
    q, k,  # views [B, H, T, d], [B, H, S, d]
    mean,  # view of the [B, T, S] output as [B, 1, T, S]
    views, H, T, S, D, scale,
    HAS_MASK: tl.constexpr, HAS_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    b = tl.program_id(2).to(tl.int64)
    dims = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    row_ok, col_ok, dim_ok = rows < T, cols < S, dims < D
    ok = row_ok[:, None] & col_ok[None, :]  # [BLOCK_M, BLOCK_N]
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)  # [BLOCK_M, BLOCK_N] sum over heads of A_h
    q_ok, k_ok = row_ok[:, None] & dim_ok[None, :], col_ok[:, None] & dim_ok[None, :]  # [BLOCK_M|N, BLOCK_D]
    for h in range(0, H):
        q_tile = load_tile(slice_view(q, b, h), rows, dims, q_ok, 0.0)  # [BLOCK_M, BLOCK_D]
        k_tile = load_tile(slice_view(k, b, h), cols, dims, k_ok, 0.0)  # [BLOCK_N, BLOCK_D]
        x, _ = masked_scores(scores_tile(q_tile, k_tile, scale, DOT), rows, cols, ok,
                             slice_mod(views, b, h, HAS_MASK, HAS_PAD))
        acc += sanitize(x)
    store_tile(slice_view(mean, b, 0), rows, cols, ok, acc / H)


@triton.jit
def _head_mean_ds(q_tile, k_tile, rows, cols, ok, grad_mean, inv_heads, scale, mod, DOT: tl.constexpr):
    """d s_h of one [BLOCK_M, BLOCK_N] tile: dM / H where T1's clamp passes the gradient."""
    x, _ = masked_scores(scores_tile(q_tile, k_tile, scale, DOT), rows, cols, ok, mod)
    return pass_within(load_tile(grad_mean, rows, cols, ok, 0.0).to(tl.float32) * inv_heads, x, -CLAMP_SCORES,
                       CLAMP_SCORES)


@triton.jit
def _apt_head_mean_bwd_dq_kernel(
    grad_mean,  # view of dM [B, T, S] as [B, 1, T, S]
    q, k, dq,  # views [B, H, T, d], [B, H, S, d], [B, H, T, d]
    views, H, T, S, D, scale,
    HAS_MASK: tl.constexpr, HAS_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    mod = slice_mod(views, b, h, HAS_MASK, HAS_PAD)
    dims = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    row_ok, dim_ok = rows < T, dims < D
    q_ok = row_ok[:, None] & dim_ok[None, :]  # [BLOCK_M, BLOCK_D]
    q_tile = load_tile(slice_view(q, b, h), rows, dims, q_ok, 0.0)  # [BLOCK_M, BLOCK_D]
    k_bh, grad_b = slice_view(k, b, h), slice_view(grad_mean, b, h)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)  # [BLOCK_M, BLOCK_D] dS·K (unscaled)
    for start_n in range(0, S, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)  # [BLOCK_N]
        col_ok = cols < S
        k_tile = load_tile(k_bh, cols, dims, col_ok[:, None] & dim_ok[None, :], 0.0)  # [BLOCK_N, BLOCK_D]
        ds = _head_mean_ds(q_tile, k_tile, rows, cols, row_ok[:, None] & col_ok[None, :], grad_b, 1.0 / H, scale, mod,
                           DOT)
        acc += mma(ds.to(k_tile.dtype), k_tile, DOT)
    store_tile(slice_view(dq, b, h), rows, dims, q_ok, acc * scale)


@triton.jit
def _apt_head_mean_bwd_dk_kernel(
    grad_mean,  # view of dM [B, T, S] as [B, 1, T, S]
    q, k, dk,  # views [B, H, T, d], [B, H, S, d], [B, H, S, d]
    views, H, T, S, D, scale,
    HAS_MASK: tl.constexpr, HAS_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr,
):
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    mod = slice_mod(views, b, h, HAS_MASK, HAS_PAD)
    dims = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    col_ok, dim_ok = cols < S, dims < D
    k_ok = col_ok[:, None] & dim_ok[None, :]  # [BLOCK_N, BLOCK_D]
    k_tile = load_tile(slice_view(k, b, h), cols, dims, k_ok, 0.0)  # [BLOCK_N, BLOCK_D]
    q_bh, grad_b = slice_view(q, b, h), slice_view(grad_mean, b, h)
    acc = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)  # [BLOCK_N, BLOCK_D] dSᵀ·Q (unscaled)
    for start_m in range(0, T, BLOCK_M):
        rows = start_m + tl.arange(0, BLOCK_M)  # [BLOCK_M]
        row_ok = rows < T
        q_tile = load_tile(q_bh, rows, dims, row_ok[:, None] & dim_ok[None, :], 0.0)  # [BLOCK_M, BLOCK_D]
        ds = _head_mean_ds(q_tile, k_tile, rows, cols, row_ok[:, None] & col_ok[None, :], grad_b, 1.0 / H, scale, mod,
                           DOT)
        acc += mma(tl.trans(ds).to(q_tile.dtype), q_tile, DOT)
    store_tile(slice_view(dk, b, h), cols, dims, k_ok, acc * scale)


def _map_view(x: Optional[torch.Tensor], q: torch.Tensor, k: torch.Tensor):
    """A [B, T, S] tensor as a view of [B, 1, T, S] broadcast over heads (None: a view never read)."""
    return broadcast_view(x[:, None] if x is not None else None, (q.shape[0], q.shape[1], q.shape[2], k.shape[2]), q)


def _views(q: torch.Tensor, k: torch.Tensor, attn_mask: Optional[torch.Tensor],
           key_padding_mask: Optional[torch.Tensor], f: Optional[torch.Tensor] = None,
           m: Optional[torch.Tensor] = None):
    """(the modifier's four views, its two flags); see the module docstring."""
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    key_pad = key_padding_mask[:, None, None, :] if key_padding_mask is not None else None  # [B, 1, 1, S]
    views = (broadcast_view(attn_mask, target, q), broadcast_view(key_pad, target, q), _map_view(f, q, k),
             _map_view(m, q, k))
    return views, (attn_mask is not None, key_padding_mask is not None)


def apt_head_mean_fwd_triton(
    q: torch.Tensor,  # [B, H, T, d] fp32|bf16|fp16
    k: torch.Tensor,  # [B, H, S, d]
    attn_mask: Optional[torch.Tensor],  # additive, q's dtype, broadcastable to [B, H, T, S]
    key_padding_mask: Optional[torch.Tensor],  # [B, S] bool, True = padded
    block_m: Optional[int] = None,
    block_n: Optional[int] = None,
) -> torch.Tensor:  # M [B, T, S] float32 (the statistics stay fp32)
    """Arguments are validated by the caller; block_m / block_n (powers of two >= 16) override the tile sizes."""
    b, h, t, d = q.shape
    s = k.shape[2]
    config = launch_config(q, block_m, block_n)
    mean = torch.empty((b, t, s), dtype=torch.float32, device=q.device)  # [B, T, S]
    views, (has_mask, has_pad) = _views(q, k, attn_mask, key_padding_mask)
    _apt_head_mean_fwd_kernel[(triton.cdiv(t, config["BLOCK_M"]), triton.cdiv(s, config["BLOCK_N"]), b)](
        head_view(q), head_view(k), _map_view(mean, q, k), views, h, t, s, d, d ** -0.5,
        HAS_MASK=has_mask, HAS_PAD=has_pad, **config)
    return mean


def apt_head_mean_bwd_triton(
    grad_mean: torch.Tensor,  # [B, T, S] float32
    q: torch.Tensor,
    k: torch.Tensor,
    attn_mask: Optional[torch.Tensor],
    key_padding_mask: Optional[torch.Tensor],
    block_m: Optional[int] = None,
    block_n: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:  # dq [B, H, T, d], dk [B, H, S, d] in the inputs' dtypes
    b, h, t, d = q.shape
    s = k.shape[2]
    config = launch_config(q, block_m, block_n)
    dq = torch.empty_like(q, memory_format=torch.contiguous_format)  # [B, H, T, d]
    dk = torch.empty_like(k, memory_format=torch.contiguous_format)  # [B, H, S, d]
    views, (has_mask, has_pad) = _views(q, k, attn_mask, key_padding_mask)
    args = (_map_view(grad_mean, q, k), head_view(q), head_view(k))
    tail = (views, h, t, s, d, d ** -0.5)
    common = dict(HAS_MASK=has_mask, HAS_PAD=has_pad, **config)
    _apt_head_mean_bwd_dq_kernel[(triton.cdiv(t, config["BLOCK_M"]), b * h)](*args, head_view(dq), *tail, **common)
    _apt_head_mean_bwd_dk_kernel[(triton.cdiv(s, config["BLOCK_N"]), b * h)](*args, head_view(dk), *tail, **common)
    return dq, dk


def apt_attention_fwd_triton(
    q: torch.Tensor,  # [B, H, T, d] fp32|bf16|fp16
    k: torch.Tensor,  # [B, H, S, d]
    v: torch.Tensor,  # [B, H, S, d]
    f: torch.Tensor,  # [B, T, S] the shared bias F (T16), float32
    m: torch.Tensor,  # [B, T, S] the head mean M (T2), float32
    attn_mask: Optional[torch.Tensor],  # additive, q's dtype, broadcastable to [B, H, T, S]
    key_padding_mask: Optional[torch.Tensor],  # [B, S] bool, True = padded
    dropout_p: float,
    seed: int,
    block_m: Optional[int] = None,
    block_n: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:  # out [B, H, T, d] q's dtype, lse [B, H, T] fp32
    views, has = _views(q, k, attn_mask, key_padding_mask, f, m)
    return attention_fwd(q, k, v, views, has, apt_logits, False, q.shape[-1] ** -0.5, dropout_p, seed, block_m,
                         block_n)


def apt_attention_bwd_triton(
    grad_out: torch.Tensor,  # [B, H, T, d]
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    f: torch.Tensor,
    m: torch.Tensor,
    attn_mask: Optional[torch.Tensor],
    key_padding_mask: Optional[torch.Tensor],
    out: torch.Tensor,  # [B, H, T, d] the forward's output
    lse: torch.Tensor,  # [B, H, T] fp32 the forward's lse
    dropout_p: float,
    seed: int,
    block_m: Optional[int] = None,
    block_n: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # dq, dk, dv, df [B, T, S] in f's dtype
    views, has = _views(q, k, attn_mask, key_padding_mask, f, m)
    df = torch.zeros(f.shape, dtype=torch.float32, device=q.device)  # [B, T, S] summed over heads by atomics
    dq, dk, dv = attention_bwd(grad_out, q, k, v, out, lse, views, has, apt_logits, apt_grad, _map_view(df, q, k),
                               False, q.shape[-1] ** -0.5, dropout_p, seed, block_m, block_n)
    return dq, dk, dv, df.to(f.dtype)
