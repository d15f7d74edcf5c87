"""N:M pruning: the n largest |w| of every m consecutive inputs of each row are kept."""

from __future__ import annotations

import torch

from ..apply import magnitudes, mask_layers, scores_after_previous, tied_left_dense
from ..configs import NMPruneConfig
from ..registry import pruning_method


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:  # [N, K] -> [N, K] bool
    """True at the n highest scores of each group of m consecutive columns (ties: lower column first)."""
    rows, cols = scores.shape
    groups = scores.reshape(rows, cols // m, m)  # [N, K/m, m]
    order = groups.argsort(dim=-1, descending=True, stable=True)[..., :n]  # [N, K/m, n]
    return torch.zeros(groups.shape, dtype=torch.bool, device=scores.device).scatter_(-1, order, True).reshape(
        rows, cols)


@pruning_method(NMPruneConfig)
def nm(model, config: NMPruneConfig, calibration, layers):
    for layer in layers.linears:
        if layer.module.in_features % config.m != 0:
            raise ValueError(f"m={config.m} must divide in_features of {layer.path} for {config.n}:{config.m} "
                             f"pruning, got in_features {layer.module.in_features} (weight shape "
                             f"{tuple(layer.module.weight.shape)}); leave the layer out with filter_fn")
    pattern = f"{config.n}:{config.m}"
    keep = [(layer, nm_keep(scores_after_previous(layer, magnitudes(layer)), config.n, config.m), pattern)
            for layer in layers.linears]
    skipped = list(layers.skipped) + tied_left_dense(layers, "only MagnitudePruneConfig(embedding_ratio=...) "
                                                             "prunes it")
    return mask_layers(repr(config), keep, skipped)
