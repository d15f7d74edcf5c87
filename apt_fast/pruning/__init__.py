"""Pruning of nn.Linear weights: magnitude (per layer or global, the tied embedding/output projection at its own
ratio), N:M, block, structured (FFN neurons or attention heads, physically removed), Taylor and Wanda.

    report = apt_fast.pruning.prune(model, apt_fast.pruning.MagnitudePruneConfig(0.5))
    print(report)                              # per-layer table: shape, kept/total, sparsity, pattern, skipped
    ...train: pruned weights stay exactly zero (masks.py)...
    apt_fast.pruning.remove_masks(model)       # make it permanent
"""

from .configs import (
    BlockPruneConfig,
    MagnitudePruneConfig,
    NMPruneConfig,
    StructuredPruneConfig,
    TaylorPruneConfig,
    WandaPruneConfig,
)
from .masks import mask_of, masked_layers, remove_masks
from .prune import prune
from .report import LayerPruning, PruneReport

__all__ = ["BlockPruneConfig", "LayerPruning", "MagnitudePruneConfig", "NMPruneConfig", "PruneReport",
           "StructuredPruneConfig", "TaylorPruneConfig", "WandaPruneConfig", "mask_of", "masked_layers", "prune",
           "remove_masks"]
