"""The dispatcher's rule: a pruned layer is converted when the sparse kernel wins at some row count, each row count
takes the faster path, and a layer left dense is reported with the speedup measured at every row count. Timings are
injected, so no test depends on this machine's speed."""

import pytest
import torch
from torch import nn

from apt_fast import sparsify
from apt_fast.modules.sparse_linear import SparseLinear
from apt_fast.sparsity import dispatch
from apt_fast.sparsity.formats import pack


def timing(speedup_at):
    """An injected measure: ``speedup_at(M)`` -> dense time / sparse time (dense takes 1 s)."""
    return lambda sparse_round, dense_round, x: (1.0 / speedup_at(x.shape[0]), 1.0)


def mask_for(shape) -> torch.Tensor:  # [N, K] bool, about half kept
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)) >= 0.5


def pruned_linear(shape, mask: torch.Tensor) -> nn.Linear:
    torch.manual_seed(0)
    linear = nn.Linear(shape[1], shape[0])
    with torch.no_grad():
        linear.weight.mul_(mask)
    return linear


def _stack():
    mask = mask_for((48, 64))
    return nn.Sequential(pruned_linear((48, 64), mask))


def test_a_layer_that_wins_only_above_decode_rows_is_converted_with_a_dense_decode_route():
    model = _stack()
    x = torch.randn(5, 64)
    expected = model(x)
    report = sparsify(model, measure=timing(lambda m: 0.8 if m == 1 else 1.5), m_buckets=(1, 8, 64))
    layer = model[0]
    assert isinstance(layer, SparseLinear)
    assert layer.route.dense == (True, False, False)
    assert report.layer("0").route == "sparse at M=8, 64, dense at M=1 (M up to each)"
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)  # M=5: the sparse kernel
    torch.testing.assert_close(layer(x[:1]), expected[:1], rtol=1e-5, atol=1e-6)  # M=1: the dense copy


def test_a_layer_that_loses_everywhere_stays_dense_with_every_speedup_in_the_reason():
    model = _stack()
    measure = timing(lambda m: 1.04 if m == 1 else 0.5 if m <= 8 else 0.25)
    report = sparsify(model, measure=measure, m_buckets=(1, 8, 64))
    assert isinstance(model[0], nn.Linear)
    sparsity = 100 * report.layer("0").sparsity
    assert report.dense_reasons() == {"0": f"sparse 1.04x / 0.50x / 0.25x dense at M=1 / 8 / 64, none >= 1.05x "
                                           f"({sparsity:.1f}% sparse, bitmap fp32)"}


def test_a_bucket_goes_sparse_only_where_sparse_wins_at_both_its_ends():
    """A kernel that works in tiles of 64 rows may win at M=64 and lose at M=9, which bucket 64 serves too."""
    model = _stack()
    seen = []

    def speedup(m):
        seen.append(m)
        return 1.5 if m in (1, 64) else 0.5

    report = sparsify(model, measure=timing(speedup), m_buckets=(1, 8, 64))
    assert sorted(set(seen)) == [1, 2, 8, 9, 64]
    assert model[0].route.dense == (False, True, True)
    assert report.layer("0").speedups == {1: 1.5, 8: 0.5, 64: 0.5}


def test_the_default_measure_times_rounds_over_every_copy_and_reports_per_call():
    mask = mask_for((32, 64))
    linear = pruned_linear((32, 64), mask)
    weight = pack(linear.weight.detach(), mask, "bitmap", torch.float32)
    calls = []

    def counting(sparse_round, dense_round, x):  # what the default measure receives, timed by hand here
        calls.append((len(sparse_round.items), len(dense_round.items)))
        return dispatch.interleaved_medians(sparse_round, dense_round, x, repeats=1)

    timings = dispatch.time_layer(weight, linear.weight.detach(), linear.bias, 0.5, (1,), counting)
    assert calls == [(1, 1)]  # an injected measure: one copy per round
    assert timings[1].sparse_s > 0 and timings[1].dense_s > 0
    dispatch.clear_table()
    timings = dispatch.time_layer(weight, linear.weight.detach(), linear.bias, 0.5, (1,))
    copies = dispatch.copies_for(32 * 64 * 4)
    assert copies == dispatch.MAX_COPIES
    assert timings[1].sparse_s < 0.05 and timings[1].dense_s < 0.05  # per call, not per round of 32 calls
    dispatch.clear_table()


@pytest.mark.filterwarnings("ignore:apt_fast.load.*has no tokenizer")
def test_pack_dense_layers_saves_slow_layers_packed_and_runs_them_dense(tmp_path):
    from safetensors import safe_open

    from apt_fast import MagnitudePruneConfig, load, prune, save
    from apt_fast.models.apt import APTConfig, APTModel
    from apt_fast.pruning.masks import remove_masks

    torch.manual_seed(0)
    model = APTModel(APTConfig(vocab_size=259, d_model=64, num_heads=4, num_encoder_layers=1, num_decoder_layers=1,
                               d_ff=128, max_seq_len=24, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                               dropout=0.0)).eval()
    prune(model, MagnitudePruneConfig(0.5, embedding_ratio=0.5))
    remove_masks(model)
    source = torch.randint(3, 259, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(source)
    report = sparsify(model, measure=timing(lambda m: 0.5), include_embedding=True, pack_dense_layers=True)
    layers = [m for m in model.modules() if isinstance(m, SparseLinear)]
    assert len(layers) == len(report.layers) and not report.converted  # every layer packed, none on a sparse path
    assert all(all(layer.route.dense) for layer in layers)
    reasons = report.dense_reasons().values()
    assert all(reason.endswith("held packed (saved compressed), run dense") for reason in reasons)
    save(model, tmp_path / "packed")
    with safe_open(str(tmp_path / "packed" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert not any(key.endswith((".weight_mask", ".dense_weight")) for key in keys)
    assert not any(key.endswith(".weight") and key.removesuffix(".weight") + ".values" in keys for key in keys)
    loaded, _ = load(tmp_path / "packed")
    reloaded = [m for m in loaded.modules() if isinstance(m, SparseLinear)]
    assert len(reloaded) == len(layers) and all(all(layer.route.dense) for layer in reloaded)
    with torch.no_grad():
        torch.testing.assert_close(model(source), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(loaded.eval()(source), expected, rtol=1e-5, atol=1e-5)
