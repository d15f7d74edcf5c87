"""SparseLinear is a drop-in nn.Linear on the masked weight: the same outputs (float values within twice the error
of torch's own same-precision layer against float64; int8 values exactly as apt_fast's dense W8A8 Int8Linear), the
same training steps (SGD, AdamW with weight decay) as a masked dense layer, its sparsity kept by construction,
and the dense route giving the same numbers and masked gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sparse_layer_helpers import FORMAT_DTYPES, case_id, mask_for, pruned_linear
from torch import nn

from apt_fast.modules import Int8Linear, SparseLinear
from apt_fast.modules.sparse_linear import Route
from apt_fast.sparsity.formats import pack

SHAPES = {"bitmap": (41, 401), "nm": (41, 104), "block": (64, 96)}  # odd where the format allows it


def shape_of(fmt: str, options: dict):
    if options.get("block") == (1, 16):
        return (41, 112)
    return SHAPES[fmt]


def _max_error(y, oracle) -> float:
    return (y.double() - oracle).abs().max().item()


def _float_oracle(x, weight, bias, dtype):
    """(fp64 oracle, torch's same-precision layer) for values of ``dtype``: bf16 rounds x and W first."""
    if dtype == torch.bfloat16:
        x, weight = x.bfloat16().float(), weight.bfloat16().float()
    oracle = F.linear(x.double(), weight.double(), bias.double())
    return oracle, F.linear(x, weight, bias)


@pytest.mark.parametrize("fmt, options, dtype", FORMAT_DTYPES, ids=[case_id(*c) for c in FORMAT_DTYPES])
@pytest.mark.parametrize("rows", [(1,), (3, 5)], ids=["M=1", "3x5"])
def test_outputs_match_the_masked_dense_layer(fmt, options, dtype, rows):
    shape = shape_of(fmt, options)
    mask = mask_for(fmt, options, shape)
    linear = pruned_linear(shape, mask)
    layer = SparseLinear.from_linear(linear, mask, fmt, dtype, **options)
    x = torch.randn(*rows, shape[1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = layer(x)
    assert y.shape == (*rows, shape[0]) and y.dtype == torch.float32
    if dtype == torch.int8:  # W8A8: the same codes, scales and activation quantization as the dense int8 layer
        expected = Int8Linear.from_linear(linear, activation_bits=8)(x).detach()
        print(f"int8 vs Int8Linear: max {(y - expected).abs().max().item():.3g}")
        torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)
        return
    oracle, torch_layer = _float_oracle(x, linear.weight.detach(), linear.bias.detach(), dtype)
    ours, theirs = _max_error(y, oracle), _max_error(torch_layer, oracle)
    print(f"max error vs fp64: SparseLinear {ours:.3g}, torch F.linear {theirs:.3g}")
    assert ours <= 2 * theirs + 1e-7 * oracle.abs().max().item()


@pytest.mark.parametrize("fmt, options", [("bitmap", {}), ("nm", {"n": 2, "m": 4}), ("block", {"block": (16, 16)})],
                         ids=["bitmap", "2:4", "block16"])
def test_bf16_inputs_give_bf16_outputs_like_torch(fmt, options):
    shape = shape_of(fmt, options)
    mask = mask_for(fmt, options, shape)
    linear = pruned_linear(shape, mask, dtype=torch.bfloat16)
    layer = SparseLinear.from_linear(linear, mask, fmt, **options)
    assert layer.values.dtype == torch.bfloat16 and layer.dense_dtype == torch.bfloat16
    x = torch.randn(4, shape[1], generator=torch.Generator().manual_seed(3)).bfloat16()
    with torch.no_grad():
        y, expected = layer(x), linear(x)
    oracle = F.linear(x.double(), linear.weight.double(), linear.bias.double())
    ours, theirs = _max_error(y, oracle), _max_error(expected, oracle)
    print(f"bf16 output, max error vs fp64: SparseLinear {ours:.3g}, torch {theirs:.3g}")
    assert y.dtype == torch.bfloat16 and ours <= 2 * theirs + 1e-7


def _masked_dense_step(linear: nn.Linear, mask: torch.Tensor):
    """A dense layer trained like a pruned one: its gradient zeroed where pruned (AdamW then leaves zeros zero)."""
    linear.weight.register_hook(lambda grad: grad * mask)
    return linear


def _train(layer: nn.Module, optimizer_name: str, steps: int, batches):
    optimizer = (torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9) if optimizer_name == "sgd"
                 else torch.optim.AdamW(layer.parameters(), lr=0.01, weight_decay=0.1))
    for x, target in batches[:steps]:
        optimizer.zero_grad()
        loss = F.mse_loss(layer(x.to(layer.bias.dtype)), target.to(layer.bias.dtype))
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
@pytest.mark.parametrize("fmt, options", [("bitmap", {}), ("nm", {"n": 2, "m": 4}), ("nm", {"n": 4, "m": 8}),
                                          ("block", {"block": (16, 16)})], ids=["bitmap", "2:4", "4:8", "block16"])
def test_training_steps_equal_the_masked_dense_layer(fmt, options, optimizer_name):
    """Three steps on the same batches: SparseLinear's weight stays within twice the fp32 dense layer's distance
    from the same training done in float64."""
    shape = shape_of(fmt, options)
    mask = mask_for(fmt, options, shape)
    generator = torch.Generator().manual_seed(4)
    batches = [(torch.randn(6, shape[1], generator=generator), torch.randn(6, shape[0], generator=generator))
               for _ in range(3)]
    dense = _masked_dense_step(pruned_linear(shape, mask), mask)
    oracle = _masked_dense_step(pruned_linear(shape, mask).double(), mask)
    sparse = SparseLinear.from_linear(pruned_linear(shape, mask), mask, fmt, **options)
    for layer in (dense, oracle, sparse):
        _train(layer, optimizer_name, 3, batches)
    trained = sparse.to_dense().double()
    assert torch.equal(sparse.mask(), mask)  # the sparsity held
    assert not trained[~mask].any()
    ours = (trained - oracle.weight.detach()).abs().max().item()
    theirs = (dense.weight.detach().double() - oracle.weight.detach()).abs().max().item()
    ours_bias = (sparse.bias.detach().double() - oracle.bias.detach()).abs().max().item()
    theirs_bias = (dense.bias.detach().double() - oracle.bias.detach()).abs().max().item()
    print(f"weight vs fp64 training: SparseLinear {ours:.3g}, dense {theirs:.3g}; bias {ours_bias:.3g} / "
          f"{theirs_bias:.3g}")
    assert ours <= 2 * theirs + 1e-7 and ours_bias <= 2 * theirs_bias + 1e-7


def test_int8_values_are_frozen_and_gradients_reach_x_and_bias():
    mask = mask_for("bitmap", {}, (16, 64))
    layer = SparseLinear.from_linear(pruned_linear((16, 64), mask), mask, "bitmap", torch.int8)
    assert layer.values.dtype == torch.int8 and not layer.values.requires_grad
    x = torch.randn(3, 64, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.bias.grad is not None and layer.values.grad is None


def test_the_dense_route_gives_the_same_outputs_and_masked_gradients():
    shape = (40, 128)
    mask = mask_for("bitmap", {}, shape)
    sparse = SparseLinear.from_linear(pruned_linear(shape, mask), mask)
    routed = SparseLinear.from_linear(pruned_linear(shape, mask), mask, route=Route((1, 8), (False, True)))
    assert routed.dense_weight is not None and sparse.dense_weight is None  # a dense copy only where a route needs it
    assert routed.dense_copy_bytes() == shape[0] * shape[1] * 4
    x = torch.randn(16, shape[1], generator=torch.Generator().manual_seed(5))  # M=16: the dense bucket
    upstream = torch.randn(16, shape[0], generator=torch.Generator().manual_seed(6))
    outputs = []
    for layer in (sparse, routed):
        xs = x.clone().requires_grad_()
        y = layer(xs)
        y.backward(upstream)
        outputs.append((y.detach(), xs.grad, layer.values.grad, layer.bias.grad))
    for got, expected in zip(outputs[1], outputs[0]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(routed(x[:1]), sparse(x[:1]), rtol=1e-5, atol=1e-6)  # M=1: the sparse bucket


def test_the_dense_copy_follows_optimizer_steps():
    mask = mask_for("bitmap", {}, (8, 64))
    layer = SparseLinear.from_linear(pruned_linear((8, 64), mask), mask, route=Route((1, 4), (False, True)))
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.randn(8, 64)).pow(2).sum().backward()
    optimizer.step()
    x = torch.randn(8, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.linear(x, layer.to_dense(), layer.bias), rtol=1e-5, atol=1e-6)


def test_from_linear_defaults_and_to_linear():
    from apt_fast.pruning import MagnitudePruneConfig, prune

    model = nn.Sequential(nn.Linear(64, 24))
    prune(model, MagnitudePruneConfig(0.6))
    linear = model[0]
    layer = SparseLinear.from_linear(linear)  # the pruning mask, bitmap, the weight's dtype
    assert torch.equal(layer.mask(), linear.weight_mask) and layer.values.dtype == torch.float32
    assert layer.bias is linear.bias  # the Parameter is reused (optimizers keep it)
    assert abs(layer.sparsity - 0.6) < 0.01
    back = layer.to_linear()
    assert isinstance(back, nn.Linear) and torch.equal(back.weight, linear.weight.detach())
    text = repr(layer)
    assert "format=bitmap" in text and "dtype=float32" in text and "sparsity=60.0%" in text and "route=sparse" in text
    nm = SparseLinear.from_linear(nn.Linear(64, 8), mask_for("nm", {"n": 2, "m": 4}, (8, 64)), "nm", n=2, m=4)
    assert "format=nm (n=2, m=4)" in repr(nm)


def test_dtype_moves_keep_the_kernels_dtypes():
    mask = mask_for("bitmap", {}, (8, 64))
    int8 = SparseLinear.from_linear(pruned_linear((8, 64), mask), mask, "bitmap", torch.int8).to(torch.bfloat16)
    assert int8.values.dtype == torch.int8 and int8.scales.dtype == torch.float32
    assert int8.row_offsets.dtype == torch.int64 and int8.dense_dtype == torch.bfloat16
    half = SparseLinear.from_linear(pruned_linear((8, 64), mask), mask).half()
    assert half.values.dtype == torch.float32  # no fp16 sparse kernels: the values stay as they were
    bf16 = SparseLinear.from_linear(pruned_linear((8, 64), mask), mask).to(torch.bfloat16)
    assert bf16.values.dtype == torch.bfloat16 and bf16.sparse_weight.options()["dtype"] == "bfloat16"
    bf16(torch.randn(2, 64).bfloat16())


def test_state_dict_round_trip_and_another_pattern():
    shape = (24, 64)
    first, second = mask_for("bitmap", {}, shape, seed=1), mask_for("bitmap", {}, shape, 0.7, seed=2)
    layer = SparseLinear.from_linear(pruned_linear(shape, first), first)
    other = SparseLinear.from_linear(pruned_linear(shape, second, seed=3), second)
    state = other.state_dict()
    assert set(state) == {"values", "bitmap", "row_offsets", "bias"}  # no dense copy in the state
    layer.load_state_dict(state)
    assert torch.equal(layer.mask(), second) and torch.equal(layer.to_dense(), other.to_dense())
    x = torch.randn(3, 64)
    with torch.no_grad():
        assert torch.equal(layer(x), other(x))


def test_a_state_dict_that_does_not_fit_names_the_tensor():
    shape = (24, 64)
    mask = mask_for("bitmap", {}, shape)
    model = nn.Sequential(SparseLinear.from_linear(pruned_linear(shape, mask), mask))
    state = model.state_dict()
    state["0.values"] = state["0.values"][:-1]
    with pytest.raises(RuntimeError, match=r"0: values must have shape \(\d+,\), got \(\d+,\)"):
        model.load_state_dict(state)


def test_bad_input():
    with pytest.raises(ValueError, match="linear must be an nn.Linear, got Conv1d"):
        SparseLinear.from_linear(nn.Conv1d(4, 4, 1))
    with pytest.raises(ValueError, match="in_features must be a positive multiple of m=4, got 30"):
        SparseLinear.from_linear(nn.Linear(30, 8), format="nm", n=2, m=4)
    with pytest.raises(ValueError, match="weight must be a SparseWeight"):
        SparseLinear(torch.zeros(3, 3))
    weight = pack(torch.randn(8, 16), torch.ones(8, 16, dtype=torch.bool), "bitmap")
    with pytest.raises(ValueError, match=r"bias must have shape \(8,\), got \(9,\)"):
        SparseLinear(weight, torch.zeros(9))
    with pytest.raises(ValueError, match=r"buckets must be ascending distinct row counts >= 1, got \(8, 1\)"):
        Route((8, 1), (False, False))
