"""Taylor (|w * dL/dw| summed over calibration batches) and Wanda (|w| * ||x_col||_2 per output row) on plain
Linears and on the APT model: the scores match a hand computation, the counts are exact, the model is left as it
was (mode, requires_grad, .grad), and Taylor selects exactly above 2^24 scores."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from apt_fast.pruning import MagnitudePruneConfig, TaylorPruneConfig, WandaPruneConfig, mask_of, prune, selection
from apt_fast.pruning.selection import count_to_prune


def _mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def _mlp_batches(count=3):
    generator = torch.Generator().manual_seed(5)
    return [(torch.randn(6, 37, generator=generator), torch.randn(6, 7, generator=generator)) for _ in range(count)]


def _saliency(model, batches):
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    totals = [torch.zeros_like(m.weight) for m in layers]
    for batch in batches:
        grads = torch.autograd.grad(_mse(model, batch), [m.weight for m in layers])
        for total, m, g in zip(totals, layers, grads):
            total += (m.weight * g).abs().detach()
    return totals


def _stable_lowest(scores, k):
    flat = torch.cat([s.reshape(-1) for s in scores])
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[flat.argsort(stable=True)[:k]] = True
    return [c.view(s.shape) for c, s in zip(chosen.split([s.numel() for s in scores]), scores)]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_taylor_prunes_the_lowest_saliency(scope, make_mlp):
    model = make_mlp(37, 53, 29, 7)
    model.train()
    batches = _mlp_batches()
    saliency = _saliency(model, batches)
    report = prune(model, TaylorPruneConfig(0.4, scope=scope, loss_fn=_mse), calibration=batches)
    layers = [model[0], model[2], model[4]]
    if scope == "global":
        expected = _stable_lowest(saliency, count_to_prune(0.4, sum(s.numel() for s in saliency)))
    else:
        expected = [_stable_lowest([s], count_to_prune(0.4, s.numel()))[0] for s in saliency]
    for layer, pruned in zip(layers, expected):
        assert torch.equal(~mask_of(layer), pruned)
    assert report.total - report.kept == sum(int(p.sum()) for p in expected)
    assert model.training and all(m.weight.grad is None for m in layers)


def test_taylor_on_the_apt_model_uses_the_loss_of_batches_with_labels(make_apt, batches):
    model = make_apt()
    model.encoder_layers[0].linear1.weight.requires_grad_(False)  # frozen weights are scored too
    report = prune(model, TaylorPruneConfig(0.5), calibration=batches())
    assert report.total - report.kept == count_to_prune(0.5, report.total)
    assert mask_of(model.output_projection) is None
    assert dict(report.skipped)["output_projection"].startswith("weight tied to the input embedding token_embedding")
    assert not model.training and not model.encoder_layers[0].linear1.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_taylor_across_many_chunks(make_mlp, monkeypatch):
    monkeypatch.setattr(selection, "CHUNK", 100)
    model = make_mlp(37, 53, 29, 7)
    batches = _mlp_batches()
    expected = _stable_lowest(_saliency(model, batches), count_to_prune(0.7, 37 * 53 + 53 * 29 + 29 * 7))
    prune(model, TaylorPruneConfig(0.7, loss_fn=_mse), calibration=batches)
    for layer, pruned in zip((model[0], model[2], model[4]), expected):
        assert torch.equal(~mask_of(layer), pruned)


def test_taylor_above_2_to_the_24_scores():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4097, 4097, bias=False))  # 16,785,409 > 2^24 weights: one score each
    batch = (torch.randn(2, 4097), torch.randn(2, 4097))
    report = prune(model, TaylorPruneConfig(0.5, loss_fn=_mse), calibration=[batch])
    assert report.layers[0].total == 4097 * 4097 > 2 ** 24
    assert report.total - report.kept == count_to_prune(0.5, 4097 * 4097)


def _inputs_of(model, batches):
    """Every Linear's inputs over all batches, [tokens, K] each."""
    seen = {}
    handles = [m.register_forward_hook(lambda m, i, o: seen.setdefault(m, []).append(i[0].reshape(-1, i[0].shape[-1])))
               for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for handle in handles:
        handle.remove()
    return {m: torch.cat(x) for m, x in seen.items()}


def test_wanda_prunes_the_lowest_of_each_row(make_mlp):
    model = make_mlp(37, 53, 29, 7)
    batches = [x for x, _ in _mlp_batches()]
    inputs = _inputs_of(model, batches)
    before = {m: m.weight.detach().clone() for m in inputs}
    report = prune(model, WandaPruneConfig(0.5), calibration=batches)
    for layer in report.layers:
        module = model.get_submodule(layer.name)
        scores = before[module].abs() * inputs[module].pow(2).sum(0).sqrt()  # [N, K]
        keep = mask_of(module)
        per_row = count_to_prune(0.5, module.in_features)
        assert bool(((~keep).sum(dim=1) == per_row).all())
        assert bool((scores.masked_fill(keep, -1).amax(1) <= scores.masked_fill(~keep, float("inf")).amin(1)).all())
        assert layer.pattern == "unstructured, Wanda, per output row"


def test_wanda_on_the_apt_model(make_apt, batches):
    model = make_apt()
    report = prune(model, WandaPruneConfig(0.3), calibration=batches())
    for layer in report.layers:
        module = model.get_submodule(layer.name)
        assert bool(((~mask_of(module)).sum(dim=1) == count_to_prune(0.3, module.in_features)).all())
    assert mask_of(model.output_projection) is None and not model.training


def test_data_methods_respect_earlier_masks(make_mlp):
    model = make_mlp(37, 53, 29, 7)
    prune(model, MagnitudePruneConfig(0.5))
    first = mask_of(model[2]).clone()
    prune(model, WandaPruneConfig(0.6), calibration=[x for x, _ in _mlp_batches()])
    assert not bool((mask_of(model[2]) & ~first).any())
