"""F-style entry points of the distillation losses: logits in, or hidden states + lm_head, or an offline top-k
teacher. Logits may have any leading shape [..., V]; they are flattened to [N, V] (target to [N])."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..autograd.distill_loss import DistillLossFunction
from ..losses.chunked import FusedLinearDistillLoss, SparseTeacherDistillLoss, default_chunk_rows
from ..losses.config import DistillLossConfig
from ..losses.fused_linear import default_block_vocab
from ..validation import check_ndim, check_same_device


def _pad_vocab(student: torch.Tensor, teacher: torch.Tensor, mode: str):
    vs, vt = student.shape[-1], teacher.shape[-1]
    if vs == vt or mode == "error":
        return student, teacher
    width = max(vs, vt)
    pad = lambda x: F.pad(x, (0, width - x.shape[-1]), value=float("-inf"))
    return pad(student), pad(teacher)


def _flatten(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dim() < 2:
        raise ValueError(f"{name} must have shape [..., vocab] with at least 2 dims, got {tuple(tensor.shape)}")
    return tensor.reshape(-1, tensor.shape[-1])


def _flatten_target(target: Optional[torch.Tensor], rows: int) -> Optional[torch.Tensor]:
    if target is None:
        return None
    if target.numel() != rows:
        raise ValueError(f"target must have {rows} elements (one per token), got shape {tuple(target.shape)}")
    return target.reshape(-1)


def distill_loss(
    student_logits: torch.Tensor,  # [..., V] fp32|bf16|fp16
    teacher_logits: torch.Tensor,  # [..., V] same dtype and leading shape
    target: Optional[torch.Tensor] = None,  # [...] int64 hard labels (also the ignore mask)
    *,
    config: Optional[DistillLossConfig] = None,
    **settings,
) -> torch.Tensor:
    """Distillation loss (see DistillLossConfig for every setting), e.g. temperature=4.0, alpha=0.7, beta=0.3.

    Gradients flow to the student only: the teacher is treated as frozen, and teacher_logits that
    require grad are rejected. reduction='none' returns the per-token losses in the leading shape.
    """
    config = config or DistillLossConfig(**settings)
    if teacher_logits.requires_grad:
        raise ValueError("teacher_logits must not require grad (the teacher is frozen): pass teacher_logits.detach() "
                         "or compute them under torch.no_grad()")
    leading = student_logits.shape[:-1]
    student, teacher = _pad_vocab(student_logits, teacher_logits, config.vocab_padding)
    student, teacher = _flatten("student_logits", student), _flatten("teacher_logits", teacher)
    target = _flatten_target(target, student.shape[0])
    loss = DistillLossFunction.apply(student, teacher, target, *config.op_args(), config.reduction)
    return loss.reshape(leading) if config.reduction == "none" else loss


def fused_linear_distill_loss(
    student_hidden: torch.Tensor,  # [..., H]
    student_weight: torch.Tensor,  # [V, H] the student's lm_head
    target: Optional[torch.Tensor] = None,  # [...] int64
    *,
    teacher_logits: Optional[torch.Tensor] = None,  # [..., V]
    teacher_hidden: Optional[torch.Tensor] = None,  # [..., Ht]
    teacher_weight: Optional[torch.Tensor] = None,  # [V, Ht]
    student_bias: Optional[torch.Tensor] = None,  # [V]
    teacher_bias: Optional[torch.Tensor] = None,  # [V]
    block_vocab: Optional[int] = None,
    config: Optional[DistillLossConfig] = None,
    **settings,
) -> torch.Tensor:
    """Distillation loss of lm_head(student_hidden) without materialising the student logits.

    The teacher comes as teacher_logits, or as teacher_hidden + teacher_weight (+ teacher_bias), which keeps
    its logits blocked too. The vocabulary is processed in blocks of block_vocab columns (default: about
    2^20 logits per block). Gradients: student_hidden, student_weight, student_bias. Reductions: sum, mean,
    batchmean.
    """
    config = config or DistillLossConfig(**settings)
    hidden = student_hidden.reshape(-1, student_hidden.shape[-1])  # [N, H]
    check_ndim("student_weight", student_weight, 2, "[vocab, hidden]")
    if student_weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"student_weight must have shape [vocab, {hidden.shape[1]}], "
                         f"got {tuple(student_weight.shape)}")
    check_same_device("student_weight", student_weight, "student_hidden", student_hidden)
    if (teacher_logits is None) == (teacher_hidden is None):
        raise ValueError("give exactly one of teacher_logits or teacher_hidden (with teacher_weight)")
    if teacher_logits is not None:
        teacher_logits = teacher_logits.detach().reshape(-1, teacher_logits.shape[-1])
    else:
        if teacher_weight is None:
            raise ValueError("teacher_weight is required with teacher_hidden")
        teacher_hidden = teacher_hidden.detach().reshape(-1, teacher_hidden.shape[-1])
        teacher_weight = teacher_weight.detach()
        teacher_bias = teacher_bias.detach() if teacher_bias is not None else None
        if teacher_weight.shape[1] != teacher_hidden.shape[1]:
            raise ValueError(f"teacher_weight must have shape [vocab, {teacher_hidden.shape[1]}], "
                             f"got {tuple(teacher_weight.shape)}")
        if teacher_hidden.shape[0] != hidden.shape[0]:
            raise ValueError(f"teacher_hidden must have {hidden.shape[0]} rows, got {teacher_hidden.shape[0]}")
    target = _flatten_target(target, hidden.shape[0])
    block = block_vocab or default_block_vocab(hidden.shape[0])
    return FusedLinearDistillLoss.apply(hidden, student_weight, student_bias, teacher_logits, teacher_hidden,
                                        teacher_weight, teacher_bias, target, config, block)


def sparse_teacher_distill_loss(
    student_logits: torch.Tensor,  # [..., V]
    teacher_topk_logprobs: torch.Tensor,  # [..., k] teacher log-probabilities (temperature 1), k <= 128
    teacher_topk_indices: torch.Tensor,  # [..., k] int64 vocabulary ids
    target: Optional[torch.Tensor] = None,  # [...] int64
    *,
    chunk_rows: Optional[int] = None,
    config: Optional[DistillLossConfig] = None,
    **settings,
) -> torch.Tensor:
    """Distillation from an offline teacher stored as top-k log-probabilities (no teacher model in memory).

    The teacher's tail mass 1 - sum(exp(topk)) is spread evenly over the other V - k tokens.
    """
    config = config or DistillLossConfig(**settings)
    student = _flatten("student_logits", student_logits)  # [N, V]
    values = teacher_topk_logprobs.detach().reshape(-1, teacher_topk_logprobs.shape[-1])  # [N, k]
    indices = teacher_topk_indices.reshape(-1, teacher_topk_indices.shape[-1])  # [N, k]
    if values.shape != indices.shape or values.shape[0] != student.shape[0]:
        raise ValueError(f"teacher_topk_logprobs and teacher_topk_indices must both have shape "
                         f"[{student.shape[0]}, k], got {tuple(values.shape)} and {tuple(indices.shape)}")
    if not 1 <= values.shape[1] <= min(128, student.shape[1]):
        raise ValueError(f"top-k size must be in [1, {min(128, student.shape[1])}], got {values.shape[1]}")
    if indices.dtype != torch.int64:
        raise ValueError(f"teacher_topk_indices must be int64, got {indices.dtype}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= student.shape[1]):
        raise ValueError(f"teacher_topk_indices must lie in [0, {student.shape[1]}), got "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    target = _flatten_target(target, student.shape[0])
    rows = chunk_rows or default_chunk_rows(student.shape[1])
    return SparseTeacherDistillLoss.apply(student, values, indices, target, config, rows)
