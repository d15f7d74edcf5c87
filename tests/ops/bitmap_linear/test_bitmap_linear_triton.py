"""The Triton kernels of the bitmap sparse linear layer (apt_fast.kernels.bitmap_linear) against the reference.

Without CUDA they run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 is set before the kernel
module is imported), so shapes are small but odd: K not a multiple of the 64-input word, row and output blocks cut
short, an empty and a full weight row, leading dimensions. int8 is bit-identical to the reference (exact int32
sums, the same fp32 epilogue); float results are held to 2x the error of the same fp32 computation against fp64
(sparse_triton_checks), and fp32 also to 1e-5 of F.linear on the masked dense weight. Every kernel variant is also
compiled for an H100 (sm_90), so what only a GPU build checks is checked here too; bf16 tensor-core dots run only
on a GPU.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from bitmap_helpers import bitmap_weight, op_arguments
from sparse_triton_checks import DEVICE, assert_near_exact, compile_for_h100, h100_build, on_device

from apt_fast.backends.triton import bitmap_linear as triton_backend
from apt_fast.kernels import bitmap_linear as kernels
from apt_fast.kernels.bitmap_linear import bitmap_linear_backward_triton, bitmap_linear_triton, word_starts_triton
from apt_fast.reference import bitmap_linear as ref

# (leading shape of x, out_features, in_features, density)
SHAPES = [((1,), 37, 100, 0.5), ((2, 9), 33, 129, 0.2), ((17,), 40, 64, 0.9)]
FLOAT_DTYPES = [torch.float32, torch.bfloat16]


def _inputs(lead, n, k, density, values_dtype, x_dtype, bias=True, seed=0):
    w = bitmap_weight(n, k, density, values_dtype, seed=seed)
    x = (torch.randn(*lead, k, generator=torch.Generator().manual_seed(seed + 7)) * 2).to(x_dtype)
    b = torch.randn(n, generator=torch.Generator().manual_seed(seed + 8)) if bias else None
    return w, x, b


def _multiplied(x, values_dtype):
    """x as the layer multiplies it."""
    return x.bfloat16().float() if values_dtype == torch.bfloat16 else x.float()


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_float(shape, values_dtype, x_dtype):
    lead, n, k, density = shape
    w, x, b = _inputs(lead, n, k, density, values_dtype, x_dtype)
    got = bitmap_linear_triton(*on_device(x, *op_arguments(w), b), n).cpu()
    assert got.dtype == x_dtype and got.shape == (*lead, n)
    dense, xm = w.to_dense(), _multiplied(x, values_dtype)  # [N, K] fp32 exact, [..., K]
    exact = xm.double() @ dense.double().T + b.double()
    fp32 = xm @ dense.T + b
    assert_near_exact(got, exact, fp32, "forward")
    assert_near_exact(ref.bitmap_linear_ref(x, *op_arguments(w), b, n), exact, fp32, "reference")
    if values_dtype == x_dtype == torch.float32:
        linear = torch.nn.functional.linear(x, dense, b)
        assert (got - linear).abs().max() <= 1e-5 * linear.abs().max()


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_int8_bit_identical(shape, x_dtype):
    lead, n, k, density = shape
    w, x, b = _inputs(lead, n, k, density, torch.int8, x_dtype, bias=shape[0] != (1,))
    got = bitmap_linear_triton(*on_device(x, *op_arguments(w), b), n).cpu()
    want = ref.bitmap_linear_ref(x, *op_arguments(w), b, n)
    if DEVICE == "cpu":
        assert torch.equal(got, want), f"{(got.float() - want.float()).abs().max().item()}"
    else:  # a GPU's fp32 division may round the activation scale differently
        assert_near_exact(got, want.double(), want, "int8 on GPU")


def test_word_starts_are_popcount_prefixes():
    w = bitmap_weight(37, 200, 0.4)
    starts = word_starts_triton(*on_device(w.bitmap, w.row_offsets)).cpu()  # [N, words]
    counts = ref.unpack_bitmap(w.bitmap, 4 * 64).reshape(37, 4, 64).sum(-1)  # [N, words]
    assert torch.equal(starts, w.row_offsets[:-1, None] + counts.cumsum(1) - counts)


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_float(shape, values_dtype, x_dtype):
    lead, n, k, density = shape
    w, x, _ = _inputs(lead, n, k, density, values_dtype, x_dtype, bias=False)
    grad_y = torch.randn(*lead, n, generator=torch.Generator().manual_seed(9)).to(x_dtype)
    grad_x, grad_values = bitmap_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), True, True)
    assert grad_x.dtype == x_dtype and grad_values.dtype == values_dtype
    g, xm = grad_y.reshape(-1, n).float(), _multiplied(x, values_dtype).reshape(-1, k)  # [M, N], [M, K]
    dense, mask = w.to_dense(), w.mask()
    assert_near_exact(grad_x, (g.double() @ dense.double()).reshape(x.shape), (g @ dense).reshape(x.shape),
                      "grad_x")
    assert_near_exact(grad_values, (g.double().T @ xm.double())[mask], (g.T @ xm)[mask], "grad_values")


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
def test_backward_int8_grad_x(x_dtype):
    w, x, _ = _inputs((2, 9), 33, 129, 0.3, torch.int8, x_dtype, bias=False)
    grad_y = torch.randn(2, 9, 33, generator=torch.Generator().manual_seed(9)).to(x_dtype)
    grad_x, grad_values = bitmap_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), True, False)
    assert grad_values.numel() == 0
    g, dense = grad_y.reshape(-1, 33).float(), w.to_dense()  # dequantized
    assert_near_exact(grad_x, (g.double() @ dense.double()).reshape(x.shape), (g @ dense).reshape(x.shape),
                      "int8 grad_x")


@pytest.mark.parametrize("flags", [(True, False), (False, True), (False, False)])
def test_backward_skips_what_is_not_asked(flags):
    w, x, _ = _inputs((5,), 37, 100, 0.5, torch.float32, torch.float32, bias=False)
    grad_y = torch.randn(5, 37, generator=torch.Generator().manual_seed(9))
    got = bitmap_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), *flags)
    want = ref.bitmap_linear_backward_ref(grad_y, x, *op_arguments(w), *flags)
    for name, g, r, asked in zip(("grad_x", "grad_values"), got, want, flags):
        assert g.shape == r.shape and g.dtype == r.dtype, name
        if asked:
            assert_near_exact(g, r.double(), r, name)


def test_empty_weight_and_no_rows():
    w, x, b = _inputs((3,), 20, 70, 0.0, torch.float32, torch.float32)
    w = type(w).pack(torch.randn(20, 70), torch.zeros(20, 70, dtype=torch.bool), torch.float32)
    assert w.values.numel() == 0
    assert torch.equal(bitmap_linear_triton(*on_device(x, *op_arguments(w), b), 20).cpu(), b.expand(3, 20))
    _, grad_values = bitmap_linear_backward_triton(*on_device(torch.ones(3, 20), x, *op_arguments(w)), True, True)
    assert grad_values.numel() == 0
    empty_x = torch.empty(0, 70)
    assert bitmap_linear_triton(*on_device(empty_x, *op_arguments(w), b), 20).shape == (0, 20)
    w = bitmap_weight(20, 70, 0.5)
    grad_x, grad_values = bitmap_linear_backward_triton(*on_device(torch.empty(0, 20), empty_x,
                                                                   *op_arguments(w)), True, True)
    assert grad_x.shape == (0, 70) and torch.equal(grad_values.cpu(), torch.zeros_like(w.values))


def test_backend_checks_arguments_first():
    """The CUDA entry points run the op's argument check before the kernel."""
    w = bitmap_weight(37, 100, 0.5)
    x = torch.randn(3, 100)
    got = triton_backend.bitmap_linear(*on_device(x, *op_arguments(w)), None, 37)
    assert_near_exact(got, x.double() @ w.to_dense().double().T, x @ w.to_dense().T, "backend")
    with pytest.raises(ValueError, match=r"bitmap must have shape \[37, 2\], got \[37, 1\]"):
        triton_backend.bitmap_linear(*on_device(x, w.bitmap[:, :1], w.row_offsets, w.values), None, None, 37)



def test_kernels_compile_for_h100():
    blocks = {"BLOCK_M": kernels.BLOCK_M, "BLOCK_N": kernels.BLOCK_N}
    builds = [h100_build(kernels._word_starts_kernel, STRUCTURE, {"BLOCK_N": kernels.BLOCK_N})]
    for values_dtype in (torch.float32, torch.bfloat16, torch.int8):
        code, structure = kernels.VALUE_CODES[values_dtype], {**STRUCTURE, "values_ptr": values_dtype}
        for io_dtype in FLOAT_DTYPES:
            x_dtype = torch.int8 if values_dtype == torch.int8 else io_dtype
            builds.append(h100_build(kernels._bitmap_linear_fwd_kernel,
                                     {**structure, "x_ptr": x_dtype, "y_ptr": io_dtype},
                                     {"VALUES": code, "HAS_BIAS": True, "BF16_DOT": True, **blocks}))
            builds.append(h100_build(kernels._bitmap_linear_bwd_grad_x_kernel,
                                     {**structure, "g_ptr": io_dtype, "grad_x_ptr": io_dtype},
                                     {"IS_INT8": values_dtype == torch.int8, **blocks}))
            if values_dtype != torch.int8:
                builds.append(h100_build(kernels._bitmap_linear_bwd_grad_values_kernel,
                                         {**structure, "g_ptr": io_dtype, "x_ptr": io_dtype,
                                          "grad_values_ptr": values_dtype}, {"VALUES": code, **blocks}))
    compile_for_h100("apt_fast.kernels.bitmap_linear", builds)


STRUCTURE = {"bitmap_ptr": torch.int64, "row_offsets_ptr": torch.int64, "starts_ptr": torch.int64,
             "scales_ptr": torch.float32, "a_scale_ptr": torch.float32, "bias_ptr": torch.float32}
