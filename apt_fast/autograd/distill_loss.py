"""autograd.Function of apt_fast::distill_loss_fwd: the gradient is produced by the forward kernel and only
scaled here."""

from __future__ import annotations

from typing import Optional

import torch


def _scale_saved_grad(ctx, grad: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Scales the gradient saved by the forward kernel in place (it is used once)."""
    if ctx.grad_consumed:
        raise RuntimeError(
            "the distillation loss can be backpropagated once per forward (its gradient buffer is reused); "
            "recompute the loss to backpropagate again"
        )
    ctx.grad_consumed = True
    if not torch.compiler.is_compiling() and scale.numel() == 1 and scale.item() == 1.0:
        return grad
    return grad.mul_(scale)


class DistillLossFunction(torch.autograd.Function):
    """Distillation loss over [N, V] logits; gradient for the student only (the teacher is frozen)."""

    @staticmethod
    def forward(ctx, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: Optional[torch.Tensor],
                temperature: float, divergence: str, jsd_beta: float, alpha: float, ce_weight: float,
                ignore_index: int, reduction: str) -> torch.Tensor:
        rows = student_logits.shape[0]
        static_scale = {"none": 1.0, "sum": 1.0, "mean": 1.0, "batchmean": 1.0 / max(rows, 1)}[reduction]
        loss_rows, grad = torch.ops.apt_fast.distill_loss_fwd(
            student_logits, teacher_logits, target, temperature, divergence, jsd_beta, alpha, ce_weight,
            ignore_index, static_scale, ctx.needs_input_grad[0],
        )  # [N] fp32, [N, V]
        if reduction == "mean":
            valid = rows if target is None else (target != ignore_index).sum()
            divisor = torch.clamp(torch.as_tensor(valid, dtype=torch.float32, device=loss_rows.device), min=1.0)
        else:
            divisor = None
        ctx.save_for_backward(grad, divisor)
        ctx.reduction = reduction
        ctx.grad_consumed = False
        if reduction == "none":
            return loss_rows
        total = loss_rows.sum()
        if reduction == "batchmean":
            return total * static_scale
        return total / divisor if divisor is not None else total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad, divisor = ctx.saved_tensors
        if ctx.reduction == "none":
            scale = grad_output[:, None]  # [N, 1]
        elif divisor is not None:
            scale = grad_output / divisor
        else:
            scale = grad_output
        return _scale_saved_grad(ctx, grad, scale), None, None, None, None, None, None, None, None, None
