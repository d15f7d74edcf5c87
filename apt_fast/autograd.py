"""autograd.Functions of the ops. Only torch.ops.apt_fast.* run inside; the gradient of the
distillation loss is produced by its forward kernel and only scaled here."""

from __future__ import annotations

from typing import Optional

import torch

from .reference.dropout_hash import draw_seed

REDUCTIONS = ("none", "sum", "mean", "batchmean")


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


class FlashAttentionFunction(torch.autograd.Function):
    """Flash attention with an additive bias; gradients for q, k, v and the bias (in its own shape).

    The dropout seed is drawn from torch's generator once per forward; the backward regenerates the mask.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor],
                mask: Optional[torch.Tensor], causal: bool, scale: float, dropout_p: float) -> torch.Tensor:
        seed = draw_seed() if dropout_p > 0.0 else 0
        out, lse = torch.ops.apt_fast.flash_attention_fwd(q, k, v, bias, mask, causal, scale, dropout_p, seed)
        ctx.save_for_backward(q, k, v, bias, mask, out, lse)
        ctx.settings = (causal, scale, dropout_p, seed)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v, bias, mask, out, lse = ctx.saved_tensors
        causal, scale, dropout_p, seed = ctx.settings
        bias_grad = bias is not None and ctx.needs_input_grad[3]
        dq, dk, dv, dbias = torch.ops.apt_fast.flash_attention_bwd(
            grad_out, q, k, v, bias, mask, out, lse, causal, scale, dropout_p, seed, bias_grad)
        return dq, dk, dv, (dbias if bias_grad else None), None, None, None, None


class AptAttentionFunction(torch.autograd.Function):
    """APT attention from projected q, k, v (APT_SPEC.md §2.1-2.3) as three stage ops, none [B, H, T, S]:

      M = apt_head_mean_fwd(q, k)                      [B, T, S]  T1-T2
      F, R0, stats = apt_stats_fwd(M, sr convs, tau)   [B, T, S]  T3-T16
      out = apt_attention_fwd(q, k, v, F, M)           [B, H, T, d]  T17-T19, softmax, dropout, P·V

    Backward runs them in reverse: dF (and dq, dk, dv) from the attention; dM = stats' dM - 0.2 dF (M enters
    the attention only as F + 0.2 (A_h - M)) plus the sr/tau gradients; then the head mean's dq, dk are added.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sr_conv1_weight: torch.Tensor,
                sr_conv1_bias: torch.Tensor, sr_conv2_weight: torch.Tensor, sr_conv2_bias: torch.Tensor,
                tau: torch.Tensor, attn_mask: Optional[torch.Tensor], key_padding_mask: Optional[torch.Tensor],
                epsilon: float, dropout_p: float) -> torch.Tensor:
        ops = torch.ops.apt_fast
        params = (sr_conv1_weight, sr_conv1_bias, sr_conv2_weight, sr_conv2_bias, tau)
        seed = draw_seed() if dropout_p > 0.0 else 0
        m = ops.apt_head_mean_fwd(q, k, attn_mask, key_padding_mask)  # [B, T, S]
        f, r0, stats = ops.apt_stats_fwd(m, attn_mask, *params, epsilon)  # [B, T, S] x2, [B, STATS_SIZE]
        out, lse = ops.apt_attention_fwd(q, k, v, f, m, attn_mask, key_padding_mask, dropout_p, seed)
        ctx.save_for_backward(q, k, v, *params, attn_mask, key_padding_mask, m, f, r0, stats, out, lse)
        ctx.settings = (epsilon, dropout_p, seed)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        ops = torch.ops.apt_fast
        q, k, v, w1, b1, w2, b2, tau, attn_mask, key_padding_mask, m, f, r0, stats, out, lse = ctx.saved_tensors
        epsilon, dropout_p, seed = ctx.settings
        dq, dk, dv, df = ops.apt_attention_bwd(grad_out, q, k, v, f, m, attn_mask, key_padding_mask, out, lse,
                                               dropout_p, seed)
        dm, dw1, db1, dw2, db2, dtau = ops.apt_stats_bwd(df, m, attn_mask, w1, b1, w2, b2, tau, epsilon, r0, stats)
        dq_mean, dk_mean = ops.apt_head_mean_bwd(dm.add_(df, alpha=-0.2), q, k, attn_mask, key_padding_mask)
        return dq.add_(dq_mean), dk.add_(dk_mean), dv, dw1, db1, dw2, db2, dtau, None, None, None, None
