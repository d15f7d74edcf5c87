"""Every bad argument of the pruning configs and of prune() is a ValueError naming the argument, the expected value
and the given one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from apt_fast.pruning import (
    BlockPruneConfig,
    MagnitudePruneConfig,
    NMPruneConfig,
    StructuredPruneConfig,
    TaylorPruneConfig,
    WandaPruneConfig,
    prune,
)


@pytest.mark.parametrize("make, message", [
    (lambda: MagnitudePruneConfig(1.0), "ratio must be in [0, 1), got 1.0"),
    (lambda: MagnitudePruneConfig(-0.1), "ratio must be in [0, 1), got -0.1"),
    (lambda: MagnitudePruneConfig("0.5"), "ratio must be a number in [0, 1), got '0.5'"),
    (lambda: MagnitudePruneConfig(True), "ratio must be a number in [0, 1), got True"),
    (lambda: MagnitudePruneConfig(0.5, scope="model"), "scope must be one of 'layer', 'global', got 'model'"),
    (lambda: MagnitudePruneConfig(0.5, embedding_ratio=1.5), "embedding_ratio must be in [0, 1), got 1.5"),
    (lambda: NMPruneConfig(2, 16), "m must be one of 4, 8, got 16"),
    (lambda: NMPruneConfig(4, 4), "n must be an int in [1, 3] (fewer than m=4), got 4"),
    (lambda: NMPruneConfig(0, 8), "n must be an int in [1, 7] (fewer than m=8), got 0"),
    (lambda: BlockPruneConfig(0.5, block=(8, 8)), "block must be one of (16, 16), (32, 32), (1, 16), got (8, 8)"),
    (lambda: BlockPruneConfig(1.0), "ratio must be in [0, 1), got 1.0"),
    (lambda: StructuredPruneConfig(0.5, target="layers"), "target must be one of 'ffn', 'heads', got 'layers'"),
    (lambda: StructuredPruneConfig(2), "ratio must be in [0, 1), got 2"),
    (lambda: TaylorPruneConfig(1), "ratio must be in [0, 1), got 1"),
    (lambda: TaylorPruneConfig(0.5, loss_fn="mse"),
     "loss_fn must be None or a callable (model, batch) -> scalar loss, got str"),
    (lambda: WandaPruneConfig(float("nan")), "ratio must be in [0, 1), got nan"),
])
def test_bad_config(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


def test_configs_are_frozen_and_block_lists_become_tuples():
    config = BlockPruneConfig(0.5, block=[1, 16])
    assert config.block == (1, 16)
    with pytest.raises(AttributeError):
        config.ratio = 0.1


def test_unknown_config():
    with pytest.raises(ValueError) as info:
        prune(nn.Linear(4, 4), {"ratio": 0.5})
    assert str(info.value) == ("config must be one of MagnitudePruneConfig, NMPruneConfig, BlockPruneConfig, "
                               "StructuredPruneConfig, TaylorPruneConfig, WandaPruneConfig, got dict")


@pytest.mark.parametrize("config", [TaylorPruneConfig(0.5), WandaPruneConfig(0.5)], ids=["taylor", "wanda"])
def test_calibration_is_required(config, make_mlp):
    model = make_mlp(8, 8)
    before = model[0].weight.clone()
    with pytest.raises(ValueError) as info:
        prune(model, config)
    assert str(info.value) == (f"calibration must be an iterable of batches for {type(config).__name__} (its scores "
                               f"are measured on data), got None")
    with pytest.raises(ValueError, match="calibration must hold at least one batch, got an empty iterable"):
        prune(model, config, calibration=[])
    assert torch.equal(model[0].weight, before)


def test_nm_needs_in_features_divisible_by_m(make_mlp):
    model = make_mlp(40, 30, 8)  # the second layer has K = 30
    with pytest.raises(ValueError) as info:
        prune(model, NMPruneConfig(2, 4))
    assert str(info.value) == ("m=4 must divide in_features of 2 for 2:4 pruning, got in_features 30 (weight shape "
                               "(8, 30)); leave the layer out with filter_fn")
    assert not any(name.endswith("weight_mask") for name in model.state_dict())  # nothing was pruned


def test_block_must_tile_the_weight(make_mlp):
    model = make_mlp(32, 48, 20)
    with pytest.raises(ValueError) as info:
        prune(model, BlockPruneConfig(0.5, block=(16, 16)))
    assert str(info.value) == ("block (16, 16) must tile the weight of 2: weight shape (20, 48) is not a multiple of "
                               "(16, 16); choose another block or leave the layer out with filter_fn")
    assert not any(name.endswith("weight_mask") for name in model.state_dict())


def test_taylor_needs_a_scalar_loss(make_mlp):
    with pytest.raises(ValueError) as info:
        prune(make_mlp(8, 4), TaylorPruneConfig(0.5), calibration=[torch.randn(3, 8)])
    assert str(info.value) == ("each calibration batch must give a scalar loss (the model's output, its .loss with "
                               "labels in the batch, or TaylorPruneConfig(loss_fn=...)), got a tensor of shape (3, 4)")
