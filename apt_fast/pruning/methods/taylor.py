"""Taylor pruning: first-order saliency |w * dL/dw| summed over calibration batches, per layer or global."""

from __future__ import annotations

from ..apply import mask_layers, scores_after_previous, tied_left_dense, unstructured_keep
from ..calibration import check_calibration, taylor_saliency
from ..configs import TaylorPruneConfig
from ..registry import pruning_method


@pruning_method(TaylorPruneConfig)
def taylor(model, config: TaylorPruneConfig, calibration, layers):
    check_calibration(config, calibration)
    saliency, batches = taylor_saliency(model, [layer.module for layer in layers.linears], calibration, config.loss_fn)
    scored = [(layer, scores_after_previous(layer, s)) for layer, s in zip(layers.linears, saliency)]
    pattern = "unstructured, Taylor" + (", global" if config.scope == "global" else "")
    keep = [(layer, mask, pattern) for layer, mask in unstructured_keep(scored, config.ratio, config.scope)]
    skipped = list(layers.skipped) + tied_left_dense(layers, "only MagnitudePruneConfig(embedding_ratio=...) "
                                                             "prunes it")
    return mask_layers(repr(config), keep, skipped, [f"saliency summed over {batches} calibration batch(es)"])
