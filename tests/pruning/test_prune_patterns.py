"""Magnitude, N:M and block pruning on a tiny APT model and on plain stacks of Linears: exact sparsity per layer
and global, the smallest |w| pruned, the N:M pattern in every group, blocks all-or-nothing, the tied embedding /
output projection pruned once with its own ratio and still tied."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from apt_fast.pruning import BlockPruneConfig, MagnitudePruneConfig, NMPruneConfig, mask_of, prune
from apt_fast.pruning.selection import count_to_prune

LAYER_OF_APT = "encoder_layers.0.linear1"


def _check_smallest_pruned(weight_before, mask):
    """Every pruned |w| <= every kept |w|."""
    magnitude = weight_before.abs()
    assert magnitude[~mask].max() <= magnitude[mask].min()


@pytest.mark.parametrize("model_kind", ["apt", "mlp"])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9])
def test_magnitude_per_layer_is_exact(model_kind, ratio, make_apt, make_mlp, linear_layers):
    model = make_apt() if model_kind == "apt" else make_mlp(37, 53, 29, 7)
    before = {path: m.weight.detach().clone() for path, m in linear_layers(model).items()}
    report = prune(model, MagnitudePruneConfig(ratio))
    tied = {"output_projection"} if model_kind == "apt" else set()
    assert {x.name for x in report.layers} == set(before) - tied
    for layer in report.layers:
        module = model.get_submodule(layer.name)
        mask = mask_of(module)
        total = module.weight.numel()
        assert layer.kept == int(mask.sum()) == total - count_to_prune(ratio, total)
        assert layer.total == total and layer.shape == tuple(module.weight.shape)
        assert torch.equal(module.weight == 0, ~mask | (before[layer.name] == 0))
        assert torch.equal(module.weight[mask], before[layer.name][mask])
        if 0 < ratio:
            _check_smallest_pruned(before[layer.name], mask)
    assert report.sparsity == pytest.approx(1 - report.kept / report.total)


@pytest.mark.parametrize("model_kind", ["apt", "mlp"])
def test_magnitude_global_is_exact_over_all_layers(model_kind, make_apt, make_mlp):
    model = make_apt() if model_kind == "apt" else make_mlp(37, 53, 29, 7)
    before = {path: m.weight.detach().abs() for path, m in model.named_modules() if isinstance(m, nn.Linear)}
    report = prune(model, MagnitudePruneConfig(0.6, scope="global"))
    total = sum(x.total for x in report.layers)
    assert report.total - report.kept == count_to_prune(0.6, total)
    assert len({round(x.sparsity, 3) for x in report.layers}) > 1  # one threshold, different sparsities
    kept = torch.cat([before[x.name][mask_of(model.get_submodule(x.name))] for x in report.layers])
    pruned = torch.cat([before[x.name][~mask_of(model.get_submodule(x.name))] for x in report.layers])
    assert pruned.max() <= kept.min()
    if model_kind == "apt":
        assert mask_of(model.output_projection) is None


def test_tied_projection_is_pruned_once_at_its_own_ratio(make_apt):
    model = make_apt()
    embedding_before = model.token_embedding.weight.detach().clone()
    report = prune(model, MagnitudePruneConfig(0.3, scope="global", embedding_ratio=0.1))
    entry = report.layer("output_projection")
    assert entry.total == 40 * 32 and entry.total - entry.kept == count_to_prune(0.1, 40 * 32)
    assert "tied: token_embedding shares the mask" in entry.pattern
    assert model.output_projection.weight is model.token_embedding.weight  # the tie is kept
    pruned = ~mask_of(model.output_projection)
    assert torch.equal(model.token_embedding.weight == 0, pruned | (embedding_before == 0))
    _check_smallest_pruned(embedding_before, ~pruned)
    names = [x.name for x in report.layers]
    assert names.count("output_projection") == 1 and "token_embedding" not in names
    assert "token_embedding" not in [path for path, _ in report.skipped]
    # the global pool at 0.3 would have taken far more of the small N(0, 0.02) embedding (the upstream defect)
    others = [x for x in report.layers if x.name != "output_projection"]
    assert sum(x.total - x.kept for x in others) == count_to_prune(0.3, sum(x.total for x in others))


def test_tied_projection_left_dense_by_default(make_apt):
    model = make_apt()
    report = prune(model, MagnitudePruneConfig(0.5))
    assert mask_of(model.output_projection) is None
    skipped = dict(report.skipped)
    assert skipped["output_projection"] == ("weight tied to the input embedding token_embedding: left dense "
                                            "(embedding_ratio=None)")
    assert skipped["token_embedding"] == "Embedding: shares its weight with output_projection, left dense with it"
    assert skipped["encoder_layers.0.norm1"] == "LayerNorm: normalisation weights are not pruned"
    assert skipped["encoder_layers.0.self_attn.sr_conv1"] == "Conv2d: only nn.Linear weights are pruned"


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8), (1, 4), (3, 8)])
@pytest.mark.parametrize("model_kind", ["apt", "mlp"])
def test_nm_pattern_holds_in_every_group(n, m, model_kind, make_apt, make_mlp):
    model = make_apt() if model_kind == "apt" else make_mlp(40, 56, 24, 5)
    before = {path: mod.weight.detach().clone() for path, mod in model.named_modules() if isinstance(mod, nn.Linear)}
    report = prune(model, NMPruneConfig(n, m))
    for layer in report.layers:
        module = model.get_submodule(layer.name)
        rows, cols = module.weight.shape
        groups = mask_of(module).reshape(rows, cols // m, m)
        assert bool((groups.sum(dim=-1) == n).all())
        assert bool(((module.weight != 0).reshape(rows, cols // m, m).sum(dim=-1) <= n).all())
        assert layer.pattern == f"{n}:{m}" and layer.kept == rows * cols * n // m
        magnitude = before[layer.name].abs().reshape(rows, cols // m, m)
        kept_min = magnitude.masked_fill(~groups, float("inf")).amin(dim=-1)
        pruned_max = magnitude.masked_fill(groups, -1.0).amax(dim=-1)
        assert bool((pruned_max <= kept_min).all())


@pytest.mark.parametrize("block", [(16, 16), (32, 32), (1, 16)])
@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_blocks_are_all_or_nothing(block, ratio, make_mlp):
    model = make_mlp(64, 96, 32)
    before = {i: model[i].weight.detach().clone() for i in (0, 2)}
    report = prune(model, BlockPruneConfig(ratio, block))
    bn, bk = block
    for layer in report.layers:
        module = model.get_submodule(layer.name)
        rows, cols = module.weight.shape
        tiles = mask_of(module).reshape(rows // bn, bn, cols // bk, bk)
        any_kept, all_kept = tiles.any(dim=3).any(dim=1), tiles.all(dim=3).all(dim=1)
        assert torch.equal(any_kept, all_kept)
        blocks = (rows // bn) * (cols // bk)
        assert blocks - int(all_kept.sum()) == count_to_prune(ratio, blocks)
        norms = before[int(layer.name)].reshape(rows // bn, bn, cols // bk, bk).pow(2).sum(dim=(1, 3))
        if all_kept.any():
            assert norms[~all_kept].max() <= norms[all_kept].min()
        assert layer.pattern == f"block {bn}x{bk}"


def test_block_on_the_apt_model(make_apt):
    model = make_apt()  # D = 32, d_ff = 48: 16x16 tiles fit every layer
    report = prune(model, BlockPruneConfig(0.5, (16, 16)))
    assert len(report.layers) == 16
    for layer in report.layers:
        rows, cols = layer.shape
        assert layer.total - layer.kept == count_to_prune(0.5, rows * cols // 256) * 256


def test_filter_fn_selects_layers(make_mlp):
    model = make_mlp(40, 30, 8)  # K = 30 does not fit 2:4: leave that layer out
    report = prune(model, NMPruneConfig(2, 4), filter_fn=lambda module, path: module.in_features % 4 == 0)
    assert [x.name for x in report.layers] == ["0"]
    assert dict(report.skipped)["2"] == "not selected by filter_fn"
    assert mask_of(model[2]) is None


def test_pruning_again_keeps_what_was_pruned(make_mlp):
    model = make_mlp(64, 64)
    prune(model, MagnitudePruneConfig(0.5))
    first = mask_of(model[0]).clone()
    report = prune(model, MagnitudePruneConfig(0.7))
    second = mask_of(model[0])
    assert not bool((second & ~first).any())
    assert report.layers[0].total - report.layers[0].kept == count_to_prune(0.7, 64 * 64)
    report = prune(model, NMPruneConfig(2, 4))  # a 2:4 mask on top keeps the earlier zeros
    assert not bool((mask_of(model[0]) & ~second).any())
