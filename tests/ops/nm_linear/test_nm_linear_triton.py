"""The Triton kernels of the N:M sparse linear layer (apt_fast.kernels.nm_linear) against the reference.

Without CUDA they run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1 is set before the kernel
module is imported), so shapes are small but odd: 2:4 and 4:8, and 1:4 and 3:8 (n not a power of two, 3-bit
positions that straddle bytes), group counts that cut the group block short, row and output blocks cut short,
groups keeping zeros, an empty row, leading dimensions. int8 is bit-identical to the reference; float results are
held to 2x the error of the same fp32 computation against fp64 (sparse_triton_checks), and fp32 also to 1e-5 of
F.linear on the masked dense weight. Every kernel variant is also compiled for an H100 (sm_90).
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from nm_helpers import nm_weight, op_arguments
from sparse_triton_checks import DEVICE, assert_near_exact, compile_for_h100, h100_build, on_device

from apt_fast.backends.triton import nm_linear as triton_backend
from apt_fast.kernels import nm_linear as kernels
from apt_fast.kernels.nm_linear import nm_linear_backward_triton, nm_linear_triton
from apt_fast.reference import nm_linear as ref

# (leading shape of x, out_features, in_features, n, m)
SHAPES = [((1,), 37, 76, 2, 4), ((2, 9), 33, 144, 4, 8), ((17,), 40, 52, 1, 4), ((3,), 35, 136, 3, 8)]
FLOAT_DTYPES = [torch.float32, torch.bfloat16]


def _inputs(lead, rows, k, n, m, values_dtype, x_dtype, bias=True, seed=0):
    w = nm_weight(rows, k, n, m, values_dtype, seed=seed)
    x = (torch.randn(*lead, k, generator=torch.Generator().manual_seed(seed + 7)) * 2).to(x_dtype)
    b = torch.randn(rows, generator=torch.Generator().manual_seed(seed + 8)) if bias else None
    return w, x, b


def _multiplied(x, values_dtype):
    """x as the layer multiplies it."""
    return x.bfloat16().float() if values_dtype == torch.bfloat16 else x.float()


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_float(shape, values_dtype, x_dtype):
    lead, rows, k, n, m = shape
    w, x, b = _inputs(lead, rows, k, n, m, values_dtype, x_dtype)
    got = nm_linear_triton(*on_device(x, *op_arguments(w), b), rows, n, m).cpu()
    assert got.dtype == x_dtype and got.shape == (*lead, rows)
    dense, xm = w.to_dense(), _multiplied(x, values_dtype)  # [N, K] fp32 exact, [..., K]
    exact = xm.double() @ dense.double().T + b.double()
    fp32 = xm @ dense.T + b
    assert_near_exact(got, exact, fp32, "forward")
    assert_near_exact(ref.nm_linear_ref(x, *op_arguments(w), b, n, m), exact, fp32, "reference")
    if values_dtype == x_dtype == torch.float32:
        linear = torch.nn.functional.linear(x, dense, b)
        assert (got - linear).abs().max() <= 1e-5 * linear.abs().max()


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_int8_bit_identical(shape, x_dtype):
    lead, rows, k, n, m = shape
    w, x, b = _inputs(lead, rows, k, n, m, torch.int8, x_dtype, bias=lead != (1,))
    got = nm_linear_triton(*on_device(x, *op_arguments(w), b), rows, n, m).cpu()
    want = ref.nm_linear_ref(x, *op_arguments(w), b, n, m)
    if DEVICE == "cpu":
        assert torch.equal(got, want), f"{(got.float() - want.float()).abs().max().item()}"
    else:  # a GPU's fp32 division may round the activation scale differently
        assert_near_exact(got, want.double(), want, "int8 on GPU")


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_float(shape, values_dtype, x_dtype):
    lead, rows, k, n, m = shape
    w, x, _ = _inputs(lead, rows, k, n, m, values_dtype, x_dtype, bias=False)
    grad_y = torch.randn(*lead, rows, generator=torch.Generator().manual_seed(9)).to(x_dtype)
    grad_x, grad_values = nm_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), n, m, True, True)
    assert grad_x.dtype == x_dtype and grad_values.dtype == values_dtype
    g, xm = grad_y.reshape(-1, rows).float(), _multiplied(x, values_dtype).reshape(-1, k)  # [M, N], [M, K]
    dense, columns = w.to_dense(), ref.kept_columns(w.indices, k, n, m)  # [N, K], [N, K n / m]
    assert_near_exact(grad_x, (g.double() @ dense.double()).reshape(x.shape), (g @ dense).reshape(x.shape),
                      "grad_x")
    assert_near_exact(grad_values, (g.double().T @ xm.double()).gather(1, columns), (g.T @ xm).gather(1, columns),
                      "grad_values")


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
def test_backward_int8_grad_x(x_dtype):
    w, x, _ = _inputs((2, 9), 33, 144, 4, 8, torch.int8, x_dtype, bias=False)
    grad_y = torch.randn(2, 9, 33, generator=torch.Generator().manual_seed(9)).to(x_dtype)
    grad_x, grad_values = nm_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), 4, 8, True, False)
    assert grad_values.numel() == 0
    g, dense = grad_y.reshape(-1, 33).float(), w.to_dense()  # dequantized
    assert_near_exact(grad_x, (g.double() @ dense.double()).reshape(x.shape), (g @ dense).reshape(x.shape),
                      "int8 grad_x")


@pytest.mark.parametrize("flags", [(True, False), (False, True), (False, False)])
def test_backward_skips_what_is_not_asked(flags):
    w, x, _ = _inputs((5,), 37, 76, 2, 4, torch.float32, torch.float32, bias=False)
    grad_y = torch.randn(5, 37, generator=torch.Generator().manual_seed(9))
    got = nm_linear_backward_triton(*on_device(grad_y, x, *op_arguments(w)), 2, 4, *flags)
    want = ref.nm_linear_backward_ref(grad_y, x, *op_arguments(w), 2, 4, *flags)
    for name, g, r, asked in zip(("grad_x", "grad_values"), got, want, flags):
        assert g.shape == r.shape and g.dtype == r.dtype, name
        if asked:
            assert_near_exact(g, r.double(), r, name)


def test_no_rows():
    w, _, b = _inputs((1,), 20, 40, 2, 4, torch.float32, torch.float32)
    empty_x = torch.empty(0, 40)
    assert nm_linear_triton(*on_device(empty_x, *op_arguments(w), b), 20, 2, 4).shape == (0, 20)
    grad_x, grad_values = nm_linear_backward_triton(*on_device(torch.empty(0, 20), empty_x, *op_arguments(w)), 2, 4,
                                                    True, True)
    assert grad_x.shape == (0, 40) and torch.equal(grad_values.cpu(), torch.zeros_like(w.values))


def test_backend_checks_arguments_first():
    """The CUDA entry points run the op's argument check before the kernel."""
    w = nm_weight(37, 76)
    x = torch.randn(3, 76)
    got = triton_backend.nm_linear(*on_device(x, *op_arguments(w)), None, 37, 2, 4)
    assert_near_exact(got, x.double() @ w.to_dense().double().T, x @ w.to_dense().T, "backend")
    with pytest.raises(ValueError, match="in_features must be a positive multiple of m=8, got 76"):
        triton_backend.nm_linear(*on_device(x, *op_arguments(w)), None, 37, 2, 8)


def test_kernels_compile_for_h100():
    structure = {"indices_ptr": torch.uint8, "scales_ptr": torch.float32, "a_scale_ptr": torch.float32,
                 "bias_ptr": torch.float32}
    builds = []
    for n, m in ((2, 4), (3, 8)):
        pattern = {"KEEP": n, "GROUP": m, "BITS": m.bit_length() - 1, "BLOCK_N": kernels.BLOCK_N,
                   "BLOCK_G": kernels.BLOCK_G}
        for values_dtype in (torch.float32, torch.bfloat16, torch.int8):
            code, pointers = kernels.VALUE_CODES[values_dtype], {**structure, "values_ptr": values_dtype}
            for io_dtype in FLOAT_DTYPES:
                x_dtype = torch.int8 if values_dtype == torch.int8 else io_dtype
                for block_m in (1, kernels.BLOCK_M):
                    builds.append(h100_build(kernels._nm_linear_fwd_kernel,
                                             {**pointers, "x_ptr": x_dtype, "y_ptr": io_dtype},
                                             {"VALUES": code, "HAS_BIAS": True, "BLOCK_M": block_m, **pattern}))
                builds.append(h100_build(kernels._nm_linear_bwd_grad_x_kernel,
                                         {**pointers, "g_ptr": io_dtype, "grad_x_ptr": io_dtype},
                                         {"IS_INT8": values_dtype == torch.int8, "BLOCK_M": kernels.BLOCK_M,
                                          **pattern}))
                if values_dtype != torch.int8:
                    builds.append(h100_build(kernels._nm_linear_bwd_grad_values_kernel,
                                             {**pointers, "g_ptr": io_dtype, "x_ptr": io_dtype,
                                              "grad_values_ptr": values_dtype},
                                             {"VALUES": code, "BLOCK_M": kernels.BLOCK_M, **pattern}))
    compile_for_h100("apt_fast.kernels.nm_linear", builds)
