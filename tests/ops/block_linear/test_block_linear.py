"""apt_fast::block_linear and block_linear_backward: the reference against fp64 math on the dense masked weight first
(it is the oracle), then the CPU kernels against it on every vector tier (AMX off) and on AMX forced down to one
row, over blocks (16, 16), (32, 32) and (1, 16), odd shapes (M = 1, 3, 17, 65, 130 across the dot and transposed
forms and the AMX row passes, leading dims, N not a multiple of 16 with (1, 16) blocks), empty and full block rows,
every block kept and none, fp32 / bf16 values and x, bias or none, one and two threads, non-contiguous x; autograd
through apt_fast.functional and a training step; the errors for bad input, the offsets and columns the C++ kernel
checks among them. Float results are held to twice the error of torch's own fp32 computation of the same layer
against fp64 (sparse_checks)."""

import pytest
import torch
from block_helpers import block_mask, block_weight, columns, offsets, op_arguments, seven_block_weight
from native_kernels import require_native
from simd_tiers import ALL_TIERS, VECTOR_TIERS
from sparse_checks import (
    assert_float_close,
    check_autograd_against_dense,
    check_training_against_dense,
    exact_backward,
    exact_forward,
    multiplied,
    native_tier_fixture,
    num_threads,
    torch_fp32_backward,
    torch_fp32_forward,
)

from apt_fast.functional import block_linear
from apt_fast.reference import block_linear as ref
from apt_fast.sparsity.formats.block import BlockWeight

OPS = ("block_linear", "block_linear_backward")
tier = native_tier_fixture(OPS, ALL_TIERS, "block_amx_min_rows")
vector_tier = native_tier_fixture(OPS, VECTOR_TIERS, "block_amx_min_rows")

# (leading shape of x, N, K, block, density of blocks); 3+ block rows: block row 0 empty and block row 1 full
SHAPES = [((1,), 48, 80, (16, 16), 0.4), ((3,), 96, 128, (32, 32), 0.5), ((17,), 37, 48, (1, 16), 0.3),
          ((65,), 64, 64, (16, 16), 1.0), ((130,), 64, 96, (32, 32), 0.4), ((2, 5), 70, 64, (1, 16), 0.6),
          ((17,), 64, 96, (32, 32), 0.0), ((9,), 48, 32, (16, 16), 0.5)]
SHAPE_IDS = [f"{'x'.join(map(str, lead))}-{n}x{k}-b{b[0]}x{b[1]}-d{d}" for lead, n, k, b, d in SHAPES]
FLOAT_DTYPES = (torch.float32, torch.bfloat16)


def inputs(lead, k, n, x_dtype, seed, bias_kind=None):
    """x [*lead, K] and a bias of kind None / 'fp32' / 'bf16'."""
    generator = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, k, generator=generator) * 2).to(x_dtype)
    bias = torch.randn(n, generator=generator) if bias_kind else None
    return x, bias.bfloat16() if bias_kind == "bf16" else bias


def run_forward(x, w, bias):
    return torch.ops.apt_fast.block_linear(x, *op_arguments(w), bias, w.out_features)


def run_backward(grad_y, x, w, need_grad_x=True, need_grad_values=True):
    return torch.ops.apt_fast.block_linear_backward(grad_y, x, *op_arguments(w), need_grad_x, need_grad_values)


# --- the reference, against math on the dense masked weight -------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_reference_is_the_masked_dense_layer(shape):
    """Forward and backward of the reference on blocks a finer mask thinned (their zeros stored), against fp64 on
    weight * mask built without the format."""
    lead, n, k, block, density = shape
    bn, bk = block
    weight = torch.randn(n, k, generator=torch.Generator().manual_seed(n))
    thin = torch.rand(n, k, generator=torch.Generator().manual_seed(k)) < 0.9
    mask = block_mask(n, k, block, density, seed=k) & thin
    kept = mask.reshape(n // bn, bn, k // bk, bk).any(3).any(1)  # [N / bn, K / bk]: the stored blocks

    def stored(full):  # [N, K] -> [blocks, bn, bk]
        return full.reshape(n // bn, bn, k // bk, bk).permute(0, 2, 1, 3)[kept]

    for values_dtype in FLOAT_DTYPES:
        w = BlockWeight.pack(weight, mask, values_dtype, block=block)
        masked = weight.to(values_dtype).float() * mask  # [N, K]
        for x_dtype in FLOAT_DTYPES:
            x, bias = inputs(lead, k, n, x_dtype, seed=1, bias_kind="fp32")
            xm = multiplied(x, values_dtype)
            got = ref.block_linear_ref(x, *op_arguments(w), bias, n)
            assert got.dtype == x_dtype and got.shape == (*lead, n)
            assert_float_close(f"reference, {values_dtype} values, {x_dtype} x", got,
                               xm.double() @ masked.double().T + bias.double(),
                               torch.nn.functional.linear(xm, masked, bias))

            grad_y = torch.randn(*lead, n, generator=torch.Generator().manual_seed(2)).to(x_dtype)
            grad_x, grad_values = ref.block_linear_backward_ref(grad_y, x, *op_arguments(w), True, True)
            g, rows = grad_y.reshape(-1, n), xm.reshape(-1, k)  # [M, N], [M, K]
            assert_float_close("reference grad_x", grad_x, (g.double() @ masked.double()).reshape(x.shape),
                               (g.float() @ masked).reshape(x.shape))
            assert grad_values.dtype == values_dtype and grad_values.shape == w.values.shape
            assert_float_close("reference grad_values", grad_values, stored(g.double().T @ rows.double()),
                               stored(g.float().T @ rows))


# --- the CPU kernels against the reference --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_forward_on_every_tier(tier, shape):
    lead, n, k, block, density = shape
    for values_dtype in FLOAT_DTYPES:
        w = block_weight(n, k, block, density, values_dtype, seed=k)
        for x_dtype, threads, bias_kind in ((torch.float32, 1, "fp32"), (torch.bfloat16, 2, None),
                                            (torch.bfloat16, 1, "bf16"), (torch.float32, 2, None)):
            x, bias = inputs(lead, k, n, x_dtype, seed=n, bias_kind=bias_kind)
            with num_threads(threads):
                got = run_forward(x, w, bias)
            label = f"{tier}, {values_dtype} values, {x_dtype} x, {threads} threads"
            assert got.dtype == x_dtype and got.shape == (*lead, n), label
            assert_float_close(label, got, exact_forward(x, w, bias), torch_fp32_forward(x, w, bias))
            if values_dtype == x_dtype == torch.float32 and w.values.numel():  # F.linear within 1e-5 relative
                linear = torch.nn.functional.linear(x, w.to_dense(), bias)
                assert (got - linear).abs().max() <= 1e-5 * linear.abs().max(), label


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_on_every_tier(vector_tier, shape):
    lead, n, k, block, density = shape
    generator = torch.Generator().manual_seed(k)
    for values_dtype in FLOAT_DTYPES:
        w = block_weight(n, k, block, density, values_dtype, seed=n)
        for dtype, threads in ((torch.float32, 2), (torch.bfloat16, 1)):
            x = torch.randn(*lead, k, generator=generator).to(dtype)
            grad_y = torch.randn(*lead, n, generator=generator).to(dtype)
            with num_threads(threads):
                grad_x, grad_values = run_backward(grad_y, x, w)
            exact_x, exact_values = exact_backward(grad_y, x, w)
            fp32_x, fp32_values = torch_fp32_backward(grad_y, x, w)
            label = f"{vector_tier}, {values_dtype} values, {dtype}, {threads} threads"
            assert grad_x.dtype == dtype and grad_x.shape == x.shape
            assert_float_close(f"grad_x, {label}", grad_x, exact_x, fp32_x)
            assert grad_values.dtype == values_dtype and grad_values.shape == w.values.shape
            assert_float_close(f"grad_values, {label}", grad_values, exact_values, fp32_values)


@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
def test_each_gradient_alone_equals_both(values_dtype):
    require_native(*OPS)
    w = block_weight(64, 96, (16, 16), 0.5, values_dtype)
    x, grad_y = torch.randn(5, 96), torch.randn(5, 64)
    both = run_backward(grad_y, x, w, True, True)
    for flags in ((True, False), (False, True), (False, False)):
        for got, full, needed in zip(run_backward(grad_y, x, w, *flags), both, flags):
            assert torch.equal(got, full) if needed else got.numel() == 0


def test_non_contiguous_x_gives_the_contiguous_result(tier):
    for values_dtype in FLOAT_DTYPES:
        w = block_weight(64, 96, (32, 32), 0.5, values_dtype)
        transposed = torch.randn(96, 17).T  # [17, 96], stride 1 along the rows: copied
        sliced = torch.randn(17, 120)[:, 8:104]  # [17, 96], a row stride of 120
        for x in (transposed, sliced):
            assert torch.equal(run_forward(x, w, None), run_forward(x.contiguous(), w, None))
        grad_y = torch.randn(17, 70)[:, 3:67]
        for got, want in zip(run_backward(grad_y, sliced, w), run_backward(grad_y.contiguous(), sliced.contiguous(),
                                                                           w)):
            assert torch.equal(got, want)


def test_no_kept_block_gives_the_bias_and_zero_gradients():
    require_native(*OPS)
    w = BlockWeight.pack(torch.randn(32, 48), torch.zeros(32, 48, dtype=torch.bool), block=(16, 16))
    x, bias = torch.randn(3, 48), torch.randn(32)
    assert torch.equal(run_forward(x, w, bias), bias.expand(3, 32))
    grad_x, grad_values = run_backward(torch.ones(3, 32), x, w)
    assert torch.equal(grad_x, torch.zeros(3, 48)) and grad_values.shape == (0, 16, 16)


def test_zero_rows():
    require_native(*OPS)
    w = block_weight(32, 48, (16, 16), 0.5)
    assert run_forward(torch.zeros(0, 48), w, None).shape == (0, 32)
    assert run_forward(torch.zeros(2, 0, 48), w, torch.ones(32)).shape == (2, 0, 32)
    grad_x, grad_values = run_backward(torch.zeros(0, 32), torch.zeros(0, 48), w)
    assert grad_x.shape == (0, 48) and torch.equal(grad_values, torch.zeros_like(w.values))


@pytest.mark.parametrize("rows", [3, 40], ids=["dot_form", "transposed_form"])
@pytest.mark.parametrize("block", [(32, 32), (1, 16)], ids=["32x32", "1x16"])
def test_long_sums_stay_accurate(tier, block, rows):
    """A larger layer (sums over 1024 of 2048 inputs forward, 256 outputs backward), fp32 and bf16 values."""
    generator = torch.Generator().manual_seed(6)
    x, grad_y = torch.randn(rows, 2048, generator=generator), torch.randn(rows, 256, generator=generator)
    for values_dtype in FLOAT_DTYPES:
        w = block_weight(256, 2048, block, 0.5, values_dtype, seed=5, odd_rows=False)
        with num_threads(2):
            y = run_forward(x, w, None)
            grad_x, grad_values = run_backward(grad_y, x, w)
        assert_float_close(f"y, {values_dtype} values", y, exact_forward(x, w, None), torch_fp32_forward(x, w, None))
        for name, got, exact, fp32 in zip(("grad_x", "grad_values"), (grad_x, grad_values),
                                          exact_backward(grad_y, x, w), torch_fp32_backward(grad_y, x, w)):
            assert_float_close(f"{name}, {values_dtype} values", got, exact, fp32)


# --- autograd through apt_fast.functional ---------------------------------------------------------------------------

@pytest.mark.parametrize("values_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("block", [(16, 16), (1, 16)], ids=["16x16", "1x16"])
def test_autograd_matches_torch_autograd_of_the_dense_masked_layer(block, values_dtype):
    w = block_weight(48, 64, block, 0.5, values_dtype)
    check_autograd_against_dense(w, lambda x, values, bias: block_linear(x, values, w.block_row_offsets,
                                                                         w.block_columns, bias))


def test_training_steps_follow_the_dense_masked_layer():
    w = block_weight(64, 96, (32, 32), 0.5, seed=2)
    check_training_against_dense(w, lambda x, values, bias: block_linear(x, values, w.block_row_offsets,
                                                                         w.block_columns, bias))


# --- bad input ------------------------------------------------------------------------------------------------------

def _bad_forward(case):
    """block_linear's arguments for seven_block_weight(), one of them replaced."""
    w = seven_block_weight()
    arguments = dict(x=torch.randn(2, 64), values=w.values, block_row_offsets=w.block_row_offsets,
                     block_columns=w.block_columns, bias=None, out_features=48)
    arguments.update(case)
    return tuple(arguments.values())


@pytest.mark.parametrize("case, message", [
    (dict(x=torch.randn(2, 64, dtype=torch.float16)), "x must be float32 or bfloat16, got float16"),
    (dict(x=torch.tensor(1.0)), r"x must have shape \[\.\.\., in_features\], got \(\)"),
    (dict(values=torch.zeros(7, 16, 16, dtype=torch.int8)), "values must be float32 or bfloat16, got int8"),
    (dict(values=torch.zeros(7, 256)), r"values must be 3-D \[blocks, bn, bk\], got shape \(7, 256\)"),
    (dict(out_features=0), "out_features must be >= 1, got 0"),
    (dict(values=torch.zeros(7, 8, 8)), r"block must be one of \(16, 16\), \(32, 32\), \(1, 16\), got \(8, 8\)"),
    (dict(out_features=40), r"block \(16, 16\) must tile the weight \[40, 64\]: out_features must be a multiple of "
                            r"16 and in_features of 16, got 40 and 64"),
    (dict(x=torch.randn(2, 72)), r"block \(16, 16\) must tile the weight \[48, 72\]: out_features must be a "
                                 r"multiple of 16 and in_features of 16, got 48 and 72"),
    (dict(block_row_offsets=torch.zeros(4, dtype=torch.int32)), "block_row_offsets must be int64, got int32"),
    (dict(block_row_offsets=torch.zeros(3, dtype=torch.int64)), r"block_row_offsets must have shape \(4,\), got "
                                                                r"\(3,\)"),
    (dict(block_columns=torch.zeros(7, dtype=torch.int64)), "block_columns must be int32, got int64"),
    (dict(block_columns=torch.zeros(1, dtype=torch.int32)),
     r"block_columns must have shape \(7,\) like values' blocks, got \(1,\)"),
    (dict(bias=torch.zeros(48, dtype=torch.float64)), "bias must be float32 or bfloat16, got float64"),
    (dict(bias=torch.zeros(5)), r"bias must have shape \(48,\), got \(5,\)"),
])
def test_bad_forward_input_names_the_argument(case, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        torch.ops.apt_fast.block_linear(*_bad_forward(case))


@pytest.mark.parametrize("case, message", [
    (dict(grad_y=torch.randn(2, 40)), r"block \(16, 16\) must tile the weight \[40, 64\]: out_features must be a "
                                      r"multiple of 16 and in_features of 16, got 40 and 64"),
    (dict(grad_y=torch.randn(3, 48)), r"grad_out must have x's leading shape \(2,\), got \(3, 48\)"),
    (dict(grad_y=torch.randn(2, 48, dtype=torch.float64)), "grad_out must be float32 or bfloat16, got float64"),
    (dict(x=torch.randn(2, 64, dtype=torch.float64)), "x must be float32 or bfloat16, got float64"),
])
def test_bad_backward_input_names_the_argument(case, message):
    w = block_weight(48, 64, (16, 16), 0.5)
    x, grad_y = case.get("x", torch.randn(2, 64)), case.get("grad_y", torch.randn(2, 48))
    with pytest.raises(ValueError, match=f"^{message}$"):
        torch.ops.apt_fast.block_linear_backward(grad_y, x, *op_arguments(w), True, True)


# (replaced offsets or columns, the C++ kernel's message, the reference's message)
BAD_STRUCTURES = [
    (dict(block_row_offsets=offsets(1, 4, 7, 7)), r"block_row_offsets\[0\] must be 0, got 1",
     r"block_row_offsets must rise from 0 to the number of blocks 7, got 1 \.\. 7"),
    (dict(block_row_offsets=offsets(0, 4, 6, 6)), r"block_row_offsets\[-1\] must equal the number of blocks 7, got 6",
     r"block_row_offsets must rise from 0 to the number of blocks 7, got 0 \.\. 6"),
    # a row range past block_columns' end before the decrease: the offsets are checked before any column is read
    (dict(block_row_offsets=offsets(0, 9, 2, 7)), "block_row_offsets must not decrease, got 9 then 2 at block row 1",
     r"block_row_offsets must rise from 0 to the number of blocks 7, got 0 \.\. 7 with a decrease"),
    (dict(block_row_offsets=offsets(0, 1000000, 2, 7)),
     "block_row_offsets must not decrease, got 1000000 then 2 at block row 1",
     r"block_row_offsets must rise from 0 to the number of blocks 7, got 0 \.\. 7 with a decrease"),
    (dict(block_columns=columns(0, 1, 2, 4, 0, 2, 3)), r"block_columns must be in \[0, 4\), got 4 at block 3",
     r"block_columns must be in \[0, 4\), got values in \[0, 4\]"),
    (dict(block_columns=columns(0, 1, 2, 3, -1, 2, 3)), r"block_columns must be in \[0, 4\), got -1 at block 4",
     r"block_columns must be in \[0, 4\), got values in \[-1, 3\]"),
    (dict(block_columns=columns(0, 1, 3, 2, 0, 2, 3)),
     "block_columns must increase within a block row, got 3 then 2 in block row 0",
     r"block_columns must ascend strictly within a block row, got \[0, 1, 3, 2\] in block row 0"),
    (dict(block_columns=columns(0, 1, 2, 3, 0, 2, 2)),
     "block_columns must increase within a block row, got 2 then 2 in block row 1",
     r"block_columns must ascend strictly within a block row, got \[0, 2, 2\] in block row 1"),
]
STRUCTURE_IDS = ["first offset", "last offset", "decrease", "far past the end", "column past", "negative column",
                 "descending", "repeated"]


def _with_structure(change):
    w = seven_block_weight()
    return tuple({"values": w.values, "block_row_offsets": w.block_row_offsets, "block_columns": w.block_columns,
                  **change}.values())


@pytest.mark.parametrize("change, native_message, reference_message", BAD_STRUCTURES, ids=STRUCTURE_IDS)
def test_bad_offsets_and_columns_are_a_value_error_in_cpp(change, native_message, reference_message):
    """The ops check shapes and dtypes; the C++ kernel checks the offsets and columns (forward and backward): a
    ValueError saying what is wrong, never a read out of bounds."""
    require_native(*OPS)
    weight, x = _with_structure(change), torch.randn(2, 64)
    with pytest.raises(ValueError, match=f"^{native_message}$"):
        torch.ops.apt_fast.block_linear(x, *weight, None, 48)
    for flags in ((True, False), (False, True)):
        with pytest.raises(ValueError, match=f"^{native_message}$"):
            torch.ops.apt_fast.block_linear_backward(torch.randn(2, 48), x, *weight, *flags)


@pytest.mark.parametrize("change, native_message, reference_message", BAD_STRUCTURES, ids=STRUCTURE_IDS)
def test_bad_offsets_and_columns_are_a_value_error_in_the_reference(change, native_message, reference_message):
    weight, x = _with_structure(change), torch.randn(2, 64)
    with pytest.raises(ValueError, match=f"^{reference_message}$"):
        ref.block_linear_ref(x, *weight, None, 48)
    for flags in ((True, False), (False, True)):
        with pytest.raises(ValueError, match=f"^{reference_message}$"):
            ref.block_linear_backward_ref(torch.randn(2, 48), x, *weight, *flags)
