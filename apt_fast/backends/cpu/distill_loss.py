"""CPU kernel of apt_fast::distill_loss_fwd: hands data pointers to apt_fast._C. The op checks the arguments first."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..._native import native
from ..registry import register_kernel

_DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
_DIVERGENCE_CODES = {"forward_kl": 0, "reverse_kl": 1, "jsd": 2}


def _rows_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    """A view with unit stride along the last dim (row stride may be anything), copying only if needed."""
    return tensor if tensor.stride(-1) == 1 else tensor.contiguous()


@register_kernel("distill_loss_fwd", "CPU")
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
    out_dtype = student_logits.dtype
    if out_dtype not in _DTYPE_CODES:  # fp16 has no native path: compute in fp32
        student_logits, teacher_logits = student_logits.float(), teacher_logits.float()
    student = _rows_contiguous(student_logits)
    teacher = _rows_contiguous(teacher_logits)
    rows, vocab = student.shape
    labels = target.contiguous() if target is not None else None
    loss = torch.empty(rows, dtype=torch.float32)  # [N]
    grad = torch.empty((rows, vocab), dtype=student.dtype) if compute_grad else student.new_empty(0)  # [N, V]
    if rows > 0:
        native().distill_loss_fwd(
            student.data_ptr(), student.stride(0), teacher.data_ptr(), teacher.stride(0), _DTYPE_CODES[student.dtype],
            rows, vocab, labels.data_ptr() if labels is not None else 0, ignore_index,
            _DIVERGENCE_CODES[divergence], temperature, jsd_beta, alpha, ce_weight, grad_scale,
            loss.data_ptr(), grad.data_ptr() if compute_grad else 0, vocab, torch.get_num_threads(),
        )
    return loss, grad.to(out_dtype)
