"""The demo's quantization stage: the fine-tuned model quantized three ways, scored on the same held-out words,
with the change in loss and exact match against the fp32 model."""

from __future__ import annotations

import copy
from typing import List, Tuple

from .task import Scores, score

SCHEMES = (("int8-weight-only", "Int8WeightOnlyConfig"), ("int8-dynamic", "Int8DynamicConfig"),
           ("fp8-e4m3", "Fp8WeightOnlyConfig"))


def quantized_scores(model, tokenizer, test_path: str) -> List[Tuple[str, Scores, str]]:
    """(scheme, scores, change against fp32) for each scheme, the fp32 model first (change '')."""
    from .. import quantization

    reference = score(model, tokenizer, test_path)
    rows = [("fp32", reference, "")]
    for scheme, config_name in SCHEMES:
        quantized = copy.deepcopy(model)
        quantization.quantize(quantized, getattr(quantization, config_name)())
        scores = score(quantized, tokenizer, test_path)
        loss_change = 100 * (scores.loss - reference.loss) / reference.loss
        match_change = 100 * (scores.exact_match - reference.exact_match)
        rows.append((scheme, scores, f"loss {loss_change:+.2f}%, exact match {match_change:+.1f} points"))
    return rows
