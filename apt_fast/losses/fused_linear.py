"""Distillation loss of lm_head(hidden) that never holds the [N, V] logits: the vocabulary is processed
in blocks of `block_vocab` columns, so the lm_head weight is streamed a fixed number of times and each
weight-gradient block is written once (one GEMM with K = N), instead of being re-read for every small
chunk of rows.

Passes over the vocabulary (each recomputes the block logits with one GEMM per side):
  1. row statistics: log-sum-exp of student/T, teacher/T (and of the untempered student for the CE term);
  2. only for reverse KL and JSD: the per-row constant their gradient needs (D, or sum_j p_s g_j);
  3. the loss terms, the logits-gradient block, and from it grad_weight[block] and grad_hidden (+=).

The elementwise math per block follows apt_fast/reference/distill_loss.py; with z = logits / T:
  forward KL  dD/dz = p_s - p_t
  reverse KL  dD/dz = p_s (log p_s - log p_t - D)
  JSD         dD/dz = p_s (g - sum_k p_s,k g_k),  g = (1 - beta)(log p_s - log m)
and d loss / d logits = alpha T dD/dz + beta_ce (softmax(logits) - one_hot(target)), times the reduction scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..reference.distill_loss import divergence_ref
from .config import DistillLossConfig

# Elements per block of logits: 2^20 fp32 values = 4 MiB per [N, block] temporary.
BLOCK_ELEMENTS = 1 << 20

BlockFn = Callable[[int, int], torch.Tensor]  # (v0, v1) -> [N, v1 - v0] logits


def default_block_vocab(rows: int) -> int:
    return max(64, BLOCK_ELEMENTS // max(rows, 1))


def linear_block(hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> BlockFn:
    def block(v0: int, v1: int) -> torch.Tensor:
        logits = hidden @ weight[v0:v1].t()  # [N, b]
        return logits + bias[v0:v1] if bias is not None else logits

    return block


@dataclass
class RowStats:
    lse_student: torch.Tensor  # [N] log-sum-exp of student / T
    lse_teacher: torch.Tensor  # [N] log-sum-exp of teacher / T
    lse_untempered: Optional[torch.Tensor]  # [N] log-sum-exp of the student logits, for the CE term
    row_constant: Optional[torch.Tensor] = None  # [N] D (reverse KL) or sum_j p_s g_j (JSD)


def _blocks(vocab: int, block_vocab: int):
    return ((v0, min(vocab, v0 + block_vocab)) for v0 in range(0, vocab, block_vocab))


def _row_stats(student: BlockFn, teacher: BlockFn, rows: int, vocab: int, block_vocab: int,
               config: DistillLossConfig, device: torch.device) -> RowStats:
    neg_inf = lambda: torch.full((rows,), float("-inf"), device=device)
    lse_s, lse_t = neg_inf(), neg_inf()
    lse_1 = neg_inf() if config.beta else None
    for v0, v1 in _blocks(vocab, block_vocab):
        zs = student(v0, v1).float()  # [N, b]
        lse_s = torch.logaddexp(lse_s, torch.logsumexp(zs / config.temperature, -1))
        lse_t = torch.logaddexp(lse_t, torch.logsumexp(teacher(v0, v1).float() / config.temperature, -1))
        if lse_1 is not None:
            lse_1 = torch.logaddexp(lse_1, torch.logsumexp(zs, -1))
    return RowStats(lse_s, lse_t, lse_1)


def _log_probs(student_logits: torch.Tensor, teacher_logits: torch.Tensor, stats: RowStats, temperature: float):
    log_ps = student_logits.float() / temperature - stats.lse_student[:, None]  # [N, b]
    log_pt = teacher_logits.float() / temperature - stats.lse_teacher[:, None]  # [N, b]
    return log_ps, log_pt


def _jsd_log_m(log_ps: torch.Tensor, log_pt: torch.Tensor, beta: float) -> torch.Tensor:
    m = beta * log_pt.exp() + (1 - beta) * log_ps.exp()  # [N, b]
    return torch.where(m > 0, m, torch.ones_like(m)).log()


def _jsd_g(log_ps, log_pt, beta):
    return (1 - beta) * (log_ps - _jsd_log_m(log_ps, log_pt, beta))  # [N, b]


def _add_row_constant(student: BlockFn, teacher: BlockFn, vocab: int, block_vocab: int, stats: RowStats,
                      config: DistillLossConfig) -> None:
    total = torch.zeros_like(stats.lse_student)  # [N]
    for v0, v1 in _blocks(vocab, block_vocab):
        log_ps, log_pt = _log_probs(student(v0, v1), teacher(v0, v1), stats, config.temperature)
        if config.divergence == "reverse_kl":
            total += divergence_ref(log_ps, log_pt, "reverse_kl", config.jsd_beta)
        else:
            ps = log_ps.exp()
            total += torch.where(ps > 0, ps * _jsd_g(log_ps, log_pt, config.jsd_beta), torch.zeros_like(ps)).sum(-1)
    stats.row_constant = total


def _divergence_grad(log_ps: torch.Tensor, log_pt: torch.Tensor, stats: RowStats, config: DistillLossConfig):
    """dD/dz for one block, z = student logits / T."""
    ps = log_ps.exp()  # [N, b]
    if config.divergence == "forward_kl":
        return ps - log_pt.exp()
    if config.divergence == "reverse_kl":
        inner = log_ps - log_pt - stats.row_constant[:, None]
    else:
        inner = _jsd_g(log_ps, log_pt, config.jsd_beta) - stats.row_constant[:, None]
    return torch.where(ps > 0, ps * inner, torch.zeros_like(ps))


def blocked_linear_distill_loss(
    student: BlockFn,
    teacher: BlockFn,
    rows: int,
    vocab: int,
    target: Optional[torch.Tensor],  # [N] int64
    live: torch.Tensor,  # [N] bool: rows that count (not ignored)
    config: DistillLossConfig,
    grad_scale: float,
    block_vocab: int,
    consume_grad: Optional[Callable[[int, int, torch.Tensor], None]],  # (v0, v1, [N, b] d loss / d logits)
    device: torch.device,
) -> torch.Tensor:
    """Sum over live rows of alpha T^2 D + beta CE, times grad_scale; feeds each gradient block to consume_grad."""
    stats = _row_stats(student, teacher, rows, vocab, block_vocab, config, device)
    live = live & torch.isfinite(stats.lse_student) & torch.isfinite(stats.lse_teacher)  # all -inf rows count 0
    if consume_grad is not None and config.divergence != "forward_kl":
        _add_row_constant(student, teacher, vocab, block_vocab, stats, config)
    divergence = torch.zeros(rows, device=device)  # [N]
    ce = stats.lse_untempered.clone() if config.beta else None  # [N], minus the target logit below
    kl_coef = config.alpha * config.temperature * grad_scale
    for v0, v1 in _blocks(vocab, block_vocab):
        logits = student(v0, v1)  # [N, b]
        log_ps, log_pt = _log_probs(logits, teacher(v0, v1), stats, config.temperature)
        divergence += divergence_ref(log_ps, log_pt, config.divergence, config.jsd_beta)
        in_block = None
        if ce is not None:
            in_block = (target >= v0) & (target < v1) & live  # [N]
            local = (target - v0).clamp(0, v1 - v0 - 1)[:, None]  # [N, 1]
            ce -= torch.where(in_block, logits.float().gather(1, local)[:, 0], torch.zeros_like(ce))
        if consume_grad is None:
            continue
        grad = kl_coef * _divergence_grad(log_ps, log_pt, stats, config)  # [N, b]
        if ce is not None:
            grad += (config.beta * grad_scale) * (logits.float() - stats.lse_untempered[:, None]).exp()
            grad.scatter_add_(1, local, torch.where(in_block, -config.beta * grad_scale, 0.0)[:, None])
        consume_grad(v0, v1, torch.where(live[:, None], grad, torch.zeros_like(grad)))
    per_row = config.alpha * config.temperature**2 * divergence
    if ce is not None:
        per_row = per_row + config.beta * ce
    return torch.where(live, per_row, torch.zeros_like(per_row)).sum() * grad_scale
