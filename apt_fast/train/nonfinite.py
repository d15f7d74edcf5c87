"""NaN and infinity in training: what a step's loss and gradient norm say, and which weights are not finite.

Per optimizer step the trainer reads the loss (it does anyway) and the global gradient norm before clipping
(one more device sync); when either is NaN or infinite the step's update is skipped or the run stops
(TrainConfig.skip_nonfinite_steps). Before anything is saved it checks that every weight is finite.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def gradient_norm(params: list[nn.Parameter], grad_clip: float) -> float:
    """The global L2 norm of the gradients before clipping; clips them to ``grad_clip`` when it is > 0."""
    if grad_clip > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    grads = [p.grad for p in params if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


def step_problem(loss: float, grad_norm: float) -> str | None:
    """'the loss is nan', 'the gradient norm is inf', or None when both are finite."""
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    if not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm}"
    return None


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters holding a NaN or an infinity (one device sync when there are none)."""
    named = list(model.named_parameters())
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).cpu()  # [P]
    return [name for (name, _), ok in zip(named, finite.tolist()) if not ok]
