"""The N:M sparse format (apt_fast.sparsity.formats.nm): the positions' bit layout (LSB-first streams, 3-bit
fields straddling bytes), packing and unpacking any n:m mask exactly (groups keeping fewer than n keep zeros), int8
quantization per output channel, what from_state accepts and the errors for what pack and from_state refuse."""

import pytest
import torch
from nm_helpers import nm_mask

from apt_fast.reference import nm_linear as ref
from apt_fast.sparsity.formats import FORMATS, pack
from apt_fast.sparsity.formats.nm import NMWeight

PATTERNS = [(2, 4), (4, 8), (1, 4), (3, 8)]


def test_bit_layout_is_an_lsb_first_stream_per_row():
    # 2:4: four 2-bit fields in one byte; 4:8: four 3-bit fields, the third straddling bytes 0 and 1
    two_four = ref.pack_positions(torch.tensor([[1, 3, 0, 2]]), 4)
    assert two_four.tolist() == [[1 | 3 << 2 | 0 << 4 | 2 << 6]] and two_four.dtype == torch.uint8
    four_eight = ref.pack_positions(torch.tensor([[0, 2, 5, 7]]), 8)
    stream = 0 | 2 << 3 | 5 << 6 | 7 << 9
    assert four_eight.tolist() == [[stream & 0xFF, stream >> 8]]


@pytest.mark.parametrize("n, m", PATTERNS)
@pytest.mark.parametrize("k", [8, 24, 104])
def test_positions_round_trip(n, m, k):
    mask = nm_mask(5, k, n, m, seed=k, sparse_groups=0.0)
    positions = ref.choose_positions(mask, n, m)  # [5, K n / m]
    indices = ref.pack_positions(positions, m)
    assert indices.shape == (5, ref.index_bytes_per_row(k, n, m)) == (5, (k // m * n * (m.bit_length() - 1) + 7)
                                                                      // 8)
    assert torch.equal(ref.unpack_positions(indices, k, n, m), positions)
    assert torch.equal(ref.mask_of(indices, 5, k, n, m), mask)


@pytest.mark.parametrize("n, m", PATTERNS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_float_pack_keeps_n_of_every_m_in_column_order(n, m, dtype):
    weight = torch.randn(9, 16 * m)
    mask = nm_mask(9, 16 * m, n, m, seed=n)  # some groups keep fewer than n
    mask[0] = False  # a row keeping nothing
    w = pack(weight, mask, "nm", dtype, n=n, m=m)
    assert isinstance(w, NMWeight) and FORMATS["nm"] is NMWeight and w.scales is None
    kept = w.mask()  # the given mask, plus zeros where a group kept fewer than n
    assert bool((kept | ~mask).all()) and bool((kept.reshape(9, -1, m).sum(-1) == n).all())
    columns = kept.nonzero()[:, 1].reshape(9, -1)  # [9, K n / m] ascending
    assert torch.equal(w.values, (weight * mask).gather(1, columns).to(dtype))
    assert torch.equal(w.to_dense(), weight.to(dtype).float() * mask)
    assert w.options() == {"format": "nm", "dtype": str(dtype).replace("torch.", ""), "n": n, "m": m}
    assert set(w.structure()) == {"indices"}
    assert w.nbytes() == w.values.numel() * w.values.element_size() + w.indices.numel()


def test_int8_pack_scales_per_output_channel_over_the_kept_weights():
    weight = torch.randn(6, 64)
    mask = nm_mask(6, 64)
    mask[0] = False
    weight[3, 0], mask[3, 0:4] = 100.0, torch.tensor([False, True, True, False])  # a pruned outlier
    w = NMWeight.pack(weight, mask, torch.int8)
    amax = (weight * mask).abs().amax(1)
    assert torch.equal(w.scales, amax / 127) and set(w.structure()) == {"indices", "scales"}
    assert w.values.dtype == torch.int8 and w.values.abs().max() <= 127
    assert (w.to_dense() - weight * mask).abs().max() <= w.scales.max() / 2 + 1e-7
    assert w.scales[0] == 0 and not w.values[0].any()  # the empty row


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int8])
def test_from_state_restores_what_pack_made(n, m, dtype):
    w = NMWeight.pack(torch.randn(12, 96), nm_mask(12, 96, n, m), dtype, n=n, m=m)
    again = NMWeight.from_state(12, 96, w.options(), w.values, w.structure())
    for name, tensor in w.structure().items():
        assert torch.equal(getattr(again, name), tensor)
    assert torch.equal(again.values, w.values) and (again.n, again.m) == (n, m)


def _state(**changes):
    """(out_features, in_features, options, values, structure) of a 2:4 [4, 16] weight, some parts replaced."""
    w = NMWeight.pack(torch.randn(4, 16), nm_mask(4, 16, sparse_groups=0.0), changes.pop("dtype", torch.float32))
    structure = {**w.structure(), **{k: changes.pop(k) for k in ("indices", "scales") if k in changes}}
    options = {**w.options(), **changes.pop("options", {})}
    return changes.pop("out_features", 4), changes.pop("in_features", 16), options, changes.pop("values", w.values), \
        structure


def _swapped_positions():
    """Row 2's first group holding positions (3, 1): both in range, descending."""
    indices = ref.pack_positions(torch.tensor([[0, 1] * 4] * 4), 4)
    indices[2, 0] = 3 | 1 << 2 | (indices[2, 0] & 0xF0)
    return indices


@pytest.mark.parametrize("changes, message", [
    (dict(options={"format": "bitmap"}), "options\\['format'\\] must be 'nm', got 'bitmap'"),
    (dict(options={"dtype": "float16"}),
     "options\\['dtype'\\] must be one of 'float32', 'bfloat16', 'int8', got 'float16'"),
    (dict(options={"n": "2"}), "options must give the integers n and m, got n='2', m=4"),
    (dict(options={"m": 6}), "m must be 4 or 8, got 6"),
    (dict(options={"n": 4}), r"n must be in \[1, 4\) for m=4, got 4"),
    (dict(options={"n": 0}), r"n must be in \[1, 4\) for m=4, got 0"),
    (dict(in_features=18), "in_features must be a positive multiple of m=4, got 18"),
    (dict(scales=torch.ones(4)), "structure must hold indices, got indices, scales"),
    (dict(dtype=torch.int8, scales=None), r"scales must be a tensor of shape \(4,\), got NoneType"),
    (dict(values=torch.zeros(4, 6)), r"values must have shape \(4, 8\), got \(4, 6\)"),
    (dict(values=torch.zeros(4, 8, dtype=torch.float64)), "values must be float32, got float64"),
    (dict(indices=torch.zeros(4, 3, dtype=torch.uint8)), r"indices must have shape \(4, 2\), got \(4, 3\)"),
    (dict(indices=torch.zeros(4, 2, dtype=torch.int8)), "indices must be uint8, got int8"),
    (dict(indices=torch.zeros(4, 2, dtype=torch.uint8)),
     r"indices must give ascending positions within each group of n=2 kept values, got \[0, 0\] in row 0, "
     r"group 0"),
    (dict(indices=_swapped_positions()),
     r"indices must give ascending positions within each group of n=2 kept values, got \[3, 1\] in row 2, "
     r"group 0"),
    (dict(dtype=torch.int8, scales=torch.ones(3)), r"scales must have shape \(4,\), got \(3,\)"),
    (dict(dtype=torch.int8, scales=torch.ones(4, dtype=torch.float64)), "scales must be float32, got float64"),
])
def test_from_state_refuses_inconsistent_tensors(changes, message):
    with pytest.raises(ValueError, match=message):
        NMWeight.from_state(*_state(**changes))


def test_from_state_lists_the_missing_scales():
    out_features, in_features, options, values, structure = _state(dtype=torch.int8)
    del structure["scales"]
    with pytest.raises(ValueError, match="structure must hold indices, scales, got indices$"):
        NMWeight.from_state(out_features, in_features, options, values, structure)


@pytest.mark.parametrize("args, message", [
    (dict(weight=torch.randn(3, 4, 8)), r"weight must be a 2-D floating-point tensor \[out_features, in_features\], "
                                        r"got float32 of shape \(3, 4, 8\)"),
    (dict(mask=torch.ones(4, 12, dtype=torch.bool)),
     r"mask must be bool of shape \(4, 8\) like weight, got bool of shape \(4, 12\)"),
    (dict(dtype=torch.float16), "dtype must be float32 or bfloat16 or int8, got float16"),
    (dict(options={"block": (16, 16)}), "the nm format takes the options n and m, got block"),
    (dict(options={"n": 2, "m": 6}), "m must be 4 or 8, got 6"),
    (dict(options={"n": 8, "m": 8}), r"n must be in \[1, 8\) for m=8, got 8"),
    (dict(weight=torch.randn(4, 10), mask=torch.zeros(4, 10, dtype=torch.bool)),
     "in_features must be a positive multiple of m=4, got 10"),
    (dict(mask=torch.tensor([[True, True, True, False] * 2] * 4)),
     r"mask must keep at most n=2 of every m=4 consecutive inputs, got 3 in row 0, inputs 0..3"),
])
def test_pack_refuses_bad_arguments(args, message):
    weight = args.get("weight", torch.randn(4, 8))
    mask = args.get("mask", torch.zeros(4, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=message):
        NMWeight.pack(weight, mask, args.get("dtype", torch.float32), **args.get("options", {}))
