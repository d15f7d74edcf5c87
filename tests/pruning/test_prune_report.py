"""PruneReport: a frozen record per layer, overall sparsity over the pruned layers, and a printable table."""

from __future__ import annotations

import dataclasses

import pytest

from apt_fast.pruning import LayerPruning, MagnitudePruneConfig, PruneReport, prune


def test_table_of_a_pruned_mlp(make_mlp):
    report = prune(make_mlp(37, 53, 7), MagnitudePruneConfig(0.5), filter_fn=lambda module, path: path != "2")
    assert str(report) == report.table() == "\n".join([
        "apt_fast.prune MagnitudePruneConfig(ratio=0.5, scope='layer', embedding_ratio=None): 1 layer(s) pruned, "
        "overall sparsity 50.03% (980/1961 weights kept)",
        "  layer  shape  kept/total  sparsity  pattern",
        "  0      53x37    980/1961    50.03%  unstructured",
        "  skipped  not selected by filter_fn (1): 2",
    ])
    assert report.layers == (LayerPruning("0", (53, 37), 980, 1961, "unstructured"),)
    assert report.sparsity == pytest.approx(981 / 1961)


def test_report_is_frozen_and_groups_skipped_modules(make_apt):
    report = prune(make_apt(num_encoder_layers=2), MagnitudePruneConfig(0.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.layers = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.layers[0].kept = 0
    assert ("  skipped  LayerNorm: normalisation weights are not pruned (13): encoder_layers.0.self_attn.sr_layernorm, "
            "encoder_layers.0.norm1, encoder_layers.0.norm2, encoder_layers.1.self_attn.sr_layernorm, "
            "encoder_layers.1.norm1, ") in report.table()
    assert report.layer("decoder_layers.0.linear2").sparsity == 0.5
    with pytest.raises(KeyError, match="no pruned layer named 'output_projection'"):
        report.layer("output_projection")


def test_empty_report():
    report = PruneReport("nothing", ())
    assert report.sparsity == 0.0 and report.kept == report.total == 0
