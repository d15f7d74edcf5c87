"""The distillation loss written from its definition with torch's own F.log_softmax, F.kl_div and
F.cross_entropy: an oracle independent of apt_fast.reference.distill_loss (which the native and Triton kernels
are tested against, and which is itself tested against this)."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F


def kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of each row [N, V] -> [N], from log-probabilities."""
    return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)


def textbook_loss(student: torch.Tensor,  # [N, V]
                  teacher: torch.Tensor,  # [N, V]
                  target: Optional[torch.Tensor] = None,  # [N] int64
                  *, temperature: float, divergence: str, jsd_beta: float = 0.5, alpha: float = 1.0,
                  ce_weight: float = 0.0, ignore_index: int = -100,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Per-row loss [N] in `dtype` (differentiable): alpha T^2 D(p_t, p_s) + ce_weight CE(student, target), 0 on
    rows whose target is ignore_index. Finite logits only (a -inf logit makes F.kl_div's 0 * inf a NaN)."""
    log_ps = F.log_softmax(student.to(dtype) / temperature, dim=-1)  # [N, V]
    log_pt = F.log_softmax(teacher.to(dtype) / temperature, dim=-1)  # [N, V]
    if divergence == "forward_kl":
        d = kl_rows(log_pt, log_ps)
    elif divergence == "reverse_kl":
        d = kl_rows(log_ps, log_pt)
    elif divergence == "jsd":
        log_m = torch.logaddexp(log_pt + math.log(jsd_beta), log_ps + math.log1p(-jsd_beta))  # m = b p_t + (1-b) p_s
        d = jsd_beta * kl_rows(log_pt, log_m) + (1 - jsd_beta) * kl_rows(log_ps, log_m)
    else:
        raise ValueError(divergence)
    per_row = alpha * temperature**2 * d  # [N]
    if target is None:
        return per_row
    if ce_weight:
        per_row = per_row + ce_weight * F.cross_entropy(student.to(dtype), target.clamp_min(0), reduction="none")
    return torch.where(target != ignore_index, per_row, torch.zeros_like(per_row))


def textbook_loss_and_grad(student, teacher, target=None, *, grad_scale: float = 1.0, dtype=torch.float64,
                           **settings):
    """(per-row loss [N], d(grad_scale * sum of the loss) / d student [N, V]), both in `dtype`."""
    leaf = student.detach().to(dtype).requires_grad_()
    loss = textbook_loss(leaf, teacher, target, dtype=dtype, **settings)
    (grad,) = torch.autograd.grad(loss.sum() * grad_scale, leaf)
    return loss.detach(), grad
