"""The block-CSR format (apt_fast.sparsity.formats.block): packing any mask into the blocks it touches (entries a
finer mask pruned kept as zeros, empty and full block rows, no block at all), unpacking exactly, what from_state
accepts and the errors for what pack, from_state and the reference's structure check refuse."""

import pytest
import torch
from block_helpers import block_mask, columns, offsets, seven_block_weight

from apt_fast.sparsity.formats import FORMATS, pack
from apt_fast.sparsity.formats.block import BlockWeight

BLOCKS = [(16, 16), (32, 32), (1, 16)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b[0]}x{b[1]}")
def test_pack_keeps_every_touched_block_in_row_major_order(block, dtype):
    bn, bk = block
    rows, cols = 4 * bn, 6 * bk
    weight = torch.randn(rows, cols)
    thin = torch.rand(rows, cols, generator=torch.Generator().manual_seed(1)) < 0.8  # a finer mask inside blocks
    mask = block_mask(rows, cols, block, 0.5) & thin
    w = pack(weight, mask, "block", dtype, block=block)
    assert isinstance(w, BlockWeight) and FORMATS["block"] is BlockWeight
    touched = mask.reshape(4, bn, 6, bk).any(3).any(1)  # [4, 6] block rows x block columns
    assert w.block_row_offsets.tolist() == [0, *touched.sum(1).cumsum(0).tolist()]
    assert w.block_columns.dtype == torch.int32 and w.block_row_offsets.dtype == torch.int64
    assert w.block_columns.tolist() == touched.nonzero()[:, 1].tolist()
    tiles = (weight * mask).reshape(4, bn, 6, bk).permute(0, 2, 1, 3)  # [4, 6, bn, bk]
    assert torch.equal(w.values, tiles[touched].to(dtype))
    assert torch.equal(w.to_dense(), weight.to(dtype).float() * mask)
    assert torch.equal(w.mask(), touched.repeat_interleave(bn, 0).repeat_interleave(bk, 1))
    assert w.options() == {"format": "block", "dtype": str(dtype).replace("torch.", ""), "block": [bn, bk]}
    assert set(w.structure()) == {"block_row_offsets", "block_columns"}
    assert w.nbytes() == w.values.numel() * w.values.element_size() + 5 * 8 + w.block_columns.numel() * 4


@pytest.mark.parametrize("kept", [False, True])
def test_no_block_and_every_block(kept):
    mask = torch.full((32, 48), kept)
    w = BlockWeight.pack(torch.randn(32, 48), mask, block=(16, 16))
    assert w.values.shape == ((6 if kept else 0), 16, 16)
    assert w.block_row_offsets.tolist() == ([0, 3, 6] if kept else [0, 0, 0])
    assert torch.equal(w.mask(), mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b[0]}x{b[1]}")
def test_from_state_restores_what_pack_made(block, dtype):
    w = BlockWeight.pack(torch.randn(96, 64), block_mask(96, 64, block, 0.4), dtype, block=block)
    again = BlockWeight.from_state(96, 64, w.options(), w.values, w.structure())
    for name, tensor in w.structure().items():
        assert torch.equal(getattr(again, name), tensor)
    assert torch.equal(again.values, w.values) and again.block == block


def _state(**changes):
    """(out_features, in_features, options, values, structure) of seven_block_weight(), some parts replaced."""
    w = seven_block_weight()
    structure = {**w.structure(), **{k: changes.pop(k) for k in ("block_row_offsets", "block_columns")
                                     if k in changes}}
    options = {**w.options(), **changes.pop("options", {})}
    return changes.pop("out_features", 48), 64, options, changes.pop("values", w.values), structure


@pytest.mark.parametrize("changes, message", [
    (dict(options={"format": "nm"}), "options\\['format'\\] must be 'block', got 'nm'"),
    (dict(options={"dtype": "int8"}), "options\\['dtype'\\] must be one of 'float32', 'bfloat16', got 'int8'"),
    (dict(options={"block": None}), "block must be a pair \\(rows, columns\\), got None"),
    (dict(options={"block": [8, 8]}), r"block must be one of \(16, 16\), \(32, 32\), \(1, 16\), got \(8, 8\)"),
    (dict(out_features=40), r"block \(16, 16\) must tile the weight \[40, 64\]: out_features must be a multiple of "
                            r"16 and in_features of 16, got 40 and 64"),
    (dict(block_row_offsets=offsets(0, 4, 7)), r"block_row_offsets must have shape \(4,\), got \(3,\)"),
    (dict(block_row_offsets=offsets(0, 4, 7, 7).int()), "block_row_offsets must be int64, got int32"),
    (dict(block_columns=columns(0, 1, 2, 3, 0, 2, 3).reshape(1, 7)),
     r"block_columns must be a 1-D tensor \[blocks\], got \(1, 7\)"),
    (dict(block_columns=columns(0, 1, 2, 3, 0, 2, 3).long()), "block_columns must be int32, got int64"),
    (dict(block_row_offsets=offsets(1, 4, 7, 7)),
     r"block_row_offsets must rise from 0 to the number of blocks 7, got 1 \.\. 7"),
    (dict(block_row_offsets=offsets(0, 4, 6, 6)),
     r"block_row_offsets must rise from 0 to the number of blocks 7, got 0 \.\. 6"),
    (dict(block_row_offsets=offsets(0, 8, 2, 7)),
     r"block_row_offsets must rise from 0 to the number of blocks 7, got 0 \.\. 7 with a decrease"),
    (dict(block_columns=columns(0, 1, 2, 4, 0, 2, 3)), r"block_columns must be in \[0, 4\), got values in \[0, 4\]"),
    (dict(block_columns=columns(0, 1, 2, 3, -1, 2, 3)),
     r"block_columns must be in \[0, 4\), got values in \[-1, 3\]"),
    (dict(block_columns=columns(0, 1, 3, 2, 0, 2, 3)),
     r"block_columns must ascend strictly within a block row, got \[0, 1, 3, 2\] in block row 0"),
    (dict(block_columns=columns(0, 1, 2, 3, 0, 2, 2)),
     r"block_columns must ascend strictly within a block row, got \[0, 2, 2\] in block row 1"),
    (dict(values=torch.zeros(6, 16, 16)), r"values must have shape \(7, 16, 16\), got \(6, 16, 16\)"),
    (dict(values=torch.zeros(7, 16, 16, dtype=torch.bfloat16)), "values must be float32, got bfloat16"),
])
def test_from_state_refuses_inconsistent_tensors(changes, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        BlockWeight.from_state(*_state(**changes))


def test_from_state_lists_the_structure_it_needs():
    out_features, in_features, options, values, structure = _state()
    del structure["block_row_offsets"]
    with pytest.raises(ValueError, match="^structure must hold block_columns, block_row_offsets, got block_columns$"):
        BlockWeight.from_state(out_features, in_features, options, values, structure)


@pytest.mark.parametrize("args, message", [
    (dict(weight=torch.randn(3, 32, 32)), r"weight must be a 2-D floating-point tensor \[out_features, "
                                          r"in_features\], got float32 of shape \(3, 32, 32\)"),
    (dict(mask=torch.ones(32, 16)), r"mask must be bool of shape \(32, 32\) like weight, got float32 of shape "
                                    r"\(32, 16\)"),
    (dict(dtype=torch.int8), "dtype must be float32 or bfloat16, got int8"),
    (dict(options={"n": 2}), "the block format takes the option block, got n"),
    (dict(options={"block": (16, 32)}), r"block must be one of \(16, 16\), \(32, 32\), \(1, 16\), got \(16, 32\)"),
    (dict(options={"block": 16}), "block must be a pair \\(rows, columns\\), got 16"),
    (dict(weight=torch.randn(48, 32), mask=torch.ones(48, 32, dtype=torch.bool)),
     r"block \(32, 32\) must tile the weight \[48, 32\]: out_features must be a multiple of 32 and in_features of "
     r"32, got 48 and 32"),
    (dict(weight=torch.randn(32, 40), mask=torch.ones(32, 40, dtype=torch.bool), options={"block": (1, 16)}),
     r"block \(1, 16\) must tile the weight \[32, 40\]: out_features must be a multiple of 1 and in_features of "
     r"16, got 32 and 40"),
])
def test_pack_refuses_bad_arguments(args, message):
    weight = args.get("weight", torch.randn(32, 32))
    mask = args.get("mask", torch.ones(32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match=f"^{message}$"):
        BlockWeight.pack(weight, mask, args.get("dtype", torch.float32), **args.get("options", {"block": (32, 32)}))
