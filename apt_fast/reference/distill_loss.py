"""Reference of the fused distillation loss: readable PyTorch, computed in float32, gradient by autograd.

For row i with student logits s and teacher logits t (both [V]), temperature T, p_s = softmax(s/T) and
p_t = softmax(t/T):

    loss_i = alpha * T^2 * D(p_t, p_s) + ce_weight * CE(s, target_i)

with D one of
    forward_kl:  KL(p_t || p_s) = sum_j p_t (log p_t - log p_s)
    reverse_kl:  KL(p_s || p_t) = sum_j p_s (log p_s - log p_t)
    jsd:         beta KL(p_t || m) + (1 - beta) KL(p_s || m),  m = beta p_t + (1 - beta) p_s

Terms whose probability is exactly 0 contribute 0 (so vocabulary entries masked with -inf in both
distributions are harmless). A row whose target equals ignore_index, or whose logits are all -inf,
has loss 0 and gradient 0. CE uses the untempered student logits. The returned gradient is
d(sum_i grad_scale * loss_i) / d student_logits, in the student's dtype.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
REDUCTIONS = ("none", "sum", "mean", "batchmean")


def _weighted_log_ratio(p: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """sum_j p_j (log p_j - log q_j) over the last dim, with 0 wherever p_j == 0."""
    log_ratio = torch.where(p > 0, log_p - log_q, torch.zeros_like(log_p))  # [N, V]
    return (p * log_ratio).sum(-1)  # [N]


def divergence_ref(log_ps: torch.Tensor, log_pt: torch.Tensor, divergence: str, jsd_beta: float) -> torch.Tensor:
    """Per-row divergence from student and teacher log-probabilities [N, V] -> [N]."""
    ps, pt = log_ps.exp(), log_pt.exp()
    if divergence == "forward_kl":
        return _weighted_log_ratio(pt, log_pt, log_ps)
    if divergence == "reverse_kl":
        return _weighted_log_ratio(ps, log_ps, log_pt)
    m = jsd_beta * pt + (1 - jsd_beta) * ps  # [N, V]
    log_m = torch.where(m > 0, m, torch.ones_like(m)).log()  # 0 where m == 0, which only meets p == 0
    return jsd_beta * _weighted_log_ratio(pt, log_pt, log_m) + (1 - jsd_beta) * _weighted_log_ratio(ps, log_ps, log_m)


def distill_loss_fwd_ref(
    student_logits: torch.Tensor,  # [N, V] fp32|bf16|fp16
    teacher_logits: torch.Tensor,  # [N, V] same dtype
    target: Optional[torch.Tensor],  # [N] int64 or None
    temperature: float,
    divergence: str,
    jsd_beta: float,
    alpha: float,
    ce_weight: float,
    ignore_index: int,
    grad_scale: float,
    compute_grad: bool,
    compute_dtype: torch.dtype = torch.float32,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (loss [N] fp32, grad [N, V] in the student dtype, or an empty tensor when not computed)."""
    with torch.enable_grad():
        student = student_logits.detach().to(compute_dtype).requires_grad_(compute_grad)  # [N, V]
        teacher = teacher_logits.detach().to(compute_dtype)  # [N, V]
        live = torch.isfinite(student.detach().amax(-1)) & torch.isfinite(teacher.amax(-1))  # [N]
        if target is not None:
            live &= target != ignore_index
        # Dead rows are replaced by zeros so that no NaN enters the graph; their loss is masked below.
        safe_student = torch.where(live[:, None], student, torch.zeros_like(student))
        safe_teacher = torch.where(live[:, None], teacher, torch.zeros_like(teacher))
        log_ps = F.log_softmax(safe_student / temperature, dim=-1)  # [N, V]
        log_pt = F.log_softmax(safe_teacher / temperature, dim=-1)  # [N, V]
        loss = alpha * temperature**2 * divergence_ref(log_ps, log_pt, divergence, jsd_beta)  # [N]
        if ce_weight != 0.0:
            labels = torch.where(live, target, torch.zeros_like(target))  # [N]
            loss = loss + ce_weight * F.cross_entropy(safe_student, labels, reduction="none")
        loss = torch.where(live, loss, torch.zeros_like(loss))
        if not compute_grad:
            return loss.detach().float(), student_logits.new_empty(0)
        (grad,) = torch.autograd.grad(loss.sum() * grad_scale, student)
    return loss.detach().float(), grad.to(student_logits.dtype)
