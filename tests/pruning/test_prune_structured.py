"""Structured pruning removes FFN neurons / attention heads, shrinks the layers and the config: the shrunken model
computes what the unpruned model computes with those units zeroed (FFN) or left out (heads), and it saves and loads
as an ordinary smaller model."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import apt_fast
from apt_fast.pruning import MagnitudePruneConfig, StructuredPruneConfig, prune
from apt_fast.reference.apt_attention import autopoietic_attention_ref

# Removing hidden neurons whose contribution is exactly zero only changes the summation order of the matmuls that
# read them: fp32 reordering error is about K * eps * max|term| (K <= 64 here, eps = 1.2e-7), below 1e-5 relative.
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def _ids():
    generator = torch.Generator().manual_seed(3)
    return torch.randint(3, 40, (2, 9), generator=generator), torch.randint(3, 40, (2, 6), generator=generator)


def _zero_ffn_neurons(model, report):
    """The unpruned model with the removed neurons' output columns zeroed (so they contribute nothing)."""
    with torch.no_grad():
        for entry in report.layers:
            if entry.removed_columns:
                model.get_submodule(entry.name).weight[:, list(entry.removed_columns)] = 0.0
    return model


def test_ffn_shrink_equals_zeroed_neurons_in_an_mlp(make_mlp):
    model = make_mlp(37, 53, 29, 7)
    zeroed = copy.deepcopy(model)
    report = prune(model, StructuredPruneConfig(0.3, target="ffn"))
    assert [tuple(m.weight.shape) for m in (model[0], model[2], model[4])] == [(37, 37), (20, 37), (7, 20)]
    assert report.layer("0").removed_rows == report.layer("2").removed_columns
    assert len(report.layer("2").removed_rows) == 9 and report.layer("2").pattern == (
        "FFN neurons 37/53 (columns); FFN neurons 20/29 (rows)")
    assert report.layer("2").kept == 20 * 37 and report.layer("2").total == 29 * 53
    x = torch.randn(11, 37)
    torch.testing.assert_close(model(x), _zero_ffn_neurons(zeroed, report)(x), **TOLERANCE)


def test_ffn_removes_the_neurons_of_smallest_norm_product(make_mlp):
    model = make_mlp(16, 24, 8)
    w1, b1, w2 = model[0].weight.detach().clone(), model[0].bias.detach().clone(), model[2].weight.detach().clone()
    report = prune(model, StructuredPruneConfig(0.25, target="ffn"))
    scores = (w1.pow(2).sum(1) + b1.pow(2)).sqrt() * w2.norm(dim=0)
    assert sorted(report.layer("0").removed_rows) == sorted(scores.argsort()[:6].tolist())


def test_ffn_shrink_of_the_apt_model(make_apt, tmp_path):
    model = make_apt()
    zeroed = copy.deepcopy(model)
    report = prune(model, StructuredPruneConfig(0.25, target="ffn"))
    assert model.config.d_ff == 36 and zeroed.config.d_ff == 48
    assert model.encoder_layers[0].linear1.weight.shape == (36, 32)
    assert model.decoder_layers[0].linear2.weight.shape == (32, 36)
    assert {x.name for x in report.layers} == {f"{s}_layers.0.linear{i}" for s in ("encoder", "decoder")
                                               for i in (1, 2)}
    assert report.notes[0] == "config.d_ff: 48 -> 36, the same in every layer (the config holds one d_ff)"
    src, tgt = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt), _zero_ffn_neurons(zeroed, report)(src, tgt), **TOLERANCE)
        apt_fast.save(model, tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded, _ = apt_fast.load(tmp_path)
        assert loaded.config.d_ff == 36
        assert torch.equal(loaded(src, tgt), model(src, tgt))


def _attention_with_heads(attention, heads, x):
    """The unpruned attention computed with only ``heads`` (their q/k/v rows and out_proj columns)."""
    d = attention.head_dim
    rows = torch.cat([torch.arange(h * d, h * d + d) for h in heads])
    batch, length, _ = x.shape

    def project(linear):
        return (x @ linear.weight[rows].T + linear.bias[rows]).view(batch, length, len(heads), d).transpose(1, 2)

    out, _ = autopoietic_attention_ref(project(attention.q_proj), project(attention.k_proj),
                                       project(attention.v_proj), attention.sr_conv1.weight, attention.sr_conv1.bias,
                                       attention.sr_conv2.weight, attention.sr_conv2.bias, attention.tau,
                                       epsilon=attention.epsilon)
    merged = out.transpose(1, 2).reshape(batch, length, len(heads) * d)
    return merged @ attention.out_proj.weight[:, rows].T + attention.out_proj.bias


def test_head_pruning_of_the_apt_model(make_apt, tmp_path):
    model = make_apt()
    original = copy.deepcopy(model)
    report = prune(model, StructuredPruneConfig(0.5, target="heads"))
    assert (model.config.num_heads, model.config.head_dim, model.config.d_model) == (2, 8, 32)
    assert report.notes[0] == ("config.num_heads: 4 -> 2, the same in every layer (the config holds one num_heads); "
                               "config.head_dim = 8")
    x = torch.randn(2, 5, 32)
    for path in ("encoder_layers.0.self_attn", "decoder_layers.0.self_attn", "decoder_layers.0.multihead_attn"):
        pruned = model.get_submodule(path)
        assert pruned.num_heads == 2 and pruned.q_proj.weight.shape == (16, 32)
        assert pruned.out_proj.weight.shape == (32, 16)
        removed_rows = report.layer(f"{path}.q_proj").removed_rows
        assert report.layer(f"{path}.out_proj").removed_columns == removed_rows
        removed_heads = sorted({row // 8 for row in removed_rows})
        kept_heads = [h for h in range(4) if h not in removed_heads]
        with torch.no_grad():
            want = _attention_with_heads(original.get_submodule(path), kept_heads, x)
            torch.testing.assert_close(pruned(x, x, x)[0], want, **TOLERANCE)
    src, tgt = _ids()
    with torch.no_grad():
        apt_fast.save(model, tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded, _ = apt_fast.load(tmp_path)
        assert (loaded.config.num_heads, loaded.config.head_dim) == (2, 8)
        assert torch.equal(loaded(src, tgt), model(src, tgt))
        expected = model(src, tgt)
        apt_fast.patch(model)  # the fused attention takes the smaller heads too
        torch.testing.assert_close(model(src, tgt), expected, rtol=1e-4, atol=1e-5)


def test_heads_removed_have_the_smallest_norm(make_apt):
    model = make_apt()
    attention = model.encoder_layers[0].self_attn
    squares = sum(getattr(attention, n).weight.detach().pow(2).sum(1) + getattr(attention, n).bias.detach().pow(2)
                  for n in ("q_proj", "k_proj", "v_proj")) + attention.out_proj.weight.detach().pow(2).sum(0)
    weakest = int(squares.view(4, 8).sum(1).argmin())
    report = prune(model, StructuredPruneConfig(0.25, target="heads"))
    assert report.layer("encoder_layers.0.self_attn.k_proj").removed_rows == tuple(range(weakest * 8,
                                                                                        weakest * 8 + 8))


def test_structured_keeps_the_dbc_gradient_hooks(make_apt):
    model = make_apt(use_dbc_dac=True)
    prune(model, StructuredPruneConfig(0.25, target="ffn"))
    assert getattr(model.encoder_layers[0].linear1.weight, "_apt_dbc_dac_hook", False)


def test_a_layer_left_empty_is_an_error(make_apt, make_mlp):
    model = make_apt()
    with pytest.raises(ValueError) as info:
        prune(model, StructuredPruneConfig(0.99, target="ffn"))
    assert str(info.value) == ("ratio must be < 0.989583 to leave at least one of the 48 FFN neurons of "
                               "encoder_layers.0, got 0.99")
    with pytest.raises(ValueError) as info:
        prune(model, StructuredPruneConfig(0.9, target="heads"))
    assert str(info.value) == ("ratio must be < 0.875 to leave at least one of the 4 attention heads of "
                               "encoder_layers.0.self_attn, got 0.9")
    assert model.encoder_layers[0].linear1.weight.shape == (48, 32) and model.config.num_heads == 4
    with pytest.raises(ValueError) as info:
        prune(make_mlp(8, 3, 2), StructuredPruneConfig(0.9))
    assert str(info.value) == "ratio must be < 0.833333 to leave at least one of the 3 FFN neurons of 0 -> 2, got 0.9"


def test_models_without_the_target_units(make_mlp):
    with pytest.raises(ValueError) as info:
        prune(make_mlp(8, 8), StructuredPruneConfig(0.5, target="ffn"))
    assert str(info.value) == ("target 'ffn' needs feed-forward pairs of nn.Linear layers (linear1 / linear2, or "
                               "linear layers of an nn.Sequential with only elementwise modules between them); the "
                               "model has none")
    with pytest.raises(ValueError) as info:
        prune(make_mlp(8, 8, 8), StructuredPruneConfig(0.5, target="heads"))
    assert str(info.value) == ("target 'heads' needs attention modules with nn.Linear q_proj / k_proj / v_proj / "
                               "out_proj and int num_heads and head_dim; the model has none")


def test_structured_refuses_masked_layers(make_mlp):
    model = make_mlp(8, 16, 4)
    prune(model, MagnitudePruneConfig(0.5))
    with pytest.raises(ValueError) as info:
        prune(model, StructuredPruneConfig(0.5))
    assert str(info.value) == ("model must carry no pruning masks for structured pruning, got masks on 0, 2; prune "
                               "structurally first, or call apt_fast.pruning.remove_masks(model)")
