"""Masks hold through training: pruned weights stay exactly zero through 20 AdamW steps with weight decay and
momentum gathered before pruning; gradients are masked; the state_dict holds weight (zeros) + weight_mask;
remove_masks makes it permanent; apt_fast.load reads the masks back into the weights and refuses a mask that does
not fit its weight."""

from __future__ import annotations

import copy
import json
import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import apt_fast
from apt_fast.models.apt.errors import CheckpointError
from apt_fast.pruning import MagnitudePruneConfig, NMPruneConfig, mask_of, masked_layers, prune, remove_masks


def _mlp_step(model, optimizer, generator):
    x, y = torch.randn(8, 40, generator=generator), torch.randn(8, 5, generator=generator)
    optimizer.zero_grad()
    F.mse_loss(model(x), y).backward()
    optimizer.step()


def _apt_step(model, optimizer, batch):
    optimizer.zero_grad()
    model(**batch).loss.backward()
    optimizer.step()


def _pruned_are_zero(model):
    return all(bool((m.weight[~mask_of(m)] == 0).all()) for m in masked_layers(model).values())


@pytest.mark.parametrize("fused", [False, True])
def test_mlp_masks_hold_through_adamw_with_momentum_from_before(make_mlp, fused):
    model = make_mlp(40, 24, 5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, fused=fused)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):  # momentum and second moments for every weight, before pruning
        _mlp_step(model, optimizer, generator)
    prune(model, MagnitudePruneConfig(0.5))
    kept_before = model[0].weight[mask_of(model[0])].detach().clone()
    for _ in range(20):
        _mlp_step(model, optimizer, generator)
        assert _pruned_are_zero(model)
        for layer in (model[0], model[2]):
            assert bool((layer.weight.grad[~mask_of(layer)] == 0).all())
    assert not torch.equal(model[0].weight[mask_of(model[0])], kept_before)  # the kept weights trained


def test_apt_masks_hold_through_adamw_including_the_tied_embedding(make_apt, batches):
    model = make_apt(use_dbc_dac=True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    data = batches(count=2)
    for batch in data:
        _apt_step(model, optimizer, batch)
    prune(model, MagnitudePruneConfig(0.5, embedding_ratio=0.2))
    assert "output_projection" in masked_layers(model)
    for step in range(20):
        _apt_step(model, optimizer, data[step % 2])
        assert _pruned_are_zero(model)
        assert bool((model.token_embedding.weight[~mask_of(model.output_projection)] == 0).all())
    assert model.output_projection.weight is model.token_embedding.weight


def test_other_optimizers_and_parameters_are_untouched(make_mlp):
    pruned, other = make_mlp(8, 8), make_mlp(8, 8)
    prune(pruned, MagnitudePruneConfig(0.5))
    zeroed = other[0].weight.detach().clone()
    zeroed[0, 0] = 0.0
    optimizer = torch.optim.SGD(other.parameters(), lr=0.0)
    with torch.no_grad():
        other[0].weight.copy_(zeroed)
    other(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    assert torch.equal(other[0].weight, zeroed)


def test_state_dict_keys_and_remove_masks(make_mlp):
    model = make_mlp(40, 24, 5)
    prune(model, NMPruneConfig(2, 4))
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "0.weight_mask", "2.weight", "2.bias", "2.weight_mask"]
    assert state["0.weight_mask"].dtype == torch.bool
    assert torch.equal(state["0.weight"] == 0, ~state["0.weight_mask"] | (state["0.weight"] == 0))
    fresh = make_mlp(40, 24, 5)
    prune(fresh, MagnitudePruneConfig(0.9))
    fresh.load_state_dict(state)  # a masked model of the same layout takes the masks and weights
    assert torch.equal(mask_of(fresh[0]), state["0.weight_mask"])
    zeros = model[0].weight == 0
    assert remove_masks(model) == ["0", "2"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"] and not masked_layers(model)
    assert torch.equal(model[0].weight == 0, zeros)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(4, 40)).pow(2).sum().backward()
    optimizer.step()
    assert int((model[0].weight == 0).sum()) < int(zeros.sum())  # permanent, no longer held at zero


def _save_masked_apt(model, path):
    prune(model, MagnitudePruneConfig(0.5, embedding_ratio=0.25))
    apt_fast.save(model, path)
    return path


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return apt_fast.load(path)[0]


def test_masked_apt_model_saves_and_loads(make_apt, tmp_path):
    model = make_apt()
    _save_masked_apt(model, tmp_path)
    assert "encoder_layers.0.linear1.weight_mask" in load_file(os.path.join(tmp_path, "model.safetensors"))
    loaded = _load(tmp_path)
    assert not masked_layers(loaded)
    for name, tensor in model.state_dict().items():
        if not name.endswith("weight_mask"):
            assert torch.equal(loaded.state_dict()[name], tensor), name
    ids = torch.randint(3, 40, (2, 5))
    with torch.no_grad():
        assert torch.equal(loaded(ids, ids), model(ids, ids))


def _rewrite(path, change):
    weights = os.path.join(path, "model.safetensors")
    state = load_file(weights)
    change(state)
    save_file(state, weights, metadata={"format": "pt"})


def test_load_refuses_a_mask_of_another_shape(make_apt, tmp_path):
    _save_masked_apt(make_apt(), tmp_path)
    _rewrite(tmp_path, lambda s: s.update({"encoder_layers.0.linear1.weight_mask": torch.ones(32, 48,
                                                                                             dtype=torch.bool)}))
    with pytest.raises(ValueError) as info:
        _load(tmp_path)
    assert isinstance(info.value, CheckpointError)
    assert str(info.value) == (f"{tmp_path}/model.safetensors: pruning mask encoder_layers.0.linear1.weight_mask must "
                               f"have the shape of its weight, (48, 32), got (32, 48)")


def test_load_refuses_a_tied_mask_of_another_shape(make_apt, tmp_path):
    _save_masked_apt(make_apt(), tmp_path)
    _rewrite(tmp_path, lambda s: s.update({"output_projection.weight_mask": torch.ones(40, 31, dtype=torch.bool)}))
    with pytest.raises(CheckpointError, match=r"pruning mask output_projection.weight_mask must have the shape of "
                                              r"its weight, \(40, 32\), got \(40, 31\)$"):
        _load(tmp_path)


def test_load_refuses_upstream_masks_that_do_not_fit(make_apt, tmp_path):
    model = make_apt()
    state = model.state_dict()
    weight = state.pop("encoder_layers.0.linear2.weight")
    state["encoder_layers.0.linear2.weight_orig"] = weight
    state["encoder_layers.0.linear2.weight_mask"] = torch.ones(32, 47)
    torch.save(state, tmp_path / "model.pt")
    (tmp_path / "config.json").write_text(json.dumps(dict(num_heads=4, epsilon=0.08)))
    with pytest.raises(CheckpointError) as info:
        _load(tmp_path)
    assert str(info.value) == (f"{tmp_path}/model.pt: pruning mask encoder_layers.0.linear2.weight_mask must have "
                               f"the shape of its weight, (32, 48), got (32, 47)")
    state["encoder_layers.0.linear2.weight_mask"] = torch.full((32, 48), 0.5)
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"weight_mask must hold only 0 and 1, got values such as 0.5$"):
        _load(tmp_path)
    state["encoder_layers.0.linear2.weight_mask"] = (torch.rand(32, 48) > 0.5).float()
    torch.save(state, tmp_path / "model.pt")
    loaded = _load(tmp_path)
    assert torch.equal(loaded.encoder_layers[0].linear2.weight, weight * state["encoder_layers.0.linear2.weight_mask"])


def test_a_deep_copy_keeps_its_masks_through_training(make_mlp):
    model = make_mlp(40, 24, 5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        _mlp_step(model, optimizer, generator)
    prune(model, MagnitudePruneConfig(0.5))
    copied = copy.deepcopy(model)
    copied_optimizer = torch.optim.AdamW(copied.parameters(), lr=1e-2, weight_decay=0.1)
    copied_optimizer.load_state_dict(optimizer.state_dict())  # the momentum from before pruning comes along
    for _ in range(5):
        _mlp_step(copied, copied_optimizer, generator)
        assert bool((copied[0].weight.grad[~mask_of(copied[0])] == 0).all())
        assert _pruned_are_zero(copied)
    _mlp_step(model, optimizer, generator)
    assert _pruned_are_zero(model)


def test_rewinding_to_dense_weights_keeps_the_masks(make_mlp):
    model = make_mlp(40, 24, 5)
    initial = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        _mlp_step(model, optimizer, generator)
    prune(model, MagnitudePruneConfig(0.6))
    result = model.load_state_dict(initial, strict=False)  # rewind, as lottery-ticket pruning does
    assert result.missing_keys == ["0.weight_mask", "2.weight_mask"] and not result.unexpected_keys
    for layer, name in ((model[0], "0.weight"), (model[2], "2.weight")):
        assert torch.equal(layer.weight, initial[name] * mask_of(layer))
    _mlp_step(model, torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1), generator)
    assert _pruned_are_zero(model)
