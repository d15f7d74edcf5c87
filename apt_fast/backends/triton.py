"""CUDA kernels: validate at the boundary, then launch the Triton kernels of apt_fast.kernels."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..ops.distill_loss import check_distill_loss_args


def distill_loss_fwd(
    student_logits: torch.Tensor,  # [N, V] fp32|bf16|fp16
    teacher_logits: torch.Tensor,  # [N, V]
    target: Optional[torch.Tensor],  # [N] int64
    temperature: float,
    divergence: str,
    jsd_beta: float,
    alpha: float,
    ce_weight: float,
    ignore_index: int,
    grad_scale: float,
    compute_grad: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    check_distill_loss_args(student_logits, teacher_logits, target, temperature, divergence, jsd_beta, alpha, ce_weight)
    from ..kernels.distill_loss import distill_loss_fwd_triton

    return distill_loss_fwd_triton(student_logits, teacher_logits, target, temperature, divergence, jsd_beta, alpha,
                                   ce_weight, ignore_index, grad_scale, compute_grad)
