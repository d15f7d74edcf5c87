"""Distillation losses that never hold a full [N, V] teacher or logits matrix.

- FusedLinearDistillLoss: student hidden states [N, H] and lm_head weight [V, H] (+ bias); the teacher as
  logits [N, V] or as hidden states and weight of its own. Gradients for hidden states, weight and bias.
  Processed in vocabulary blocks (apt_fast/losses/fused_linear.py).
- SparseTeacherDistillLoss: rows in chunks of at most `chunk_rows`, each through apt_fast::distill_loss_fwd. the
  teacher given offline as its top-k log-probabilities and their indices.
  The remaining probability mass 1 - sum(exp(top-k)) is spread evenly over the other V - k tokens, which
  defines a full teacher distribution; the temperature then applies to it as to dense teacher logits.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .config import DistillLossConfig
from .fused_linear import blocked_linear_distill_loss, linear_block

# Elements per chunk of logits: 2^21 fp32 values = 8 MiB per buffer (student, teacher, gradient).
CHUNK_ELEMENTS = 1 << 21


def default_chunk_rows(vocab: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(vocab, 1))


def _grad_scale(config: DistillLossConfig, rows: int, target: Optional[torch.Tensor]) -> float:
    if config.reduction == "none":
        raise ValueError("reduction must be 'sum', 'mean' or 'batchmean' for the chunked losses, got 'none'")
    if config.reduction == "sum":
        return 1.0
    if config.reduction == "batchmean" or target is None:
        return 1.0 / max(rows, 1)
    return 1.0 / max(int((target != config.ignore_index).sum()), 1)


def _chunked_loss(
    rows: int,
    chunk_rows: int,
    student_chunk: Callable[[int, int], torch.Tensor],  # (begin, end) -> [c, V] logits
    teacher_chunk: Callable[[int, int], torch.Tensor],  # (begin, end) -> [c, V] logits
    target: Optional[torch.Tensor],  # [N] int64
    config: DistillLossConfig,
    grad_scale: float,
    consume_grad: Optional[Callable[[int, int, torch.Tensor], None]],  # (begin, end, [c, V] gradient)
    device: torch.device,
) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float32, device=device)
    for begin in range(0, rows, chunk_rows):
        end = min(rows, begin + chunk_rows)
        labels = target[begin:end] if target is not None else None
        loss_rows, grad = torch.ops.apt_fast.distill_loss_fwd(
            student_chunk(begin, end), teacher_chunk(begin, end), labels, *config.op_args(), grad_scale,
            consume_grad is not None,
        )
        total += loss_rows.sum()
        if consume_grad is not None:
            consume_grad(begin, end, grad)
    return total * grad_scale


def _scale_grads(grads, grad_output: torch.Tensor):
    if grad_output.item() == 1.0:
        return grads
    return tuple(g.mul_(grad_output) if g is not None else None for g in grads)


class FusedLinearDistillLoss(torch.autograd.Function):
    """Vocabulary-blocked loss of lm_head(hidden); see apt_fast/losses/fused_linear.py."""

    @staticmethod
    def forward(ctx, student_hidden, student_weight, student_bias, teacher_logits, teacher_hidden, teacher_weight,
                teacher_bias, target, config: DistillLossConfig, block_vocab: int):
        rows, vocab = student_hidden.shape[0], student_weight.shape[0]
        grad_scale = _grad_scale(config, rows, target)
        if teacher_logits is not None:
            teacher_block = lambda v0, v1: teacher_logits[:, v0:v1]
        else:
            teacher_block = linear_block(teacher_hidden, teacher_weight, teacher_bias)
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.zeros(student_hidden.shape, dtype=torch.float32) if needs_hidden else None  # [N, H]
        grad_weight = torch.empty_like(student_weight) if needs_weight else None  # [V, H]
        grad_bias = torch.empty_like(student_bias) if needs_bias else None  # [V]

        def consume(v0: int, v1: int, grad_logits: torch.Tensor) -> None:  # grad_logits [N, b] fp32
            if grad_hidden is not None:
                grad_hidden.addmm_(grad_logits, student_weight[v0:v1].float())
            grad_logits = grad_logits.to(student_weight.dtype)
            if grad_weight is not None:
                torch.matmul(grad_logits.t(), student_hidden, out=grad_weight[v0:v1])
            if grad_bias is not None:
                grad_bias[v0:v1] = grad_logits.sum(0)

        live = torch.ones(rows, dtype=torch.bool, device=student_hidden.device)
        if target is not None:
            live = target != config.ignore_index
        wants_grad = needs_hidden or needs_weight or needs_bias
        total = blocked_linear_distill_loss(
            linear_block(student_hidden, student_weight, student_bias), teacher_block, rows, vocab, target, live,
            config, grad_scale, block_vocab, consume if wants_grad else None, student_hidden.device)
        if grad_hidden is not None:
            grad_hidden = grad_hidden.to(student_hidden.dtype)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight, grad_bias = _scale_grads(ctx.saved_tensors, grad_output)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None, None, None


def densify_topk_teacher(
    topk_logprobs: torch.Tensor,  # [c, k] teacher log-probabilities at temperature 1
    topk_indices: torch.Tensor,  # [c, k] int64
    vocab: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Full teacher log-probabilities [c, V]: top-k entries as given, the tail mass spread evenly."""
    logprobs = topk_logprobs.float()
    rest = vocab - logprobs.shape[1]
    if rest > 0:
        tail_mass = (1.0 - logprobs.exp().sum(-1)).clamp_min(0.0)  # [c]
        tail_logprob = torch.log(tail_mass) - math.log(rest)  # [c], -inf when there is no tail mass
    else:
        tail_logprob = logprobs.new_full((logprobs.shape[0],), float("-inf"))
    dense = tail_logprob[:, None].expand(-1, vocab).contiguous()  # [c, V]
    dense.scatter_(1, topk_indices, logprobs)
    return dense.to(dtype)


class SparseTeacherDistillLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student_logits, topk_logprobs, topk_indices, target, config: DistillLossConfig,
                chunk_rows: int):
        rows, vocab = student_logits.shape
        grad_scale = _grad_scale(config, rows, target)
        grad_student = torch.empty_like(student_logits) if ctx.needs_input_grad[0] else None  # [N, V]

        def consume(begin: int, end: int, grad_logits: torch.Tensor) -> None:
            grad_student[begin:end] = grad_logits

        def teacher_chunk(begin: int, end: int) -> torch.Tensor:
            return densify_topk_teacher(topk_logprobs[begin:end], topk_indices[begin:end], vocab, student_logits.dtype)

        total = _chunked_loss(rows, chunk_rows, lambda begin, end: student_logits[begin:end], teacher_chunk, target,
                              config, grad_scale, consume if grad_student is not None else None,
                              student_logits.device)
        ctx.save_for_backward(grad_student)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        (grad_student,) = _scale_grads(ctx.saved_tensors, grad_output)
        return grad_student, None, None, None, None, None
