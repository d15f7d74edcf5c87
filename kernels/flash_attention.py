"""Triton kernels of flash attention with an additive bias (semantics: apt_fast/reference/flash_attention.py),
and the flash-style core they share with APT attention's final stage (kernels/apt_attention.py).

The core is written once against a *score modifier*, as csrc/flash_attention/flash_core.h is: two @triton.jit functions
passed as constexprs,

    LOGITS(s, rows, cols, ok, mod) -> (logits, saved)  s = scale·q·kᵀ, a [BLOCK_M, BLOCK_N] fp32 tile
    GRAD(dl, saved) -> (ds, dbias)                     d logits -> d s, and the tile summed into d(bias)

where `mod` = (four [B, H, T, S] broadcast views sliced at the program's (b, h), flag A, flag B): each view
is (pointer, stride_t, stride_s), the flags are constexprs saying whether the first two views exist. rows
[BLOCK_M] and cols [BLOCK_N] are the tile's query and key indices, ok [BLOCK_M, BLOCK_N] their bounds, and
`saved` holds the intermediate tiles of LOGITS that GRAD needs (the backward recomputes LOGITS per tile).
Flash attention's modifier adds the bias (view 0) and applies the bool mask (view 1).

A view of a tensor is the tuple (tensor, stride_b, stride_h, stride_row, stride_col), with stride 0 along
broadcast dims; q, k, v, out and their gradients are views of [B, H, L, d] tensors (any strides).

Forward (FlashAttention-2): one program per (query block, b·h); keys are streamed in BLOCK_N tiles through
an online softmax (running max and sum per row); dropout multiplies P by the keep factors of the splitmix64
hash of reference/dropout_hash.py after the sum, so lse is that of the undropped logits. Causal masking is
top-left (key j visible to query i when j <= i) and skips the key tiles past the query block. A row with no
visible key gets out = 0 and lse = -inf.

Backward: P is recomputed from the saved lse, delta = rowsum(dO ⊙ O). One kernel runs a program per
(key block, b·h) over the query blocks and accumulates dK and dV; another runs a program per (query block,
b·h) over the key blocks, accumulates dQ and adds the d(bias) tiles, summed in the tile over the bias's
broadcast T and S dims, with atomics into an fp32 buffer of the bias's own shape (the atomics also sum over
its broadcast B and H dims; the order of those sums is not deterministic).

Dtypes: q, k, v, out, dO (and the bias, masks, F and M) are read in their own dtype, fp32, bf16 or fp16; every
dot (mma below) takes bf16/fp16 operands as they are (P and dS rounded to the input dtype first) and accumulates
in fp32; fp32 operands use IEEE fp32 products (not TF32), so fp32 results match the fp32 reference. The softmax,
lse, delta = rowsum(dO ⊙ O), the clamps and the statistics are fp32; out and the input gradients are stored in
the input dtype, the bias/F gradients accumulate in fp32 buffers (atomics). The host makes no fp32 copy of q, k, v,
out or dO.

The operand dtype of the dots is the constexpr DOT (launch_config): the input dtype, except under the Triton
interpreter (TRITON_INTERPRET=1), whose tl.dot multiplies bf16 operands as their uint16 storage (and whose bf16
arithmetic and bf16 atomics are likewise unusable; loads, stores and fp32 <-> bf16 conversions work). There DOT
is fp32: bf16 operands widened to fp32 are exact, and the product of two of them fits fp32's mantissa, so an fp32
dot of them is the bf16 dot with fp32 accumulation, up to the order of the sums.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import triton
import triton.language as tl

View = Tuple  # (tensor, stride_b, stride_h, stride_row, stride_col)


@triton.jit
def slice_view(view, b, h):
    """A view at batch b, head h: (pointer, stride_row, stride_col)."""
    ptr, stride_b, stride_h, stride_row, stride_col = view
    return ptr + b * stride_b + h * stride_h, stride_row, stride_col


@triton.jit
def slice_mod(views, b, h, HAS_A: tl.constexpr, HAS_B: tl.constexpr):
    """The modifier's argument at batch b, head h (see the module docstring)."""
    view_a, view_b, view_c, view_d = views
    return (slice_view(view_a, b, h), slice_view(view_b, b, h), slice_view(view_c, b, h), slice_view(view_d, b, h),
            HAS_A, HAS_B)


@triton.jit
def load_tile(sliced, rows, cols, ok, other):
    """x[rows, cols] of a sliced view, `other` outside ok [len(rows), len(cols)]."""
    ptr, stride_row, stride_col = sliced
    return tl.load(ptr + rows[:, None] * stride_row + cols[None, :] * stride_col, mask=ok, other=other)


@triton.jit
def store_tile(sliced, rows, cols, ok, value):
    ptr, stride_row, stride_col = sliced
    tl.store(ptr + rows[:, None] * stride_row + cols[None, :] * stride_col, value.to(ptr.dtype.element_ty), mask=ok)


@triton.jit
def mma(a, b, DOT: tl.constexpr):
    """a [M, K] · b [K, N] -> [M, N] fp32: operands in DOT (see the module docstring), fp32 accumulation."""
    return tl.dot(a.to(DOT), b.to(DOT), input_precision="ieee")


@triton.jit
def scores_tile(q_tile, k_tile, scale, DOT: tl.constexpr):
    """scale · q_tile [BLOCK_M, BLOCK_D] · k_tile [BLOCK_N, BLOCK_D]ᵀ -> [BLOCK_M, BLOCK_N] fp32."""
    return mma(q_tile, tl.trans(k_tile), DOT) * scale


@triton.jit
def dropout_keep(index, dropout_p, keep_scale, seed):
    """index (int64, any shape): element indices ((b·H + h)·T + t)·S + s -> 0 where dropped, keep_scale where kept.

    splitmix64(seed + (index + 1)·golden) in wrapping uint64 arithmetic; kept when its top 24 bits, scaled to
    [0, 1), are >= dropout_p.
    """
    z = seed.to(tl.int64).to(tl.uint64) + (index.to(tl.uint64) + 1) * 0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z = z ^ (z >> 31)
    u = (z >> 40).to(tl.float32) * (1.0 / 16777216.0)
    return tl.where(u >= dropout_p, keep_scale, 0.0)


@triton.jit
def _tile_logits(q_tile, k_tile, rows, cols, row_ok, col_ok, scale, mod, LOGITS: tl.constexpr, CAUSAL: tl.constexpr,
                 DOT: tl.constexpr):
    """(logits with -inf outside the bounds and above the causal diagonal, the modifier's saved tiles) of one tile."""
    ok = row_ok[:, None] & col_ok[None, :]  # [BLOCK_M, BLOCK_N]
    logits, saved = LOGITS(scores_tile(q_tile, k_tile, scale, DOT), rows, cols, ok, mod)  # [BLOCK_M, BLOCK_N], ...
    visible = ok
    if CAUSAL:
        visible = visible & (cols[None, :] <= rows[:, None])
    return tl.where(visible, logits, float("-inf")), saved


@triton.jit(do_not_specialize=["seed"])
def _attention_fwd_kernel(
    q, k, v, out,  # views: q, out [B, H, T, d]; k, v [B, H, S, d]
    lse_ptr,  # [B, H, T] fp32, contiguous
    views,  # the modifier's four [B, H, T, S] views
    H, T, S, D, scale, dropout_p, keep_scale, seed,
    LOGITS: tl.constexpr, HAS_A: tl.constexpr, HAS_B: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    mod = slice_mod(views, b, h, HAS_A, HAS_B)
    rows = start_m + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    dims = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    row_ok, dim_ok = rows < T, dims < D
    q_tile = load_tile(slice_view(q, b, h), rows, dims, row_ok[:, None] & dim_ok[None, :], 0.0)  # [BLOCK_M, BLOCK_D]
    k_bh, v_bh = slice_view(k, b, h), slice_view(v, b, h)
    drop_rows = (bh * T + rows) * S  # [BLOCK_M] int64: dropout index of (b, h, row, 0)

    row_max = tl.full([BLOCK_M], float("-inf"), tl.float32)  # [BLOCK_M]
    row_sum = tl.zeros([BLOCK_M], tl.float32)  # [BLOCK_M] sum of exp(logits - row_max)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)  # [BLOCK_M, BLOCK_D] (P Z)·V relative to row_max
    kv_end = tl.minimum(S, start_m + BLOCK_M) if CAUSAL else S
    for start_n in range(0, kv_end, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)  # [BLOCK_N]
        col_ok = cols < S
        kv_ok = col_ok[:, None] & dim_ok[None, :]  # [BLOCK_N, BLOCK_D]
        k_tile = load_tile(k_bh, cols, dims, kv_ok, 0.0)  # [BLOCK_N, BLOCK_D]
        logits, _ = _tile_logits(q_tile, k_tile, rows, cols, row_ok, col_ok, scale, mod, LOGITS, CAUSAL, DOT)
        new_max = tl.maximum(row_max, tl.max(logits, axis=1))  # [BLOCK_M]
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)  # nothing visible yet: exp gives zeros
        p = tl.exp(logits - shift[:, None])  # [BLOCK_M, BLOCK_N]
        alpha = tl.exp(row_max - shift)  # [BLOCK_M]
        row_sum = row_sum * alpha + tl.sum(p, axis=1)
        if DROPOUT:
            p = p * dropout_keep(drop_rows[:, None] + cols[None, :], dropout_p, keep_scale, seed)
        v_tile = load_tile(v_bh, cols, dims, kv_ok, 0.0)  # [BLOCK_N, BLOCK_D]
        acc = acc * alpha[:, None] + mma(p.to(v_tile.dtype), v_tile, DOT)
        row_max = new_max

    empty = row_sum == 0.0  # [BLOCK_M]
    safe_sum = tl.where(empty, 1.0, row_sum)  # [BLOCK_M]
    tl.store(lse_ptr + bh * T + rows, tl.where(empty, float("-inf"), row_max + tl.log(safe_sum)), mask=row_ok)
    out_tile = acc / safe_sum[:, None]  # [BLOCK_M, BLOCK_D]
    store_tile(slice_view(out, b, h), rows, dims, row_ok[:, None] & dim_ok[None, :], out_tile)


@triton.jit
def _bwd_tile(q_tile, k_tile, v_tile, do_tile, lse_rows, delta_rows, rows, cols, row_ok, col_ok, drop_rows, scale,
              dropout_p, keep_scale, seed, mod, LOGITS: tl.constexpr, GRAD: tl.constexpr, CAUSAL: tl.constexpr,
              DROPOUT: tl.constexpr, DOT: tl.constexpr):
    """(P·Z, dS, d(bias)) of one [BLOCK_M, BLOCK_N] tile; lse_rows has -inf replaced by 0."""
    logits, saved = _tile_logits(q_tile, k_tile, rows, cols, row_ok, col_ok, scale, mod, LOGITS, CAUSAL, DOT)
    p = tl.exp(logits - lse_rows[:, None])  # [BLOCK_M, BLOCK_N]
    dp = mma(do_tile, tl.trans(v_tile), DOT)  # [BLOCK_M, BLOCK_N] dO·Vᵀ
    kept = p
    if DROPOUT:
        z = dropout_keep(drop_rows[:, None] + cols[None, :], dropout_p, keep_scale, seed)  # [BLOCK_M, BLOCK_N]
        kept = p * z
        dp = dp * z
    ds, dbias = GRAD(p * (dp - delta_rows[:, None]), saved)
    return kept, ds, dbias


@triton.jit
def _load_rows_stats(lse_ptr, delta_ptr, bh, T, rows, row_ok):
    """lse (-inf replaced by 0, so empty rows give P = 0) and delta of the given rows: [BLOCK_M] each."""
    lse = tl.load(lse_ptr + bh * T + rows, mask=row_ok, other=0.0)
    delta = tl.load(delta_ptr + bh * T + rows, mask=row_ok, other=0.0)
    return tl.where(lse == float("-inf"), 0.0, lse), delta


@triton.jit(do_not_specialize=["seed"])
def _attention_bwd_dkdv_kernel(
    q, k, v, do, dk, dv,  # views: q, do [B, H, T, d]; k, v, dk, dv [B, H, S, d]
    lse_ptr, delta_ptr,  # [B, H, T] fp32, contiguous
    views, H, T, S, D, scale, dropout_p, keep_scale, seed,
    LOGITS: tl.constexpr, GRAD: tl.constexpr, HAS_A: tl.constexpr, HAS_B: tl.constexpr, CAUSAL: tl.constexpr,
    DROPOUT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr,
):
    start_n = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    mod = slice_mod(views, b, h, HAS_A, HAS_B)
    cols = start_n + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    dims = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    col_ok, dim_ok = cols < S, dims < D
    kv_ok = col_ok[:, None] & dim_ok[None, :]  # [BLOCK_N, BLOCK_D]
    k_tile = load_tile(slice_view(k, b, h), cols, dims, kv_ok, 0.0)  # [BLOCK_N, BLOCK_D]
    v_tile = load_tile(slice_view(v, b, h), cols, dims, kv_ok, 0.0)  # [BLOCK_N, BLOCK_D]
    q_bh, do_bh = slice_view(q, b, h), slice_view(do, b, h)

    dk_acc = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)  # [BLOCK_N, BLOCK_D] dSᵀ·Q (unscaled)
    dv_acc = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)  # [BLOCK_N, BLOCK_D] (P Z)ᵀ·dO
    first_m = (start_n // BLOCK_M) * BLOCK_M if CAUSAL else 0  # causal: earlier queries see none of these keys
    for start_m in range(first_m, T, BLOCK_M):
        rows = start_m + tl.arange(0, BLOCK_M)  # [BLOCK_M]
        row_ok = rows < T
        qo_ok = row_ok[:, None] & dim_ok[None, :]  # [BLOCK_M, BLOCK_D]
        q_tile = load_tile(q_bh, rows, dims, qo_ok, 0.0)  # [BLOCK_M, BLOCK_D]
        do_tile = load_tile(do_bh, rows, dims, qo_ok, 0.0)  # [BLOCK_M, BLOCK_D]
        lse_rows, delta_rows = _load_rows_stats(lse_ptr, delta_ptr, bh, T, rows, row_ok)
        kept, ds, _ = _bwd_tile(q_tile, k_tile, v_tile, do_tile, lse_rows, delta_rows, rows, cols, row_ok, col_ok,
                                   (bh * T + rows) * S, scale, dropout_p, keep_scale, seed, mod, LOGITS, GRAD, CAUSAL,
                                   DROPOUT, DOT)
        dv_acc += mma(tl.trans(kept).to(do_tile.dtype), do_tile, DOT)
        dk_acc += mma(tl.trans(ds).to(q_tile.dtype), q_tile, DOT)
    store_tile(slice_view(dk, b, h), cols, dims, kv_ok, dk_acc * scale)
    store_tile(slice_view(dv, b, h), cols, dims, kv_ok, dv_acc)


@triton.jit
def _add_bias_grad(sliced, tile, rows, cols, row_ok, col_ok, SUM_T: tl.constexpr, SUM_S: tl.constexpr):
    """Atomically adds a [BLOCK_M, BLOCK_N] d(bias) tile into a sliced fp32 view, first summing it over the
    dims the view broadcasts (SUM_T: stride_t == 0, SUM_S: stride_s == 0), so no two lanes share an address."""
    ptr, stride_t, stride_s = sliced
    ok = row_ok[:, None] & col_ok[None, :]  # [BLOCK_M, BLOCK_N]
    tile = tl.where(ok, tile, 0.0)
    if SUM_T and SUM_S:
        tl.atomic_add(ptr, tl.sum(tl.sum(tile, axis=1), axis=0))
    elif SUM_S:
        tl.atomic_add(ptr + rows * stride_t, tl.sum(tile, axis=1), mask=row_ok)
    elif SUM_T:
        tl.atomic_add(ptr + cols * stride_s, tl.sum(tile, axis=0), mask=col_ok)
    else:
        tl.atomic_add(ptr + rows[:, None] * stride_t + cols[None, :] * stride_s, tile, mask=ok)


@triton.jit(do_not_specialize=["seed"])
def _attention_bwd_dq_kernel(
    q, k, v, do, dq,  # views: q, do, dq [B, H, T, d]; k, v [B, H, S, d]
    dbias,  # view of the fp32 d(bias) buffer broadcast to [B, H, T, S] (unused without WANT_DBIAS)
    lse_ptr, delta_ptr,  # [B, H, T] fp32, contiguous
    views, H, T, S, D, scale, dropout_p, keep_scale, seed,
    LOGITS: tl.constexpr, GRAD: tl.constexpr, HAS_A: tl.constexpr, HAS_B: tl.constexpr, CAUSAL: tl.constexpr,
    DROPOUT: tl.constexpr, WANT_DBIAS: tl.constexpr, DBIAS_SUM_T: tl.constexpr, DBIAS_SUM_S: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    mod = slice_mod(views, b, h, HAS_A, HAS_B)
    rows = start_m + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    dims = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    row_ok, dim_ok = rows < T, dims < D
    qo_ok = row_ok[:, None] & dim_ok[None, :]  # [BLOCK_M, BLOCK_D]
    q_tile = load_tile(slice_view(q, b, h), rows, dims, qo_ok, 0.0)  # [BLOCK_M, BLOCK_D]
    do_tile = load_tile(slice_view(do, b, h), rows, dims, qo_ok, 0.0)  # [BLOCK_M, BLOCK_D]
    lse_rows, delta_rows = _load_rows_stats(lse_ptr, delta_ptr, bh, T, rows, row_ok)
    k_bh, v_bh, dbias_bh = slice_view(k, b, h), slice_view(v, b, h), slice_view(dbias, b, h)
    drop_rows = (bh * T + rows) * S  # [BLOCK_M] int64

    dq_acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)  # [BLOCK_M, BLOCK_D] dS·K (unscaled)
    kv_end = tl.minimum(S, start_m + BLOCK_M) if CAUSAL else S
    for start_n in range(0, kv_end, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)  # [BLOCK_N]
        col_ok = cols < S
        kv_ok = col_ok[:, None] & dim_ok[None, :]  # [BLOCK_N, BLOCK_D]
        k_tile = load_tile(k_bh, cols, dims, kv_ok, 0.0)  # [BLOCK_N, BLOCK_D]
        v_tile = load_tile(v_bh, cols, dims, kv_ok, 0.0)  # [BLOCK_N, BLOCK_D]
        _, ds, dbias_tile = _bwd_tile(q_tile, k_tile, v_tile, do_tile, lse_rows, delta_rows, rows, cols, row_ok,
                                      col_ok, drop_rows, scale, dropout_p, keep_scale, seed, mod, LOGITS, GRAD, CAUSAL,
                                      DROPOUT, DOT)
        dq_acc += mma(ds.to(k_tile.dtype), k_tile, DOT)
        if WANT_DBIAS:
            _add_bias_grad(dbias_bh, dbias_tile, rows, cols, row_ok, col_ok, DBIAS_SUM_T, DBIAS_SUM_S)
    store_tile(slice_view(dq, b, h), rows, dims, qo_ok, dq_acc * scale)


@triton.jit
def _attention_bwd_delta_kernel(
    out, do,  # views [B, H, T, d]
    delta_ptr,  # [B, H, T] fp32, contiguous
    H, T, D,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """delta = rowsum(dO ⊙ O) in fp32, from out and dO in their own dtype."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    dims = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    row_ok = rows < T
    ok = row_ok[:, None] & (dims < D)[None, :]  # [BLOCK_M, BLOCK_D]
    o_tile = load_tile(slice_view(out, b, h), rows, dims, ok, 0.0).to(tl.float32)  # [BLOCK_M, BLOCK_D]
    do_tile = load_tile(slice_view(do, b, h), rows, dims, ok, 0.0).to(tl.float32)  # [BLOCK_M, BLOCK_D]
    tl.store(delta_ptr + bh * T + rows, tl.sum(o_tile * do_tile, axis=1), mask=row_ok)


# ----------------------------------------------------------------------------------------------------------------
# Host side: views, block sizes and the launches of the core, then flash attention's modifier and launchers.

def head_view(x: torch.Tensor) -> View:
    """x [B, H, L, d] -> (x, its four strides)."""
    return (x, *x.stride())


def broadcast_view(x: Optional[torch.Tensor], target: Tuple[int, int, int, int], dummy: torch.Tensor) -> View:
    """x broadcastable to target [B, H, T, S] -> (x, strides of x broadcast to target, 0 along broadcast dims);
    None -> a view of `dummy` that is never read. A bool x is passed as uint8."""
    if x is None:
        return (dummy, 0, 0, 0, 0)
    expanded = x[(None,) * (4 - x.dim())].expand(target)  # a view: no copy
    return (x.view(torch.uint8) if x.dtype == torch.bool else x, *expanded.stride())


def dot_dtype(dtype: torch.dtype):
    """The operand dtype of the dots for inputs of `dtype`: itself, but fp32 for bf16 under the interpreter
    (see the module docstring)."""
    if dtype == torch.bfloat16 and triton.knobs.runtime.interpret:
        return tl.float32
    return {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}[dtype]


def launch_config(q: torch.Tensor, block_m: Optional[int], block_n: Optional[int]) -> Dict[str, object]:
    """BLOCK_M, BLOCK_N, BLOCK_D, DOT and the launch options for inputs like q [B, H, L, d]; tl.dot wants every
    block dim >= 16. fp32 (FMA dots) takes 32 x 32 tiles and 8 warps, which sm_90 compiles without large register
    spills; 16-bit inputs 64 x 64 tiles and 4 warps (bf16/fp16 tensor-core dots)."""
    wide = q.element_size() == 4
    return dict(BLOCK_M=block_m or (32 if wide else 64), BLOCK_N=block_n or (32 if wide else 64),
                BLOCK_D=max(16, triton.next_power_of_2(q.shape[-1])), DOT=dot_dtype(q.dtype),
                num_warps=8 if wide else 4, num_stages=2)


def keep_scale_of(dropout_p: float) -> float:
    """1 / (1 - p) rounded as the reference rounds it (in float32)."""
    p32 = torch.tensor(dropout_p, dtype=torch.float32)
    return (1.0 / (1.0 - p32)).item()


def attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, views: Tuple[View, View, View, View],
                  has: Tuple[bool, bool], logits, causal: bool, scale: float, dropout_p: float, seed: int,
                  block_m: Optional[int] = None, block_n: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The core's forward with modifier `logits`: (out [B, H, T, d] in q's dtype, lse [B, H, T] fp32)."""
    b, h, t, d = q.shape
    s = k.shape[2]
    config = launch_config(q, block_m, block_n)
    out = torch.empty_like(q, memory_format=torch.contiguous_format)  # [B, H, T, d]
    lse = torch.empty((b, h, t), dtype=torch.float32, device=q.device)  # [B, H, T]
    _attention_fwd_kernel[(triton.cdiv(t, config["BLOCK_M"]), b * h)](
        head_view(q), head_view(k), head_view(v), head_view(out), lse, views, h, t, s, d, scale, dropout_p,
        keep_scale_of(dropout_p), seed, LOGITS=logits, HAS_A=has[0], HAS_B=has[1], CAUSAL=causal,
        DROPOUT=dropout_p > 0.0, **config)
    return out, lse


def attention_bwd(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                  lse: torch.Tensor, views: Tuple[View, View, View, View], has: Tuple[bool, bool], logits, grad,
                  dbias: Optional[View], causal: bool, scale: float, dropout_p: float, seed: int,
                  block_m: Optional[int] = None, block_n: Optional[int] = None):
    """The core's backward with modifier (logits, grad): (dq, dk, dv) in the inputs' dtypes; the d(bias) tiles
    are added into `dbias` (a view of a zeroed fp32 buffer broadcast to [B, H, T, S]) when given."""
    b, h, t, d = q.shape
    s = k.shape[2]
    config = launch_config(q, block_m, block_n)
    lse = lse.contiguous()  # [B, H, T] fp32
    delta = torch.empty((b, h, t), dtype=torch.float32, device=q.device)  # [B, H, T] rowsum(dO ⊙ O)
    _attention_bwd_delta_kernel[(triton.cdiv(t, config["BLOCK_M"]), b * h)](
        head_view(out), head_view(grad_out), delta, h, t, d, BLOCK_M=config["BLOCK_M"], BLOCK_D=config["BLOCK_D"])
    dq = torch.empty_like(q, memory_format=torch.contiguous_format)  # [B, H, T, d]
    dk = torch.empty_like(k, memory_format=torch.contiguous_format)  # [B, H, S, d]
    dv = torch.empty_like(v, memory_format=torch.contiguous_format)  # [B, H, S, d]
    common = dict(LOGITS=logits, GRAD=grad, HAS_A=has[0], HAS_B=has[1], CAUSAL=causal, DROPOUT=dropout_p > 0.0,
                  **config)
    scalars = (views, h, t, s, d, scale, dropout_p, keep_scale_of(dropout_p), seed)
    _attention_bwd_dkdv_kernel[(triton.cdiv(s, config["BLOCK_N"]), b * h)](
        head_view(q), head_view(k), head_view(v), head_view(grad_out), head_view(dk), head_view(dv), lse, delta,
        *scalars, **common)
    dbias_view = dbias if dbias is not None else (delta, 0, 0, 0, 0)
    _attention_bwd_dq_kernel[(triton.cdiv(t, config["BLOCK_M"]), b * h)](
        head_view(q), head_view(k), head_view(v), head_view(grad_out), head_view(dq), dbias_view, lse, delta,
        *scalars, WANT_DBIAS=dbias is not None, DBIAS_SUM_T=dbias_view[3] == 0, DBIAS_SUM_S=dbias_view[4] == 0,
        **common)
    return dq, dk, dv


@triton.jit
def bias_mask_logits(s, rows, cols, ok, mod):
    """Flash attention's modifier: s + bias (view 0, if flag A), -inf where the bool mask (view 1, if flag B) is 0;
    its gradient needs nothing saved (s stands in)."""
    bias, mask, _, _, HAS_BIAS, HAS_MASK = mod
    logits = s
    if HAS_BIAS:
        logits = logits + load_tile(bias, rows, cols, ok, 0.0).to(tl.float32)
    if HAS_MASK:
        logits = tl.where(load_tile(mask, rows, cols, ok, 0) != 0, logits, float("-inf"))
    return logits, s


@triton.jit
def bias_grad(dl, saved):
    """d s = d(bias) = d logits (masked entries have P = 0, hence d logits = 0)."""
    return dl, dl


def flash_attention_fwd_triton(
    q: torch.Tensor,  # [B, H, T, d] fp32|bf16|fp16
    k: torch.Tensor,  # [B, H, S, d]
    v: torch.Tensor,  # [B, H, S, d]
    bias: Optional[torch.Tensor],  # q's dtype or fp32 (read in fp32), broadcastable to [B, H, T, S]
    mask: Optional[torch.Tensor],  # bool, broadcastable to [B, H, T, S]; True = attend
    causal: bool,
    scale: float,
    dropout_p: float,
    seed: int,
    block_m: Optional[int] = None,
    block_n: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:  # out [B, H, T, d] q's dtype, lse [B, H, T] fp32
    """Arguments are validated by the caller; block_m / block_n (powers of two >= 16) override the tile sizes."""
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    views = (broadcast_view(bias, target, q), broadcast_view(mask, target, q), (q, 0, 0, 0, 0), (q, 0, 0, 0, 0))
    return attention_fwd(q, k, v, views, (bias is not None, mask is not None), bias_mask_logits, causal, scale,
                         dropout_p, seed, block_m, block_n)


def flash_attention_bwd_triton(
    grad_out: torch.Tensor,  # [B, H, T, d]
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: Optional[torch.Tensor],
    mask: Optional[torch.Tensor],
    out: torch.Tensor,  # [B, H, T, d] the forward's output
    lse: torch.Tensor,  # [B, H, T] fp32 the forward's lse
    causal: bool,
    scale: float,
    dropout_p: float,
    seed: int,
    bias_grad_wanted: bool,
    block_m: Optional[int] = None,
    block_n: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv, d(bias) in the bias's shape and dtype, or an empty tensor without a bias or when not wanted)."""
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    views = (broadcast_view(bias, target, q), broadcast_view(mask, target, q), (q, 0, 0, 0, 0), (q, 0, 0, 0, 0))
    want = bias is not None and bias_grad_wanted
    dbias = torch.zeros(bias.shape, dtype=torch.float32, device=q.device) if want else None  # bias's shape
    dq, dk, dv = attention_bwd(grad_out, q, k, v, out, lse, views, (bias is not None, mask is not None),
                               bias_mask_logits, bias_grad, broadcast_view(dbias, target, q) if want else None,
                               causal, scale, dropout_p, seed, block_m, block_n)
    return dq, dk, dv, dbias.to(bias.dtype) if want else q.new_empty(0)
