"""From scores to masks, and from masks to masked layers and the report: the steps every mask-based method shares.

A layer pruned before (it carries a mask) keeps its pruned entries pruned: their scores are set below every other
score, so a new ratio at least as large as the old sparsity re-selects them first, and the new mask is also ANDed
with the old one.
"""

from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

import torch
from torch import Tensor

from .layers import Layer, ModelLayers
from .masks import attach_mask, mask_of
from .report import LayerPruning, PruneReport
from .selection import count_to_prune, lowest


def scores_after_previous(layer: Layer, scores: Tensor) -> Tensor:  # [N, K] float32 -> [N, K]
    """``scores`` with the entries an earlier pruning removed set to -1 (they go first)."""
    previous = mask_of(layer.module)
    return scores if previous is None else scores.masked_fill(~previous, -1.0)


def unstructured_keep(scored: Sequence[Tuple[Layer, Tensor]], ratio: float, scope: str) -> List[Tuple[Layer, Tensor]]:
    """Keep-masks that prune the lowest ``ratio`` of the scores of each layer (``scope="layer"``) or of all the
    layers together (``"global"``); exact counts, ties in order."""
    if scope == "global":
        scores = [s for _, s in scored]
        pruned = lowest(scores, count_to_prune(ratio, sum(s.numel() for s in scores)))
        return [(layer, ~mask) for (layer, _), mask in zip(scored, pruned)]
    return [(layer, ~lowest([s], count_to_prune(ratio, s.numel()))[0]) for layer, s in scored]


def tied_left_dense(layers: ModelLayers, why: str) -> List[Tuple[str, str]]:
    """Skipped entries for each tied linear layer and its embedding, left dense for the reason ``why``."""
    skipped = []
    for layer in layers.tied:
        skipped.append((layer.path, f"weight tied to the input embedding {layer.tied_to}: {why}"))
        skipped.append((layer.tied_to, f"Embedding: shares its weight with {layer.path}, left dense with it"))
    return skipped


def mask_layers(method: str, keep: Iterable[Tuple[Layer, Tensor, str]], skipped: Sequence[Tuple[str, str]],
                notes: Sequence[str] = ()) -> PruneReport:
    """Attach each (layer, keep-mask [N, K] bool, pattern) and report it."""
    pruned = []
    for layer, mask, pattern in keep:
        previous = mask_of(layer.module)
        mask = mask if previous is None else mask & previous
        attach_mask(layer.module, mask)
        if layer.tied_to is not None:
            pattern = f"{pattern}, tied: {layer.tied_to} shares the mask"
        pruned.append(LayerPruning(layer.path, tuple(mask.shape), int(mask.sum().item()), mask.numel(), pattern))
    return PruneReport(method, tuple(pruned), tuple(skipped), tuple(notes))


def magnitudes(layer: Layer) -> Tensor:  # [N, K] float32
    return layer.module.weight.detach().abs().to(torch.float32)
