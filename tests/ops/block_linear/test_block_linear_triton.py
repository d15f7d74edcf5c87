"""The Triton kernels of the block-sparse linear layer (apt_fast.kernels.block_linear) against the reference.

Without CUDA they run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 is set before the kernel
module is imported), so shapes are small but odd: the three block shapes, an empty and a full block row, blocks
with entries a finer mask pruned, a row block of x cut short, block-row chunks of grad_x cut short, leading
dimensions. Float results are held to 2x the error of the same fp32 computation against fp64
(sparse_triton_checks), and fp32 also to 1e-5 of F.linear on the masked dense weight. Every kernel variant is also
compiled for an H100 (sm_90); bf16 tensor-core dots run only on a GPU.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from block_helpers import block_mask, block_weight, op_arguments
from sparse_triton_checks import assert_near_exact, compile_for_h100, h100_build, on_device

from apt_fast.backends.triton import block_linear as triton_backend
from apt_fast.kernels import block_linear as kernels
from apt_fast.kernels.block_linear import block_linear_backward_triton, block_linear_triton
from apt_fast.reference import block_linear as ref
from apt_fast.sparsity.formats.block import BlockWeight

# (leading shape of x, out_features, in_features, block, density of blocks)
SHAPES = [((17,), 48, 80, (16, 16), 0.4), ((2, 9), 96, 128, (32, 32), 0.5), ((1,), 37, 48, (1, 16), 0.3),
          ((3,), 70, 64, (1, 16), 0.6)]
FLOAT_DTYPES = [torch.float32, torch.bfloat16]


def _inputs(lead, rows, k, block, density, values_dtype, x_dtype, bias=True, seed=0):
    w = block_weight(rows, k, block, density, values_dtype, seed=seed)
    x = (torch.randn(*lead, k, generator=torch.Generator().manual_seed(seed + 7)) * 2).to(x_dtype)
    b = torch.randn(rows, generator=torch.Generator().manual_seed(seed + 8)) if bias else None
    return w, x, b


def _multiplied(x, values_dtype):
    """x as the layer multiplies it."""
    return x.bfloat16().float() if values_dtype == torch.bfloat16 else x.float()


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[3][0]}x{s[3][1]}-{s[1]}x{s[2]}")
def test_forward(shape, values_dtype, x_dtype):
    lead, rows, k, block, density = shape
    w, x, b = _inputs(lead, rows, k, block, density, values_dtype, x_dtype)
    got = block_linear_triton(*on_device(x, *op_arguments(w), b), rows).cpu()
    assert got.dtype == x_dtype and got.shape == (*lead, rows)
    dense, xm = w.to_dense(), _multiplied(x, values_dtype)  # [N, K] fp32 exact, [..., K]
    exact = xm.double() @ dense.double().T + b.double()
    fp32 = xm @ dense.T + b
    assert_near_exact(got, exact, fp32, "forward")
    assert_near_exact(ref.block_linear_ref(x, *op_arguments(w), b, rows), exact, fp32, "reference")
    if values_dtype == x_dtype == torch.float32:
        linear = torch.nn.functional.linear(x, dense, b)
        assert (got - linear).abs().max() <= 1e-5 * linear.abs().max()


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[3][0]}x{s[3][1]}-{s[1]}x{s[2]}")
def test_backward(shape, values_dtype, x_dtype):
    lead, rows, k, block, density = shape
    w, x, _ = _inputs(lead, rows, k, block, density, values_dtype, x_dtype, bias=False)
    grad_y = torch.randn(*lead, rows, generator=torch.Generator().manual_seed(9)).to(x_dtype)
    grad_x, grad_values = block_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), True, True)
    assert grad_x.dtype == x_dtype and grad_values.dtype == values_dtype
    g, xm = grad_y.reshape(-1, rows).float(), _multiplied(x, values_dtype).reshape(-1, k)  # [M, N], [M, K]
    dense = w.to_dense()  # [N, K]
    assert_near_exact(grad_x, (g.double() @ dense.double()).reshape(x.shape), (g @ dense).reshape(x.shape),
                      "grad_x")

    def kept_blocks(full):  # [N, K] -> [blocks, bn, bk]
        tiles = full.reshape(rows // block[0], block[0], k // block[1], block[1]).permute(0, 2, 1, 3)
        return tiles[ref.block_rows_of(w.block_row_offsets), w.block_columns.long()]

    assert_near_exact(grad_values, kept_blocks(g.double().T @ xm.double()), kept_blocks(g.T @ xm), "grad_values")


def test_partly_pruned_blocks_keep_their_zeros():
    """A block a finer mask thinned is held whole with zeros; the kernels multiply the zeros like any value."""
    mask = block_mask(48, 64, (16, 16), 0.5) & (torch.rand(48, 64, generator=torch.Generator().manual_seed(3)) < 0.7)
    w = BlockWeight.pack(torch.randn(48, 64), mask, torch.float32, block=(16, 16))
    x = torch.randn(5, 64)
    got = block_linear_triton(*on_device(x, *op_arguments(w)), None, 48)
    dense = w.to_dense()
    assert bool((dense[~mask] == 0).all())
    assert_near_exact(got, x.double() @ dense.double().T, x @ dense.T, "thinned blocks")


@pytest.mark.parametrize("flags", [(True, False), (False, True), (False, False)])
def test_backward_skips_what_is_not_asked(flags):
    w, x, _ = _inputs((5,), 48, 80, (16, 16), 0.4, torch.float32, torch.float32, bias=False)
    grad_y = torch.randn(5, 48, generator=torch.Generator().manual_seed(9))
    got = block_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), *flags)
    want = ref.block_linear_backward_ref(grad_y, x, *op_arguments(w), *flags)
    for name, g, r, asked in zip(("grad_x", "grad_values"), got, want, flags):
        assert g.shape == r.shape and g.dtype == r.dtype, name
        if asked:
            assert_near_exact(g, r.double(), r, name)


def test_empty_weight_and_no_rows():
    w = BlockWeight.pack(torch.randn(32, 48), torch.zeros(32, 48, dtype=torch.bool), torch.float32, block=(16, 16))
    assert w.values.shape[0] == 0
    x, b = torch.randn(3, 48), torch.randn(32)
    assert torch.equal(block_linear_triton(*on_device(x, *op_arguments(w), b), 32).cpu(), b.expand(3, 32))
    grad_x, grad_values = block_linear_backward_triton(*on_device(torch.ones(3, 32), x, *op_arguments(w)), True, True)
    assert torch.equal(grad_x.cpu(), torch.zeros(3, 48)) and grad_values.shape == (0, 16, 16)
    w = block_weight(32, 48, (16, 16), 0.5)
    empty_x = torch.empty(0, 48)
    assert block_linear_triton(*on_device(empty_x, *op_arguments(w), b), 32).shape == (0, 32)
    grad_x, grad_values = block_linear_backward_triton(*on_device(torch.empty(0, 32), empty_x, *op_arguments(w)),
                                                       True, True)
    assert grad_x.shape == (0, 48) and torch.equal(grad_values.cpu(), torch.zeros_like(w.values))


def test_backend_checks_arguments_first():
    """The CUDA entry points run the op's argument check before the kernel."""
    w = block_weight(48, 80, (16, 16), 0.4)
    x = torch.randn(3, 80)
    got = triton_backend.block_linear(*on_device(x, *op_arguments(w)), None, 48)
    assert_near_exact(got, x.double() @ w.to_dense().double().T, x @ w.to_dense().T, "backend")
    with pytest.raises(ValueError, match=r"block \(16, 16\) must tile the weight \[40, 80\]"):
        triton_backend.block_linear(*on_device(x, *op_arguments(w)), None, 40)


def test_kernels_compile_for_h100():
    structure = {"block_row_offsets_ptr": torch.int64, "block_columns_ptr": torch.int32, "bias_ptr": torch.float32}
    builds = []
    for bn, bk in ref.BLOCKS:
        shape = {"BN": bn, "BK": bk, "BLOCK_M": kernels.BLOCK_M}
        for values_dtype in FLOAT_DTYPES:
            code, pointers = kernels.VALUE_CODES[values_dtype], {**structure, "values_ptr": values_dtype}
            for io_dtype in FLOAT_DTYPES:
                builds.append(h100_build(kernels._block_linear_fwd_kernel,
                                         {**pointers, "x_ptr": io_dtype, "y_ptr": io_dtype},
                                         {"VALUES": code, "HAS_BIAS": True, "BF16_DOT": True, **shape}))
                builds.append(h100_build(kernels._block_linear_bwd_grad_x_kernel,
                                         {**pointers, "g_ptr": io_dtype, "grad_x_ptr": io_dtype},
                                         {"BLOCK_R": kernels.TILE_ROWS // bn, **shape}))
                builds.append(h100_build(kernels._block_linear_bwd_grad_values_kernel,
                                         {**pointers, "g_ptr": io_dtype, "x_ptr": io_dtype,
                                          "grad_values_ptr": values_dtype}, {"VALUES": code, **shape}))
    compile_for_h100("apt_fast.kernels.block_linear", builds)
