"""Triton kernel of the fused distillation loss (semantics: apt_fast/reference/distill_loss.py).

One program per row; the row is read in BLOCK_V chunks, in two to three sweeps, recomputing the
exponentials instead of keeping scratch rows:
  1. online maxima and sums of exp for the tempered student, the teacher and (with cross-entropy) the
     untempered student -> their log-sum-exps;
  2. the divergence, and for forward KL the gradient directly;
  3. (reverse KL and JSD, when the gradient is wanted) the gradient, which needs the row's divergence
     (reverse KL) or its p_s-weighted mean of d divergence / d p_s (JSD) from sweep 2.
Log-probabilities are formed as (x - max) / T - log(sum), never as a difference of log-sum-exps, so
logits of large magnitude lose no precision. Terms whose probability is 0 contribute 0; a row whose
target is ignore_index, or whose student or teacher logits are all -inf, gets loss 0 and gradient 0.
Everything is accumulated in float32; the gradient is stored in the student dtype, already scaled
by grad_scale.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

FORWARD_KL = tl.constexpr(0)
REVERSE_KL = tl.constexpr(1)
JSD = tl.constexpr(2)
_DIVERGENCE_CODES = {"forward_kl": FORWARD_KL.value, "reverse_kl": REVERSE_KL.value, "jsd": JSD.value}
MAX_BLOCK_V = 4096


@triton.jit
def _zero_grad_row(grad_row, V, BLOCK_V: tl.constexpr):
    cols = tl.arange(0, BLOCK_V)  # [BLOCK_V]
    zeros = tl.zeros([BLOCK_V], dtype=grad_row.dtype.element_ty)  # [BLOCK_V]
    for start in range(0, V, BLOCK_V):
        offs = start + cols  # [BLOCK_V]
        tl.store(grad_row + offs, zeros, mask=offs < V)


@triton.jit
def _load_log_probs(student_row, teacher_row, offs, mask, max_s, max_t, inv_temperature, log_sum_s, log_sum_t):
    """Untempered student logits and tempered log-softmaxes of one chunk, -inf in masked lanes."""
    xs = tl.load(student_row + offs, mask=mask, other=float("-inf")).to(tl.float32)  # [BLOCK_V]
    xt = tl.load(teacher_row + offs, mask=mask, other=float("-inf")).to(tl.float32)  # [BLOCK_V]
    log_ps = (xs - max_s) * inv_temperature - log_sum_s  # [BLOCK_V]
    log_pt = (xt - max_t) * inv_temperature - log_sum_t  # [BLOCK_V]
    return xs, log_ps, log_pt


@triton.jit
def _jsd_terms(log_ps, log_pt, jsd_beta, log_beta, log_one_minus_beta):
    """log m = logaddexp(log beta + log p_t, log(1 - beta) + log p_s) and d JSD / d p_s = (1 - beta)(log p_s - log m).

    Where both probabilities are 0 this is NaN; callers discard it there.
    """
    a = log_pt + log_beta  # [BLOCK_V]
    b = log_ps + log_one_minus_beta  # [BLOCK_V]
    hi = tl.maximum(a, b)  # [BLOCK_V]
    log_m = hi + tl.log(1.0 + tl.exp(tl.minimum(a, b) - hi))  # [BLOCK_V]
    return log_m, (1.0 - jsd_beta) * (log_ps - log_m)


@triton.jit
def _ce_grad(xs, max_s, log_sum_1, offs, target, grad_ce_coef):
    """Gradient of grad_scale * ce_weight * CE(s, target) for one chunk: coef (softmax(s) - onehot(target))."""
    p1 = tl.exp(xs - max_s - log_sum_1)  # [BLOCK_V]
    return grad_ce_coef * (p1 - tl.where(offs == target, 1.0, 0.0))


@triton.jit
def _distill_loss_fwd_kernel(
    student_ptr,  # [N, V] fp32|bf16|fp16, unit stride along V
    teacher_ptr,  # [N, V] same dtype
    target_ptr,  # [N] int64 (unused without HAS_TARGET)
    loss_ptr,  # [N] fp32
    grad_ptr,  # [N, V] student dtype (unused without COMPUTE_GRAD)
    student_row_stride,
    teacher_row_stride,
    grad_row_stride,
    V,
    ignore_index,
    inv_temperature,  # 1 / T
    divergence_weight,  # alpha * T^2: weight of the divergence in the loss
    ce_weight,
    grad_divergence_coef,  # alpha * T * grad_scale: d loss / d (s / T) -> d (grad_scale * loss) / d s
    grad_ce_coef,  # ce_weight * grad_scale
    jsd_beta,
    log_beta,  # log(jsd_beta)
    log_one_minus_beta,  # log(1 - jsd_beta)
    DIVERGENCE: tl.constexpr,  # FORWARD_KL | REVERSE_KL | JSD
    HAS_TARGET: tl.constexpr,
    WITH_CE: tl.constexpr,  # ce_weight != 0 (implies HAS_TARGET)
    COMPUTE_GRAD: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    student_row = student_ptr + row * student_row_stride
    teacher_row = teacher_ptr + row * teacher_row_stride
    grad_row = grad_ptr + row * grad_row_stride
    cols = tl.arange(0, BLOCK_V)  # [BLOCK_V]

    if HAS_TARGET:
        target = tl.load(target_ptr + row)
        if target == ignore_index:
            tl.store(loss_ptr + row, 0.0)
            if COMPUTE_GRAD:
                _zero_grad_row(grad_row, V, BLOCK_V)
            return

    # Sweep 1: online maxima of the raw logits and sums of exp relative to them. A running max of -inf
    # (nothing finite seen yet) is replaced by 0 as the shift, so that no -inf - -inf appears.
    max_s = float("-inf")
    max_t = float("-inf")
    sum_s = 0.0  # sum exp((s - max_s) / T)
    sum_t = 0.0  # sum exp((t - max_t) / T)
    sum_1 = 0.0  # sum exp(s - max_s), the untempered student for cross-entropy
    for start in range(0, V, BLOCK_V):
        offs = start + cols  # [BLOCK_V]
        mask = offs < V  # [BLOCK_V]
        xs = tl.load(student_row + offs, mask=mask, other=float("-inf")).to(tl.float32)  # [BLOCK_V]
        xt = tl.load(teacher_row + offs, mask=mask, other=float("-inf")).to(tl.float32)  # [BLOCK_V]
        new_max_s = tl.maximum(max_s, tl.max(xs, axis=0))
        new_max_t = tl.maximum(max_t, tl.max(xt, axis=0))
        shift_s = tl.where(new_max_s == float("-inf"), 0.0, new_max_s)
        shift_t = tl.where(new_max_t == float("-inf"), 0.0, new_max_t)
        sum_s = sum_s * tl.exp((max_s - shift_s) * inv_temperature) + tl.sum(
            tl.exp((xs - shift_s) * inv_temperature), axis=0)
        sum_t = sum_t * tl.exp((max_t - shift_t) * inv_temperature) + tl.sum(
            tl.exp((xt - shift_t) * inv_temperature), axis=0)
        if WITH_CE:
            sum_1 = sum_1 * tl.exp(max_s - shift_s) + tl.sum(tl.exp(xs - shift_s), axis=0)
        max_s = new_max_s
        max_t = new_max_t

    if (max_s == float("-inf")) | (max_t == float("-inf")):  # a fully masked row contributes nothing
        tl.store(loss_ptr + row, 0.0)
        if COMPUTE_GRAD:
            _zero_grad_row(grad_row, V, BLOCK_V)
        return

    log_sum_s = tl.log(sum_s)
    log_sum_t = tl.log(sum_t)
    if WITH_CE:
        log_sum_1 = tl.log(sum_1)

    # Sweep 2: the divergence; forward KL also writes the gradient. acc and weighted are per-lane
    # partial sums, reduced once after the sweep.
    acc = tl.zeros([BLOCK_V], dtype=tl.float32)  # [BLOCK_V] terms of the divergence
    weighted = tl.zeros([BLOCK_V], dtype=tl.float32)  # [BLOCK_V] JSD: p_s * d divergence / d p_s
    for start in range(0, V, BLOCK_V):
        offs = start + cols  # [BLOCK_V]
        mask = offs < V  # [BLOCK_V]
        xs, log_ps, log_pt = _load_log_probs(student_row, teacher_row, offs, mask, max_s, max_t, inv_temperature,
                                             log_sum_s, log_sum_t)  # [BLOCK_V] each
        ps = tl.exp(log_ps)  # [BLOCK_V]
        pt = tl.exp(log_pt)  # [BLOCK_V]
        if DIVERGENCE == FORWARD_KL:  # sum p_t (log p_t - log p_s); d / d(s/T) = p_s - p_t
            acc += tl.where(pt > 0.0, pt * (log_pt - log_ps), 0.0)
            if COMPUTE_GRAD:
                grad = grad_divergence_coef * (ps - pt)  # [BLOCK_V]
                if WITH_CE:
                    grad += _ce_grad(xs, max_s, log_sum_1, offs, target, grad_ce_coef)
                tl.store(grad_row + offs, grad.to(grad_row.dtype.element_ty), mask=mask)
        elif DIVERGENCE == REVERSE_KL:  # sum p_s (log p_s - log p_t)
            acc += tl.where(ps > 0.0, ps * (log_ps - log_pt), 0.0)
        else:  # JSD: beta KL(p_t || m) + (1 - beta) KL(p_s || m), m = beta p_t + (1 - beta) p_s
            log_m, g = _jsd_terms(log_ps, log_pt, jsd_beta, log_beta, log_one_minus_beta)  # [BLOCK_V] each
            ps_g = tl.where(ps > 0.0, ps * g, 0.0)  # [BLOCK_V]
            acc += tl.where(pt > 0.0, jsd_beta * pt * (log_pt - log_m), 0.0) + ps_g
            weighted += ps_g
    divergence = tl.sum(acc, axis=0)

    # Sweep 3 (reverse KL, JSD): d / d(s/T) = p_s (g - sum_k p_s,k g_k), g = d divergence / d p_s, which
    # is log p_s - log p_t (+ 1, cancelling) for reverse KL, whose p_s-weighted mean is the divergence.
    if COMPUTE_GRAD and DIVERGENCE != FORWARD_KL:
        if DIVERGENCE == REVERSE_KL:
            mean_g = divergence
        else:
            mean_g = tl.sum(weighted, axis=0)
        for start in range(0, V, BLOCK_V):
            offs = start + cols  # [BLOCK_V]
            mask = offs < V  # [BLOCK_V]
            xs, log_ps, log_pt = _load_log_probs(student_row, teacher_row, offs, mask, max_s, max_t,
                                                 inv_temperature, log_sum_s, log_sum_t)  # [BLOCK_V] each
            ps = tl.exp(log_ps)  # [BLOCK_V]
            if DIVERGENCE == REVERSE_KL:
                g = log_ps - log_pt  # [BLOCK_V]
            else:
                _, g = _jsd_terms(log_ps, log_pt, jsd_beta, log_beta, log_one_minus_beta)  # [BLOCK_V]
            grad = grad_divergence_coef * tl.where(ps > 0.0, ps * (g - mean_g), 0.0)  # [BLOCK_V]
            if WITH_CE:
                grad += _ce_grad(xs, max_s, log_sum_1, offs, target, grad_ce_coef)
            tl.store(grad_row + offs, grad.to(grad_row.dtype.element_ty), mask=mask)

    loss = divergence_weight * divergence
    if WITH_CE:  # cross-entropy of the untempered student: log-sum-exp(s) - s[target]
        x_target = tl.load(student_row + target).to(tl.float32)
        loss += ce_weight * ((max_s - x_target) + log_sum_1)
    tl.store(loss_ptr + row, loss)


def distill_loss_fwd_triton(
    student_logits: torch.Tensor,  # [N, V] fp32|bf16|fp16, unit stride along V
    teacher_logits: torch.Tensor,  # [N, V] same dtype, unit stride along V
    target: Optional[torch.Tensor],  # [N] int64 or None
    temperature: float,
    divergence: str,
    jsd_beta: float,
    alpha: float,
    ce_weight: float,
    ignore_index: int,
    grad_scale: float,
    compute_grad: bool,
    block_v: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (loss [N] fp32, grad [N, V] in the student dtype, or an empty tensor when not computed).

    Arguments are validated by the caller. block_v (a power of two) overrides the chunk size along V.
    """
    rows, vocab = student_logits.shape
    if block_v is None:
        block_v = min(triton.next_power_of_2(vocab), MAX_BLOCK_V)
    with_ce = ce_weight != 0.0
    # log(beta) and log(1 - beta) are only read for JSD, where beta is in (0, 1).
    beta = jsd_beta if divergence == "jsd" else 0.5
    loss = torch.empty(rows, dtype=torch.float32, device=student_logits.device)  # [N]
    if compute_grad:
        grad = torch.empty((rows, vocab), dtype=student_logits.dtype, device=student_logits.device)  # [N, V]
    else:
        grad = student_logits.new_empty(0)  # [0]
    _distill_loss_fwd_kernel[(rows,)](
        student_logits, teacher_logits, target if target is not None else loss, loss,
        grad if compute_grad else loss,
        student_logits.stride(0), teacher_logits.stride(0), grad.stride(0) if compute_grad else 0,
        vocab, ignore_index,
        1.0 / temperature, alpha * temperature * temperature, ce_weight,
        alpha * temperature * grad_scale, ce_weight * grad_scale,
        beta, math.log(beta), math.log1p(-beta),
        DIVERGENCE=_DIVERGENCE_CODES[divergence], HAS_TARGET=target is not None, WITH_CE=with_ce,
        COMPUTE_GRAD=compute_grad, BLOCK_V=block_v, num_warps=8 if block_v >= 2048 else 4,
    )
    return loss, grad
