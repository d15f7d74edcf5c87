"""Every method on bf16, fp16 and fp64 models: scores are taken in fp32, the weights keep their dtype, the counts
are exact and the pruned weights are zero."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from apt_fast.pruning import (
    BlockPruneConfig,
    MagnitudePruneConfig,
    NMPruneConfig,
    StructuredPruneConfig,
    TaylorPruneConfig,
    WandaPruneConfig,
    mask_of,
    prune,
)
from apt_fast.pruning.selection import count_to_prune

DTYPES = [torch.bfloat16, torch.float16, torch.float64]


def _batches(dtype):
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 64, generator=generator).to(dtype), torch.randn(4, 32, generator=generator).to(dtype))
            for _ in range(2)]


def _mse(model, batch):
    return F.mse_loss(model(batch[0]).float(), batch[1].float())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("config, per_layer_pruned", [
    (MagnitudePruneConfig(0.5), lambda rows, cols: count_to_prune(0.5, rows * cols)),
    (NMPruneConfig(2, 4), lambda rows, cols: rows * cols // 2),
    (BlockPruneConfig(0.5, (16, 16)), lambda rows, cols: count_to_prune(0.5, rows * cols // 256) * 256),
    (TaylorPruneConfig(0.5, scope="layer", loss_fn=_mse), lambda rows, cols: count_to_prune(0.5, rows * cols)),
    (WandaPruneConfig(0.5), lambda rows, cols: rows * count_to_prune(0.5, cols)),
], ids=["magnitude", "nm", "block", "taylor", "wanda"])
def test_mask_methods_keep_the_dtype(dtype, config, per_layer_pruned, make_mlp):
    model = make_mlp(64, 48, 32).to(dtype)
    calibration = _batches(dtype) if isinstance(config, TaylorPruneConfig) else [x for x, _ in _batches(dtype)]
    report = prune(model, config, calibration=calibration)
    for layer in report.layers:
        module = model.get_submodule(layer.name)
        assert module.weight.dtype == dtype and mask_of(module).dtype == torch.bool
        assert layer.total - layer.kept == per_layer_pruned(*module.weight.shape)
        assert bool((module.weight[~mask_of(module)] == 0).all())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_structured_keeps_the_dtype(dtype, make_mlp):
    model = make_mlp(64, 48, 32).to(dtype)
    prune(model, StructuredPruneConfig(0.25))
    assert model[0].weight.dtype == model[0].bias.dtype == model[2].weight.dtype == dtype
    assert model[0].weight.shape == (36, 64) and model[2].weight.shape == (32, 36)
