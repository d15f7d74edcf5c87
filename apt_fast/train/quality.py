"""How good a pruned model still is: teacher-forced loss and token accuracy over a data set, and the exact match of
greedy generation over its first examples; the numbers prune-finetune and lottery-ticket report and plot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn

from .batching import TokenizedData
from .evaluation import evaluate, exact_match
from .records import Example


@dataclass(frozen=True)
class Quality:
    loss: float
    token_accuracy: float
    exact_match: float | None  # None when no examples were decoded

    def describe(self) -> str:
        match = "" if self.exact_match is None else f"  exact match {100 * self.exact_match:.2f}%"
        return f"loss {self.loss:.4f}  token accuracy {100 * self.token_accuracy:.2f}%{match}"


def measure_quality(model: nn.Module, tokenizer, data: TokenizedData, examples: Sequence[Example], *,
                    batch_size: int, bf16: bool = False) -> Quality:
    """Loss and token accuracy over ``data``; exact match over ``examples`` (none: not measured)."""
    result = evaluate(model, data, tokenizer, batch_size=batch_size, bf16=bf16)
    match = exact_match(model, tokenizer, examples) if examples else None
    return Quality(result.loss, result.token_accuracy, match)
