"""apt_fast::bitmap_linear and bitmap_linear_backward on the CPU: every vector tier, both loops (few rows: the
weight streamed and expanded; many rows: transposed x), one and two threads, over odd shapes (K not a multiple of
64, N = 1, M = 1 / 3 / 17 / 70), empty and fully kept rows, 0% to 99% sparsity, fp32 / bf16 / int8 values, fp32 /
bf16 x, bias or none. Float results are held to the rule of the other families: the kernel's error against an
fp64 computation within twice the error of torch's own fp32 computation (plus the output's rounding to bf16);
int8 outputs equal the reference bit for bit (exact int32 sums, the same fp32 epilogue)."""

import contextlib

import pytest
import torch
from bitmap_helpers import bitmap_weight, op_arguments
from native_kernels import native_kernels_fixture
from sparse_checks import (
    assert_float_close,
    exact_backward,
    exact_forward,
    num_threads,
    torch_fp32_backward,
    torch_fp32_forward,
)

from apt_fast import _native
from apt_fast.reference import bitmap_linear as ref

served_natively = native_kernels_fixture("bitmap_linear", "bitmap_linear_backward")

# (M, N, K, density): N = 1, K not a multiple of 64, M across the loops' blocks of 4 rows and tiles of rows
SHAPES = [(1, 1, 64, 0.5), (1, 70, 100, 0.5), (3, 37, 130, 0.3), (17, 64, 1000, 0.5), (70, 45, 65, 0.7),
          (4, 96, 640, 0.01), (5, 33, 200, 1.0), (2, 40, 129, 0.0), (9, 130, 256, 0.05)]
SHAPE_IDS = [f"{m}x{n}x{k}d{d}" for m, n, k, d in SHAPES]
LOOPS = ("few_rows", "many_rows")


@contextlib.contextmanager
def loop_and_threads(loop: str, threads: int):
    """Run the kernels' few-rows or many-rows loop whatever the row count, on `threads` threads."""
    native = _native.native()
    previous_rows = native.bitmap_many_rows()
    native.set_bitmap_many_rows(1 if loop == "many_rows" else 1 << 40)
    try:
        with num_threads(threads):
            yield
    finally:
        native.set_bitmap_many_rows(previous_rows)


def run_forward(x, w, bias):
    return torch.ops.apt_fast.bitmap_linear(x, *op_arguments(w), bias, w.out_features)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_float_forward_on_every_tier(simd_tier, loop, shape):
    m, n, k, density = shape
    generator = torch.Generator().manual_seed(m * 1000 + n)
    for value_dtype in (torch.float32, torch.bfloat16):
        w = bitmap_weight(n, k, density, value_dtype, seed=n)
        for x_dtype, threads in ((torch.float32, 1), (torch.bfloat16, 2)):
            x = torch.randn(m, k, generator=generator).to(x_dtype)
            bias = torch.randn(n, generator=generator) if m % 2 else None
            with loop_and_threads(loop, threads):
                got = run_forward(x, w, bias)
            assert got.dtype == x_dtype and got.shape == (m, n)
            assert_float_close(f"{simd_tier} {loop} {value_dtype} values, {x_dtype} x", got,
                               exact_forward(x, w, bias), torch_fp32_forward(x, w, bias))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_int8_forward_bit_identical_on_every_tier(simd_tier, shape):
    m, n, k, density = shape
    w = bitmap_weight(n, k, density, torch.int8, seed=n)
    generator = torch.Generator().manual_seed(m)
    for x_dtype, threads in ((torch.float32, 1), (torch.bfloat16, 2)):
        x = (torch.randn(m, k, generator=generator) * 3).to(x_dtype)
        bias = torch.randn(n, generator=generator) if m % 2 else None
        with loop_and_threads("few_rows", threads):
            got = run_forward(x, w, bias)
        want = ref.bitmap_linear_ref(x, *op_arguments(w), bias, n)
        diff = (got.float() - want.float()).abs().max().item() if got.numel() else 0.0
        assert torch.equal(got, want), f"{simd_tier}, {x_dtype}: differs from the reference by {diff}"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_on_every_tier(simd_tier, loop, shape):
    m, n, k, density = shape
    generator = torch.Generator().manual_seed(m + n)
    for value_dtype in (torch.float32, torch.bfloat16, torch.int8):
        w = bitmap_weight(n, k, density, value_dtype, seed=k)
        float_values = value_dtype != torch.int8
        for dtype, threads in ((torch.float32, 2), (torch.bfloat16, 1)):
            x = torch.randn(m, k, generator=generator).to(dtype)
            grad_y = torch.randn(m, n, generator=generator).to(dtype)
            with loop_and_threads(loop, threads):
                grad_x, grad_values = torch.ops.apt_fast.bitmap_linear_backward(grad_y, x, *op_arguments(w), True,
                                                                                float_values)
            exact_x, exact_values = exact_backward(grad_y, x, w)
            fp32_x, fp32_values = torch_fp32_backward(grad_y, x, w)
            label = f"{simd_tier} {loop} {value_dtype} values, {dtype}"
            assert grad_x.dtype == dtype and grad_x.shape == x.shape
            assert_float_close(f"grad_x, {label}", grad_x, exact_x, fp32_x)
            if float_values:
                assert grad_values.dtype == value_dtype and grad_values.shape == w.values.shape
                assert_float_close(f"grad_values, {label}", grad_values, exact_values, fp32_values)


@pytest.mark.parametrize("need_grad_x, need_grad_values", [(True, False), (False, True)])
def test_backward_flags_skip_a_gradient(need_grad_x, need_grad_values):
    w = bitmap_weight(50, 100, 0.5)
    x, grad_y = torch.randn(3, 100), torch.randn(3, 50)
    both = torch.ops.apt_fast.bitmap_linear_backward(grad_y, x, *op_arguments(w), True, True)
    one = torch.ops.apt_fast.bitmap_linear_backward(grad_y, x, *op_arguments(w), need_grad_x, need_grad_values)
    for got, full, needed in zip(one, both, (need_grad_x, need_grad_values)):
        assert torch.equal(got, full) if needed else got.numel() == 0


def test_autograd_matches_the_dense_masked_layer_in_fp64():
    """Gradients through apt_fast.functional.bitmap_linear (leading dims, bias) against torch autograd of the
    dense masked layer in fp64."""
    w = bitmap_weight(48, 150, 0.4)
    x = torch.randn(2, 5, 150, requires_grad=True)
    values = w.values.clone().requires_grad_()
    bias = torch.randn(48, requires_grad=True)
    y = apt_fast_linear(x, w, values, bias)
    upstream = torch.randn(y.shape, dtype=torch.float64).float()
    y.backward(upstream)

    x64, bias64 = x.detach().double().requires_grad_(), bias.detach().double().requires_grad_()
    values64 = w.values.double().requires_grad_()
    dense = torch.zeros(48, 150, dtype=torch.float64).masked_scatter(w.mask(), values64)
    y64 = torch.nn.functional.linear(x64, dense, bias64)
    y64.backward(upstream.double())
    y32 = torch.nn.functional.linear(x.detach(), w.to_dense(), bias.detach())
    assert_float_close("y", y.detach(), y64.detach(), y32)
    for name, got, want in (("x", x.grad, x64.grad), ("values", values.grad, values64.grad),
                            ("bias", bias.grad, bias64.grad)):
        tolerance = 1e-5 * want.abs().max().item()
        assert (got.double() - want).abs().max().item() <= tolerance, f"grad of {name}"


def apt_fast_linear(x, w, values, bias):
    from apt_fast.functional import bitmap_linear
    return bitmap_linear(x, w.bitmap, w.row_offsets, values, bias, scales=w.scales)


def test_int8_values_are_frozen_and_x_still_gets_its_gradient():
    w = bitmap_weight(20, 64, 0.5, torch.int8)
    x = torch.randn(3, 64, requires_grad=True)
    apt_fast_linear(x, w, w.values, None).sum().backward()
    want = torch.ones(3, 20) @ w.to_dense()
    assert (x.grad - want).abs().max().item() <= 1e-5 * want.abs().max().item()


def test_zero_rows():
    w = bitmap_weight(30, 70, 0.5)
    assert run_forward(torch.zeros(0, 70), w, None).shape == (0, 30)
    grad_x, grad_values = torch.ops.apt_fast.bitmap_linear_backward(torch.zeros(0, 30), torch.zeros(0, 70),
                                                                    *op_arguments(w), True, True)
    assert grad_x.shape == (0, 70) and torch.equal(grad_values, torch.zeros_like(w.values))


def test_non_contiguous_x():
    w = bitmap_weight(33, 90, 0.5)
    x = torch.randn(90, 6).T  # [6, 90], stride 1 along the batch
    assert torch.equal(run_forward(x, w, None), run_forward(x.contiguous(), w, None))


def test_torch_compile_fullgraph():
    w = bitmap_weight(24, 80, 0.5)
    bias = torch.randn(24)

    def step(x, values):
        return apt_fast_linear(x * 2.0, w, values, bias).square().sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x1 = torch.randn(3, 80).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    v1, v2 = w.values.clone().requires_grad_(), w.values.clone().requires_grad_()
    compiled(x1, v1).backward()
    step(x2, v2).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(v1.grad, v2.grad)


def _bad(case):
    w = bitmap_weight(16, 100, 0.5, case.get("value_dtype", torch.float32))
    bitmap, row_offsets, values, scales = op_arguments(w)
    x = torch.randn(2, 100).to(case.get("x_dtype", torch.float32))
    bitmap = case.get("bitmap", bitmap)
    row_offsets = case.get("row_offsets", row_offsets)
    scales = case["scales"] if "scales" in case else scales
    return x, bitmap, row_offsets, values, scales, case.get("bias"), case.get("out_features", 16)


@pytest.mark.parametrize("case, message", [
    (dict(x_dtype=torch.float16), "x must be float32 or bfloat16, got float16"),
    (dict(bitmap=torch.zeros(16, 1, dtype=torch.int64)), r"bitmap must have shape \[16, 2\], got \[16, 1\]"),
    (dict(bitmap=torch.zeros(16, 2, dtype=torch.int32)), "bitmap must be int64, got int32"),
    (dict(row_offsets=torch.zeros(16, dtype=torch.int64)), r"row_offsets must have shape \[17\], got \[16\]"),
    (dict(out_features=0), "out_features must be >= 1, got 0"),
    (dict(value_dtype=torch.int8, scales=None),
     r"scales must be given \(fp32 \[out_features\]\) with int8 values, got None"),
    (dict(scales=torch.ones(16)), r"scales must be None with float32 values, got a tensor of shape \[16\]"),
    (dict(bias=torch.zeros(5)), r"bias must have shape \[16\], got \[5\]"),
])
def test_bad_forward_input_names_the_argument(case, message):
    with pytest.raises(ValueError, match=message):
        torch.ops.apt_fast.bitmap_linear(*_bad(case))


def test_bad_backward_input_names_the_argument():
    w = bitmap_weight(16, 100, 0.5, torch.int8)
    x = torch.randn(2, 100)
    with pytest.raises(ValueError, match="need_grad_values must be False with int8 values \\(they are frozen\\), "
                                         "got True"):
        torch.ops.apt_fast.bitmap_linear_backward(torch.randn(2, 16), x, *op_arguments(w), True, True)
    with pytest.raises(ValueError, match=r"grad_y must have shape \[2, 16\], got \[3, 16\]"):
        torch.ops.apt_fast.bitmap_linear_backward(torch.randn(3, 16), x, *op_arguments(w), True, False)


@pytest.mark.parametrize("loop", LOOPS)
def test_long_sums_stay_accurate(loop):
    """A larger layer (sums over 1000 inputs forward, 600 outputs backward), at the CPU's own tier."""
    m, n, k = 40, 600, 1000
    w = bitmap_weight(n, k, 0.5, seed=3)
    generator = torch.Generator().manual_seed(4)
    x, grad_y = torch.randn(m, k, generator=generator), torch.randn(m, n, generator=generator)
    with loop_and_threads(loop, 2):
        y = run_forward(x, w, None)
        grad_x, grad_values = torch.ops.apt_fast.bitmap_linear_backward(grad_y, x, *op_arguments(w), True, True)
    assert_float_close(f"y, {loop}", y, exact_forward(x, w, None), torch_fp32_forward(x, w, None))
    exact_x, exact_values = exact_backward(grad_y, x, w)
    fp32_x, fp32_values = torch_fp32_backward(grad_y, x, w)
    assert_float_close(f"grad_x, {loop}", grad_x, exact_x, fp32_x)
    assert_float_close(f"grad_values, {loop}", grad_values, exact_values, fp32_values)
