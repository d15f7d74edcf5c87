"""Block pruning: the weight's (rows x inputs) tiles of smallest L2 norm are removed whole."""

from __future__ import annotations

import torch

from ..apply import magnitudes, mask_layers, scores_after_previous, tied_left_dense
from ..configs import BlockPruneConfig
from ..layers import Layer
from ..registry import pruning_method
from ..selection import count_to_prune, lowest


def _check_tiles(layer: Layer, block) -> None:
    rows, cols = layer.module.weight.shape
    if rows % block[0] or cols % block[1]:
        raise ValueError(f"block {block} must tile the weight of {layer.path}: weight shape {(rows, cols)} is not a "
                         f"multiple of {block}; choose another block or leave the layer out with filter_fn")


def block_keep(scores: torch.Tensor, block, ratio: float) -> torch.Tensor:  # [N, K] -> [N, K] bool
    """Keep-mask that removes ``ratio`` of the tiles, those of smallest L2 norm of ``scores`` (|w|); a tile whose
    scores are all negative (pruned before) goes first."""
    bn, bk = block
    rows, cols = scores.shape
    tiles = scores.reshape(rows // bn, bn, cols // bk, bk)  # [N/bn, bn, K/bk, bk]
    norms = tiles.clamp(min=0).pow(2).sum(dim=(1, 3)).sqrt()  # [N/bn, K/bk]
    norms = norms.masked_fill((tiles < 0).all(dim=3).all(dim=1), -1.0)
    pruned = lowest([norms], count_to_prune(ratio, norms.numel()))[0]
    return (~pruned).repeat_interleave(bn, dim=0).repeat_interleave(bk, dim=1)


@pruning_method(BlockPruneConfig)
def block(model, config: BlockPruneConfig, calibration, layers):
    for layer in layers.linears:
        _check_tiles(layer, config.block)
    pattern = f"block {config.block[0]}x{config.block[1]}"
    keep = [(layer, block_keep(scores_after_previous(layer, magnitudes(layer)), config.block, config.ratio), pattern)
            for layer in layers.linears]
    skipped = list(layers.skipped) + tied_left_dense(layers, "only MagnitudePruneConfig(embedding_ratio=...) "
                                                             "prunes it")
    return mask_layers(repr(config), keep, skipped)
