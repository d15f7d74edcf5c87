"""DistillLossConfig: the validated settings of the distillation loss, shared by the functional API,
the DistillationLoss module and the command line."""

from __future__ import annotations

from dataclasses import dataclass

from ..reference.distill_loss import DIVERGENCES, REDUCTIONS
from ..validation import check_choice, check_in_range

VOCAB_PADDING = ("error", "pad")


@dataclass(frozen=True)
class DistillLossConfig:
    """Settings of loss_i = alpha * T^2 * D(teacher || student) + beta * CE(student, target_i).

    temperature: T > 0; both distributions are softmax(logits / T) and the divergence is scaled by T^2.
    divergence: 'forward_kl' KL(p_t||p_s), 'reverse_kl' KL(p_s||p_t), or 'jsd' (generalized JSD, jsd_beta).
    alpha, beta: weights in [0, 1] of the divergence and of the hard-label cross-entropy (no defaults are
        hidden: beta=0 means no cross-entropy, and the target then only marks ignored tokens).
    ignore_index: tokens whose target equals it contribute 0 to the loss and get a zero gradient.
    reduction: 'none' (per token, 0 where ignored), 'sum', 'mean' (sum / number of non-ignored tokens,
        0 when all are ignored) or 'batchmean' (sum / number of tokens, like kl_div's 'batchmean' on [N, V]).
    vocab_padding: 'error' rejects student/teacher vocabularies of different sizes; 'pad' pads the smaller
        one with -inf logits (probability 0).
    """

    temperature: float = 1.0
    divergence: str = "forward_kl"
    jsd_beta: float = 0.5
    alpha: float = 1.0
    beta: float = 0.0
    ignore_index: int = -100
    reduction: str = "batchmean"
    vocab_padding: str = "error"

    def __post_init__(self) -> None:
        check_in_range("temperature", self.temperature, 0.0, float("inf"), low_open=True)
        check_choice("divergence", self.divergence, DIVERGENCES)
        if self.divergence == "jsd":
            check_in_range("jsd_beta", self.jsd_beta, 0.0, 1.0, low_open=True, high_open=True)
        check_in_range("alpha", self.alpha, 0.0, 1.0)
        check_in_range("beta", self.beta, 0.0, 1.0)
        check_choice("reduction", self.reduction, REDUCTIONS)
        check_choice("vocab_padding", self.vocab_padding, VOCAB_PADDING)

    def op_args(self):
        """The op's (temperature, divergence, jsd_beta, alpha, ce_weight, ignore_index) arguments."""
        return self.temperature, self.divergence, self.jsd_beta, self.alpha, self.beta, self.ignore_index
