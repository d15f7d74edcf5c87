"""AdamW over the trainable parameters and the warm-up + decay learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig

_FUSED_DEVICES = ("cpu", "cuda")


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over parameters with ``requires_grad`` only; weight decay on matrices (>= 2-D) only.

    torch's fused AdamW (one kernel over all parameters) where every parameter is a floating tensor on
    a device it supports: on CPU it takes about a third of the time of the per-parameter loop (3 ms
    instead of 9 ms a step for the 3.6M-parameter benchmark model). Both paths, fast and --no-fast, use it.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("every parameter is frozen: nothing to train (lower the freeze counts)")
    groups = [
        {"params": [p for p in trainable if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = all(p.is_floating_point() and p.device.type in _FUSED_DEVICES for p in trainable)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.learning_rate, fused=fused or None)


def warmup_steps_for(config: TrainConfig, total_steps: int) -> int:
    return config.warmup_steps if config.warmup_steps is not None else max(1, total_steps // 10)


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    warmup = warmup_steps_for(config, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total_steps, config.schedule))
