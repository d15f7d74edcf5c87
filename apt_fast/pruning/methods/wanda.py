"""Wanda: |w[n, k]| * ||x[:, k]||_2 from calibration activations, the lowest ``ratio`` of each output row pruned."""

from __future__ import annotations

from ..apply import magnitudes, mask_layers, scores_after_previous, tied_left_dense
from ..calibration import check_calibration, input_column_norms
from ..configs import WandaPruneConfig
from ..registry import pruning_method
from ..selection import count_to_prune, lowest_per_row


@pruning_method(WandaPruneConfig)
def wanda(model, config: WandaPruneConfig, calibration, layers):
    check_calibration(config, calibration)
    norms, batches = input_column_norms(model, [layer.module for layer in layers.linears], calibration)
    keep = []
    for layer, norm in zip(layers.linears, norms):
        scores = scores_after_previous(layer, magnitudes(layer) * norm[None, :])  # [N, K]
        pruned = lowest_per_row(scores, count_to_prune(config.ratio, layer.module.in_features))
        keep.append((layer, ~pruned, "unstructured, Wanda, per output row"))
    skipped = list(layers.skipped) + tied_left_dense(layers, "only MagnitudePruneConfig(embedding_ratio=...) "
                                                             "prunes it")
    return mask_layers(repr(config), keep, skipped, [f"input norms over {batches} calibration batch(es)"])
