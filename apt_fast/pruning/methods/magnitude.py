"""Magnitude pruning: the smallest |w|, per layer or global; the tied embedding/output projection at its own ratio."""

from __future__ import annotations

from ..apply import magnitudes, mask_layers, scores_after_previous, tied_left_dense, unstructured_keep
from ..configs import MagnitudePruneConfig
from ..registry import pruning_method
from ..selection import count_to_prune, lowest


@pruning_method(MagnitudePruneConfig)
def magnitude(model, config: MagnitudePruneConfig, calibration, layers):
    scored = [(layer, scores_after_previous(layer, magnitudes(layer))) for layer in layers.linears]
    pattern = "unstructured" if config.scope == "layer" else "unstructured, global"
    keep = [(layer, mask, pattern) for layer, mask in unstructured_keep(scored, config.ratio, config.scope)]
    notes, skipped = [], list(layers.skipped)
    if config.scope == "global":
        notes.append(f"scope global: one threshold over {len(scored)} layers, so their sparsities differ; the "
                     "tied embedding/output projection is outside the pool")
    if config.embedding_ratio is None:
        skipped += tied_left_dense(layers, "left dense (embedding_ratio=None)")
    for layer in layers.tied if config.embedding_ratio is not None else ():
        scores = scores_after_previous(layer, magnitudes(layer))
        pruned = lowest([scores], count_to_prune(config.embedding_ratio, scores.numel()))[0]
        keep.append((layer, ~pruned, f"unstructured, embedding_ratio {config.embedding_ratio}"))
    return mask_layers(repr(config), keep, skipped, notes)
