"""DistillationLoss: an nn.Module in the spirit of nn.KLDivLoss, over raw logits."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..functional import distill_loss
from ..losses.config import DistillLossConfig


class DistillationLoss(nn.Module):
    """loss = alpha * T^2 * D(teacher || student) + beta * CE(student, target), fused and chunked.

    Unlike nn.KLDivLoss it takes raw logits (not log-probabilities) for both sides, and its default
    reduction is 'batchmean' (the mathematically correct KL average). See DistillLossConfig.

        criterion = DistillationLoss(temperature=4.0, alpha=0.7, beta=0.3)
        loss = criterion(student_logits, teacher_logits, labels)   # [..., V], [..., V], [...]
    """

    def __init__(self, temperature: float = 1.0, divergence: str = "forward_kl", *, jsd_beta: float = 0.5,
                 alpha: float = 1.0, beta: float = 0.0, ignore_index: int = -100, reduction: str = "batchmean",
                 vocab_padding: str = "error"):
        super().__init__()
        self.config = DistillLossConfig(temperature=temperature, divergence=divergence, jsd_beta=jsd_beta,
                                        alpha=alpha, beta=beta, ignore_index=ignore_index, reduction=reduction,
                                        vocab_padding=vocab_padding)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                target: Optional[torch.Tensor] = None) -> torch.Tensor:
        return distill_loss(student_logits, teacher_logits, target, config=self.config)

    def extra_repr(self) -> str:
        c = self.config
        return (f"temperature={c.temperature}, divergence={c.divergence!r}, alpha={c.alpha}, beta={c.beta}, "
                f"reduction={c.reduction!r}")
