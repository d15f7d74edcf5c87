"""The bitmap sparse format (apt_fast.sparsity.formats.bitmap): packing and unpacking any mask exactly (bit 63 of a
word, K not a multiple of 64, empty and full rows), int8 quantization per output channel, the registry, what
from_state accepts and the errors for what it refuses."""

import pytest
import torch
from bitmap_helpers import random_mask

from apt_fast.reference import bitmap_linear as ref
from apt_fast.sparsity.formats import FORMATS, pack
from apt_fast.sparsity.formats.bitmap import BitmapWeight


@pytest.mark.parametrize("k", [1, 63, 64, 65, 130, 256])
def test_bitmap_round_trip_and_row_offsets(k):
    mask = random_mask(7, k, 0.5, seed=k)
    mask[2, -1] = True  # the last column, bit 63 of its word where k % 64 == 0
    bitmap = ref.pack_bitmap(mask)
    assert bitmap.shape == (7, (k + 63) // 64) and bitmap.dtype == torch.int64
    assert torch.equal(ref.unpack_bitmap(bitmap, k), mask)
    assert torch.equal(ref.row_offsets_of(mask), torch.cat([torch.zeros(1, dtype=torch.int64),
                                                            mask.sum(1).cumsum(0)]))


def test_bit_layout_is_column_64w_plus_j():
    mask = torch.zeros(1, 130, dtype=torch.bool)
    mask[0, [0, 63, 64, 129]] = True
    bitmap = ref.pack_bitmap(mask)
    assert bitmap.tolist() == [[1 | -(1 << 63), 1, 2]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_float_pack_keeps_the_kept_weights_in_row_major_order(dtype):
    weight = torch.randn(9, 100)
    mask = random_mask(9, 100, 0.4)
    w = pack(weight, mask, "bitmap", dtype)
    assert isinstance(w, BitmapWeight) and FORMATS["bitmap"] is BitmapWeight
    assert torch.equal(w.values, weight[mask].to(dtype)) and w.scales is None
    assert torch.equal(w.mask(), mask)
    assert torch.equal(w.to_dense(), (weight.to(dtype).float() * mask))
    assert w.options() == {"format": "bitmap", "dtype": str(dtype).replace("torch.", "")}
    assert set(w.structure()) == {"bitmap", "row_offsets"}
    assert w.nbytes() == w.values.numel() * w.values.element_size() + 9 * 2 * 8 + 10 * 8


def test_int8_pack_scales_per_output_channel_over_the_kept_weights():
    weight = torch.randn(6, 70)
    mask = random_mask(6, 70, 0.5)
    weight[3, 5], mask[3, 5] = 100.0, False  # a pruned outlier does not widen the row's scale
    w = BitmapWeight.pack(weight, mask, torch.int8)
    amax = (weight * mask).abs().amax(1)
    assert torch.equal(w.scales, amax / 127) and set(w.structure()) == {"bitmap", "row_offsets", "scales"}
    assert w.values.dtype == torch.int8 and w.values.abs().max() <= 127
    assert (w.to_dense() - weight * mask).abs().max() <= w.scales.max() / 2 + 1e-7
    assert w.scales[0] == 0 and w.row_offsets[1] == 0  # the empty row


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int8])
def test_from_state_restores_what_pack_made(dtype):
    w = BitmapWeight.pack(torch.randn(12, 90), random_mask(12, 90, 0.3), dtype)
    again = BitmapWeight.from_state(12, 90, w.options(), w.values, w.structure())
    for name, tensor in w.structure().items():
        assert torch.equal(getattr(again, name), tensor)
    assert torch.equal(again.values, w.values)


def _state(**changes):
    w = BitmapWeight.pack(torch.randn(4, 70), random_mask(4, 70, 0.5, odd_rows=False), torch.float32)
    structure = dict(w.structure())
    structure.update({k: v for k, v in changes.items() if k in ("bitmap", "row_offsets", "scales")})
    options = changes.get("options", w.options())
    return changes.get("n", 4), 70, options, changes.get("values", w.values), structure


@pytest.mark.parametrize("changes, message", [
    (dict(options={"format": "nm", "dtype": "float32"}), "options\\['format'\\] must be 'bitmap', got 'nm'"),
    (dict(options={"format": "bitmap", "dtype": "float16"}),
     "options\\['dtype'\\] must be one of 'float32', 'bfloat16', 'int8', got 'float16'"),
    (dict(bitmap=torch.zeros(4, 1, dtype=torch.int64)), r"bitmap must have shape \(4, 2\), got \(4, 1\)"),
    (dict(row_offsets=torch.zeros(5, dtype=torch.int32)), "row_offsets must be int64, got int32"),
    (dict(row_offsets=torch.zeros(5, dtype=torch.int64)), r"row_offsets must count the bitmap's kept weights: "
                                                           r"row_offsets\[1\] must be \d+, got 0"),
    (dict(bitmap=torch.full((4, 2), -1, dtype=torch.int64)), "bitmap must have no bits set past in_features 70, "
                                                             "got 232 set"),
    (dict(values=torch.zeros(3)), r"values must have shape \(\d+,\), got \(3,\)"),
    (dict(scales=torch.ones(4)), "structure must hold bitmap, row_offsets, got bitmap, row_offsets, scales"),
])
def test_from_state_refuses_inconsistent_tensors(changes, message):
    with pytest.raises(ValueError, match=message):
        BitmapWeight.from_state(*_state(**changes))


@pytest.mark.parametrize("args, message", [
    (dict(weight=torch.randn(3, 4, 5)), r"weight must be a 2-D floating-point tensor \[out_features, in_features\], "
                                        r"got float32 of shape \(3, 4, 5\)"),
    (dict(mask=torch.ones(4, 9)), r"mask must be bool of shape \(4, 8\) like weight, got float32 of shape \(4, 9\)"),
    (dict(dtype=torch.float16), "dtype must be float32 or bfloat16 or int8, got float16"),
    (dict(options={"block": (16, 16)}), "the bitmap format takes no options, got block"),
])
def test_pack_refuses_bad_arguments(args, message):
    weight = args.get("weight", torch.randn(4, 8))
    mask = args.get("mask", torch.ones(4, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=message):
        BitmapWeight.pack(weight, mask, args.get("dtype", torch.float32), **args.get("options", {}))


def test_pack_by_name_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="format must be one of .*'bitmap'.*, got 'csr'"):
        pack(torch.randn(2, 4), torch.ones(2, 4, dtype=torch.bool), "csr")
