"""apt_fast.sparsify: each pruned layer gets the format its mask fits (N:M, block, else bitmap), the dispatcher's
measurement decides sparse or dense per row count (injected timings here: the decision rule, not this machine's
speed), the report says what was done and why not, the outputs stay those of the masked dense layer, and an APT
model saves compressed and loads back sparse."""

from __future__ import annotations

import pytest
import torch
from sparse_layer_helpers import FASTER, SLOWER, apt_batch, mask_for, tiny_apt
from torch import nn

from apt_fast import MagnitudePruneConfig, NMPruneConfig, load, prune, save, sparsify
from apt_fast.modules import SparseEmbedding, SparseLinear

PATTERNS = {"bitmap fp32": ("bitmap", {}, 0.6), "2:4 fp32": ("nm", {"n": 2, "m": 4}, 0.5),
            "block 32x32 fp32": ("block", {"block": (32, 32)}, 0.5)}


def _pruned_stack():
    """Four 128x128 layers: bitmap-only 60% sparse, 2:4, half of the 32x32 blocks, and 10% sparse."""
    torch.manual_seed(0)
    stack = nn.Sequential(*(nn.Linear(128, 128) for _ in range(4)))
    masks = [mask_for("bitmap", {}, (128, 128), 0.6, seed=1), mask_for("nm", {"n": 2, "m": 4}, (128, 128), seed=2),
             torch.tensor([[True, False, True, False], [False, True, False, True]] * 2)
             .repeat_interleave(32, 0).repeat_interleave(32, 1),
             mask_for("bitmap", {}, (128, 128), 0.1, seed=4)]
    with torch.no_grad():
        for layer, mask in zip(stack, masks):
            layer.weight.mul_(mask)
    return stack


def test_each_layer_gets_the_format_its_mask_fits_and_the_same_outputs():
    stack = _pruned_stack()
    x = torch.randn(5, 128)
    with torch.no_grad():
        expected, exact = stack(x), stack.double()(x.double())
    stack.float()
    report = sparsify(stack, measure=FASTER)
    assert [layer.kind for layer in report.layers] == ["bitmap fp32", "2:4 fp32", "block 32x32 fp32", ""]
    assert [type(layer) for layer in stack] == [SparseLinear] * 3 + [nn.Linear]
    sparsity = (stack[3].weight == 0).double().mean().item()
    assert report.layer("3").dense_reason == f"sparsity {sparsity:.1%} below the 30% where any format pays"
    assert report.bytes_after < report.bytes_before
    with torch.no_grad():
        got = stack(x)
    # the sparse layers sum the same products in another order: within twice torch's own fp32 error
    allowed = 2 * (expected.double() - exact).abs().max().item() + 1e-7
    assert (got.double() - exact).abs().max().item() <= allowed
    text = str(report)
    assert "3 layer(s) sparse, 1 left dense" in text and "block 32x32 fp32" in text


def test_a_layer_slower_everywhere_stays_dense_and_the_report_says_so():
    stack = _pruned_stack()
    report = sparsify(stack, measure=SLOWER)
    assert all(isinstance(layer, nn.Linear) and not isinstance(layer, SparseLinear) for layer in stack)
    assert not report.converted and len(report.kept_dense) == 4
    assert "0.50x" in report.layer("0").dense_reason


def test_min_sparsity_and_filter_fn_leave_layers_alone():
    stack = _pruned_stack()
    report = sparsify(stack, measure=FASTER, min_sparsity=0.55, filter_fn=lambda module, path: path != "2")
    assert [type(layer) for layer in stack] == [SparseLinear, nn.Linear, nn.Linear, nn.Linear]
    assert [layer.path for layer in report.layers] == ["0", "1", "3"]


def test_int8_values_for_bitmap_and_nm():
    stack = _pruned_stack()
    sparsify(stack, measure=FASTER, dtype=torch.int8, formats=("nm", "bitmap"))
    assert [layer.values.dtype for layer in stack[:3]] == [torch.int8] * 3


@pytest.mark.filterwarnings("ignore:apt_fast.load.*has no tokenizer")
def test_an_apt_model_saves_compressed_and_loads_back_sparse(tmp_path):
    model = tiny_apt()
    prune(model, NMPruneConfig(2, 4))
    source, target = apt_batch()
    with torch.no_grad():
        expected = model(source, target)
    report = sparsify(model, measure=FASTER, include_embedding=False)
    assert len(report.converted) == len(report.layers) > 0
    assert not any(isinstance(m, SparseEmbedding) for m in model.modules())  # the tied projection left alone
    save(model, tmp_path / "sparse-model")
    loaded, _ = load(tmp_path / "sparse-model")
    sparse_paths = {name for name, m in loaded.named_modules() if isinstance(m, SparseLinear)}
    assert sparse_paths == {layer.path for layer in report.converted}
    assert loaded.config.sparsity_config is not None
    with torch.no_grad():
        torch.testing.assert_close(model(source, target), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(loaded.eval()(source, target), expected, rtol=1e-5, atol=1e-5)


def test_the_tied_output_projection_is_converted_only_when_asked():
    model = tiny_apt()
    prune(model, MagnitudePruneConfig(0.5, embedding_ratio=0.5))
    source, target = apt_batch()
    with torch.no_grad():
        expected = model(source, target)
    sparsify(model, measure=FASTER, include_embedding=True)
    assert any(isinstance(m, SparseEmbedding) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(source, target), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arguments, message", [
    (dict(min_speedup=0), "min_speedup must be a positive number (1.05: sparse only where 5% faster), got 0"),
    (dict(dtype=torch.float16), "dtype must be None (the weights' dtype), torch.float32, torch.bfloat16 or "
                                "torch.int8, got torch.float16"),
    (dict(min_sparsity=1.5), "min_sparsity must be a number in [0, 1), got 1.5"),
    (dict(m_buckets=(8, 1)), "m_buckets must be ascending distinct row counts >= 1, got (8, 1)"),
    (dict(formats="csr"), "formats must be 'auto' or names among 'bitmap', 'block', 'nm', got 'csr'"),
])
def test_bad_arguments_name_what_was_expected(arguments, message):
    with pytest.raises(ValueError) as error:
        sparsify(nn.Sequential(nn.Linear(4, 4)), **arguments)
    assert str(error.value) == message
