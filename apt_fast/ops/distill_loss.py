"""Op apt_fast::distill_loss_fwd: per-row distillation loss and, in the same pass, the student gradient.

Semantics: apt_fast/reference/distill_loss.py. Every kernel runs check_distill_loss_args first (ops.library).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..reference.distill_loss import DIVERGENCES, distill_loss_fwd_ref
from ..validation import check_choice, check_dtype, check_in_range, check_ndim, check_same_device
from .library import define_op

LOGIT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

SCHEMA = (
    "(Tensor student_logits, Tensor teacher_logits, Tensor? target, float temperature, str divergence, "
    "float jsd_beta, float alpha, float ce_weight, int ignore_index, float grad_scale, bool compute_grad) "
    "-> (Tensor, Tensor)"
)


def check_distill_loss_args(
    student_logits: torch.Tensor,  # [N, V]
    teacher_logits: torch.Tensor,  # [N, V]
    target: Optional[torch.Tensor],  # [N] int64
    temperature: float,
    divergence: str,
    jsd_beta: float,
    alpha: float,
    ce_weight: float,
) -> None:
    check_dtype("student_logits", student_logits, LOGIT_DTYPES)
    check_ndim("student_logits", student_logits, 2, "[tokens, vocab]")
    check_ndim("teacher_logits", teacher_logits, 2, "[tokens, vocab]")
    if teacher_logits.dtype != student_logits.dtype:
        raise ValueError(f"teacher_logits must be {student_logits.dtype} like student_logits, "
                         f"got {teacher_logits.dtype}")
    check_same_device("teacher_logits", teacher_logits, "student_logits", student_logits)
    if teacher_logits.shape[1] != student_logits.shape[1]:
        raise ValueError(
            f"teacher_logits must have the student's vocabulary size {student_logits.shape[1]}, got "
            f"{teacher_logits.shape[1]} (pass vocab_padding='pad' to pad the smaller one with -inf logits)"
        )
    if teacher_logits.shape[0] != student_logits.shape[0]:
        raise ValueError(
            f"teacher_logits must have {student_logits.shape[0]} rows like student_logits, "
            f"got {teacher_logits.shape[0]}"
        )
    if target is not None:
        check_dtype("target", target, (torch.int64,))
        if tuple(target.shape) != (student_logits.shape[0],):
            raise ValueError(f"target must have shape ({student_logits.shape[0]},), got {tuple(target.shape)}")
        check_same_device("target", target, "student_logits", student_logits)
    elif ce_weight != 0.0:
        raise ValueError(f"target is required when the cross-entropy weight is non-zero (got {ce_weight})")
    check_in_range("temperature", temperature, 0.0, float("inf"), low_open=True)
    check_choice("divergence", divergence, DIVERGENCES)
    if divergence == "jsd":
        check_in_range("jsd_beta", jsd_beta, 0.0, 1.0, low_open=True, high_open=True)
    check_in_range("alpha", alpha, 0.0, 1.0)
    check_in_range("beta (cross-entropy weight)", ce_weight, 0.0, 1.0)


def _fake(student_logits, teacher_logits, *args) -> Tuple[torch.Tensor, torch.Tensor]:
    compute_grad = args[-1]
    loss = student_logits.new_empty(student_logits.shape[0], dtype=torch.float32)  # [N]
    grad = torch.empty_like(student_logits) if compute_grad else student_logits.new_empty(0)  # [N, V] or [0]
    return loss, grad


def _check(student_logits, teacher_logits, target, temperature, divergence, jsd_beta, alpha, ce_weight, *rest) -> None:
    check_distill_loss_args(student_logits, teacher_logits, target, temperature, divergence, jsd_beta, alpha,
                            ce_weight)


define_op("distill_loss_fwd", SCHEMA, distill_loss_fwd_ref, _fake, check=_check)
